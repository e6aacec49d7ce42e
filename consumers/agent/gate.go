package agent

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/failsafe-go/failsafe-go/circuitbreaker"
)

// ProviderState is what status shows of a provider.
type ProviderState string

const (
	StateClosed   ProviderState = "closed"
	StateHalfOpen ProviderState = "half_open"
	StateOpen     ProviderState = "open"
	// StatePaused: the provider refused the key or the spend limit; no
	// call until one probe after Config.AuthPause.
	StatePaused ProviderState = "paused"
)

// Rank orders states by how degraded they are, for metrics.
func (s ProviderState) Rank() int {
	switch s {
	case StateHalfOpen:
		return 1
	case StateOpen:
		return 2
	case StatePaused:
		return 3
	}
	return 0
}

// ProviderStatus is one provider's state as status and metrics show it.
type ProviderStatus struct {
	Provider    string        `json:"provider"`
	State       ProviderState `json:"state"`
	Reason      ErrorClass    `json:"reason,omitempty"` // the error class that put it there
	Since       time.Time     `json:"since"`
	Transitions int64         `json:"transitions"`
}

// gate says when a provider may be called: its circuit breaker (failsafe-go)
// for outages, a pause after the key or the spend limit is refused, and a
// provider-wide Retry-After after a rate limit. Waiting happens here, so
// no call is made, and no retry storm can start, while the provider is down.
type gate struct {
	name      string
	cb        circuitbreaker.CircuitBreaker[any]
	authPause time.Duration
	log       *slog.Logger
	onClose   func() // the breaker closed: calls resume on a ramp

	mu          sync.Mutex
	status      ProviderStatus
	pausedUntil time.Time
	notBefore   time.Time
	wake        chan struct{} // closed and replaced on every change
}

func newGate(name string, cfg Config, log *slog.Logger, onClose func()) *gate {
	g := &gate{
		name: name, authPause: cfg.AuthPause, log: log, onClose: onClose,
		status: ProviderStatus{Provider: name, State: StateClosed, Since: time.Now().UTC()},
		wake:   make(chan struct{}),
	}
	g.cb = circuitbreaker.NewBuilder[any]().
		WithFailureThresholdRatio(cfg.BreakerFailures, cfg.BreakerWindow).
		WithSuccessThreshold(cfg.BreakerProbes).
		WithDelay(cfg.BreakerDelay).
		WithJitterFactor(0.1).
		OnStateChanged(func(e circuitbreaker.StateChangedEvent) { g.breakerChanged(e.NewState) }).
		Build()
	return g
}

var stateOf = map[circuitbreaker.State]ProviderState{
	circuitbreaker.ClosedState:   StateClosed,
	circuitbreaker.HalfOpenState: StateHalfOpen,
	circuitbreaker.OpenState:     StateOpen,
}

func (g *gate) breakerChanged(s circuitbreaker.State) {
	g.mu.Lock()
	paused := time.Now().Before(g.pausedUntil)
	var reason ErrorClass
	if s != circuitbreaker.ClosedState {
		reason = ClassUnavailable
	}
	if !paused {
		g.setLocked(stateOf[s], reason)
	}
	g.mu.Unlock()
	if s == circuitbreaker.ClosedState && g.onClose != nil {
		g.onClose()
	}
}

// setLocked records a transition, logged once.
func (g *gate) setLocked(s ProviderState, reason ErrorClass) {
	if g.status.State == s {
		return
	}
	g.status.State, g.status.Reason, g.status.Since = s, reason, time.Now().UTC()
	g.status.Transitions++
	close(g.wake)
	g.wake = make(chan struct{})
	level := slog.LevelInfo
	if s == StateOpen || s == StatePaused {
		level = slog.LevelWarn
	}
	g.log.Log(context.Background(), level, "AI provider state changed", "provider", g.name, "state", s, "reason", reason)
}

func (g *gate) snapshot() ProviderStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.status
}

// available reports whether a call could be let through now.
func (g *gate) available() bool {
	g.mu.Lock()
	now := time.Now()
	blocked := now.Before(g.pausedUntil) || now.Before(g.notBefore)
	g.mu.Unlock()
	return !blocked && !g.cb.IsOpen()
}

// errUnavailable is the wait a handler gives up when its time runs out
// while the provider is unavailable.
var errUnavailable = errors.New("AI provider unavailable")

// wait blocks until a call could be let through, without taking a permit.
func (g *gate) wait(ctx context.Context) error {
	return g.until(ctx, func() bool { return !g.cb.IsOpen() })
}

// acquire blocks until the breaker grants a permit; done must follow.
func (g *gate) acquire(ctx context.Context) error {
	return g.until(ctx, g.cb.TryAcquirePermit)
}

func (g *gate) until(ctx context.Context, ok func() bool) error {
	for {
		g.mu.Lock()
		now := time.Now()
		var d time.Duration
		if now.Before(g.pausedUntil) {
			d = g.pausedUntil.Sub(now)
		} else if now.Before(g.notBefore) {
			d = g.notBefore.Sub(now)
		}
		wake := g.wake
		g.mu.Unlock()
		if d == 0 {
			if ok() {
				return nil
			}
			// Open: until it half-opens; half-open with every probe out:
			// until a probe answers.
			if d = g.cb.RemainingDelay(); d <= 0 || d > time.Second {
				d = 250 * time.Millisecond
			}
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return &waitError{reason: "provider " + g.name + " unavailable", err: errUnavailable}
		case <-t.C:
		case <-wake:
			t.Stop()
		}
	}
}

// done records the outcome of a call made under a permit.
func (g *gate) done(err error) {
	class, retryAfter := Classify(err), RetryAfter(err)
	switch class {
	case "":
		g.cb.RecordSuccess()
	case ClassUnavailable:
		g.cb.RecordFailure()
	case ClassRateLimited:
		// The provider is up; it asks every caller to slow down.
		g.cb.RecordSuccess()
		if retryAfter <= 0 {
			retryAfter = time.Second
		}
		g.mu.Lock()
		if t := time.Now().Add(retryAfter); t.After(g.notBefore) {
			g.notBefore = t
		}
		g.mu.Unlock()
	case ClassQuotaExhausted, ClassUnauthorized:
		// Retrying cannot help: stop calling, report it, probe later.
		g.cb.RecordSuccess()
		g.mu.Lock()
		g.pausedUntil = time.Now().Add(g.authPause)
		g.setLocked(StatePaused, class)
		g.mu.Unlock()
		g.cb.Open()
	default:
		// Answered, if uselessly: availability is not in question.
		g.cb.RecordSuccess()
	}
}
