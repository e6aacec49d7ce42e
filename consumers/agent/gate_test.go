package agent

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

func testGate(t *testing.T, onClose func()) *gate {
	t.Helper()
	cfg := Config{BreakerFailures: 2, BreakerWindow: 4, BreakerDelay: 200 * time.Millisecond, BreakerProbes: 1,
		AuthPause: 300 * time.Millisecond}.WithDefaults()
	return newGate("openai", cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), onClose)
}

func providerErr(class ErrorClass, retryAfter time.Duration) error {
	return &ProviderError{Provider: "openai", Class: class, RetryAfter: retryAfter}
}

// An outage opens the breaker: no call is let through until it half-opens,
// then one probe; its success closes the breaker and starts the ramp.
func TestGateOpensOnOutageAndProbesBeforeClosing(t *testing.T) {
	var closed atomic.Int32
	g := testGate(t, func() { closed.Add(1) })
	ctx := context.Background()
	for range 2 {
		if err := g.acquire(ctx); err != nil {
			t.Fatal(err)
		}
		g.done(providerErr(ClassUnavailable, 0))
	}
	if s := g.snapshot(); s.State != StateOpen || s.Reason != ClassUnavailable {
		t.Fatalf("after two failures: %+v, want open (unavailable)", s)
	}
	if g.available() {
		t.Fatal("an open breaker reports the provider available")
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := g.acquire(short); err == nil {
		t.Fatal("a call was let through an open breaker")
	}
	start := time.Now()
	if err := g.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("the probe went out %v after opening; the delay is 200ms", waited)
	}
	if s := g.snapshot(); s.State != StateHalfOpen {
		t.Fatalf("probing in state %s, want half_open", s.State)
	}
	// One probe only: a second caller waits for its answer.
	probe2, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if err := g.acquire(probe2); err == nil {
		t.Fatal("a second probe went out while the first was unanswered")
	}
	g.done(nil)
	if s := g.snapshot(); s.State != StateClosed {
		t.Fatalf("after a good probe: %s, want closed", s.State)
	}
	if closed.Load() != 1 {
		t.Fatalf("onClose ran %d times, want 1", closed.Load())
	}
}

// A rate limit holds every caller for the provider's Retry-After; the
// breaker does not count it as an outage.
func TestGateHonoursRetryAfterForEveryCaller(t *testing.T) {
	g := testGate(t, nil)
	ctx := context.Background()
	if err := g.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	g.done(providerErr(ClassRateLimited, 300*time.Millisecond))
	start := time.Now()
	if err := g.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 250*time.Millisecond {
		t.Fatalf("the next call went out after %v, before the 300ms Retry-After", waited)
	}
	g.done(nil)
	if s := g.snapshot(); s.State != StateClosed {
		t.Fatalf("a rate limit moved the breaker to %s", s.State)
	}
}

// A refused key or spend limit pauses the provider (no retries, no calls)
// until AuthPause, then one probe decides.
func TestGatePausesOnQuotaAndUnauthorized(t *testing.T) {
	for _, class := range []ErrorClass{ClassQuotaExhausted, ClassUnauthorized} {
		t.Run(string(class), func(t *testing.T) {
			g := testGate(t, nil)
			ctx := context.Background()
			if err := g.acquire(ctx); err != nil {
				t.Fatal(err)
			}
			g.done(providerErr(class, 0))
			if s := g.snapshot(); s.State != StatePaused || s.Reason != class {
				t.Fatalf("after %s: %+v, want paused", class, s)
			}
			short, cancel := context.WithTimeout(ctx, 150*time.Millisecond)
			defer cancel()
			if err := g.acquire(short); err == nil {
				t.Fatal("a call went out while the provider was paused")
			}
			if err := g.acquire(ctx); err != nil {
				t.Fatal(err)
			}
			g.done(nil)
			if s := g.snapshot(); s.State != StateClosed {
				t.Fatalf("after a good probe: %s, want closed", s.State)
			}
		})
	}
}

// Requests the provider refuses, and unusable answers, say nothing about
// its availability.
func TestGateIgnoresBadRequestsAndMalformedAnswers(t *testing.T) {
	g := testGate(t, nil)
	for range 6 {
		if err := g.acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		g.done(providerErr(ClassBadRequest, 0))
		if err := g.acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		g.done(providerErr(ClassMalformed, 0))
	}
	if s := g.snapshot(); s.State != StateClosed {
		t.Fatalf("state %s, want closed", s.State)
	}
}
