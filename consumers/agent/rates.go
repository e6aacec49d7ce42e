package agent

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rates holds each workspace to the requests per minute its AI policy
// allows. A call over the rate is never waited for: waiting would hold a
// place in its partition's window and, through in-order commits, hold up
// every workspace that shares the partition. The task is left assigned
// instead (the read model is its queue) and the worker's drain works the
// workspace's oldest waiting tasks as its rate allows.
type rates struct {
	mu     sync.Mutex
	limits map[string]*rate.Limiter // capped workspaces seen
	parked map[string]bool          // capped workspaces with tasks left waiting
}

func newRates() *rates {
	return &rates{limits: map[string]*rate.Limiter{}, parked: map[string]bool{}}
}

// burstFor allows a second's worth of calls at once (at least one), so the
// drain, which runs every second, can reach the whole rate.
func burstFor(perMinute int64) int {
	return max(1, int(math.Ceil(float64(perMinute)/60)))
}

// take spends one of the workspace's requests, if it has one now; with no
// cap (perMinute 0) it always does. A workspace over its rate is marked
// parked, for the drain.
func (r *rates) take(ws string, perMinute int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if perMinute <= 0 {
		delete(r.limits, ws)
		delete(r.parked, ws)
		return true
	}
	lim, burst := rate.Limit(float64(perMinute)/60), burstFor(perMinute)
	l, ok := r.limits[ws]
	switch {
	case !ok:
		l = rate.NewLimiter(lim, burst)
		r.limits[ws] = l
	case l.Limit() != lim || l.Burst() != burst:
		l.SetLimit(lim)
		l.SetBurst(burst)
	}
	if l.Allow() {
		return true
	}
	r.parked[ws] = true
	return false
}

// due returns the parked workspaces and how many requests each may make
// now, to drain. It does not spend them: take does, call by call.
func (r *rates) due(now time.Time) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for ws := range r.parked {
		if n := int(r.limits[ws].TokensAt(now)); n > 0 {
			out[ws] = n
		}
	}
	return out
}

// waiting reports whether the drain has the workspace's waiting tasks.
func (r *rates) waiting(ws string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.parked[ws]
}

// drained records that a workspace has no task left waiting.
func (r *rates) drained(ws string) {
	r.mu.Lock()
	delete(r.parked, ws)
	r.mu.Unlock()
}

// forget drops capped workspaces idle for long enough that their bucket is
// full again, so the map holds only workspaces in use; a later call starts
// with the full bucket it would have had anyway.
func (r *rates) forget(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for ws, l := range r.limits {
		if !r.parked[ws] && l.TokensAt(now) >= float64(l.Burst()) {
			delete(r.limits, ws)
		}
	}
}
