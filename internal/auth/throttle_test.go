package auth_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/internal/auth"
	"github.com/logbook-dev/logbook/internal/httpapi"
)

// throttled is a Throttle in front of a stand-in for Keys.Middleware that
// accepts the bearer "good", answers 403 to "forbidden" (authenticated,
// not allowed) and 401 to anything else, on a clock
// the test moves.
type throttled struct {
	t       *testing.T
	th      *auth.Throttle
	h       http.Handler
	now     time.Time
	reached int // requests that got past the throttle
}

func newThrottled(t *testing.T, failures, sources int) *throttled {
	x := &throttled{t: t, now: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	x.th = auth.NewThrottle(auth.ThrottleConfig{Failures: failures, Sources: sources, Now: func() time.Time { return x.now }})
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	keys := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x.reached++
		if r.Header.Get("Authorization") == "Bearer forbidden" {
			httpapi.WriteError(w, r, log, httpapi.Problemf(httpapi.CodeForbidden, "", "not allowed"))
			return
		}
		if r.Header.Get("Authorization") != "Bearer good" {
			httpapi.WriteError(w, r, log, httpapi.Problemf(httpapi.CodeInvalidKey, "Authorization", "unknown or revoked API key"))
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	x.h = x.th.Middleware(log)(keys)
	return x
}

// send makes one request from addr (ip:port) with key; it returns the
// status and the Retry-After header.
func (x *throttled) send(addr, key string) (int, string) {
	req := httptest.NewRequest(http.MethodGet, "/v1/workspaces", nil)
	req.RemoteAddr = addr
	req.Header.Set("Authorization", "Bearer "+key)
	rec := httptest.NewRecorder()
	x.h.ServeHTTP(rec, req)
	return rec.Code, rec.Header().Get("Retry-After")
}

// fails sends n bad keys from addr, each expected to get 401.
func (x *throttled) fails(addr string, n int) {
	x.t.Helper()
	for i := range n {
		if code, _ := x.send(addr, "bad"); code != http.StatusUnauthorized {
			x.t.Fatalf("bad key %d from %s: %d, want 401", i+1, addr, code)
		}
	}
}

func (x *throttled) expect(addr, key string, want int) {
	x.t.Helper()
	if code, ra := x.send(addr, key); code != want {
		x.t.Fatalf("key %q from %s: %d (Retry-After %q), want %d", key, addr, code, ra, want)
	}
}

func TestThrottleRefusesASourcePastItsFailures(t *testing.T) {
	x := newThrottled(t, 3, 0)
	x.fails("192.0.2.1:1000", 3)
	reached := x.reached

	req := httptest.NewRequest(http.MethodGet, "/v1/workspaces", nil)
	req.RemoteAddr = "192.0.2.1:1001" // another connection, same address
	req.Header.Set("Authorization", "Bearer good")
	rec := httptest.NewRecorder()
	x.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "60" {
		t.Fatalf("a valid key from the refused source: %d, Retry-After %q; want 429, 60", rec.Code, rec.Header().Get("Retry-After"))
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q", ct)
	}
	var p httpapi.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Code != httpapi.CodeTooManyAuthFailures || p.Status != 429 || p.RetryAfter != 60 {
		t.Errorf("problem %+v (%v): %s", p, err, rec.Body)
	}
	x.expect("192.0.2.1:1002", "bad", http.StatusTooManyRequests)
	if x.reached != reached {
		t.Errorf("%d refused requests reached the key lookup", x.reached-reached)
	}
	if x.th.Refused() != 2 {
		t.Errorf("Refused() = %d, want 2", x.th.Refused())
	}

	// Other sources are unaffected: good keys pass, bad ones get 401.
	x.expect("192.0.2.2:1000", "good", http.StatusOK)
	x.expect("192.0.2.2:1000", "bad", http.StatusUnauthorized)
}

func TestThrottleCountsOnlyFailedAuthentications(t *testing.T) {
	x := newThrottled(t, 2, 0)
	for range 10 {
		x.expect("192.0.2.1:1000", "good", http.StatusOK)
		x.expect("192.0.2.1:1000", "forbidden", http.StatusForbidden)
	}
	x.fails("192.0.2.1:1000", 1)
	x.expect("192.0.2.1:1000", "good", http.StatusOK)
	// A request without credentials is a 401 that guesses nothing.
	for range 10 {
		req := httptest.NewRequest(http.MethodGet, "/v1/workspaces", nil)
		req.RemoteAddr = "192.0.2.1:1000"
		rec := httptest.NewRecorder()
		x.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("no credentials: %d, want 401", rec.Code)
		}
	}
	x.expect("192.0.2.1:1000", "good", http.StatusOK)
	x.fails("192.0.2.1:1000", 1)
	x.expect("192.0.2.1:1000", "good", http.StatusTooManyRequests)
}

func TestThrottleWindow(t *testing.T) {
	x := newThrottled(t, 3, 0)
	const a = "192.0.2.1:1000"

	// Failures more than a minute after the window's first start a new one.
	x.fails(a, 2)
	x.now = x.now.Add(59 * time.Second)
	x.fails(a, 1) // third in the window: refused from now on
	x.expect(a, "good", http.StatusTooManyRequests)

	x.now = x.now.Add(10 * time.Second) // the window that counted is over; the refusal is not
	x.expect(a, "good", http.StatusTooManyRequests)

	// Retry-After counts down to when the source is let in, rounded up.
	for _, step := range []struct {
		advance time.Duration
		want    string
	}{{0, "50"}, {30 * time.Second, "20"}, {19500 * time.Millisecond, "1"}, {400 * time.Millisecond, "1"}} {
		x.now = x.now.Add(step.advance)
		if code, ra := x.send(a, "good"); code != http.StatusTooManyRequests || ra != step.want {
			t.Fatalf("after +%s: %d, Retry-After %q; want 429, %s", step.advance, code, ra, step.want)
		}
	}
	x.now = x.now.Add(100 * time.Millisecond) // a minute after the third failure
	x.expect(a, "good", http.StatusOK)

	// Let in again, it starts from a fresh window: the old failures do not count.
	x.fails(a, 2)
	x.expect(a, "good", http.StatusOK)
	x.now = x.now.Add(61 * time.Second)
	x.fails(a, 2)
	x.expect(a, "good", http.StatusOK)
	x.fails(a, 1)
	x.expect(a, "good", http.StatusTooManyRequests)
}

func TestThrottleRemembersABoundedNumberOfSources(t *testing.T) {
	const capacity = 100
	x := newThrottled(t, 1, capacity)
	addr := func(i int) string { return fmt.Sprintf("10.%d.%d.%d:4000", i>>16&255, i>>8&255, i&255) }

	x.fails(addr(0), 1)
	for i := 1; i < 10*capacity; i++ {
		x.fails(addr(i), 1)
		if i%(capacity/2) == 0 {
			// Source 0 keeps knocking: it stays remembered, and refused.
			x.expect(addr(0), "bad", http.StatusTooManyRequests)
		}
		if n := x.th.Sources(); n > capacity {
			t.Fatalf("%d sources remembered after %d, capacity %d", n, i+1, capacity)
		}
	}
	if n := x.th.Sources(); n != capacity {
		t.Fatalf("%d sources remembered, want %d", n, capacity)
	}
	x.expect(addr(10*capacity-1), "good", http.StatusTooManyRequests) // the most recent
	x.expect(addr(0), "good", http.StatusTooManyRequests)
	x.expect(addr(1), "good", http.StatusOK) // forgotten: the least recently seen
}

func TestThrottleGroupsAddresses(t *testing.T) {
	for _, tc := range []struct {
		name        string
		failing     []string
		refused, ok []string
	}{
		{"IPv6 by /64", []string{"[2001:db8:1:2::1]:1", "[2001:db8:1:2::2]:1", "[2001:db8:1:2:ffff::3%eth0]:1"},
			[]string{"[2001:db8:1:2:abcd::9]:2", "[2001:db8:1:2::1]:3"},
			[]string{"[2001:db8:1:3::1]:1", "[2001:db8:1::1]:1", "[2001:db9:1:2::1]:1"}},
		{"IPv4 by address", []string{"198.51.100.7:1", "198.51.100.7:2", "198.51.100.7:3"},
			[]string{"198.51.100.7:4", "[::ffff:198.51.100.7]:5"},
			[]string{"198.51.100.8:1", "198.51.100.6:1"}},
		{"IPv4-mapped IPv6 as IPv4", []string{"[::ffff:203.0.113.1]:1", "203.0.113.1:2", "[::ffff:203.0.113.1]:3"},
			[]string{"203.0.113.1:4"},
			[]string{"203.0.113.2:1", "[::ffff:203.0.113.2]:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := newThrottled(t, len(tc.failing), 0)
			for _, a := range tc.failing {
				x.fails(a, 1)
			}
			for _, a := range tc.refused {
				x.expect(a, "good", http.StatusTooManyRequests)
			}
			for _, a := range tc.ok {
				x.expect(a, "good", http.StatusOK)
			}
		})
	}
}

func TestThrottleOff(t *testing.T) {
	for _, failures := range []int{0, -1} {
		x := newThrottled(t, failures, 0)
		x.fails("192.0.2.1:1000", 1000)
		x.expect("192.0.2.1:1000", "good", http.StatusOK)
		if n := x.th.Sources(); n != 0 {
			t.Errorf("failures %d: %d sources remembered by a throttle that is off", failures, n)
		}
	}
}

func TestThrottleRetryAfterIsWholeSeconds(t *testing.T) {
	x := newThrottled(t, 1, 0)
	x.fails("192.0.2.1:1", 1)
	x.now = x.now.Add(1500 * time.Millisecond)
	_, ra := x.send("192.0.2.1:1", "good")
	if n, err := strconv.Atoi(ra); err != nil || n != 59 {
		t.Fatalf("Retry-After %q, want 59 (58.5 s rounded up)", ra)
	}
}
