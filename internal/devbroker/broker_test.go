package devbroker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/devbroker"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
)

const (
	inTopic  = "in"
	outTopic = "out"
	group    = "g"
	outParts = 3
)

// images are the data directory of a broker just before a consume-produce
// transaction's EndTxn and just after it.
type images struct{ before, after string }

// transact runs, on a broker persisted to a fresh directory, one
// transaction that consumes a record of inTopic and writes two records to
// each partition of outTopic, and images the directory either side of its
// commit.
func transact(t *testing.T) images {
	t.Helper()
	dir := t.TempDir()
	b := start(t, dir)
	ctx := ctxFor(t, time.Minute)
	adm := kadm.NewClient(client(t, b))
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, inTopic); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, outParts, 1, nil, outTopic); err != nil {
		t.Fatal(err)
	}
	if err := client(t, b).ProduceSync(ctx, &kgo.Record{Topic: inTopic, Value: []byte("command")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	sess, err := kgo.NewGroupTransactSession(append(conn(b.ListenAddrs()), kgo.TransactionalID("worker"),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(inTopic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var polled int
	for polled == 0 {
		fs := sess.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatal("nothing polled:", err)
		}
		polled = fs.NumRecords()
	}
	if err := sess.Begin(); err != nil {
		t.Fatal(err)
	}
	for p := range int32(outParts) {
		for i := range 2 {
			r := &kgo.Record{Topic: outTopic, Partition: p, Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "p%d-%d", p, i),
				Headers: []kgo.RecordHeader{{Key: "h", Value: []byte("v")}}}
			if err := sess.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	before := kafkatest.CrashImage(t, dir)
	if ok, err := sess.End(ctx, kgo.TryCommit); err != nil || !ok {
		t.Fatalf("commit: %v %v", ok, err)
	}
	return images{before: before, after: kafkatest.CrashImage(t, dir)}
}

// torn is the directory a kill in the middle of the commit leaves: the
// markers of the first outTopic partition written, the others not, and the
// journal entry written (it precedes every marker).
func torn(t *testing.T, im images) string {
	t.Helper()
	dir := kafkatest.CrashImage(t, im.before)
	part := filepath.Join("kafka", "partitions", outTopic+"-0")
	if err := os.RemoveAll(filepath.Join(dir, part)); err != nil {
		t.Fatal(err)
	}
	copyDir(t, filepath.Join(im.after, part), filepath.Join(dir, part))
	copyDir(t, filepath.Join(im.after, devbroker.JournalFile), filepath.Join(dir, devbroker.JournalFile))
	return dir
}

func TestTornCommitIsCompletedOnStart(t *testing.T) {
	dir := torn(t, transact(t))

	// Plain kfake on the same files shows the tear: one partition holds
	// the transaction, the others lost it, and the offset never moved.
	plain := kafkatest.CrashImage(t, dir)
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.DataDir(filepath.Join(plain, "kafka"))}
	if sasl.User != "" {
		opts = append(opts, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", sasl.User, sasl.Password))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	got := committed(t, c.ListenAddrs())
	c.Close()
	if want := [][]string{{"p0-0", "p0-1"}, nil, nil}; !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("plain kfake: want the torn shape %v, got %v", want, got)
	}

	b := start(t, dir)
	assertWhole(t, b)
	b.Close()

	// Starting again changes nothing: the commit is not written twice.
	b = start(t, dir)
	assertWhole(t, b)
}

func TestRecoveryCutShortIsNotRepeated(t *testing.T) {
	im := transact(t)
	dir := torn(t, im)
	b := start(t, dir)
	assertWhole(t, b)
	b.Close()
	// A kill after the recovery's own commit but before the journal was
	// emptied: the entry is back, the rewritten records are there.
	copyDir(t, filepath.Join(im.after, devbroker.JournalFile), filepath.Join(dir, devbroker.JournalFile))
	b = start(t, dir)
	assertWhole(t, b)
}

func TestCommitThatNeverBeganStaysAborted(t *testing.T) {
	im := transact(t)
	// The journal entry written, no marker: the producer was never told of
	// a commit, so none is invented.
	dir := kafkatest.CrashImage(t, im.before)
	copyDir(t, filepath.Join(im.after, devbroker.JournalFile), filepath.Join(dir, devbroker.JournalFile))
	b := start(t, dir)
	if got := committed(t, b.ListenAddrs()); slices.ContainsFunc(got, func(p []string) bool { return len(p) > 0 }) {
		t.Fatalf("records of an aborted transaction became visible: %v", got)
	}
	if at := groupOffset(t, b); at >= 0 {
		t.Fatalf("offset of an aborted transaction committed: %d", at)
	}
}

func TestCleanStopLeavesNothingToComplete(t *testing.T) {
	im := transact(t)
	b := start(t, im.after)
	assertWhole(t, b)
	b.Close()
	raw, err := os.ReadFile(filepath.Join(im.after, devbroker.JournalFile))
	if err != nil || len(raw) != 0 {
		t.Fatalf("journal after a clean stop: %q %v", raw, err)
	}
}

// assertWhole checks that every partition of outTopic holds its two records
// once and the group's offset is past the consumed record.
func assertWhole(t *testing.T, b *devbroker.Broker) {
	t.Helper()
	want := [][]string{{"p0-0", "p0-1"}, {"p1-0", "p1-1"}, {"p2-0", "p2-1"}}
	if got := committed(t, b.ListenAddrs()); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("committed records: want %v, got %v", want, got)
	}
	if at := groupOffset(t, b); at != 1 {
		t.Fatalf("group offset: want 1, got %d", at)
	}
}

// committed returns the committed values of each outTopic partition.
func committed(t *testing.T, addrs []string) [][]string {
	t.Helper()
	cl, err := kgo.NewClient(conn(addrs)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	out := make([][]string, outParts)
	from := map[int32]int64{}
	for p := range int32(outParts) {
		from[p] = 0
	}
	err = kafka.ReadToEnd(ctxFor(t, time.Minute), cl, outTopic, from, func(r *kgo.Record) error {
		if len(r.Headers) != 1 || string(r.Headers[0].Value) != "v" {
			return fmt.Errorf("headers lost: %v", r.Headers)
		}
		out[r.Partition] = append(out[r.Partition], string(r.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// groupOffset is the group's committed offset of inTopic, -1 if none.
func groupOffset(t *testing.T, b *devbroker.Broker) int64 {
	t.Helper()
	offs, err := kadm.NewClient(client(t, b)).FetchOffsets(ctxFor(t, time.Minute), group)
	if err != nil {
		t.Fatal(err)
	}
	o, ok := offs.Lookup(inTopic, 0)
	if !ok {
		return -1
	}
	return o.At
}

func start(t *testing.T, dir string) *devbroker.Broker {
	t.Helper()
	b, err := devbroker.Start(ctxFor(t, time.Minute), devbroker.Config{Dir: dir,
		Opts: []kfake.Opt{kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(500 * time.Millisecond)}, SASL: sasl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func client(t *testing.T, b *devbroker.Broker) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(conn(b.ListenAddrs())...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// copyDir copies a file or a directory tree.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if info.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, raw, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// sasl is the principal the broker answers, none unless a test sets it, as
// logbook dev does.
var sasl kafka.SASL

// conn connects to the broker at addrs as sasl.
func conn(addrs []string) []kgo.Opt { return kafka.Config{Brokers: addrs, SASL: sasl}.Opts() }

// The journal still completes a torn commit when the broker authenticates
// its clients (kfake runs its control functions before its SASL check).
func TestTornCommitIsCompletedOnStartWithSASL(t *testing.T) {
	sasl = kafka.SASL{User: "logbook", Password: "secret"}
	defer func() { sasl = kafka.SASL{} }()
	TestTornCommitIsCompletedOnStart(t)
}

// A kill between a transaction's batch and its index entry: kfake alone
// shows the records of the transaction the kill cut short as committed (here
// as on a partition of the decider state, where that meant state without its
// events); devbroker keeps them aborted, then and after the next crash.
func TestTransactionCutShortBeforeItsIndexEntryStaysAborted(t *testing.T) {
	dir := t.TempDir()
	b := start(t, dir)
	if _, err := kadm.NewClient(client(t, b)).CreateTopic(ctxFor(t, time.Minute), 1, 1, nil, "x"); err != nil {
		t.Fatal(err)
	}
	transactional(t, b.ListenAddrs(), "w1", "first", true)
	transactional(t, b.ListenAddrs(), "w1", "cut short", false)
	crashed := kafkatest.CrashImage(t, dir)
	idx := filepath.Join(crashed, "kafka", "partitions", "x-0", "0.idx")
	raw, err := os.ReadFile(idx)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(idx, raw[:len(raw)-15], 0o600); err != nil { // the last entry unwritten
		t.Fatal(err)
	}

	plain := kafkatest.CrashImage(t, crashed)
	c := kafkatest.DiskCluster(t, filepath.Join(plain, "kafka"))
	if got := values(t, c.ListenAddrs(), "x"); !slices.Equal(got, []string{"first", "cut short"}) {
		t.Fatalf("plain kfake: want the aborted records shown, got %v", got)
	}
	c.Close()

	b = start(t, crashed)
	if got := values(t, b.ListenAddrs(), "x"); !slices.Equal(got, []string{"first"}) {
		t.Fatalf("after the crash: want only the committed record, got %v", got)
	}
	// The next process writes under a transactional id of its own, as the
	// decider does; its commits are read at the right place after a crash.
	transactional(t, b.ListenAddrs(), "w2", "next", true)
	again := kafkatest.CrashImage(t, crashed)
	b.Close()
	b = start(t, again)
	if got := values(t, b.ListenAddrs(), "x"); !slices.Equal(got, []string{"first", "next"}) {
		t.Fatalf("after a second crash: got %v", got)
	}
}

// transactional writes val to partition 0 of topic x in a transaction of
// id, and commits it or leaves it open.
func transactional(t *testing.T, addrs []string, id, val string, commit bool) {
	t.Helper()
	cl, err := kgo.NewClient(append(conn(addrs), kgo.TransactionalID(id), kgo.DefaultProduceTopic("x"))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := ctxFor(t, time.Minute)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(val)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if commit {
		if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
}

// values reads partition 0 of a topic, committed records only.
func values(t *testing.T, addrs []string, topic string) []string {
	t.Helper()
	cl, err := kgo.NewClient(conn(addrs)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []string
	if err := kafka.ReadToEnd(ctxFor(t, time.Minute), cl, topic, map[int32]int64{0: 0}, func(r *kgo.Record) error {
		out = append(out, string(r.Value))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
