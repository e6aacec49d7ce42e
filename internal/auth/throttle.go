package auth

import (
	"container/list"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5/middleware"

	"github.com/logbook-dev/logbook/internal/httpapi"
)

// Throttle defaults.
const (
	// DefaultFailuresPerMinute is how many failed authentications a source
	// may have in a minute before it is refused.
	DefaultFailuresPerMinute = 30
	// DefaultThrottleSources is how many sources a Throttle remembers.
	DefaultThrottleSources = 10_000
)

// throttleWindow is both the span failures are counted over and how long a
// source is then refused.
const throttleWindow = time.Minute

// ThrottleConfig configures a Throttle.
type ThrottleConfig struct {
	// Failures is how many failed authentications (401s) a source may have
	// within a minute of its first; the next request is refused with 429
	// for a minute. 0 or less turns the throttle off.
	Failures int
	// Sources caps the sources remembered, overriding the default 10,000;
	// past it the least recently seen is forgotten, so an attacker with
	// many addresses cannot grow memory.
	Sources int
	// Now overrides time.Now.
	Now func() time.Time
}

// Throttle refuses every request from a source that failed authentication
// too often, before its key is looked up, so keys cannot be guessed fast
// from one address. A source is the TCP peer's IPv4 address or IPv6 /64
// (one host commonly holds a whole /64). X-Forwarded-For is not read: any
// client can write it.
type Throttle struct {
	cfg     ThrottleConfig
	refused atomic.Int64

	mu      sync.Mutex
	recent  *list.List // of *source, most recently seen first
	sources map[netip.Prefix]*list.Element
}

type source struct {
	key      netip.Prefix
	start    time.Time // first failure of the current window
	failures int
	until    time.Time // refused before this
}

// NewThrottle returns a throttle.
func NewThrottle(cfg ThrottleConfig) *Throttle {
	if cfg.Sources <= 0 {
		cfg.Sources = DefaultThrottleSources
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Throttle{cfg: cfg, recent: list.New(), sources: map[netip.Prefix]*list.Element{}}
}

// Middleware goes around Keys.Middleware: a refused source gets 429 with
// Retry-After; otherwise the request goes on, and a 401 to a request that
// presented a credential counts as a failure of its source.
func (t *Throttle) Middleware(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if t.cfg.Failures <= 0 {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			src := sourceOf(r.RemoteAddr)
			if wait := t.wait(src); wait > 0 {
				t.refused.Add(1)
				secs := int(math.Ceil(wait.Seconds()))
				httpapi.WriteError(w, r, log, httpapi.Unavailable(httpapi.CodeTooManyAuthFailures,
					"too many failed authentications from this address", secs))
				return
			}
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r)
			// Only a credential that was presented and refused counts: a
			// request without one guesses nothing.
			presented := len(r.Header.Values("Authorization")) > 0
			if ww.Status() == http.StatusUnauthorized && presented && t.fail(src) {
				log.Warn("auth: too many failed authentications; refusing the source for a minute",
					"source", src.String(), "failures", t.cfg.Failures)
			}
		})
	}
}

// Refused counts the requests answered 429 so far.
func (t *Throttle) Refused() int64 { return t.refused.Load() }

// Sources is how many sources are remembered.
func (t *Throttle) Sources() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.recent.Len()
}

// wait is how long src is still refused; 0 lets it in.
func (t *Throttle) wait(src netip.Prefix) time.Duration {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.sources[src]
	if !ok {
		return 0
	}
	s := e.Value.(*source)
	if !now.Before(s.until) {
		return 0
	}
	// A source still knocking stays remembered: rotating other addresses
	// must not be enough to lift its refusal.
	t.recent.MoveToFront(e)
	return s.until.Sub(now)
}

// fail counts a failed authentication of src and reports whether it is
// the one that makes src refused.
func (t *Throttle) fail(src netip.Prefix) bool {
	now := t.cfg.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.sources[src]
	if ok {
		t.recent.MoveToFront(e)
	} else {
		if t.recent.Len() >= t.cfg.Sources {
			oldest := t.recent.Back()
			t.recent.Remove(oldest)
			delete(t.sources, oldest.Value.(*source).key)
		}
		e = t.recent.PushFront(&source{key: src, start: now})
		t.sources[src] = e
	}
	s := e.Value.(*source)
	if !now.Before(s.start.Add(throttleWindow)) {
		s.start, s.failures = now, 0
	}
	s.failures++
	if s.failures < t.cfg.Failures || now.Before(s.until) {
		return false // under the limit, or already refused (a request in flight)
	}
	s.until = now.Add(throttleWindow)
	return true
}

// sourceOf is the unit a peer address is throttled as: the IPv4 address,
// or the IPv6 /64. A peer that is not ip:port (a Unix socket) maps to the
// zero prefix, shared by all such peers.
func sourceOf(remoteAddr string) netip.Prefix {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return netip.Prefix{}
	}
	a := ap.Addr().Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}
