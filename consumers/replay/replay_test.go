package replay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/consumers/replay"
	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/schemas"
)

// writer appends events transactionally, as the decider does.
type writer struct {
	t   *testing.T
	cfg kafka.Config
	cl  *kgo.Client
}

func newWriter(t *testing.T, cfg kafka.Config) *writer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(cfg.Opts(), kgo.TransactionalID("replay-test-"+uuid.NewString()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &writer{t: t, cfg: cfg, cl: cl}
}

// write begins a transaction holding one event per "workspace:seq" name.
func (w *writer) write(at time.Time, events ...[2]any) {
	w.t.Helper()
	if err := w.cl.BeginTransaction(); err != nil {
		w.t.Fatal(err)
	}
	for _, ev := range events {
		ws, seq := ev[0].(string), int64(ev[1].(int))
		val, _ := json.Marshal(schemas.EventEnvelope{ID: uuid.NewString(), WorkspaceID: ws, Seq: seq, OccurredAt: at})
		r := &kgo.Record{Topic: w.cfg.Topics().Events, Partition: replay.PartitionOf(ws, w.cfg.Partitions),
			Key: []byte(ws), Value: val, Timestamp: at}
		if err := w.cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *writer) end(try kgo.TransactionEndTry) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.cl.EndTransaction(ctx, try); err != nil {
		w.t.Fatal(err)
	}
}

func readAll(t *testing.T, cfg kafka.Config, opts replay.Options) []string {
	t.Helper()
	opts.Timeout = 60 * time.Second
	var got []string
	err := replay.Read(context.Background(), cfg, opts, func(e schemas.EventEnvelope) error {
		got = append(got, fmt.Sprintf("%s:%d", e.WorkspaceID, e.Seq))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

func want(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("replay\n got %q\nwant %q", got, want)
	}
}

// The options on a log whose tail is an aborted transaction with its marker.
func TestReadWorkspaceAndSince(t *testing.T) {
	cfg := kafkatest.Config(t, 3)
	w := newWriter(t, cfg)
	old, recent := time.Now().Add(-time.Hour), time.Now()
	w.write(old, [2]any{"a", 1}, [2]any{"b", 1})
	w.end(kgo.TryCommit)
	w.write(recent, [2]any{"a", 2})
	w.end(kgo.TryCommit)
	w.write(recent, [2]any{"a", 3}, [2]any{"b", 2})
	w.end(kgo.TryAbort)

	want(t, readAll(t, cfg, replay.Options{}), "a:1", "a:2", "b:1")
	want(t, readAll(t, cfg, replay.Options{WorkspaceID: "a"}), "a:1", "a:2")
	want(t, readAll(t, cfg, replay.Options{Since: recent.Add(-time.Minute)}), "a:2")
	want(t, readAll(t, cfg, replay.Options{Since: recent.Add(time.Hour)}))
}

// Types and Until filter; Upcast hands a v1 payload over as today's
// version and leaves it as written otherwise; Progress ends with Done.
func TestReadTypesUntilUpcastProgress(t *testing.T) {
	cfg := kafkatest.Config(t, 3)
	w := newWriter(t, cfg)
	at := time.Now().Add(-time.Minute).UTC()
	if err := w.cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i, e := range []schemas.EventEnvelope{
		{Type: domain.EvTaskResultRecorded, Version: 1, Seq: 1, OccurredAt: at,
			Payload: json.RawMessage(`{"task_id":"t","attempt":1,"output":"o","usage":{"prompt_tokens":1,"completion_tokens":2}}`)},
		{Type: domain.EvTaskCompleted, Version: 1, Seq: 2, OccurredAt: at, Payload: json.RawMessage(`{"task_id":"t"}`)},
		{Type: domain.EvTaskCompleted, Version: 1, Seq: 3, OccurredAt: at.Add(time.Hour), Payload: json.RawMessage(`{"task_id":"u"}`)},
	} {
		e.ID, e.WorkspaceID = fmt.Sprint("e", i), "w"
		val, _ := json.Marshal(e)
		r := &kgo.Record{Topic: cfg.Topics().Events, Partition: replay.PartitionOf("w", cfg.Partitions), Key: []byte("w"), Value: val}
		if err := w.cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	w.end(kgo.TryCommit)

	read := func(opts replay.Options) []schemas.EventEnvelope {
		t.Helper()
		var got []schemas.EventEnvelope
		if err := replay.Read(context.Background(), cfg, opts, func(e schemas.EventEnvelope) error {
			got = append(got, e)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := read(replay.Options{Types: []string{domain.EvTaskCompleted}, Until: at.Add(time.Minute)}); len(got) != 1 || got[0].Seq != 2 {
		t.Fatalf("completed until a minute after: %+v", got)
	}
	raw := read(replay.Options{Types: []string{domain.EvTaskResultRecorded}})
	var last replay.Progress
	up := read(replay.Options{Types: []string{domain.EvTaskResultRecorded}, Upcast: true, Progress: func(p replay.Progress) { last = p }})
	if len(raw) != 1 || raw[0].Version != 1 || strings.Contains(string(raw[0].Payload), "provider") {
		t.Fatalf("as written: %+v", raw)
	}
	if len(up) != 1 || up[0].Version != domain.EventVersion(domain.EvTaskResultRecorded) || !strings.Contains(string(up[0].Payload), `"provider":""`) {
		t.Fatalf("upcast: version %d payload %s", up[0].Version, up[0].Payload)
	}
	if !last.Done || last.Read != 3 || last.Matched != 1 || last.Total < 3 {
		t.Fatalf("last progress %+v, want done with 3 read and 1 matched", last)
	}
}

// `logbook replay` and `audit verify` after `logbook dev` was killed with a
// transaction open: the events partition ends in records aborted without a
// marker, and the read still ends.
func TestReadPastAMarkerlessAbortedTail(t *testing.T) {
	if kafkatest.Real() {
		t.Skip("kfake only: a real broker always ends an aborted transaction with a marker; the marker-less tail is left by kfake's crash recovery")
	}
	dir := t.TempDir()
	cfg := kafka.Config{Brokers: kafkatest.DiskCluster(t, dir).ListenAddrs(), Partitions: 3}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	w := newWriter(t, cfg)
	w.write(time.Now(), [2]any{"a", 1}, [2]any{"b", 1})
	w.end(kgo.TryCommit)
	w.write(time.Now(), [2]any{"a", 2}, [2]any{"b", 2}) // never ended
	image := kafkatest.CrashImage(t, dir)

	cfg.Brokers = kafkatest.DiskCluster(t, image).ListenAddrs()
	want(t, readAll(t, cfg, replay.Options{}), "a:1", "b:1")
	rep, err := replay.Verify(context.Background(), cfg, "a", nil)
	if err != nil || rep.Events != 1 {
		t.Fatalf("verify after the crash: %+v, %v", rep, err)
	}
}

// --until stops each partition at its first record stamped well after it
// (the deciders stamp records with the event's time), instead of reading
// the rest of the log and filtering it out.
func TestReadUntilStopsEarly(t *testing.T) {
	cfg := kafkatest.Config(t, 3)
	w := newWriter(t, cfg)
	at := time.Now().Add(-48 * time.Hour).UTC()
	if err := w.cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		when := at.Add(time.Duration(i) * time.Hour)
		e := schemas.EventEnvelope{ID: fmt.Sprint("e", i), WorkspaceID: "w", Type: domain.EvTaskCompleted, Version: 1, Seq: int64(i + 1),
			OccurredAt: when, Payload: json.RawMessage(`{"task_id":"t"}`)}
		val, _ := json.Marshal(e)
		r := &kgo.Record{Topic: cfg.Topics().Events, Partition: replay.PartitionOf("w", cfg.Partitions), Key: []byte("w"), Value: val, Timestamp: when}
		if err := w.cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	w.end(kgo.TryCommit)
	var last replay.Progress
	var got []int64
	if err := replay.Read(context.Background(), cfg, replay.Options{Until: at.Add(90 * time.Minute),
		Progress: func(p replay.Progress) { last = p }}, func(e schemas.EventEnvelope) error {
		got = append(got, e.Seq)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1] != 2 {
		t.Fatalf("until 90 minutes in: seqs %v, want 1 and 2", got)
	}
	if last.Read != 2 || last.Total != 2 {
		t.Fatalf("read %d records of %d to replay 2 of 5: the read did not stop at --until", last.Read, last.Total)
	}
}
