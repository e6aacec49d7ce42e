package agent_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/consumers/agent"
	"github.com/logbook-dev/logbook/internal/aifake"
)

const testKey = agent.Secret("sk-test-0123456789abcdefLEAKCANARY")

func startFake(t *testing.T) *aifake.Fake {
	t.Helper()
	f := aifake.Start()
	t.Cleanup(f.Close)
	return f
}

func newOpenAI(t *testing.T, baseURL string, timeout time.Duration) *agent.OpenAI {
	t.Helper()
	p, err := agent.NewOpenAI(agent.OpenAIConfig{APIKey: testKey, BaseURL: baseURL, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func task(input string) agent.Request {
	return agent.Request{
		WorkspaceID: "ws-1", TaskID: "task-1", AgentName: "reviewer", Model: "gpt-test",
		Instructions: "You review pull requests.\nBe brief.", Input: input, Attempt: 1,
	}
}

func TestOpenAIAnswers(t *testing.T) {
	f := startFake(t)
	p, err := agent.NewOpenAI(agent.OpenAIConfig{APIKey: testKey, BaseURL: f.URL(), MaxOutputTokens: 500})
	if err != nil {
		t.Fatal(err)
	}
	req := task("Review the retry middleware.")
	resp, err := p.Complete(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}

	sent := f.LastRequest()
	want := aifake.ChatRequest{Model: "gpt-test", MaxCompletionTokens: 500, Messages: []aifake.Message{
		{Role: "system", Content: req.Instructions}, {Role: "user", Content: req.Input},
	}}
	if sent.Model != want.Model || sent.MaxCompletionTokens != 500 || len(sent.Messages) != 2 ||
		sent.Messages[0] != want.Messages[0] || sent.Messages[1] != want.Messages[1] {
		t.Errorf("sent %+v, want %+v", sent, want)
	}
	if f.Bearer() != testKey.Reveal() {
		t.Errorf("the API key was not sent as the bearer")
	}
	answer, _ := aifake.Answer(want)
	if resp.Output != answer || resp.Model != "gpt-test" || resp.Provider != "openai" || p.Name() != "openai" {
		t.Errorf("response %+v, want output %q from gpt-test by openai", resp, answer)
	}
	if resp.Usage.PromptTokens != int64(aifake.PromptTokens(want)) || resp.Usage.CompletionTokens != int64(aifake.Tokens(answer)) {
		t.Errorf("usage %+v", resp.Usage)
	}
}

// TestOpenAIClassifiesEveryFakeMode: each failure of the fake provider
// reaches the caller as one ProviderError class, after exactly one request
// (the client never retries by itself).
func TestOpenAIClassifiesEveryFakeMode(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(f *aifake.Fake)
		timeout    time.Duration
		class      agent.ErrorClass
		status     int
		retryAfter time.Duration
		cause      error // errors.Is target, when there is one
	}{
		{name: "500", setup: func(f *aifake.Fake) { f.SetMode(aifake.ServerError) }, class: agent.ClassUnavailable, status: 500},
		{name: "502", setup: func(f *aifake.Fake) { f.SetMode(aifake.ServerError); f.SetServerStatus(502) }, class: agent.ClassUnavailable, status: 502},
		{name: "503", setup: func(f *aifake.Fake) { f.SetMode(aifake.ServerError); f.SetServerStatus(503) }, class: agent.ClassUnavailable, status: 503},
		{name: "rate limit", setup: func(f *aifake.Fake) { f.SetMode(aifake.RateLimit); f.SetRetryAfter(2500 * time.Millisecond) },
			class: agent.ClassRateLimited, status: 429, retryAfter: 2500 * time.Millisecond},
		{name: "quota", setup: func(f *aifake.Fake) { f.SetMode(aifake.Quota) }, class: agent.ClassQuotaExhausted, status: 429},
		{name: "unauthorized", setup: func(f *aifake.Fake) { f.SetMode(aifake.Unauthorized) }, class: agent.ClassUnauthorized, status: 401},
		{name: "forbidden", setup: func(f *aifake.Fake) { f.SetMode(aifake.Forbidden) }, class: agent.ClassUnauthorized, status: 403},
		{name: "bad request", setup: func(f *aifake.Fake) { f.SetMode(aifake.BadRequest) }, class: agent.ClassBadRequest, status: 400},
		{name: "hang", setup: func(f *aifake.Fake) { f.SetMode(aifake.Hang) }, timeout: 200 * time.Millisecond,
			class: agent.ClassUnavailable, cause: context.DeadlineExceeded},
		{name: "slow past the timeout", setup: func(f *aifake.Fake) { f.SetMode(aifake.Slow); f.SetDelay(time.Second) },
			timeout: 100 * time.Millisecond, class: agent.ClassUnavailable, cause: context.DeadlineExceeded},
		{name: "reset", setup: func(f *aifake.Fake) { f.SetMode(aifake.Reset) }, class: agent.ClassUnavailable},
		{name: "malformed: truncated JSON", setup: malformed(0), class: agent.ClassMalformed, status: 200, cause: io.ErrUnexpectedEOF},
		{name: "malformed: no choices", setup: malformed(1), class: agent.ClassMalformed, status: 200, cause: agent.ErrNoChoices},
		{name: "malformed: empty content", setup: malformed(2), class: agent.ClassMalformed, status: 200, cause: agent.ErrEmptyOutput},
		{name: "malformed: not JSON", setup: malformed(3), class: agent.ClassMalformed, status: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t)
			tt.setup(f)
			before := f.Total()
			p := newOpenAI(t, f.URL(), tt.timeout)

			begin := time.Now()
			_, err := p.Complete(t.Context(), task("hello there"))
			t.Log(err)
			pe, ok := agent.AsProviderError(err)
			if !ok {
				t.Fatalf("error %v (%T) is not a *ProviderError", err, err)
			}
			if pe.Class != tt.class || pe.Status != tt.status || pe.RetryAfter != tt.retryAfter || pe.Provider != "openai" {
				t.Errorf("got class %s status %d retry after %v, want %s %d %v (%v)",
					pe.Class, pe.Status, pe.RetryAfter, tt.class, tt.status, tt.retryAfter, err)
			}
			if agent.Classify(err) != tt.class || agent.RetryAfter(err) != tt.retryAfter {
				t.Errorf("Classify %s RetryAfter %v", agent.Classify(err), agent.RetryAfter(err))
			}
			if tt.cause != nil && !errors.Is(err, tt.cause) {
				t.Errorf("%v is not %v", err, tt.cause)
			}
			if n := f.Total() - before; n != 1 {
				t.Errorf("the fake got %d requests, want exactly 1", n)
			}
			if tt.timeout > 0 && time.Since(begin) > tt.timeout+2*time.Second {
				t.Errorf("took %v with a timeout of %v", time.Since(begin), tt.timeout)
			}
		})
	}
}

