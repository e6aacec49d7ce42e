package decider_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/consumers/decider"
	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/schemas"
)

// The decider-state topic is lost; RebuildState writes it again from the
// events and results, record for record what the decider had written, and
// the decider goes on: a redelivered command gets its first outcome and the
// chain continues with no gap.
func TestRebuildStateFromTheLog(t *testing.T) {
	h := newHarness(t)
	stop := h.startDecider()
	wsA, wsB := newID(), newID()
	// Decided before its workspace was: the decider remembers no outcome.
	h.send(newID(), domain.CmdTaskCreate, wsA, &domain.TaskCreateCmd{TaskID: newID(), Title: "too early"})
	h.send(newID(), domain.CmdWorkspaceCreate, wsA, &domain.WorkspaceCreateCmd{Name: "a"})
	h.send(newID(), domain.CmdWorkspaceCreate, wsB, &domain.WorkspaceCreateCmd{Name: "b"})
	h.send(newID(), domain.CmdWorkspaceRegisterAgent, wsA, &domain.WorkspaceRegisterAgentCmd{AgentID: "agent-1", Name: "ada", Role: "dev", Model: "m"})
	createTask, task := newID(), newID()
	h.send(createTask, domain.CmdTaskCreate, wsA, &domain.TaskCreateCmd{TaskID: task, Title: "t", Priority: 1})
	h.send(newID(), domain.CmdTaskAssign, wsA, &domain.TaskAssignCmd{TaskID: task, Assignee: "agent-1"})
	refused := newID()
	h.send(refused, domain.CmdTaskComplete, wsB, &domain.TaskCompleteCmd{TaskID: newID()}) // not found: remembered
	for i := range 5 {
		h.send(newID(), domain.CmdTaskCreate, wsB, &domain.TaskCreateCmd{TaskID: newID(), Title: "b", Priority: i})
	}
	read(h, h.cfg.Topics().Results, atLeast[schemas.Result](12))

	// Refused while a decider runs.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := decider.RebuildState(ctx, decider.Config{Kafka: h.cfg, Logger: quiet}, nil); err == nil || !strings.Contains(err.Error(), "members") {
		t.Fatalf("rebuild while the decider runs: %v", err)
	}
	stop()
	before := stateRecords(t, h)
	if _, err := decider.RebuildState(ctx, decider.Config{Kafka: h.cfg, Logger: quiet}, nil); err == nil || !strings.Contains(err.Error(), "holds records") {
		t.Fatalf("rebuild over a state topic that holds records: %v", err)
	}

	// The topic is lost and made again, empty.
	kafkatest.LoseTopic(t, h.cfg, h.cfg.Topics().DeciderState)
	parts, err := decider.RebuildState(ctx, decider.Config{Kafka: h.cfg, Logger: quiet}, nil)
	if err != nil {
		t.Fatal(err)
	}
	after := stateRecords(t, h)
	for k, v := range before {
		if !bytes.Equal(after[k], v) {
			t.Errorf("record %q: rebuilt %s, the decider wrote %s", k, after[k], v)
		}
	}
	for k, v := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("record %q rebuilt (%s) that the decider never held", k, v)
		}
	}
	events := 0
	for _, p := range parts {
		events += p.Events
	}
	if events != 10 {
		t.Fatalf("rebuilt from %d events, want 10: %+v", events, parts)
	}

	stop = h.startDecider()
	defer stop()
	h.send(createTask, domain.CmdTaskCreate, wsA, &domain.TaskCreateCmd{TaskID: task, Title: "t", Priority: 1})
	h.send(refused, domain.CmdTaskComplete, wsB, &domain.TaskCompleteCmd{TaskID: newID()})
	next := newID()
	h.send(next, domain.CmdTaskStartAttempt, wsA, &domain.TaskStartAttemptCmd{TaskID: task})
	results := read(h, h.cfg.Topics().Results, atLeast[schemas.Result](15))
	for _, r := range results[12:] {
		switch r.CommandID {
		case createTask:
			if r.Status != schemas.ResultAccepted || r.AggregateID != task {
				t.Fatalf("redelivered create after the rebuild: %+v", r)
			}
		case refused:
			if r.Code != domain.CodeNotFound {
				t.Fatalf("redelivered refusal after the rebuild: %+v", r)
			}
		case next:
			if r.Status != schemas.ResultAccepted {
				t.Fatalf("a new command after the rebuild: %+v", r)
			}
		}
	}
	evs := readAll[schemas.EventEnvelope](h, h.cfg.Topics().Events)
	chains := map[string]schemas.Chain{}
	for _, e := range evs {
		c, err := schemas.Verify(chains[e.WorkspaceID], e)
		if err != nil {
			t.Fatalf("after the rebuild: %v", err)
		}
		chains[e.WorkspaceID] = c
	}
	if len(evs) != 11 || chains[wsA].Seq != 5 {
		t.Fatalf("want 11 events and workspace A at seq 5 (no duplicate, no gap), got %d and %d", len(evs), chains[wsA].Seq)
	}
}

// stateRecords reads the decider-state topic to its end: each key's last
// value by partition and key, tombstoned keys left out.
func stateRecords(t *testing.T, h *harness) map[string][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(h.cfg.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, h.cfg.Topics().DeciderState)
	if err != nil {
		t.Fatal(err)
	}
	from := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { from[o.Partition] = 0 })
	out := map[string][]byte{}
	if err := kafka.ReadToEnd(ctx, cl, h.cfg.Topics().DeciderState, from, func(r *kgo.Record) error {
		k := fmt.Sprintf("%d/%s", r.Partition, r.Key)
		if r.Value == nil {
			delete(out, k)
		} else {
			out[k] = r.Value
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}
