package producers_test

import (
	"net/http"
	"testing"

	"github.com/logbook-dev/logbook/producers"
)

type lagAt struct {
	lag   int64
	drain float64
	fresh bool
}

func (l *lagAt) Lag() (int64, float64, bool) { return l.lag, l.drain, l.fresh }

func TestAdmissionRefusesWhenTheDeciderIsBehind(t *testing.T) {
	lag := &lagAt{lag: 10, fresh: true}
	a := producers.NewAdmission(producers.AdmissionConfig{MaxLag: 1000, Rate: -1}, lag)
	if p := a.Admit("k"); p != nil {
		t.Fatalf("small backlog refused: %+v", p)
	}
	lag.lag, lag.drain = 5000, 500 // (5000-500)/500 = 9s to drain below half the limit
	p := a.Admit("k")
	if p == nil || p.Status != http.StatusTooManyRequests || p.RetryAfter != 9 {
		t.Fatalf("want 429 with Retry-After 9, got %+v", p)
	}
	lag.drain = 0 // not draining at all: the longest hint
	if p := a.Admit("k"); p == nil || p.RetryAfter != 30 {
		t.Fatalf("stalled decider: %+v", p)
	}
	lag.fresh = false // a stale measure never refuses: the log absorbs bursts
	if p := a.Admit("k"); p != nil {
		t.Fatalf("stale lag refused: %+v", p)
	}
}

func TestAdmissionRateLimitsEachKey(t *testing.T) {
	a := producers.NewAdmission(producers.AdmissionConfig{Rate: 1, Burst: 3}, nil)
	for i := 0; i < 3; i++ {
		if p := a.Admit("a"); p != nil {
			t.Fatalf("burst %d refused", i)
		}
	}
	p := a.Admit("a")
	if p == nil || p.Status != http.StatusTooManyRequests || p.RetryAfter < 1 {
		t.Fatalf("want 429 after the burst, got %+v", p)
	}
	if p := a.Admit("b"); p != nil {
		t.Fatal("another key must have its own budget")
	}
}
