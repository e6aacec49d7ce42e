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

// remember runs results through one batch's window of size outcomes and
// returns the workspace's state it leaves.
func remember(w workspaceState, size int, results ...schemas.Result) (workspaceState, *batch) {
	b := newBatch()
	for _, r := range results {
		r.WorkspaceID = "w"
		b.remember(w, r, size, 0)
		w = *b.workspaces["w"]
	}
	return w, b
}

func TestWindowKeepsTheLastOutcomesAndReplaysThem(t *testing.T) {
	var w workspaceState
	for i := 0; i < 10; i++ {
		r := schemas.Result{CommandID: fmt.Sprint("c", i), Status: schemas.ResultAccepted, AggregateID: fmt.Sprint("a", i)}
		if i == 9 {
			r = schemas.Result{CommandID: "c9", Status: schemas.ResultRejected, Code: domain.CodeInvalid, Reason: "bad", Field: "title"}
		}
		w, _ = remember(w, 4, r)
	}
	if w.Recent.len() != 4 {
		t.Fatalf("window holds %d outcomes, want 4", w.Recent.len())
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
}

func TestWindowRefusesAKeyReusedForAnotherRequest(t *testing.T) {
	d1 := schemas.RequestDigest("POST", "/v1/workspaces/w/tasks", []byte(`{"title":"a"}`))
	d2 := schemas.RequestDigest("POST", "/v1/workspaces/w/tasks", []byte(`{"title":"b"}`))
	w, _ := remember(workspaceState{}, 4,
		schemas.Result{CommandID: "c1", Status: schemas.ResultAccepted, AggregateID: "a1", RequestDigest: d1},
		schemas.Result{CommandID: "c2", Status: schemas.ResultAccepted, AggregateID: "a2"}) // no key
	if got := w.Recent.at(0).outcome().Digest; got != d1[:32] {
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
	if w == nil || w.Workspace == nil || w.Workspace.Name != "golden" || w.Chain.Seq != 2 || w.Recent.len() != 3 {
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
	next, b := remember(*w, 256, schemas.Result{CommandID: "c-new", Status: schemas.ResultAccepted, RequestDigest: d})
	added, evicted := next.Recent.added(), b.evicted["w"]
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
	if bw := back.workspaces[ws]; bw.Recent.len() != 4 || bw.Recent.at(3).outcome().Digest != d[:32] || bw.Recent.at(0).outcome().Digest != "" || !bw.legacy {
		t.Fatalf("window after a new outcome: %+v (%s)", bw, val)
	}
}

// A batch's window changes are the outcomes it added and kept, and the
// ids of committed outcomes it let go, oldest first; an outcome added and
// let go by the same batch leaves no record.
func TestWindowChanges(t *testing.T) {
	results := func(ids ...string) []schemas.Result {
		var out []schemas.Result
		for _, id := range ids {
			out = append(out, schemas.Result{CommandID: id, Status: schemas.ResultAccepted})
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
		committed, batch []string
		added, evicted   []string
	}{
		{nil, []string{"a"}, []string{"a"}, nil},
		{[]string{"a", "b"}, []string{"c"}, []string{"c"}, nil},
		{[]string{"a", "b", "c"}, []string{"d"}, []string{"d"}, []string{"a"}},
		{[]string{"a", "b", "c"}, []string{"d", "e", "f"}, []string{"d", "e", "f"}, []string{"a", "b", "c"}},
		{[]string{"a", "b"}, []string{"c", "d", "e", "f", "g"}, []string{"e", "f", "g"}, []string{"a", "b"}},
		{[]string{"a", "b"}, nil, nil, nil},
	} {
		w, b := remember(workspaceState{}, 3, results(tc.committed...)...)
		b.commit(map[int32]*partitionState{0: newPartitionState()})
		w, b = remember(w, 3, results(tc.batch...)...)
		if !slices.Equal(ids(w.Recent.added()), tc.added) || !slices.Equal(b.evicted["w"], tc.evicted) {
			t.Errorf("%v then %v: added %v evicted %v, want %v %v", tc.committed, tc.batch, ids(w.Recent.added()), b.evicted["w"], tc.added, tc.evicted)
		}
	}
}