// malformed sets the fake to its n-th malformed body.
func malformed(n int) func(*aifake.Fake) {
	return func(f *aifake.Fake) {
		f.SetMode(aifake.Malformed)
		for range n { // burn the bodies before it
			_, _ = http.Post(f.URL()+"/chat/completions", "application/json", strings.NewReader(`{}`))
		}
	}
}

func TestOpenAIRateLimitOfTheFakeGivesTheWait(t *testing.T) {
	f := startFake(t)
	f.SetRateLimit(1)
	p := newOpenAI(t, f.URL(), 0)
	if _, err := p.Complete(t.Context(), task("first")); err != nil {
		t.Fatal(err)
	}
	_, err := p.Complete(t.Context(), task("second"))
	if c, wait := agent.Classify(err), agent.RetryAfter(err); c != agent.ClassRateLimited || wait <= 0 || wait > time.Second {
		t.Fatalf("class %s, wait %v; want rate_limited within a second (%v)", c, wait, err)
	}
}

// TestOpenAIStatusMapping covers answers the fake does not give: other
// statuses, error bodies that are not OpenAI's, and every Retry-After form.
func TestOpenAIStatusMapping(t *testing.T) {
	// HTTP dates have whole seconds: round up, so truncation never makes the
	// wait look shorter than asked.
	date := time.Now().Add(90 * time.Second).Truncate(time.Second).Add(time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name       string
		status     int
		header     map[string]string
		body       string
		class      agent.ErrorClass
		retryAfter time.Duration // checked within a second, for the date form
	}{
		{name: "404 model", status: 404, body: `{"error":{"message":"The model does not exist","type":"invalid_request_error","code":"model_not_found"}}`, class: agent.ClassBadRequest},
		{name: "422", status: 422, body: `{"error":{"message":"x","type":"invalid_request_error"}}`, class: agent.ClassBadRequest},
		{name: "402 credits", status: 402, body: `{"error":{"message":"insufficient credits","type":"payment_required"}}`, class: agent.ClassQuotaExhausted},
		{name: "429 billing", status: 429, body: `{"error":{"message":"x","type":"invalid_request_error","code":"billing_hard_limit_reached"}}`, class: agent.ClassQuotaExhausted},
		{name: "408", status: 408, body: `{"error":{"message":"x","type":"timeout"}}`, class: agent.ClassUnavailable},
		{name: "502 html", status: 502, body: `<html>Bad Gateway</html>`, class: agent.ClassUnavailable},
		{name: "503 retry-after", status: 503, header: map[string]string{"Retry-After": "7"}, body: `{"error":{"message":"x","type":"server_error"}}`,
			class: agent.ClassUnavailable, retryAfter: 7 * time.Second},
		{name: "429 seconds", status: 429, header: map[string]string{"Retry-After": "20"}, body: `{"error":{"message":"x","type":"requests","code":"rate_limit_exceeded"}}`,
			class: agent.ClassRateLimited, retryAfter: 20 * time.Second},
		{name: "429 date", status: 429, header: map[string]string{"Retry-After": date}, body: `{"error":{"message":"x","code":"rate_limit_exceeded"}}`,
			class: agent.ClassRateLimited, retryAfter: 90 * time.Second},
		{name: "429 reset headers", status: 429, header: map[string]string{"X-Ratelimit-Reset-Requests": "1s", "X-Ratelimit-Reset-Tokens": "6m0s"},
			body: `{"error":{"message":"x","code":"rate_limit_exceeded"}}`, class: agent.ClassRateLimited, retryAfter: 6 * time.Minute},
		{name: "429 huge", status: 429, header: map[string]string{"Retry-After": "99999999999999"}, body: `{"error":{"message":"x"}}`,
			class: agent.ClassRateLimited, retryAfter: 24 * time.Hour},
		{name: "429 plain text", status: 429, header: map[string]string{"Retry-After": "3"}, body: `slow down`,
			class: agent.ClassRateLimited, retryAfter: 3 * time.Second},
		{name: "200 negative usage", status: 200,
			body:  `{"choices":[{"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":-1}}`,
			class: agent.ClassMalformed},
		{name: "200 refusal", status: 200,
			body:  `{"choices":[{"message":{"role":"assistant","content":"","refusal":"I can't help with that."}}]}`,
			class: agent.ClassMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			}))
			t.Cleanup(srv.Close)
			_, err := newOpenAI(t, srv.URL+"/v1", 0).Complete(t.Context(), task("hello"))
			pe, ok := agent.AsProviderError(err)
			if !ok {
				t.Fatalf("error %v is not a *ProviderError", err)
			}
			if pe.Class != tt.class || pe.Status != tt.status {
				t.Errorf("class %s status %d, want %s %d (%v)", pe.Class, pe.Status, tt.class, tt.status, err)
			}
			if d := pe.RetryAfter - tt.retryAfter; d < -time.Second || d > time.Second {
				t.Errorf("retry after %v, want %v", pe.RetryAfter, tt.retryAfter)
			}
		})
	}
}

