package agent

import (
	"testing"
	"time"
)

// A capped workspace makes its requests per minute and no more; the ones
// over it are parked for the drain, which sees them due as the rate
// refills; an uncapped workspace is never held.
func TestRatesHoldAWorkspaceToItsCap(t *testing.T) {
	r := newRates()
	for range 100 {
		if !r.take("free", 0) {
			t.Fatal("an uncapped workspace was held")
		}
	}
	if !r.take("slow", 60) {
		t.Fatal("the first call of a capped workspace was held")
	}
	if r.take("slow", 60) {
		t.Fatal("a second call within the second went through at 60/min")
	}
	now := time.Now()
	if due := r.due(now); due["slow"] != 0 {
		t.Fatalf("due at once: %v", due)
	}
	if due := r.due(now.Add(1100 * time.Millisecond)); due["slow"] != 1 {
		t.Fatalf("due after 1.1s: %v, want slow:1", due)
	}

	// 600/min: a second's worth (10) at once, then held.
	n := 0
	for r.take("fast", 600) {
		n++
		if n > 100 {
			t.Fatal("no cap")
		}
	}
	if n != 10 {
		t.Fatalf("%d calls at once at 600/min, want 10", n)
	}

	// A lowered cap holds from the next call.
	r.take("fast", 1)
	if due := r.due(now.Add(10 * time.Second)); due["fast"] != 0 {
		t.Fatalf("at 1/min, due after 10s: %v", due)
	}
	// Lifting the cap frees the workspace and forgets it.
	if !r.take("fast", 0) {
		t.Fatal("held after the cap was lifted")
	}
	if _, ok := r.due(now.Add(time.Hour))["fast"]; ok {
		t.Fatal("an uncapped workspace is still parked")
	}

	r.drained("slow")
	if _, ok := r.due(now.Add(time.Hour))["slow"]; ok {
		t.Fatal("a drained workspace is still due")
	}
	// An idle capped workspace is forgotten once its bucket is full.
	r.forget(now.Add(time.Hour))
	r.mu.Lock()
	left := len(r.limits)
	r.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d limits kept after an idle hour", left)
	}
}
