package decider_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/consumers/decider"
	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/schemas"
)

// diskHarness is a harness on a given broker (a DiskCluster), topics made.
func diskHarness(t *testing.T, brokers []string) *harness {
	t.Helper()
	cfg := kafka.Config{Brokers: brokers, Partitions: 3}
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
