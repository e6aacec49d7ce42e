package decider

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

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

func TestWindowRefusesAKeyReusedForAnotherRequest(t *testing.T) {
	d1 := schemas.RequestDigest("POST", "/v1/workspaces/w/tasks", []byte(`{"title":"a"}`))
	d2 := schemas.RequestDigest("POST", "/v1/workspaces/w/tasks", []byte(`{"title":"b"}`))
	var w workspaceState
	w = w.remember(schemas.Result{CommandID: "c1", Status: schemas.ResultAccepted, AggregateID: "a1", RequestDigest: d1}, 4)
	w = w.remember(schemas.Result{CommandID: "c2", Status: schemas.ResultAccepted, AggregateID: "a2"}, 4) // no key
	if got := w.Recent[0].Digest; got != d1[:32] {
		t.Fatalf("window keeps digest %q, want the first 16 bytes of %q", got, d1)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	env := func(id, digest string) schemas.CommandEnvelope {
		return schemas.CommandEnvelope{ID: id, Type: domain.CmdTaskCreate, WorkspaceID: "w", RequestDigest: digest}
	}
	first, _ := w.recent("c1")
	if got := first.answer(env("c1", d1), at); got.Status != schemas.ResultAccepted || got.AggregateID != "a1" || got.RequestDigest != d1 || !got.DecidedAt.Equal(at) {
		t.Fatalf("same request: %+v, want the first outcome", got)
	}
	if got := first.answer(env("c1", ""), at); got.Status != schemas.ResultAccepted || got.AggregateID != "a1" {
		t.Fatalf("a command without a digest: %+v, want the first outcome", got)
	}
	got := first.answer(env("c1", d2), at)
	if got.Status != schemas.ResultRejected || got.Code != domain.CodeKeyReused || got.Field != "Idempotency-Key" ||
		got.RequestDigest != d2 || got.AggregateID != "" || got.CommandID != "c1" || got.WorkspaceID != "w" {
		t.Fatalf("another request under the same key: %+v, want idempotency_key_reused", got)
	}
	unkeyed, _ := w.recent("c2")
	if got := unkeyed.answer(env("c2", d2), at); got.Status != schemas.ResultAccepted || got.AggregateID != "a2" {
		t.Fatalf("an outcome without a digest: %+v, want it as before", got)
	}
}

// testdata/state/format0/workspace.json is a decider-state workspace record
// written by logbook before request digests existed: a workspace, a task
// created and a rejected completion in its window.
func TestWorkspaceRecordWrittenBeforeDigestsStillReads(t *testing.T) {
	raw, err := os.ReadFile("testdata/state/format0/workspace.json")
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.TrimSpace(raw)
	const ws = "0190d6a4-0000-7000-8000-00000000a001"
	p := newPartitionState()
	if err := p.apply(keyWorkspace+ws, raw); err != nil {
		t.Fatal(err)
	}
	w := p.workspaces[ws]
	if w == nil || w.Workspace == nil || w.Workspace.Name != "golden" || w.Chain.Seq != 2 || len(w.Recent) != 3 {
		t.Fatalf("restored %+v", w)
	}
	// Old outcomes have no digest: any request under their id gets them.
	d := schemas.RequestDigest("POST", "/v1/workspaces/"+ws+"/tasks", []byte(`{"title":"other"}`))
	at := time.Now().UTC()
	o, ok := w.recent("0190d6a4-0000-7000-8000-00000000c002")
	if got := o.answer(schemas.CommandEnvelope{ID: o.CommandID, Type: domain.CmdTaskCreate, WorkspaceID: ws, RequestDigest: d}, at); !ok ||
		got.Status != schemas.ResultAccepted || got.AggregateID != "0190d6a4-0000-7000-8000-00000000b001" {
		t.Fatalf("old accepted outcome answered %+v", got)
	}
	o, ok = w.recent("0190d6a4-0000-7000-8000-00000000c003")
	if got := o.answer(schemas.CommandEnvelope{ID: o.CommandID, Type: domain.CmdTaskComplete, WorkspaceID: ws}, at); !ok ||
		got.Status != schemas.ResultRejected || got.Code != domain.CodeConflict || got.Reason == "" {
		t.Fatalf("old rejected outcome answered %+v", got)
	}
	// New outcomes join the old window with their digest, in today's
	// format: a command record each.
	next := w.remember(schemas.Result{CommandID: "c-new", Status: schemas.ResultAccepted, RequestDigest: d}, 256)
	added, evicted := windowChanges(w.Recent, next.Recent)
	if len(added) != 1 || added[0].CommandID != "c-new" || len(evicted) != 0 {
		t.Fatalf("window changes: added %v, evicted %v", added, evicted)
	}
	val, err := encodeCommand(added[0])
	if err != nil {
		t.Fatal(err)
	}
	back := newPartitionState()
	if err := back.apply(keyWorkspace+ws, raw); err != nil {
		t.Fatal(err)
	}
	if err := back.apply(commandKey(ws, "c-new"), val); err != nil {
		t.Fatal(err)
	}
	if bw := back.workspaces[ws]; len(bw.Recent) != 4 || bw.Recent[3].Digest != d[:32] || bw.Recent[0].Digest != "" || !bw.legacy {
		t.Fatalf("window after a new outcome: %+v (%s)", bw, val)
	}
}

// The window's changes are what a batch took in and let go, oldest first.
func TestWindowChanges(t *testing.T) {
	o := func(ids ...string) []outcome {
		var out []outcome
		for _, id := range ids {
			out = append(out, outcome{CommandID: id})
		}
		return out
	}
	ids := func(os []outcome) []string {
		var out []string
		for _, x := range os {
			out = append(out, x.CommandID)
		}
		return out
	}
	for _, tc := range []struct {
		prev, next     []outcome
		added, evicted []string
	}{
		{nil, o("a"), []string{"a"}, nil},
		{o("a", "b"), o("a", "b", "c"), []string{"c"}, nil},
		{o("a", "b", "c"), o("b", "c", "d"), []string{"d"}, []string{"a"}},
		{o("a", "b", "c"), o("d", "e", "f"), []string{"d", "e", "f"}, []string{"a", "b", "c"}},
		{o("a", "b"), o("a", "b"), nil, nil},
	} {
		added, evicted := windowChanges(tc.prev, tc.next)
		if !slices.Equal(ids(added), tc.added) || !slices.Equal(evicted, tc.evicted) {
			t.Errorf("%v → %v: added %v evicted %v, want %v %v", ids(tc.prev), ids(tc.next), ids(added), evicted, tc.added, tc.evicted)
		}
	}
}
