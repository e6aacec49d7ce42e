// Package aifake is an OpenAI-compatible chat completions server for tests
// and benchmarks. It answers POST /v1/chat/completions and GET /v1/models,
// and can be switched at run time, from Go or over HTTP, into the failure
// modes a real provider shows: slow answers, 5xx, rate limits, an exhausted
// quota, a refused key, a bad request, a hang, a reset connection, or a body
// that is not a completion.
//
// Its error messages are deliberately harsher than OpenAI's: the 401 answer
// quotes the whole bearer it was sent and the 400 answer quotes the prompt,
// so a client that copies provider messages into its own errors or logs is
// caught leaking them.
package aifake

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"sync"
	"time"
)

// Mode is how the fake answers chat completions.
type Mode string

// Modes.
const (
	// Healthy answers 200 with a completion derived from the prompt (see
	// Answer), its usage and the requested model. A request that is not
	// JSON, or has no model or no messages, gets a 400 instead, counted
	// under BadRequest (so does one in Slow).
	Healthy Mode = "healthy"
	// Slow answers like Healthy after the delay set by SetDelay.
	Slow Mode = "slow"
	// ServerError answers the status set by SetServerStatus (500, 502,
	// 503…) with an OpenAI error body of type server_error.
	ServerError Mode = "5xx"
	// RateLimit answers 429 rate_limit_exceeded with Retry-After.
	RateLimit Mode = "rate_limit"
	// Quota answers the spend-limit 429: insufficient_quota, no Retry-After.
	Quota Mode = "quota"
	// Unauthorized answers 401 invalid_api_key.
	Unauthorized Mode = "unauthorized"
	// Forbidden answers 403 (OpenAI's region or permission refusal).
	Forbidden Mode = "forbidden"
	// BadRequest answers 400 invalid_request_error.
	BadRequest Mode = "bad_request"
	// Hang never answers: the handler returns when the client gives up
	// (the request's context ends) or the fake is closed.
	Hang Mode = "hang"
	// Reset reads the request, then closes the TCP connection abruptly
	// (RST where the platform allows), with no HTTP response at all.
	Reset Mode = "reset"
	// Malformed answers 200 with a body that is not a usable completion.
	// Successive calls cycle through four bodies: JSON cut off in the
	// middle, a completion without choices, a choice with empty content,
	// and text that is not JSON.
	Malformed Mode = "malformed"
)

// Modes returns every mode, in a fixed order.
func Modes() []Mode {
	return []Mode{Healthy, Slow, ServerError, RateLimit, Quota, Unauthorized,
		Forbidden, BadRequest, Hang, Reset, Malformed}
}

// Valid reports whether m is one of Modes.
func (m Mode) Valid() bool {
	for _, k := range Modes() {
		if m == k {
			return true
		}
	}
	return false
}

// Defaults of the settings.
const (
	DefaultDelay        = 2 * time.Second // of Slow
	DefaultRetryAfter   = time.Second     // of RateLimit
	DefaultServerStatus = 500             // of ServerError
)

// Fake is the fake provider. The zero value is not usable: call New or
// Start. All methods are safe for concurrent use.
type Fake struct {
	mu           sync.Mutex
	mode         Mode
	delay        time.Duration
	retryAfter   time.Duration
	serverStatus int
	rateLimit    int         // requests per second; 0: none
	admitted     []time.Time // completions admitted in the last second, oldest first
	calls        map[Mode]int64
	total        int64
	malformed    int64 // Malformed answers given, to cycle their bodies
	bearer       string
	last         ChatRequest

	closing   chan struct{}
	closeOnce sync.Once
	srv       *httptest.Server
	now       func() time.Time
}

// New returns a healthy fake that is not listening: use it as an
// http.Handler, or call Start.
func New() *Fake {
	return &Fake{
		mode:         Healthy,
		delay:        DefaultDelay,
		retryAfter:   DefaultRetryAfter,
		serverStatus: DefaultServerStatus,
		calls:        make(map[Mode]int64),
		closing:      make(chan struct{}),
		now:          time.Now,
	}
}

// Start returns a healthy fake listening on a loopback port. Its URL is the
// base URL to give a client (OPENAI_BASE_URL). Close it when done.
func Start() *Fake {
	f := New()
	f.srv = httptest.NewServer(f)
	return f
}

