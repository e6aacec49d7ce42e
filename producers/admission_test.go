package producers_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/logbook-dev/logbook/producers"
	"github.com/logbook-dev/logbook/schemas"
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

// Past MaxInFlight a command waits up to InFlightWait for a place, then
// gets 429; a place given back (even twice) makes room for one more, never
// two.
func TestAdmissionBoundsCommandsInFlight(t *testing.T) {
	a := producers.NewAdmission(producers.AdmissionConfig{Rate: -1, MaxInFlight: 2, InFlightWait: 20 * time.Millisecond}, nil)
	ctx := context.Background()
	r1, p1 := a.Enter(ctx)
	_, p2 := a.Enter(ctx)
	if p1 != nil || p2 != nil {
		t.Fatalf("within the bound: %v %v", p1, p2)
	}
	t0 := time.Now()
	if _, p := a.Enter(ctx); p == nil || p.Status != http.StatusTooManyRequests || p.Code != "overloaded" || p.RetryAfter != 1 {
		t.Fatalf("past the bound: %+v", p)
	}
	if waited := time.Since(t0); waited < 20*time.Millisecond {
		t.Fatalf("refused after %v, before InFlightWait", waited)
	}
	// A command waiting for a place gets the next one given back.
	go func() { time.Sleep(5 * time.Millisecond); r1(); r1() }()
	if _, p := a.Enter(ctx); p != nil {
		t.Fatalf("a place given back while waiting: %+v", p)
	}
	if _, p := a.Enter(ctx); p == nil {
		t.Fatal("a place released twice made room for two")
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, p := a.Enter(gone); p == nil {
		t.Fatal("a client that left must not wait out InFlightWait")
	}
}

// blockingLog holds every append until released.
type blockingLog struct {
	*decidedLog
	entered chan struct{}
	release chan struct{}
}

func (l *blockingLog) Append(ctx context.Context, env schemas.CommandEnvelope) error {
	l.entered <- struct{}{}
	<-l.release
	return l.decidedLog.Append(ctx, env)
}

// While the server takes in as many commands as it may, the next is
// refused before it is read, and goes through once one is done.
func TestCommandsPastTheInFlightBoundAreRefused(t *testing.T) {
	l := &blockingLog{decidedLog: newDecidedLog(), entered: make(chan struct{}, 1), release: make(chan struct{})}
	h := router(producers.Config{Log: l, Lookup: l, Logger: quiet,
		Admission: producers.NewAdmission(producers.AdmissionConfig{Rate: -1, MaxInFlight: 1, InFlightWait: time.Millisecond}, nil)})
	path := "/v1/workspaces/" + uuid.NewString() + "/tasks"
	first := make(chan answer)
	go func() { first <- post(h, path, `{"title":"a"}`) }()
	<-l.entered
	if a := post(h, path, `{not json`); a.status != http.StatusTooManyRequests || a.body["code"] != "overloaded" || a.header.Get("Retry-After") != "1" {
		t.Fatalf("past the bound: %d %v %v", a.status, a.header, a.body)
	}
	close(l.release)
	if a := <-first; a.status != http.StatusAccepted {
		t.Fatalf("the command in flight: %d %v", a.status, a.body)
	}
	go func() { <-l.entered }()
	if a := post(h, path, `{"title":"b"}`); a.status != http.StatusAccepted || len(l.appends()) != 2 {
		t.Fatalf("after it: %d %v", a.status, a.body)
	}
}
