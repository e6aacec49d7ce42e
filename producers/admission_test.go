package producers_test

import (
	"net/http"
	"testing"

	"github.com/google/uuid"

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

// Behind a backlog a command is refused before its body is read, touched
// the log or looked anything up: refusals stay cheap under overload. Once
// the decider catches up the same request goes through.
func TestBacklogRefusesBeforeReadingTheCommand(t *testing.T) {
	l := newDecidedLog()
	lag := &lagAt{lag: 5000, drain: 1000, fresh: true}
	h := router(producers.Config{Log: l, Lookup: l, Logger: quiet,
		Admission: producers.NewAdmission(producers.AdmissionConfig{MaxLag: 1000, Rate: -1}, lag)})
	path := "/v1/workspaces/" + uuid.NewString() + "/tasks"
	for _, body := range []string{`{"title":"a"}`, `{not json`} {
		a := post(h, path, body, "Idempotency-Key", "k-1")
		if a.status != http.StatusTooManyRequests || a.body["code"] != "backlog" || a.header.Get("Retry-After") != "5" {
			t.Fatalf("behind by 5000, body %s: %d %v %v", body, a.status, a.header, a.body)
		}
	}
	if n := len(l.appends()); n != 0 {
		t.Fatalf("%d commands appended while refusing", n)
	}
	lag.lag = 10
	if a := post(h, path, `{"title":"a"}`, "Idempotency-Key", "k-1"); a.status != http.StatusAccepted || len(l.appends()) != 1 {
		t.Fatalf("after the backlog: %d %v", a.status, a.body)
	}
}
