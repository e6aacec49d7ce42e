package logexport_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/internal/logexport"
	"github.com/logbook-dev/logbook/schemas"
)

// cluster is an empty logbook cluster: its topics and nothing in them.
func cluster(t *testing.T) kafka.Config {
	t.Helper()
	cfg := kafkatest.Config(t, 2)
	if err := kafka.EnsureTopics(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// fill writes two workspaces' chained events, their results, an access
// record and a key record, the way logbook's roles write them.
func fill(t *testing.T, cfg kafka.Config) {
	t.Helper()
	cl, err := kgo.NewClient(append(cfg.Opts(), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	var recs []*kgo.Record
	for i, ws := range []string{"ws-a", "ws-b"} {
		chain := schemas.Chain{}
		for j, ev := range []domain.Event{
			{Type: domain.EvWorkspaceCreated, Aggregate: domain.AggregateRef{Type: domain.AggregateWorkspace, ID: ws, Version: 1},
				OccurredAt: at, Payload: &domain.WorkspaceCreated{Name: ws}},
			{Type: domain.EvTaskCreated, Aggregate: domain.AggregateRef{Type: domain.AggregateTask, ID: "t1", Version: 1},
				OccurredAt: at, Payload: &domain.TaskCreated{TaskID: "t1", Title: "first", Priority: 1, Labels: []string{"dr"}}},
		} {
			sealed, next, err := schemas.Seal(chain, schemas.EventMeta{WorkspaceID: ws, CommandID: ws + "-cmd" + string(rune('0'+j)),
				Actor: domain.Actor{ID: "admin", Role: "admin"}}, []domain.Event{ev})
			if err != nil {
				t.Fatal(err)
			}
			chain = next
			val, _ := json.Marshal(sealed[0])
			recs = append(recs, &kgo.Record{Topic: cfg.Topics().Events, Partition: int32(i), Key: []byte(ws), Value: val,
				Headers: schemas.EventHeaders(sealed[0]), Timestamp: at})
			res, _ := json.Marshal(schemas.Result{CommandID: sealed[0].CommandID, WorkspaceID: ws, Status: schemas.ResultAccepted, DecidedAt: at})
			recs = append(recs, &kgo.Record{Topic: cfg.Topics().Results, Partition: int32(i), Key: []byte(ws), Value: res, Timestamp: at})
		}
	}
	recs = append(recs,
		&kgo.Record{Topic: cfg.Topics().Access, Key: []byte("a1"), Value: []byte(`{"id":"a1","outcome":"unauthenticated"}`), Timestamp: at,
			Headers: []kgo.RecordHeader{{Key: "z", Value: []byte("1")}, {Key: "a", Value: []byte("2")}, {Key: "z", Value: []byte("3")}}}, // order and a repeated key kept
		&kgo.Record{Topic: cfg.Topics().Keys, Key: []byte("ws-a"), Value: []byte(`{"v":1,"wrapped":"x"}`), Timestamp: at},
		&kgo.Record{Topic: cfg.Topics().Keys, Key: []byte("ws-gone")}, // a tombstone
	)
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// records reads a topic of cfg: partition → records, in order.
func records(t *testing.T, cfg kafka.Config, topic string, partitions int32) map[int32][]logexport.Record {
	t.Helper()
	cl, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	from := map[int32]int64{}
	for p := range partitions {
		from[p] = 0
	}
	out := map[int32][]logexport.Record{}
	if err := kafka.ReadToEnd(t.Context(), cl, topic, from, func(r *kgo.Record) error {
		rec := logexport.Record{Key: r.Key, Value: r.Value, Timestamp: r.Timestamp.UTC()}
		for _, h := range r.Headers {
			rec.Headers = append(rec.Headers, logexport.Header{Key: h.Key, Value: h.Value})
		}
		out[r.Partition] = append(out[r.Partition], rec)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func same(t *testing.T, what string, a, b map[int32][]logexport.Record) {
	t.Helper()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("%s differ:\n%s\n%s", what, ja, jb)
	}
}

// An export imported into an empty cluster gives back every record of the
// topics it carries, in its partition and order, with key, value, headers
// and timestamp; and an import refuses a cluster that is not empty.
func TestExportThenImportIntoAnEmptyCluster(t *testing.T) {
	src := cluster(t)
	fill(t, src)
	dir := filepath.Join(t.TempDir(), "export")
	m, err := logexport.Export(t.Context(), src, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Heads) != 2 || m.Heads["ws-a"].Seq != 2 {
		t.Fatalf("heads: %+v", m.Heads)
	}
	if _, err := logexport.Export(t.Context(), src, dir, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("export into a used directory: %v", err)
	}
	dst := cluster(t)
	if _, err := logexport.Import(t.Context(), dst, dir, nil); err != nil {
		t.Fatal(err)
	}
	for _, topic := range []struct {
		src, dst string
		parts    int32
	}{{src.Topics().Events, dst.Topics().Events, 2}, {src.Topics().Results, dst.Topics().Results, 2},
		{src.Topics().Access, dst.Topics().Access, 1}, {src.Topics().Keys, dst.Topics().Keys, 1}} {
		same(t, topic.dst, records(t, src, topic.src, topic.parts), records(t, dst, topic.dst, topic.parts))
	}
	if _, err := logexport.Import(t.Context(), dst, dir, nil); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("a second import: %v", err)
	}
}

// A damaged export is refused before anything is written: a changed line,
// a missing event, an unfinished export (no manifest), a format this
// version does not read.
func TestImportRefusesADamagedExport(t *testing.T) {
	src := cluster(t)
	fill(t, src)
	base := filepath.Join(t.TempDir(), "export")
	if _, err := logexport.Export(t.Context(), src, base, nil); err != nil {
		t.Fatal(err)
	}
	for name, damage := range map[string]func(dir string){
		"a changed value": func(dir string) {
			f := filepath.Join(dir, "results", "0.jsonl")
			b, _ := os.ReadFile(f)
			os.WriteFile(f, []byte(strings.Replace(string(b), `"timestamp"`, `"timestamp" `, 1)), 0o600)
		},
		"a missing event": func(dir string) {
			f := filepath.Join(dir, "events", "1.jsonl")
			b, _ := os.ReadFile(f)
			lines := strings.SplitAfter(string(b), "\n")
			os.WriteFile(f, []byte(strings.Join(lines[:1], "")), 0o600)
		},
		"no manifest":    func(dir string) { os.Remove(filepath.Join(dir, "manifest.json")) },
		"another format": func(dir string) { rewriteManifest(t, dir, func(m *logexport.Manifest) { m.Format = 99 }) },
		"a head moved": func(dir string) {
			rewriteManifest(t, dir, func(m *logexport.Manifest) { m.Heads["ws-b"] = schemas.Chain{Seq: 1} })
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "copy")
			copyDir(t, base, dir)
			damage(dir)
			dst := cluster(t)
			if _, err := logexport.Import(t.Context(), dst, dir, nil); err == nil {
				t.Fatal("imported a damaged export")
			}
			if n := len(records(t, dst, dst.Topics().Events, 2)); n != 0 {
				t.Fatalf("a refused import wrote %d partitions of events", n)
			}
		})
	}
}

func rewriteManifest(t *testing.T, dir string, change func(*logexport.Manifest)) {
	t.Helper()
	var m logexport.Manifest
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	change(&m)
	b, _ = json.Marshal(m)
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

// The export format 1 files in testdata, as this format was first written,
// import into an empty cluster today. LOGBOOK_WRITE_GOLDEN=1 writes them
// again (only when the format number changes: then keep the old ones).
func TestImportReadsFormat1(t *testing.T) {
	golden := filepath.Join("testdata", "export-format1")
	if os.Getenv("LOGBOOK_WRITE_GOLDEN") == "1" {
		src := cluster(t)
		fill(t, src)
		os.RemoveAll(golden)
		if _, err := logexport.Export(context.Background(), src, golden, nil); err != nil {
			t.Fatal(err)
		}
	}
	dst := cluster(t)
	m, err := logexport.Import(t.Context(), dst, golden, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.Format != 1 || len(m.Heads) != 2 {
		t.Fatalf("manifest: %+v", m)
	}
	events := records(t, dst, dst.Topics().Events, 2)
	if len(events[0]) != 2 || len(events[1]) != 2 {
		t.Fatalf("events per partition: %d and %d, want 2 and 2", len(events[0]), len(events[1]))
	}
	var env schemas.EventEnvelope
	if err := json.Unmarshal(events[0][1].Value, &env); err != nil {
		t.Fatal(err)
	}
	ev, err := env.Event()
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := ev.Payload.(*domain.TaskCreated); !ok || p.Title != "first" || len(p.Labels) != 1 {
		t.Fatalf("the task created event: %+v", ev.Payload)
	}
	if h := records(t, dst, dst.Topics().Access, 1)[0][0].Headers; len(h) != 3 || h[0].Key != "z" || h[1].Key != "a" || string(h[2].Value) != "3" {
		t.Fatalf("access record headers: %+v, want z, a, z in order", h)
	}
	keys := records(t, dst, dst.Topics().Keys, 1)
	if len(keys[0]) != 2 || keys[0][1].Value != nil {
		t.Fatalf("key records: %+v, want a value and a tombstone", keys[0])
	}
}
