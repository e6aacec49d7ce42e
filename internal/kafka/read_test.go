package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
)

// The tests build each shape a partition's tail can take and check that
// ReadToEnd returns exactly the committed data records before the end. They
// run on kfake, or on the real broker named by LOGBOOK_TEST_KAFKA_BROKERS
// (shapes only kfake can build are skipped there).

type env struct {
	t       *testing.T
	brokers []string
	cl      *kgo.Client
	adm     *kadm.Client
}

func newEnv(t *testing.T, brokers []string) *env {
	t.Helper()
	cl, err := kgo.NewClient(append(testOpts(brokers), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &env{t: t, brokers: brokers, cl: cl, adm: kadm.NewClient(cl)}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// topic creates a topic with a name unique to the test.
func (e *env) topic(partitions int32, configs map[string]*string) string {
	e.t.Helper()
	ctx := ctxFor(e.t, 30*time.Second)
	name := kafkatest.Config(e.t, partitions).Prefix + "read"
	meta, err := e.adm.BrokerMetadata(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	rf := int16(min(3, len(meta.Brokers)))
	resp, err := e.adm.CreateTopic(ctx, partitions, rf, configs, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		e.t.Fatalf("create %s: %v", name, err)
	}
	for { // wait for leaders, as a real broker takes a moment
		d, err := e.adm.ListTopics(ctx, name)
		ready := err == nil && d[name].Err == nil && len(d[name].Partitions) == int(partitions)
		for _, p := range d[name].Partitions {
			ready = ready && p.Err == nil && p.Leader >= 0
		}
		if ready {
			return name
		}
		if ctx.Err() != nil {
			e.t.Fatalf("topic %s has no leaders: %v", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// produce writes values to a partition without a transaction, one batch each.
func (e *env) produce(topic string, p int32, kvs ...string) {
	e.t.Helper()
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		r := &kgo.Record{Topic: topic, Partition: p, Key: []byte(k), Value: []byte(v)}
		if err := e.cl.ProduceSync(ctxFor(e.t, 30*time.Second), r).FirstErr(); err != nil {
			e.t.Fatalf("produce %s: %v", kv, err)
		}
	}
}

// txn is a transactional producer.
type txn struct {
	t  *testing.T
	cl *kgo.Client
}

func (e *env) txn() *txn {
	e.t.Helper()
	cl, err := kgo.NewClient(append(testOpts(e.brokers), kgo.TransactionalID("read-test-"+uuid.NewString()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(cl.Close)
	return &txn{t: e.t, cl: cl}
}

// write begins a transaction and produces values to a partition, each in
// its own batch, leaving the transaction open.
func (x *txn) write(topic string, p int32, kvs ...string) {
	x.t.Helper()
	if err := x.cl.BeginTransaction(); err != nil {
		x.t.Fatal(err)
	}
	for _, kv := range kvs {
		k, v, _ := strings.Cut(kv, "=")
		r := &kgo.Record{Topic: topic, Partition: p, Key: []byte(k), Value: []byte(v)}
		if err := x.cl.ProduceSync(ctxFor(x.t, 30*time.Second), r).FirstErr(); err != nil {
			x.t.Fatalf("produce %s in a transaction: %v", kv, err)
		}
	}
}

func (x *txn) end(commit kgo.TransactionEndTry) {
	x.t.Helper()
	if err := x.cl.EndTransaction(ctxFor(x.t, 30*time.Second), commit); err != nil {
		x.t.Fatal(err)
	}
}

// commit and abort write one whole transaction.
func (x *txn) commit(topic string, p int32, kvs ...string) {
	x.t.Helper()
	x.write(topic, p, kvs...)
	x.end(kgo.TryCommit)
}

func (x *txn) abort(topic string, p int32, kvs ...string) {
	x.t.Helper()
	x.write(topic, p, kvs...)
	x.end(kgo.TryAbort)
}

// read returns "partition:key=value" of every record ReadToEnd delivers.
func (e *env) read(topic string, from map[int32]int64) []string {
	e.t.Helper()
	var got []string
	err := kafka.ReadToEnd(ctxFor(e.t, 60*time.Second), e.cl, topic, from, func(r *kgo.Record) error {
		if r.Attrs.IsControl() {
			e.t.Errorf("control record at %d reached fn", r.Offset)
		}
		got = append(got, fmt.Sprintf("%d:%s=%s", r.Partition, r.Key, r.Value))
		return nil
	})
	if err != nil {
		e.t.Fatalf("ReadToEnd: %v", err)
	}
	return got
}

func want(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("read\n got %q\nwant %q", got, want)
	}
}

// raw is one record as a read_uncommitted reader sees it, markers included.
type raw struct {
	offset  int64
	control bool
	value   string
}

// rawLog reads a partition read_uncommitted, control records kept, up to its
// high watermark.
func (e *env) rawLog(topic string, p int32) []raw {
	e.t.Helper()
	ctx := ctxFor(e.t, 30*time.Second)
	// A real broker writes the markers of an ended transaction after
	// EndTxn returns: wait (bounded) until none is open, so the tail read
	// is the one the test built.
	for limit := time.Now().Add(10 * time.Second); time.Now().Before(limit); time.Sleep(50 * time.Millisecond) {
		if _, stable, hwm := e.offsets(topic, p); stable == hwm {
			break
		}
	}
	ends, err := e.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		e.t.Fatal(err)
	}
	hwm, _ := ends.Lookup(topic, p)
	cl, err := kgo.NewClient(append(testOpts(e.brokers), kgo.KeepControlRecords(),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AtStart()}}))...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	var out []raw
	for len(out) == 0 || out[len(out)-1].offset < hwm.Offset-1 {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			e.t.Fatalf("raw read of %s/%d to %d: %v (have %v)", topic, p, hwm.Offset, ctx.Err(), out)
		}
		f.EachRecord(func(r *kgo.Record) {
			out = append(out, raw{r.Offset, r.Attrs.IsControl(), string(r.Value)})
		})
	}
	return out
}

func (e *env) offsets(topic string, p int32) (start, stable, hwm int64) {
	e.t.Helper()
	ctx := ctxFor(e.t, 30*time.Second)
	s, err1 := e.adm.ListStartOffsets(ctx, topic)
	l, err2 := e.adm.ListCommittedOffsets(ctx, topic)
	h, err3 := e.adm.ListEndOffsets(ctx, topic)
	if err := errors.Join(err1, err2, err3); err != nil {
		e.t.Fatal(err)
	}
	so, _ := s.Lookup(topic, p)
	lo, _ := l.Lookup(topic, p)
	ho, _ := h.Lookup(topic, p)
	return so.Offset, lo.Offset, ho.Offset
}

// oldLoop is the read-to-end loop ReadToEnd replaced: it polls with control
// records kept and stops once it has seen a record at or past the last
// stable offset. Kept to prove the marker-less tail defeats it.
func oldLoop(ctx context.Context, brokers []string, topic string, p int32) (int, error) {
	cl, err := kgo.NewClient(append(testOpts(brokers),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().AtStart()}}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, topic)
	if err != nil {
		return 0, err
	}
	end, _ := ends.Lookup(topic, p)
	n, next := 0, int64(0)
	for next < end.Offset {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return n, fmt.Errorf("stopped at offset %d of %d: %w", next, end.Offset, err)
		}
		for _, r := range fetches.Records() {
			next = r.Offset + 1
			if !r.Attrs.IsControl() {
				n++
			}
		}
	}
	return n, nil
}

func realOnlyShape(t *testing.T, why string) {
	if kafkatest.Real() {
		t.Skip("kfake only: " + why)
	}
}

func TestReadToEndEmptyPartitions(t *testing.T) {
	e := newEnv(t, kafkatest.Brokers(t))
	topic := e.topic(3, nil)
	e.produce(topic, 1, "k=v")
	want(t, e.read(topic, map[int32]int64{0: 0, 1: 0, 2: 0}), "1:k=v")
	want(t, e.read(topic, map[int32]int64{0: 0, 2: 0}))
	want(t, e.read(topic, nil))
}

func TestReadToEndCommittedTransactionTail(t *testing.T) {
	e := newEnv(t, kafkatest.Brokers(t))
	topic := e.topic(1, nil)
	e.produce(topic, 0, "a=1")
	e.txn().commit(topic, 0, "b=2", "c=3")
	tail := e.rawLog(topic, 0)
	if last := tail[len(tail)-1]; !last.control {
		t.Fatalf("fixture: want a commit marker at the tail, got %+v", tail)
	}
	want(t, e.read(topic, map[int32]int64{0: 0}), "0:a=1", "0:b=2", "0:c=3")
	want(t, e.read(topic, map[int32]int64{0: 1}), "0:b=2", "0:c=3")
	want(t, e.read(topic, map[int32]int64{0: 99}))

	// The end is the one listed at the start: a record committed during the
	// read is left for the next read.
	var got []string
	err := kafka.ReadToEnd(ctxFor(t, 60*time.Second), e.cl, topic, map[int32]int64{0: 0}, func(r *kgo.Record) error {
		if len(got) == 0 {
			e.produce(topic, 0, "late=4")
		}
		got = append(got, string(r.Key))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want(t, got, "a", "b", "c")
}

func TestReadToEndAbortedTransactionWithMarker(t *testing.T) {
	e := newEnv(t, kafkatest.Brokers(t))
	topic := e.topic(1, nil)
	x := e.txn()
	x.commit(topic, 0, "a=1")
	x.abort(topic, 0, "mid=x")
	x.commit(topic, 0, "b=2")
	x.abort(topic, 0, "tail=x", "tail=y")
	tail := e.rawLog(topic, 0)
	if last := tail[len(tail)-1]; !last.control || tail[len(tail)-2].value != "y" {
		t.Fatalf("fixture: want aborted records then the abort marker at the tail, got %+v", tail)
	}
	want(t, e.read(topic, map[int32]int64{0: 0}), "0:a=1", "0:b=2")
}

func TestReadToEndMarkerlessAbortedTail(t *testing.T) {
	realOnlyShape(t, "a real broker always ends an aborted transaction with a marker; the marker-less tail is left by kfake's crash recovery (logbook dev after kill -9)")
	dir := t.TempDir()
	before := newEnv(t, kafkatest.DiskCluster(t, dir).ListenAddrs())
	topic := before.topic(1, nil)
	before.produce(topic, 0, "a=1")
	x := before.txn()
	x.commit(topic, 0, "b=2")
	x.write(topic, 0, "open=x", "open=y", "open=z") // never ended
	if _, err := oldLoop(ctxFor(t, 10*time.Second), before.brokers, topic, 0); err != nil {
		t.Fatalf("before the crash the old loop finishes (the open transaction is past the end): %v", err)
	}
	image := kafkatest.CrashImage(t, dir)

	e := newEnv(t, kafkatest.DiskCluster(t, image).ListenAddrs())
	start, stable, hwm := e.offsets(topic, 0)
	if start != 0 || stable != hwm || hwm != 6 {
		t.Fatalf("fixture: want log 0..6 with the last stable offset at the high watermark, got start %d, stable %d, hwm %d", start, stable, hwm)
	}
	tail := e.rawLog(topic, 0)
	var vals []string
	for _, r := range tail[len(tail)-3:] {
		if r.control {
			t.Fatalf("fixture: want no marker after the aborted records, got %+v", tail)
		}
		vals = append(vals, r.value)
	}
	want(t, vals, "x", "y", "z")

	want(t, e.read(topic, map[int32]int64{0: 0}), "0:a=1", "0:b=2")

	// The loop ReadToEnd replaced never ends on this tail.
	n, err := oldLoop(ctxFor(t, 3*time.Second), e.brokers, topic, 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the old loop finished on a marker-less tail (%d records, err %v): the fixture lost its shape", n, err)
	}
}

func TestReadToEndCompactedGaps(t *testing.T) {
	realOnlyShape(t, "a real broker compacts on its cleaner's schedule; kfake compacts on demand")
	c := kafkatest.DiskCluster(t, t.TempDir())
	e := newEnv(t, c.ListenAddrs())
	topic := e.topic(1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")})
	e.produce(topic, 0, "k1=a", "k2=a", "k1=b") // 0 1 2
	x := e.txn()
	x.commit(topic, 0, "k2=b")  // 3, marker 4
	e.produce(topic, 0, "k3=a") // 5
	x.abort(topic, 0, "k1=x")   // 6, marker 7
	c.Compact()

	var offs []int64
	for _, r := range e.rawLog(topic, 0) {
		offs = append(offs, r.offset)
	}
	want(t, strings.Fields(fmt.Sprint(offs)), strings.Fields(fmt.Sprint([]int64{2, 3, 4, 5, 7}))...)
	if start, _, _ := e.offsets(topic, 0); start != 2 {
		t.Fatalf("fixture: compaction should have moved the log start to 2, got %d", start)
	}
	want(t, e.read(topic, map[int32]int64{0: 0}), "0:k1=b", "0:k2=b", "0:k3=a")
}

func TestReadToEndLogStartMoved(t *testing.T) {
	e := newEnv(t, kafkatest.Brokers(t))
	topic := e.topic(2, nil)
	e.produce(topic, 0, "a=0", "a=1", "a=2", "a=3", "a=4")
	e.produce(topic, 1, "b=0", "b=1")
	ctx := ctxFor(t, 30*time.Second)
	var to kadm.Offsets
	to.AddOffset(topic, 0, 3, -1)
	to.AddOffset(topic, 1, 2, -1) // everything
	resp, err := e.adm.DeleteRecords(ctx, to)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	if start, _, _ := e.offsets(topic, 0); start != 3 {
		t.Fatalf("fixture: log start of partition 0 is %d, want 3", start)
	}
	want(t, e.read(topic, map[int32]int64{0: 0, 1: 0}), "0:a=3", "0:a=4")
}

func TestReadToEndReturnsTheCallbackError(t *testing.T) {
	e := newEnv(t, kafkatest.Brokers(t))
	topic := e.topic(1, nil)
	e.produce(topic, 0, "a=1", "b=2")
	stop := errors.New("stop")
	err := kafka.ReadToEnd(ctxFor(t, 30*time.Second), e.cl, topic, map[int32]int64{0: 0}, func(r *kgo.Record) error {
		if string(r.Key) == "b" {
			return stop
		}
		return nil
	})
	var re *kafka.ReadError
	if !errors.Is(err, stop) || !errors.As(err, &re) || re.Partition != 0 || re.Position != 1 || re.End != 2 {
		t.Fatalf("want the callback's error at offset 1 of 2, got %v", err)
	}
}

func TestReadToEndUnknownPartition(t *testing.T) {
	e := newEnv(t, kafkatest.Brokers(t))
	topic := e.topic(1, nil)
	err := kafka.ReadToEnd(ctxFor(t, 30*time.Second), e.cl, topic, map[int32]int64{5: 0}, func(*kgo.Record) error { return nil })
	var re *kafka.ReadError
	if !errors.As(err, &re) || re.Topic != topic || re.Partition != 5 {
		t.Fatalf("want a ReadError naming %s/5, got %v", topic, err)
	}
}

// An uncommitted read delivers the records of aborted and open transactions
// too, up to the high watermark; the committed read skips them.
func TestReadToEndUncommittedDeliversAbortedAndOpenRecords(t *testing.T) {
	e := newEnv(t, kafkatest.Brokers(t))
	topic := e.topic(1, nil)
	e.produce(topic, 0, "a=1")
	e.txn().abort(topic, 0, "b=2")
	e.txn().write(topic, 0, "c=3")
	var got []string
	err := kafka.ReadToEndUncommitted(ctxFor(t, 60*time.Second), e.cl, topic, map[int32]int64{0: 0}, func(r *kgo.Record) error {
		got = append(got, fmt.Sprintf("%d:%s=%s", r.Partition, r.Key, r.Value))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want(t, got, "0:a=1", "0:b=2", "0:c=3")
	want(t, e.read(topic, map[int32]int64{0: 0}), "0:a=1")
}

// testOpts connects to the test broker as the tests' principal.
func testOpts(brokers []string) []kgo.Opt {
	return kafka.Config{Brokers: brokers, SASL: kafkatest.SASL()}.Opts()
}

func TestConfigDefaultsApartFromValidation(t *testing.T) {
	c := kafka.Config{Brokers: []string{"127.0.0.1:9092"}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Prefix != "" || c.Partitions != 0 || c.ClientID != "" {
		t.Fatalf("Validate changed the config: %+v", c)
	}
	d := c.WithDefaults()
	if d.Prefix != "logbook." || d.Partitions != 12 || d.ClientID != "logbook" || d.KeysCompactionLag != 24*time.Hour {
		t.Fatalf("defaults: %+v", d)
	}
	if err := (kafka.Config{}).WithDefaults().Validate(); err == nil {
		t.Fatal("no brokers validated")
	}
}
