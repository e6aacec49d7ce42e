package decider_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/consumers/decider"
	"github.com/logbook-dev/logbook/consumers/replay"
	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/schemas"
)

// diskHarness is a harness on a given broker (a DiskCluster), topics made.
func diskHarness(t *testing.T, brokers []string) *harness {
	t.Helper()
	cfg := kafka.Config{Brokers: brokers, Partitions: 3}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(cfg.Opts(), kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &harness{t: t, cfg: cfg, cl: cl}
}

// runDecider starts a decider and returns it with its stop function.
func (h *harness) runDecider() (*decider.Decider, func()) {
	d, err := decider.New(decider.Config{Kafka: h.cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		SessionTimeout: 6 * time.Second})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.Run(ctx); err != nil {
			h.t.Errorf("decider: %v", err)
		}
	}()
	return d, func() { cancel(); d.Close(); <-done }
}

// TestDeciderRestoresPastAMarkerlessAbortedTail is `logbook dev` killed while
// a decider transaction was open: on restart the embedded broker aborts it
// without a marker, so every decider-state partition ends in aborted records
// with nothing after them. The decider must restore past them (without
// applying them) and keep deciding.
func TestDeciderRestoresPastAMarkerlessAbortedTail(t *testing.T) {
	if kafkatest.Real() {
		t.Skip("kfake only: a real broker always ends an aborted transaction with a marker; the marker-less tail is left by kfake's crash recovery")
	}
	dir := t.TempDir()
	h := diskHarness(t, kafkatest.DiskCluster(t, dir).ListenAddrs())
	_, stop := h.runDecider()
	ws, create := newID(), newID()
	h.send(create, domain.CmdWorkspaceCreate, ws, &domain.WorkspaceCreateCmd{Name: "before"})
	read(h, h.cfg.Topics().Results, atLeast[schemas.Result](1))
	stop()

	// The killed transaction: state records that would break the restore if
	// it applied them (the stored format: "workspace/<id>" and "offset").
	x, err := kgo.NewClient(append(h.cfg.Opts(), kgo.TransactionalID("killed-"+uuid.NewString()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	if err := x.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for p := range h.cfg.Partitions {
		for _, key := range []string{"workspace/" + ws, "offset"} {
			r := &kgo.Record{Topic: h.cfg.Topics().DeciderState, Partition: p, Key: []byte(key), Value: []byte("junk")}
			if err := x.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	image := kafkatest.CrashImage(t, dir)

	h = diskHarness(t, kafkatest.DiskCluster(t, image).ListenAddrs())
	checkMarkerlessTails(h)
	d, stop := h.runDecider()
	defer stop()
	rename := newID()
	h.send(create, domain.CmdWorkspaceCreate, ws, &domain.WorkspaceCreateCmd{Name: "before"}) // a retry
	h.send(rename, domain.CmdWorkspaceRename, ws, &domain.WorkspaceRenameCmd{Name: "after"})
	results := read(h, h.cfg.Topics().Results, atLeast[schemas.Result](3))
	for _, r := range results {
		if r.Status != schemas.ResultAccepted || (r.CommandID != create && r.CommandID != rename) {
			t.Fatalf("after the crash the restored state must accept the retry (first outcome) and the rename: %+v", results)
		}
	}
	events := readAll[schemas.EventEnvelope](h, h.cfg.Topics().Events)
	var chain schemas.Chain
	for _, e := range events {
		if chain, err = schemas.Verify(chain, e); err != nil {
			t.Fatal(err)
		}
	}
	if len(events) != 2 || chain.Seq != 2 {
		t.Fatalf("want the create and the rename chained (seq 2), got %d events, seq %d", len(events), chain.Seq)
	}

	restores := d.Restores()
	if len(restores) == 0 {
		t.Fatal("no restore status after deciding")
	}
	for _, s := range restores {
		if s.State != decider.RestoreDone || s.Error != "" || s.Since.IsZero() {
			t.Fatalf("want every restore done, got %+v", restores)
		}
	}
}

// checkMarkerlessTails proves the fixture: every decider-state partition
// ends in the killed transaction's records with no marker after them.
func checkMarkerlessTails(h *harness) {
	h.t.Helper()
	topic := h.cfg.Topics().DeciderState
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(h.cl)
	stable, err1 := adm.ListCommittedOffsets(ctx, topic)
	hwms, err2 := adm.ListEndOffsets(ctx, topic)
	if err1 != nil || err2 != nil {
		h.t.Fatal(err1, err2)
	}
	cl, err := kgo.NewClient(append(h.cfg.Opts(), kgo.ConsumeTopics(topic), kgo.KeepControlRecords(),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()))...)
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	last := map[int32]*kgo.Record{}
	for p := range h.cfg.Partitions {
		s, _ := stable.Lookup(topic, p)
		e, _ := hwms.Lookup(topic, p)
		if s.Offset != e.Offset {
			h.t.Fatalf("fixture: partition %d: last stable offset %d, high watermark %d: want them equal", p, s.Offset, e.Offset)
		}
		for last[p] == nil || last[p].Offset < e.Offset-1 {
			f := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				h.t.Fatalf("fixture: raw read of %s: %v", topic, ctx.Err())
			}
			f.EachRecord(func(r *kgo.Record) { last[r.Partition] = r })
		}
		if r := last[p]; r.Attrs.IsControl() || string(r.Value) != "junk" {
			h.t.Fatalf("fixture: partition %d ends in %+v, want the killed transaction's record", p, r)
		}
	}
}

// TestDeciderShowsAFailedRestore: a restore that cannot finish is visible in
// Restores with its error and where it stopped, not only in a log line.
func TestDeciderShowsAFailedRestore(t *testing.T) {
	h := newHarness(t)
	// A committed state record the decider cannot read, on every partition.
	cl, err := kgo.NewClient(append(h.cfg.Opts(), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for p := range h.cfg.Partitions {
		r := &kgo.Record{Topic: h.cfg.Topics().DeciderState, Partition: p, Key: []byte("offset"), Value: []byte("junk")}
		if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	d, stop := h.runDecider()
	defer stop()
	h.send(newID(), domain.CmdWorkspaceCreate, newID(), &domain.WorkspaceCreateCmd{Name: "a"})
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, s := range d.Restores() {
			if s.State == decider.RestoreFailed {
				if !strings.Contains(s.Error, "undecodable state record") || s.Offset < 0 || s.End <= s.Offset || s.Since.IsZero() {
					t.Fatalf("a failed restore must say why and where: %+v", s)
				}
				return
			}
			if s.State == decider.RestoreDone {
				t.Fatalf("restore of an undecodable partition reported done: %+v", s)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed restore reported: %+v", d.Restores())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDeciderUpgradesFromTheOldestStateFormat is an upgrade: the state topic
// holds what the oldest logbook wrote (testdata/state/format0-results: no
// format number, a window of whole results). Restored by this version, a
// redelivered command still gets its original outcome, and the next command
// continues the workspace's chain.
func TestDeciderUpgradesFromTheOldestStateFormat(t *testing.T) {
	h := newHarness(t)
	const (
		ws   = "0190d6a4-0000-7000-8000-00000000a001"
		task = "0190d6a4-0000-7000-8000-00000000b001"
		hash = "1a14da5ebd371555cc4af1bfbd456e997fd1d533550db19e8869bd262d91164c"
	)
	cl, err := kgo.NewClient(append(h.cfg.Opts(), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	records := map[string]string{"offset": "0"} // no command decided yet on this fresh topic
	for key, file := range map[string]string{"workspace/" + ws: "workspace.json", "task/" + task: "task.json"} {
		raw, err := os.ReadFile("testdata/state/format0-results/" + file)
		if err != nil {
			t.Fatal(err)
		}
		records[key] = strings.TrimSpace(string(raw))
	}
	// On every partition: the workspace's is the one its commands use.
	for p := range h.cfg.Partitions {
		for key, value := range records {
			r := &kgo.Record{Topic: h.cfg.Topics().DeciderState, Partition: p, Key: []byte(key), Value: []byte(value)}
			if err := cl.ProduceSync(context.Background(), r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	_, stop := h.runDecider()
	redelivered, rename, cancel := "0190d6a4-0000-7000-8000-00000000c002", newID(), newID()
	h.send(redelivered, domain.CmdTaskCreate, ws, &domain.TaskCreateCmd{TaskID: task, Title: "golden task", Input: "in", Priority: 1})
	h.send(rename, domain.CmdWorkspaceRename, ws, &domain.WorkspaceRenameCmd{Name: "upgraded"})
	// The task record is keyed "task/<id>", as before tasks were scoped by
	// workspace: restored, it is found as the workspace's task.
	h.send(cancel, domain.CmdTaskCancel, ws, &domain.TaskCancelCmd{TaskID: task})
	results := read(h, h.cfg.Topics().Results, atLeast[schemas.Result](3))
	byID := map[string]schemas.Result{}
	for _, r := range results {
		byID[r.CommandID] = r
	}
	if r := byID[redelivered]; r.Status != schemas.ResultAccepted || r.AggregateID != task || len(r.Events) != 0 {
		t.Fatalf("redelivered command answered %+v, want its original outcome (accepted, task %s) and no new event", r, task)
	}
	if r := byID[rename]; r.Status != schemas.ResultAccepted || len(r.Events) != 1 || r.Events[0].Seq != 3 {
		t.Fatalf("rename answered %+v, want accepted as seq 3", r)
	}
	if r := byID[cancel]; r.Status != schemas.ResultAccepted || len(r.Events) != 1 || r.Events[0].Seq != 4 {
		t.Fatalf("cancelling the restored task answered %+v, want accepted as seq 4", r)
	}
	events := readAll[schemas.EventEnvelope](h, h.cfg.Topics().Events)
	if len(events) != 2 || events[0].Seq != 3 || events[0].PrevHash != hash {
		t.Fatalf("events after the upgrade: %+v, want two from seq 3 chained to the restored head", events)
	}
	if _, err := schemas.Verify(schemas.Chain{Seq: 2, Hash: hash}, events[0]); err != nil {
		t.Fatal(err)
	}
	stop()

	// Compacted, the state topic keeps the last record of each key. The
	// window the old workspace record held was written out as command
	// records before a format-3 workspace record superseded it, so a
	// decider restoring the compacted topic still knows every command.
	state := map[string]*kgo.Record{}
	var order []string
	part := eventPartition(h, ws)
	cl2, err := kgo.NewClient(h.cfg.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	if err := kafka.ReadToEnd(context.Background(), cl2, h.cfg.Topics().DeciderState, map[int32]int64{part: 0}, func(r *kgo.Record) error {
		if _, seen := state[string(r.Key)]; !seen {
			order = append(order, string(r.Key))
		}
		state[string(r.Key)] = r
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Slice(order, func(i, j int) bool { return state[order[i]].Offset < state[order[j]].Offset })
	for _, id := range []string{"0190d6a4-0000-7000-8000-00000000c001", redelivered, "0190d6a4-0000-7000-8000-00000000c003", rename, cancel} {
		if r := state["cmd/"+ws+"\x00"+id]; r == nil || r.Value == nil {
			t.Fatalf("no command record for %s in the state topic after the upgrade", id)
		}
	}
	if w := string(state["workspace/"+ws].Value); !strings.HasPrefix(w, `{"v":3,`) || strings.Contains(w, `"recent"`) {
		t.Fatalf("the workspace record after the upgrade: %s", w)
	}
	h2 := newHarness(t)
	pc, err := kgo.NewClient(append(h2.cfg.Opts(), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, key := range order {
		r := state[key]
		value := r.Value
		if key == "offset" {
			value = []byte(`{"v":3,"next_command_offset":0}`) // h2's commands start afresh
		}
		if r.Value == nil {
			continue // compaction drops tombstones
		}
		if err := pc.ProduceSync(context.Background(), &kgo.Record{Topic: h2.cfg.Topics().DeciderState, Partition: part,
			Key: r.Key, Value: value}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	_, stop2 := h2.runDecider()
	defer stop2()
	next := newID()
	h2.send(redelivered, domain.CmdTaskCreate, ws, &domain.TaskCreateCmd{TaskID: task, Title: "golden task", Input: "in", Priority: 1})
	h2.send(rename, domain.CmdWorkspaceRename, ws, &domain.WorkspaceRenameCmd{Name: "upgraded"})
	h2.send(next, domain.CmdWorkspaceRename, ws, &domain.WorkspaceRenameCmd{Name: "compacted"})
	again := map[string]schemas.Result{}
	for _, r := range read(h2, h2.cfg.Topics().Results, atLeast[schemas.Result](3)) {
		again[r.CommandID] = r
	}
	if r := again[redelivered]; r.Status != schemas.ResultAccepted || r.AggregateID != task || len(r.Events) != 0 {
		t.Fatalf("after compaction, the command of the old window answered %+v", r)
	}
	if r := again[rename]; r.Status != schemas.ResultAccepted || len(r.Events) != 0 {
		t.Fatalf("after compaction, a command remembered in format 3 answered %+v", r)
	}
	if r := again[next]; r.Status != schemas.ResultAccepted || len(r.Events) != 1 || r.Events[0].Seq != 5 {
		t.Fatalf("after compaction, a new command answered %+v, want accepted as seq 5", r)
	}
}

// eventPartition is the partition of a workspace's records.
func eventPartition(h *harness, ws string) int32 {
	return replay.PartitionOf(ws, h.cfg.Partitions)
}

// A command the window lets go is tombstoned in the state topic: after
// compaction the topic holds the window, not every command ever decided.
func TestWindowLetsGoWithTombstones(t *testing.T) {
	h := newHarness(t)
	d, err := decider.New(decider.Config{Kafka: h.cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		SessionTimeout: 6 * time.Second, DedupWindow: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(ctx) }()
	defer func() { cancel(); d.Close(); <-done }()

	ws := newID()
	ids := []string{newID()}
	h.send(ids[0], domain.CmdWorkspaceCreate, ws, &domain.WorkspaceCreateCmd{Name: "w"})
	for i := range 5 {
		id := newID()
		ids = append(ids, id)
		h.send(id, domain.CmdWorkspaceRename, ws, &domain.WorkspaceRenameCmd{Name: "w" + strconv.Itoa(i)})
	}
	read(h, h.cfg.Topics().Results, atLeast[schemas.Result](6))
	cl, err := kgo.NewClient(h.cfg.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	live := map[string]bool{}
	// Read until the last transaction's records are readable (a real
	// broker marks partitions one by one).
	deadline := time.Now().Add(30 * time.Second)
	for {
		clear(live)
		if err := kafka.ReadToEnd(context.Background(), cl, h.cfg.Topics().DeciderState,
			map[int32]int64{eventPartition(h, ws): 0}, func(r *kgo.Record) error {
				if k := string(r.Key); strings.HasPrefix(k, "cmd/") {
					live[strings.TrimPrefix(k, "cmd/"+ws+"\x00")] = r.Value != nil
				}
				return nil
			}); err != nil {
			t.Fatal(err)
		}
		if live[ids[5]] || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for i, id := range ids {
		if want := i >= 3; live[id] != want {
			t.Errorf("command %d: its record is live %v, want %v (window of 3)", i, live[id], want)
		}
	}
	// An outcome taken in and let go within one transaction leaves no
	// record at all; every other one let go leaves a tombstone.
	for id, isLive := range live {
		if isLive && !slices.Contains(ids[3:], id) {
			t.Errorf("a record of command %s outside the window", id)
		}
	}
}
