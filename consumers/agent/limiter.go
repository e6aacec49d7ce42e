package agent

import (
	"context"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter bounds provider calls in flight: at most limit at once, at most
// perWS per workspace, and waiting calls admitted round-robin across
// workspaces, so a workspace with 10,000 queued tasks takes its turn with
// one that has 10. After the breaker closes the limit ramps from 1 back to
// max over ramp, so a drained backlog never hits a recovering provider at
// full speed. A workspace whose AI policy caps its requests per minute is
// admitted no faster than that.
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
	rates    map[string]*rate.Limiter   // workspaces with a request cap
}

func newLimiter(max, perWS int, ramp time.Duration) *limiter {
	return &limiter{max: max, perWS: perWS, ramp: ramp, byWS: map[string]int{}, queues: map[string][]chan struct{}{},
		rates: map[string]*rate.Limiter{}}
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

// setRate applies a workspace's requests-per-minute cap (0: none), as its
// policy says when one of its calls is admitted. The policy is read after
// admission, so a new cap first counts the workspace's calls in flight
// (at most perWS went out before it was known) and holds the next ones
// back until the rate is met; a changed cap holds from the next call on.
func (l *limiter) setRate(ws string, perMinute int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if perMinute <= 0 {
		delete(l.rates, ws)
		return
	}
	limit := rate.Limit(float64(perMinute) / 60)
	if r, ok := l.rates[ws]; ok {
		if r.Limit() != limit {
			r.SetLimit(limit)
		}
		return
	}
	// Burst 1: calls are spaced evenly, never bunched at the minute's start.
	r := rate.NewLimiter(limit, 1)
	for range max(l.byWS[ws], 1) {
		r.Reserve() // never cancelled: spends tokens ahead, so the next call waits
	}
	l.rates[ws] = r
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
		if r := l.rates[ws]; r != nil {
			r.Allow()
		}
		q := l.queues[ws]
		close(q[0])
		l.dequeueLocked(ws, q[0])
		l.running++
		l.byWS[ws]++
	}
}

// pickLocked returns the next workspace in the ring with a waiting call,
// room under its cap and, where its requests are capped, a request to spend.
func (l *limiter) pickLocked() (string, bool) {
	now := time.Now()
	for i := range l.ring {
		j := (l.next + i) % len(l.ring)
		ws := l.ring[j]
		if r := l.rates[ws]; r != nil && r.TokensAt(now) < 1 {
			continue
		}
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
