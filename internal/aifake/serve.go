package aifake

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxBody bounds a request body the fake reads.
const maxBody = 16 << 20

// ChatRequest is the part of a chat completion request the fake reads.
type ChatRequest struct {
	Model               string    `json:"model"`
	Messages            []Message `json:"messages"`
	MaxTokens           int       `json:"max_tokens,omitempty"`
	MaxCompletionTokens int       `json:"max_completion_tokens,omitempty"`
}

// Message is one chat message of a request.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// turn is how one chat completion is answered: the settings of the moment
// it arrived.
type turn struct {
	mode       Mode
	seq        int64 // 1 for the first completion received
	delay      time.Duration
	retryAfter time.Duration
	status     int
	malformed  int64 // which malformed body, for Malformed
}

// ServeHTTP implements http.Handler.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/chat/completions":
		if allow(w, r, http.MethodPost) {
			f.serveCompletion(w, r)
		}
	case "/v1/models":
		if allow(w, r, http.MethodGet) {
			serveModels(w)
		}
	case "/_fake/mode":
		f.serveMode(w, r)
	case "/_fake/stats":
		f.serveStats(w, r)
	default:
		writeError(w, http.StatusNotFound, apiError{
			Message: fmt.Sprintf("Unknown request URL: %s %s.", r.Method, r.URL.Path),
			Type:    "invalid_request_error", Code: "unknown_url",
		})
	}
}

func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed, apiError{
		Message: fmt.Sprintf("Method %s not allowed on %s.", r.Method, r.URL.Path),
		Type:    "invalid_request_error",
	})
	return false
}

func (f *Fake) serveCompletion(w http.ResponseWriter, r *http.Request) {
	var req ChatRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	valid := err == nil && json.Unmarshal(body, &req) == nil && req.Model != "" && len(req.Messages) > 0
	bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	t := f.admit(bearer, req, valid)

	switch t.mode {
	case Healthy:
		writeCompletion(w, req, t.seq)
	case Slow:
		if !f.wait(r, t.delay) {
			panic(http.ErrAbortHandler)
		}
		writeCompletion(w, req, t.seq)
	case ServerError:
		writeError(w, t.status, serverError(t.status))
	case RateLimit:
		writeRateLimited(w, req.Model, t.retryAfter)
	case Quota:
		writeError(w, http.StatusTooManyRequests, apiError{
			Message: "You exceeded your current quota, please check your plan and billing details.",
			Type:    "insufficient_quota", Code: "insufficient_quota",
		})
	case Unauthorized:
		writeError(w, http.StatusUnauthorized, apiError{
			Message: fmt.Sprintf("Incorrect API key provided: %s. You can find your API key at https://platform.openai.com/account/api-keys.", bearer),
			Type:    "invalid_request_error", Code: "invalid_api_key",
		})
	case Forbidden:
		writeError(w, http.StatusForbidden, apiError{
			Message: "Country, region, or territory not supported",
			Type:    "request_forbidden", Code: "unsupported_country_region_territory",
		})
	case BadRequest:
		writeError(w, http.StatusBadRequest, apiError{
			Message: fmt.Sprintf("Invalid request for model %q: %q could not be processed.", req.Model, lastUser(req)),
			Type:    "invalid_request_error", Param: "messages",
		})
	case Hang:
		f.wait(r, math.MaxInt64)
		panic(http.ErrAbortHandler)
	case Reset:
		reset(w)
	case Malformed:
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, malformedBodies[t.malformed%int64(len(malformedBodies))])
	}
}

// admit counts a chat completion and returns how to answer it.
func (f *Fake) admit(bearer string, req ChatRequest, valid bool) turn {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.total++
	f.bearer = bearer
	if valid {
		f.last = req
	}
	t := turn{mode: f.mode, seq: f.total, delay: f.delay, retryAfter: f.retryAfter, status: f.serverStatus}
	if wait, limited := f.limit(); limited {
		t.mode, t.retryAfter = RateLimit, wait
	}
	if !valid && (t.mode == Healthy || t.mode == Slow) {
		t.mode = BadRequest
	}
	if t.mode == Malformed {
		t.malformed = f.malformed
		f.malformed++
	}
	f.calls[t.mode]++
	return t
}

// limit applies SetRateLimit: it admits a completion into the sliding
// one-second window, or reports how long until a slot frees. f.mu is held.
func (f *Fake) limit() (wait time.Duration, limited bool) {
	if f.rateLimit == 0 {
		return 0, false
	}
	now := f.now()
	expired := 0
	for expired < len(f.admitted) && !f.admitted[expired].After(now.Add(-time.Second)) {
		expired++
	}
	f.admitted = append(f.admitted[:0], f.admitted[expired:]...)
	if len(f.admitted) >= f.rateLimit {
		return f.admitted[0].Add(time.Second).Sub(now), true
	}
	f.admitted = append(f.admitted, now)
	return 0, false
}

// wait waits d, and reports false if the client went away or the fake was
// closed first.
func (f *Fake) wait(r *http.Request, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-r.Context().Done():
		return false
	case <-f.closing:
		return false
	}
}

// reset closes the connection under the request without a response.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil { // HTTP/2: abort the stream instead
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close sends RST, not FIN
	}
	_ = conn.Close()
}

func writeRateLimited(w http.ResponseWriter, model string, wait time.Duration) {
	secs := max(int64(math.Ceil(wait.Seconds())), 1)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	w.Header().Set("Retry-After-Ms", strconv.FormatInt(wait.Milliseconds(), 10))
	w.Header().Set("X-Ratelimit-Reset-Requests", wait.String())
	writeError(w, http.StatusTooManyRequests, apiError{
		Message: fmt.Sprintf("Rate limit reached for %s in organization org-aifake on requests per min (RPM). Please try again in %s.", model, wait),
		Type:    "requests", Code: "rate_limit_exceeded",
	})
}

func serverError(status int) apiError {
	switch status {
	case http.StatusBadGateway:
		return apiError{Message: "Bad gateway.", Type: "server_error", Code: "bad_gateway"}
	case http.StatusServiceUnavailable:
		return apiError{Message: "The engine is currently overloaded, please try again later.", Type: "server_error"}
	default:
		return apiError{Message: "The server had an error while processing your request. Sorry about that!", Type: "server_error"}
	}
}

// apiError is OpenAI's error object; empty Param and Code encode as null.
type apiError struct {
	Message string
	Type    string
	Param   string
	Code    string
}

func writeError(w http.ResponseWriter, status int, e apiError) {
	nullable := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{
		"message": e.Message, "type": e.Type, "param": nullable(e.Param), "code": nullable(e.Code),
	}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func serveModels(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []map[string]any{
		{"id": "aifake-1", "object": "model", "created": 1700000000, "owned_by": "aifake"},
	}})
}

// malformedBodies are the 200 answers of Malformed, in turn.
var malformedBodies = []string{
	`{"id":"chatcmpl-malformed","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"The answer is`,
	`{"id":"chatcmpl-malformed","object":"chat.completion","created":1700000000,"model":"aifake","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":0,"total_tokens":5}}`,
	`{"id":"chatcmpl-malformed","object":"chat.completion","created":1700000000,"model":"aifake","choices":[{"index":0,"message":{"role":"assistant","content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":0,"total_tokens":5}}`,
	`<html><body>upstream answered something else</body></html>`,
}
