package producers

import (
	"context"
	"math"
	"runtime"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/logbook-dev/logbook/internal/httpapi"
)

// LagSource reports the decider's backlog of commands; *kafka.LagMonitor
// satisfies it.
type LagSource interface {
	Lag() (lag int64, drainPerSec float64, fresh bool)
}

// AdmissionConfig sets when commands are refused with 429.
type AdmissionConfig struct {
	// MaxLag is the decider backlog (commands) above which new commands
	// are refused, default 50,000: the log absorbs bursts up to there.
	MaxLag int64
	// Rate and Burst limit each principal's commands per second, default
	// 5,000 and 10,000. Rate < 0 disables the per-principal limit.
	Rate  float64
	Burst int
	// MaxPrincipals bounds the limiter table, default 10,000.
	MaxPrincipals int
	// MaxInFlight bounds the commands taken in at once (decode to
	// append), default 64 per CPU; < 0 disables. Past it the CPU, not
	// the log, is the queue: a command waiting for a core only adds
	// latency to every other, so the excess gets 429.
	MaxInFlight int
	// InFlightWait is how long a command may wait for a place before its
	// 429, default 100ms: places free up every fraction of a millisecond
	// under load, and a command refused at once would lose to whichever
	// arrived in that instant, however long it had been retrying.
	InFlightWait time.Duration
}

// Admission decides whether a command may enter the log now.
type Admission struct {
	cfg AdmissionConfig
	lag LagSource

	mu       sync.Mutex
	limiters map[string]*rate.Limiter

	slots chan struct{} // nil: no bound on commands in flight
}

// NewAdmission builds admission control; lag may be nil.
func NewAdmission(cfg AdmissionConfig, lag LagSource) *Admission {
	if cfg.MaxLag <= 0 {
		cfg.MaxLag = 50_000
	}
	if cfg.Rate == 0 {
		cfg.Rate = 5000
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 10000
	}
	if cfg.MaxPrincipals <= 0 {
		cfg.MaxPrincipals = 10_000
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 64 * runtime.GOMAXPROCS(0)
	}
	if cfg.InFlightWait <= 0 {
		cfg.InFlightWait = 100 * time.Millisecond
	}
	a := &Admission{cfg: cfg, lag: lag, limiters: map[string]*rate.Limiter{}}
	if cfg.MaxInFlight > 0 {
		a.slots = make(chan struct{}, cfg.MaxInFlight)
	}
	return a
}

// Enter takes one of the MaxInFlight places of commands being taken in,
// waiting up to InFlightWait for one, or answers 429; release gives it back
// (more than once is harmless).
func (a *Admission) Enter(ctx context.Context) (release func(), prob *httpapi.Problem) {
	if a == nil || a.slots == nil {
		return func() {}, nil
	}
	select {
	case a.slots <- struct{}{}:
		return a.releaser(), nil
	default:
	}
	wait := time.NewTimer(a.cfg.InFlightWait)
	defer wait.Stop()
	select {
	case a.slots <- struct{}{}:
		return a.releaser(), nil
	case <-wait.C:
	case <-ctx.Done():
	}
	return nil, tooMany(httpapi.CodeOverloaded, "too many commands in flight on this server", 1)
}

func (a *Admission) releaser() func() {
	var once sync.Once
	return func() { once.Do(func() { <-a.slots }) }
}

// Backlog returns a 429 problem while the decider is more than MaxLag
// commands behind, nil otherwise.
func (a *Admission) Backlog() *httpapi.Problem {
	if a == nil || a.lag == nil {
		return nil
	}
	if lag, drain, fresh := a.lag.Lag(); fresh && lag > a.cfg.MaxLag {
		// Come back when the backlog should be under the limit again.
		wait := 30.0
		if drain > 0 {
			wait = float64(lag-a.cfg.MaxLag/2) / drain
		}
		return tooMany(httpapi.CodeBacklog, "the decider is behind by "+strconv.FormatInt(lag, 10)+" commands", wait)
	}
	return nil
}

// Admit returns nil, or a 429 problem whose Retry-After says when to retry:
// the backlog, then the principal's rate.
func (a *Admission) Admit(principal string) *httpapi.Problem {
	if a == nil {
		return nil
	}
	if prob := a.Backlog(); prob != nil {
		return prob
	}
	if a.cfg.Rate < 0 {
		return nil
	}
	l := a.limiter(principal)
	r := l.Reserve()
	if d := r.Delay(); d > 0 {
		r.Cancel()
		return tooMany(httpapi.CodeRateLimited, "too many commands from this key", d.Seconds())
	}
	return nil
}

func (a *Admission) limiter(principal string) *rate.Limiter {
	a.mu.Lock()
	defer a.mu.Unlock()
	l, ok := a.limiters[principal]
	if !ok {
		if len(a.limiters) >= a.cfg.MaxPrincipals {
			a.limiters = map[string]*rate.Limiter{} // bounded: forget old buckets
		}
		l = rate.NewLimiter(rate.Limit(a.cfg.Rate), a.cfg.Burst)
		a.limiters[principal] = l
	}
	return l
}

func tooMany(code, detail string, seconds float64) *httpapi.Problem {
	return httpapi.Unavailable(code, detail, int(math.Min(60, math.Max(1, math.Ceil(seconds)))))
}
