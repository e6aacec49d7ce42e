package agent

import (
	"testing"
	"time"
)

func TestTurnsHoldATriggerOnceAndRememberItsOutcome(t *testing.T) {
	tr := newTurns(time.Minute)
	release, ok := tr.hold("w", "t", 2)
	if !ok {
		t.Fatal("a free task was not held")
	}
	if _, again := tr.hold("w", "t", 2); again {
		t.Fatal("a task held twice at once")
	}
	if _, other := tr.hold("w", "t", 4); !other {
		t.Fatal("the task's next assignment (another version) was refused")
	}
	release(false) // failed: a retry may come in
	release2, ok := tr.hold("w", "t", 2)
	if !ok {
		t.Fatal("a retry after a failure was refused")
	}
	release2(true) // got its outcome
	if _, ok := tr.hold("w", "t", 2); ok {
		t.Fatal("a task worked a moment ago was worked again")
	}
	if tr.claim(Parked{WorkspaceID: "w", TaskID: "t", Version: 2}) {
		t.Fatal("the loop claimed a task worked a moment ago")
	}
	tr.busy[trigger("w", "t", 2)] = time.Now().Add(-time.Second) // its memory has run out
	if !tr.claim(Parked{WorkspaceID: "w", TaskID: "t", Version: 2}) {
		t.Fatal("the loop cannot claim a task whose outcome is forgotten")
	}
	tr.unclaim(Parked{WorkspaceID: "w", TaskID: "t", Version: 2})
	if _, ok := tr.hold("w", "t", 2); !ok {
		t.Fatal("a task's outcome is remembered for ever")
	}
}

func TestTurnsClaimCountsAndForgetOnlyUnchangedWorkspaces(t *testing.T) {
	tr := newTurns(time.Minute)
	p := Parked{WorkspaceID: "w", TaskID: "t", Version: 2}
	if !tr.claim(p) || tr.claim(p) {
		t.Fatal("a task claimed twice, or not at all")
	}
	if mine, all := tr.load("w"); mine != 1 || all != 1 {
		t.Fatalf("load %d/%d, want 1/1", mine, all)
	}
	tr.unclaim(p)
	if mine, all := tr.load("w"); mine != 0 || all != 0 {
		t.Fatalf("load %d/%d after unclaim, want 0/0", mine, all)
	}

	tr.shelve("a")
	tr.shelve("b")
	spaces, gens := tr.pending()
	if len(spaces) != 2 || spaces[0] != "a" {
		t.Fatalf("pending %v", spaces)
	}
	tr.shelve("a") // shelved again while the drain looked
	tr.drained("a", gens[0])
	tr.drained("b", gens[1])
	if spaces, _ := tr.pending(); len(spaces) != 1 || spaces[0] != "a" || tr.count() != 1 {
		t.Fatalf("pending %v: want only a, shelved again since the look", spaces)
	}
	tr.shelve("c")
	tr.advance(1)
	if spaces, _ := tr.pending(); len(spaces) != 2 || spaces[0] != "c" {
		t.Fatalf("after one visited, the next round starts at %v, want c first", spaces)
	}
}