func TestOpenAIConnectionRefusedIsUnavailable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = newOpenAI(t, "http://"+addr+"/v1", time.Second).Complete(t.Context(), task("hello"))
	if c := agent.Classify(err); c != agent.ClassUnavailable {
		t.Errorf("class %s, want unavailable (%v)", c, err)
	}
}

func TestOpenAICallerCancellationIsKept(t *testing.T) {
	f := startFake(t)
	f.SetMode(aifake.Hang)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := newOpenAI(t, f.URL(), 0).Complete(ctx, task("hello"))
	if !errors.Is(err, context.Canceled) || agent.Classify(err) != agent.ClassUnavailable {
		t.Errorf("err %v: want unavailable wrapping context.Canceled", err)
	}
}

func TestOpenAIRefusesBeforeSending(t *testing.T) {
	f := startFake(t)
	p := newOpenAI(t, f.URL(), 0)
	for _, model := range []string{"", "text-davinci-003"} { // none, and one go-openai refuses for chat
		req := task("hello")
		req.Model = model
		_, err := p.Complete(t.Context(), req)
		if c := agent.Classify(err); c != agent.ClassBadRequest {
			t.Errorf("model %q: class %s, want bad_request (%v)", model, c, err)
		}
	}
	if !errors.Is(func() error { _, err := p.Complete(t.Context(), agent.Request{Input: "x"}); return err }(), agent.ErrNoModel) {
		t.Error("no model: not ErrNoModel")
	}
	if f.Total() != 0 {
		t.Errorf("%d requests reached the provider", f.Total())
	}
}

func TestOpenAIConfig(t *testing.T) {
	c := agent.OpenAIConfig{}.WithDefaults()
	if c.BaseURL != "https://api.openai.com/v1" || c.Timeout != 60*time.Second || c.Transport == nil {
		t.Errorf("defaults %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	for _, bad := range []agent.OpenAIConfig{
		{BaseURL: "api.openai.com/v1", Timeout: time.Second},
		{BaseURL: "ftp://host/v1", Timeout: time.Second},
		{BaseURL: "http://host/v1", Timeout: -time.Second},
		{BaseURL: "http://host/v1", Timeout: time.Second, MaxOutputTokens: -1},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v validates", bad)
		}
		if _, err := agent.NewOpenAI(bad); err == nil {
			t.Errorf("NewOpenAI(%+v) succeeds", bad)
		}
	}
}
