package main

import (
	"strings"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/consumers/decider"
	"github.com/logbook-dev/logbook/projections"
)

// A decider partition that cannot restore its state is visible: the level
// leaves full and status names the partition and the error.
func TestStuckRestoreLeavesFull(t *testing.T) {
	h := &health{}
	h.kafkaOK.Store(true)
	h.pgOK.Store(true)
	restores := []decider.RestoreStatus{{Partition: 0, State: decider.RestoreDone, Since: time.Now()}}
	h.restores = func() []decider.RestoreStatus { return restores }
	if l := h.level(); l != levelFull {
		t.Fatalf("level %s, want full", l)
	}
	restores = append(restores, decider.RestoreStatus{Partition: 3, State: decider.RestoreFailed, Since: time.Now(),
		Offset: 6288, End: 6332, Error: "stopped at offset 6288 of 6332"})
	if l := h.level(); l != levelDecisionsDelayed {
		t.Fatalf("level %s, want %s", l, levelDecisionsDelayed)
	}
	st := h.status()["decider_restores"].(map[string]any)
	if st["stuck"] != 1 {
		t.Fatalf("status: %+v", st)
	}
	// A restore that runs too long counts too.
	restores = []decider.RestoreStatus{{Partition: 1, State: decider.RestoreRunning, Since: time.Now().Add(-2 * restoreLimit)}}
	if l := h.level(); l != levelDecisionsDelayed {
		t.Fatalf("slow restore: level %s", l)
	}
	// Kafka down dominates.
	h.kafkaOK.Store(false)
	if l := h.level(); l != levelReadOnly {
		t.Fatalf("level %s, want read_only", l)
	}
}

// AI work is degraded by a provider not closed or by a spent budget, each
// named in status; a deployment that never ran a worker stays full.
func TestAIDegradedFromItsSignals(t *testing.T) {
	h := &health{}
	h.kafkaOK.Store(true)
	h.pgOK.Store(true)
	h.ai.Store(&aiHealth{})
	if l := h.level(); l != levelFull {
		t.Fatalf("no worker ever: level %s, want full", l)
	}
	h.ai.Store(&aiHealth{Providers: []projections.ProviderReport{{Provider: "openai", State: "open"}}})
	if r := h.aiReason(); h.level() != levelAIDegraded || !strings.Contains(r, "openai") {
		t.Fatalf("breaker open: level %s, reason %q", h.level(), r)
	}
	h.ai.Store(&aiHealth{WorkspacesOverBudget: 1})
	if r := h.aiReason(); h.level() != levelAIDegraded || !strings.Contains(r, "budget") {
		t.Fatalf("a budget spent: level %s, reason %q", h.level(), r)
	}
	h.ai.Store(&aiHealth{})
	if h.level() != levelFull {
		t.Fatalf("all clear: level %s", h.level())
	}
}