// URL is the base URL of a started fake, ending in /v1; "" if not started.
func (f *Fake) URL() string {
	if f.srv == nil {
		return ""
	}
	return f.srv.URL + "/v1"
}

// Close releases requests held by Hang or Slow and, if the fake was
// started, stops its server. Calling it again does nothing.
func (f *Fake) Close() {
	f.closeOnce.Do(func() {
		close(f.closing)
		if f.srv != nil {
			f.srv.Close()
		}
	})
}

// SetMode switches how the next chat completions are answered. It panics on
// a mode not in Modes: that is a bug in the test.
func (f *Fake) SetMode(m Mode) {
	if !m.Valid() {
		panic(fmt.Sprintf("aifake: unknown mode %q", m))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mode = m
}

// Mode returns the current mode.
func (f *Fake) Mode() Mode {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mode
}

// SetDelay sets how long Slow waits before answering, overriding the
// default 2 s.
func (f *Fake) SetDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = max(d, 0)
}

// SetRetryAfter sets the wait that RateLimit announces, overriding the
// default 1 s. Retry-After carries it in whole seconds, rounded up (at least
// 1); retry-after-ms carries it in milliseconds.
func (f *Fake) SetRetryAfter(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.retryAfter = max(d, 0)
}

// SetServerStatus sets the status ServerError answers, overriding the
// default 500. It panics on a status outside 500–599.
func (f *Fake) SetServerStatus(code int) {
	if code < 500 || code > 599 {
		panic(fmt.Sprintf("aifake: %d is not a 5xx status", code))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.serverStatus = code
}

// SetRateLimit makes the fake admit at most n chat completions in any one
// second (a sliding window), whatever the mode; the others are answered
// like RateLimit, with a Retry-After of when a slot frees, and counted
// under RateLimit. n <= 0 removes the limit (the default).
func (f *Fake) SetRateLimit(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rateLimit = max(n, 0)
	f.admitted = f.admitted[:0]
}

// Calls returns how many chat completions were answered in mode m
// (including the rate-limited ones of SetRateLimit under RateLimit).
func (f *Fake) Calls(m Mode) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[m]
}

// Total returns how many chat completions were received, in any mode.
func (f *Fake) Total() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total
}

// Bearer returns the token of the last chat completion's
// "Authorization: Bearer" header; "" if none was sent.
func (f *Fake) Bearer() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bearer
}

// LastRequest returns the last chat completion request that could be
// decoded.
func (f *Fake) LastRequest() ChatRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// ResetStats zeroes the counters and forgets the last bearer and request;
// the settings stay.
func (f *Fake) ResetStats() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = make(map[Mode]int64)
	f.total, f.malformed = 0, 0
	f.bearer, f.last = "", ChatRequest{}
}

// Stats is what GET /_fake/stats answers.
type Stats struct {
	Mode  Mode           `json:"mode"`
	Total int64          `json:"total"`
	Calls map[Mode]int64 `json:"calls"`
	// BearerSHA256 is the hex SHA-256 of the last bearer token, so another
	// process can check which key was sent without the fake echoing it;
	// "" if none was sent.
	BearerSHA256 string `json:"bearer_sha256"`
}

// Stats returns the counters.
func (f *Fake) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := Stats{Mode: f.mode, Total: f.total, Calls: make(map[Mode]int64, len(f.calls))}
	for m, n := range f.calls {
		s.Calls[m] = n
	}
	if f.bearer != "" {
		sum := sha256.Sum256([]byte(f.bearer))
		s.BearerSHA256 = hex.EncodeToString(sum[:])
	}
	return s
}

// Settings are the switchable settings, as POST /_fake/mode takes them and
// GET /_fake/mode answers them. Durations are Go duration strings ("250ms").
type Settings struct {
	Mode         Mode   `json:"mode"`
	Delay        string `json:"delay"`
	RetryAfter   string `json:"retry_after"`
	ServerStatus int    `json:"server_status"`
	RateLimit    int    `json:"rate_limit"`
}

// Settings returns the current settings.
func (f *Fake) Settings() Settings {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Settings{
		Mode:         f.mode,
		Delay:        f.delay.String(),
		RetryAfter:   f.retryAfter.String(),
		ServerStatus: f.serverStatus,
		RateLimit:    f.rateLimit,
	}
}
