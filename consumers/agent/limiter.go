package agent

import (
	"context"
	"slices"
	"sync"
	"time"
)

// limiter bounds provider calls in flight: at most limit at once, at most
// perWS per workspace, and waiting calls admitted round-robin across
// workspaces, so a workspace with 10,000 queued tasks takes its turn with
// one that has 10. After the breaker closes the limit ramps from 1 back to
// max over ramp, so a drained backlog never hits a recovering provider at
// full speed.
type limiter struct {
	max, perWS int
	ramp       time.Duration

	mu       sync.Mutex
	rampFrom time.Time // zero: at max
	running  int
	byWS     map[string]int
	queues   map[string][]chan struct{} // waiting calls per workspace, FIFO
	ring     []string                   // workspaces with waiting calls
	next     int                        // round-robin position in ring
}

func newLimiter(max, perWS int, ramp time.Duration) *limiter {
	return &limiter{max: max, perWS: perWS, ramp: ramp, byWS: map[string]int{}, queues: map[string][]chan struct{}{}}
}

// LimiterStatus is the limiter's state as status shows it.
type LimiterStatus struct {
	Limit   int `json:"limit"`
	Running int `json:"running"`
	Waiting int `json:"waiting"`
}

func (l *limiter) snapshot() LimiterStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := 0
	for _, q := range l.queues {
		w += len(q)
	}
	return LimiterStatus{Limit: l.limitLocked(time.Now()), Running: l.running, Waiting: w}
}

// queued is how many calls of workspace ws wait for a slot.
func (l *limiter) queued(ws string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.queues[ws])
}

// startRamp restarts the ramp from one call in flight.
func (l *limiter) startRamp() {
	l.mu.Lock()
	l.rampFrom = time.Now()
	l.mu.Unlock()
}

func (l *limiter) limitLocked(now time.Time) int {
	if l.rampFrom.IsZero() {
		return l.max
	}
	f := float64(now.Sub(l.rampFrom)) / float64(l.ramp)
	if f >= 1 {
		l.rampFrom = time.Time{}
		return l.max
	}
	return 1 + int(float64(l.max-1)*f)
}

// acquire waits for a slot for workspace ws; release must follow.
func (l *limiter) acquire(ctx context.Context, ws string) (release func(), err error) {
	ready := make(chan struct{})
	l.mu.Lock()
	if len(l.queues[ws]) == 0 {
		l.ring = append(l.ring, ws)
	}
	l.queues[ws] = append(l.queues[ws], ready)
	l.dispatchLocked()
	l.mu.Unlock()
	release = func() { l.release(ws) }
	select {
	case <-ready:
		return release, nil
	case <-ctx.Done():
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-ready: // granted as ctx ended: give it back
		l.releaseLocked(ws)
	default:
		l.dequeueLocked(ws, ready)
	}
	return nil, ctx.Err()
}

func (l *limiter) release(ws string) {
	l.mu.Lock()
	l.releaseLocked(ws)
	l.mu.Unlock()
}

func (l *limiter) releaseLocked(ws string) {
	l.running--
	if l.byWS[ws]--; l.byWS[ws] <= 0 {
		delete(l.byWS, ws)
	}
	l.dispatchLocked()
}

// tick admits waiting calls the ramp now allows; the worker calls it often.
func (l *limiter) tick() {
	l.mu.Lock()
	l.dispatchLocked()
	l.mu.Unlock()
}

// dispatchLocked admits waiting calls, one workspace after another, while
// the limit allows.
func (l *limiter) dispatchLocked() {
	limit := l.limitLocked(time.Now())
	for l.running < limit {
		ws, ok := l.pickLocked()
		if !ok {
			return
		}
		q := l.queues[ws]
		close(q[0])
		l.dequeueLocked(ws, q[0])
		l.running++
		l.byWS[ws]++
	}
}

// pickLocked returns the next workspace in the ring with a waiting call and
// room under its cap.
func (l *limiter) pickLocked() (string, bool) {
	for i := range l.ring {
		j := (l.next + i) % len(l.ring)
		ws := l.ring[j]
		if l.byWS[ws] < l.perWS {
			l.next = j + 1
			return ws, true
		}
	}
	return "", false
}

func (l *limiter) dequeueLocked(ws string, c chan struct{}) {
	q := l.queues[ws]
	if i := slices.Index(q, c); i >= 0 {
		q = slices.Delete(q, i, i+1)
	}
	if len(q) > 0 {
		l.queues[ws] = q
		return
	}
	delete(l.queues, ws)
	if i := slices.Index(l.ring, ws); i >= 0 {
		l.ring = slices.Delete(l.ring, i, i+1)
		if l.next > i {
			l.next--
		}
	}
	if len(l.ring) > 0 {
		l.next %= len(l.ring)
	} else {
		l.next = 0
	}
}
