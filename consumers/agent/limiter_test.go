package agent

import (
	"context"
	"sync"
	"testing"
	"time"
)

// A workspace with a deep queue gets no more than its turn: with one slot,
// grants alternate between the workspaces that wait.
func TestLimiterTakesWorkspacesInTurn(t *testing.T) {
	l := newLimiter(1, 1, time.Second)
	hold, err := l.acquire(context.Background(), "busy")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	enqueue := func(ws string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := l.acquire(context.Background(), ws)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, ws)
			mu.Unlock()
			release()
		}()
	}
	for range 6 {
		enqueue("busy")
	}
	waitFor(t, func() bool { return l.snapshot().Waiting == 6 })
	for range 2 {
		enqueue("quiet")
	}
	waitFor(t, func() bool { return l.snapshot().Waiting == 8 })
	hold()
	wg.Wait()
	// busy's queue came first, quiet's two calls still go second and fourth.
	want := []string{"busy", "quiet", "busy", "quiet", "busy", "busy", "busy", "busy"}
	if len(order) != len(want) {
		t.Fatalf("order %v", order)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("order %v, want %v", order, want)
		}
	}
}

func TestLimiterCapsEachWorkspace(t *testing.T) {
	l := newLimiter(10, 2, time.Second)
	ctx := context.Background()
	for range 2 {
		if _, err := l.acquire(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := l.acquire(short, "a"); err == nil {
		t.Fatal("a third call of one workspace was admitted over its cap of 2")
	}
	if _, err := l.acquire(ctx, "b"); err != nil {
		t.Fatalf("another workspace was held up: %v", err)
	}
	if s := l.snapshot(); s.Running != 3 || s.Waiting != 0 {
		t.Fatalf("status %+v, want 3 running and none waiting (the timed-out call left the queue)", s)
	}
}

// After the breaker closes, calls in flight climb from 1 to the maximum
// over the ramp instead of jumping there.
func TestLimiterRampsUp(t *testing.T) {
	l := newLimiter(8, 8, 400*time.Millisecond)
	l.startRamp()
	if got := l.snapshot().Limit; got != 1 {
		t.Fatalf("limit right after the ramp starts: %d, want 1", got)
	}
	var releases []func()
	ctx := context.Background()
	r, _ := l.acquire(ctx, "a")
	releases = append(releases, r)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	if _, err := l.acquire(short, "a"); err == nil {
		t.Fatal("a second call was admitted at the start of the ramp")
	}
	cancel()
	time.Sleep(450 * time.Millisecond)
	l.tick()
	for range 7 {
		r, err := l.acquire(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		releases = append(releases, r)
	}
	if s := l.snapshot(); s.Limit != 8 || s.Running != 8 {
		t.Fatalf("after the ramp: %+v, want limit 8 and 8 running", s)
	}
	for _, r := range releases {
		r()
	}
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}
