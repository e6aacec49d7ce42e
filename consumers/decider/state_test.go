package decider

import (
	"fmt"
	"testing"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

func TestWindowKeepsTheLastOutcomesAndReplaysThem(t *testing.T) {
	var w workspaceState
	for i := 0; i < 10; i++ {
		r := schemas.Result{CommandID: fmt.Sprint("c", i), Status: schemas.ResultAccepted, AggregateID: fmt.Sprint("a", i)}
		if i == 9 {
			r = schemas.Result{CommandID: "c9", Status: schemas.ResultRejected, Code: domain.CodeInvalid, Reason: "bad", Field: "title"}
		}
		w = w.remember(r, 4)
	}
	if len(w.Recent) != 4 {
		t.Fatalf("window holds %d outcomes, want 4", len(w.Recent))
	}
	if _, ok := w.recent("c5"); ok {
		t.Fatal("c5 must have fallen out of a window of 4")
	}
	o, ok := w.recent("c6")
	if got := o.result("task.create", "ws"); !ok || got.Status != schemas.ResultAccepted || got.AggregateID != "a6" || got.WorkspaceID != "ws" {
		t.Fatalf("c6 replayed as %+v", got)
	}
	o, ok = w.recent("c9")
	if got := o.result("task.create", "ws"); !ok || got.Status != schemas.ResultRejected || got.Code != domain.CodeInvalid || got.Field != "title" || got.Reason != "bad" {
		t.Fatalf("c9 replayed as %+v", got)
	}
	// remember never shares the backing array with the state it copied.
	before := w
	after := w.remember(schemas.Result{CommandID: "c10", Status: schemas.ResultAccepted}, 4)
	if before.Recent[3].CommandID != "c9" || after.Recent[3].CommandID != "c10" {
		t.Fatal("remember changed the state it was called on")
	}
}
