package aifake_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/internal/aifake"
)

const testKey = "sk-test-aifake-0123456789"

func start(t *testing.T) *aifake.Fake {
	t.Helper()
	f := aifake.Start()
	t.Cleanup(f.Close)
	return f
}

func chatRequest(input string) aifake.ChatRequest {
	return aifake.ChatRequest{Model: "gpt-test", Messages: []aifake.Message{
		{Role: "system", Content: "You are a reviewer."},
		{Role: "user", Content: input},
	}}
}

// post sends a chat completion with a plain http client.
func post(t *testing.T, client *http.Client, f *aifake.Fake, req aifake.ChatRequest) (*http.Response, []byte, error) {
	t.Helper()
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return postBody(t, client, f.URL()+"/chat/completions", body)
}

func postBody(t *testing.T, client *http.Client, url string, body []byte) (*http.Response, []byte, error) {
	t.Helper()
	hr, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := client.Do(hr)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

type completion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Message      aifake.Message `json:"message"`
		FinishReason string         `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

func TestHealthyAnswersDeterministicallyWithUsage(t *testing.T) {
	f := start(t)
	if !strings.HasSuffix(f.URL(), "/v1") {
		t.Fatalf("URL %q does not end in /v1", f.URL())
	}
	req := chatRequest("Summarise the outage report.")
	var first completion
	for i := range 2 {
		resp, body, err := post(t, http.DefaultClient, f, req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		var c completion
		if err := json.Unmarshal(body, &c); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if i == 0 {
			first = c
		}
		want, _ := aifake.Answer(req)
		if len(c.Choices) != 1 || c.Choices[0].Message.Content != want || c.Choices[0].Message.Role != "assistant" {
			t.Fatalf("choices %+v, want one assistant answer %q", c.Choices, want)
		}
		if c.Choices[0].Message.Content != first.Choices[0].Message.Content {
			t.Errorf("same prompt, different answers: %q then %q", first.Choices[0].Message.Content, c.Choices[0].Message.Content)
		}
		if c.Model != req.Model || c.Object != "chat.completion" || c.ID == "" {
			t.Errorf("model %q object %q id %q", c.Model, c.Object, c.ID)
		}
		u := c.Usage
		if u.PromptTokens != aifake.PromptTokens(req) || u.CompletionTokens != aifake.Tokens(want) ||
			u.TotalTokens != u.PromptTokens+u.CompletionTokens || u.CompletionTokens == 0 {
			t.Errorf("usage %+v", u)
		}
	}
	other, _ := aifake.Answer(chatRequest("Something else entirely."))
	if other == first.Choices[0].Message.Content {
		t.Error("different prompts got the same answer")
	}
	if f.Calls(aifake.Healthy) != 2 || f.Total() != 2 {
		t.Errorf("calls %d total %d, want 2 and 2", f.Calls(aifake.Healthy), f.Total())
	}
	if f.Bearer() != testKey {
		t.Errorf("bearer %q, want the key sent", f.Bearer())
	}
	if got := f.LastRequest(); got.Model != req.Model || len(got.Messages) != 2 || got.Messages[1].Content != req.Messages[1].Content {
		t.Errorf("last request %+v", got)
	}
}

func TestHealthyHonoursTheTokenLimit(t *testing.T) {
	f := start(t)
	req := chatRequest("A long enough question to need more than two tokens of answer.")
	req.MaxCompletionTokens = 2
	_, body, err := post(t, http.DefaultClient, f, req)
	if err != nil {
		t.Fatal(err)
	}
	var c completion
	if err := json.Unmarshal(body, &c); err != nil {
		t.Fatal(err)
	}
	if c.Choices[0].FinishReason != "length" || c.Usage.CompletionTokens != 2 {
		t.Errorf("finish %q, completion tokens %d; want length and 2", c.Choices[0].FinishReason, c.Usage.CompletionTokens)
	}
}

func TestErrorModes(t *testing.T) {
	tests := []struct {
		mode       aifake.Mode
		status     int // for 5xx
		wantStatus int
		wantType   string
		wantCode   any // nil: JSON null
		retryAfter string
	}{
		{mode: aifake.ServerError, status: 500, wantStatus: 500, wantType: "server_error"},
		{mode: aifake.ServerError, status: 502, wantStatus: 502, wantType: "server_error", wantCode: "bad_gateway"},
		{mode: aifake.ServerError, status: 503, wantStatus: 503, wantType: "server_error"},
		{mode: aifake.RateLimit, wantStatus: 429, wantType: "requests", wantCode: "rate_limit_exceeded", retryAfter: "3"},
		{mode: aifake.Quota, wantStatus: 429, wantType: "insufficient_quota", wantCode: "insufficient_quota"},
		{mode: aifake.Unauthorized, wantStatus: 401, wantType: "invalid_request_error", wantCode: "invalid_api_key"},
		{mode: aifake.Forbidden, wantStatus: 403, wantType: "request_forbidden", wantCode: "unsupported_country_region_territory"},
		{mode: aifake.BadRequest, wantStatus: 400, wantType: "invalid_request_error"},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode)+strconv.Itoa(tt.status), func(t *testing.T) {
			f := start(t)
			f.SetMode(tt.mode)
			if tt.status != 0 {
				f.SetServerStatus(tt.status)
			}
			f.SetRetryAfter(2500 * time.Millisecond)
			resp, body, err := post(t, http.DefaultClient, f, chatRequest("hello"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			var e struct {
				Error struct {
					Message string `json:"message"`
					Type    string `json:"type"`
					Code    any    `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body is not JSON: %v: %s", err, body)
			}
			if e.Error.Type != tt.wantType || e.Error.Code != tt.wantCode || e.Error.Message == "" {
				t.Errorf("error %+v, want type %q code %v", e.Error, tt.wantType, tt.wantCode)
			}
			if got := resp.Header.Get("Retry-After"); got != tt.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tt.retryAfter)
			}
			if tt.retryAfter != "" && resp.Header.Get("Retry-After-Ms") != "2500" {
				t.Errorf("retry-after-ms %q, want 2500", resp.Header.Get("Retry-After-Ms"))
			}
			if f.Calls(tt.mode) != 1 || f.Total() != 1 || f.Calls(aifake.Healthy) != 0 {
				t.Errorf("calls %d total %d", f.Calls(tt.mode), f.Total())
			}
		})
	}
}

func TestUnauthorizedQuotesTheKeyToCatchLeaks(t *testing.T) {
	f := start(t)
	f.SetMode(aifake.Unauthorized)
	_, body, err := post(t, http.DefaultClient, f, chatRequest("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), testKey) {
		t.Errorf("401 body does not quote the bearer: %s", body)
	}
}

func TestSlowAnswersAfterTheDelay(t *testing.T) {
	f := start(t)
	f.SetMode(aifake.Slow)
	f.SetDelay(150 * time.Millisecond)
	begin := time.Now()
	resp, _, err := post(t, http.DefaultClient, f, chatRequest("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || time.Since(begin) < 150*time.Millisecond {
		t.Errorf("status %d after %v, want 200 after 150ms", resp.StatusCode, time.Since(begin))
	}
	if f.Calls(aifake.Slow) != 1 {
		t.Errorf("slow calls %d", f.Calls(aifake.Slow))
	}
}

func TestHangNeverAnswersUntilTheClientGivesUp(t *testing.T) {
	f := start(t)
	f.SetMode(aifake.Hang)
	client := &http.Client{Timeout: 200 * time.Millisecond}
	begin := time.Now()
	_, _, err := post(t, client, f, chatRequest("hello"))
	if err == nil {
		t.Fatal("a hung request answered")
	}
	if el := time.Since(begin); el < 200*time.Millisecond {
		t.Errorf("gave up after %v, before the client's timeout", el)
	}
	if f.Calls(aifake.Hang) != 1 {
		t.Errorf("hang calls %d", f.Calls(aifake.Hang))
	}
}

func TestCloseReleasesHungRequests(t *testing.T) {
	f := aifake.Start()
	f.SetMode(aifake.Hang)
	done := make(chan error, 1)
	go func() {
		_, _, err := post(t, http.DefaultClient, f, chatRequest("hello"))
		done <- err
	}()
	for f.Total() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() { f.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(3 * time.Second):
		t.Fatal("Close blocked on a hung request")
	}
	if err := <-done; err == nil {
		t.Error("a hung request answered after Close")
	}
}

func TestResetClosesTheConnectionWithoutAResponse(t *testing.T) {
	f := start(t)
	f.SetMode(aifake.Reset)
	resp, _, err := post(t, http.DefaultClient, f, chatRequest("hello"))
	if err == nil {
		t.Fatalf("reset answered status %d", resp.StatusCode)
	}
	if f.Calls(aifake.Reset) != 1 || f.Total() != 1 {
		t.Errorf("reset calls %d total %d", f.Calls(aifake.Reset), f.Total())
	}
}

func TestMalformedCyclesThroughUnusableBodies(t *testing.T) {
	f := start(t)
	f.SetMode(aifake.Malformed)
	checks := []func(body []byte) string{
		func(b []byte) string { // truncated JSON
			var c completion
			if err := json.Unmarshal(b, &c); err == nil {
				return "decodes"
			}
			return ""
		},
		func(b []byte) string { // no choices
			var c completion
			if err := json.Unmarshal(b, &c); err != nil || len(c.Choices) != 0 {
				return "is not a completion without choices"
			}
			return ""
		},
		func(b []byte) string { // empty content
			var c completion
			if err := json.Unmarshal(b, &c); err != nil || len(c.Choices) != 1 || c.Choices[0].Message.Content != "" {
				return "is not a choice with empty content"
			}
			return ""
		},
		func(b []byte) string { // not JSON
			if json.Valid(b) {
				return "is JSON"
			}
			return ""
		},
	}
	for i := range 2 * len(checks) {
		resp, body, err := post(t, http.DefaultClient, f, chatRequest("hello"))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("call %d: status %d", i, resp.StatusCode)
		}
		if msg := checks[i%len(checks)](body); msg != "" {
			t.Errorf("call %d: body %s: %s", i, msg, body)
		}
	}
	if f.Calls(aifake.Malformed) != int64(2*len(checks)) {
		t.Errorf("malformed calls %d", f.Calls(aifake.Malformed))
	}
}

func TestAnUnreadableRequestIsABadRequest(t *testing.T) {
	f := start(t)
	for _, body := range []string{`{"model":`, `{"model":"m","messages":[]}`, `{"messages":[{"role":"user","content":"x"}]}`} {
		resp, _, err := postBody(t, http.DefaultClient, f.URL()+"/chat/completions", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", body, resp.StatusCode)
		}
	}
	if f.Calls(aifake.BadRequest) != 3 {
		t.Errorf("bad request calls %d", f.Calls(aifake.BadRequest))
	}
}

func TestRateLimitAdmitsNPerSecond(t *testing.T) {
	f := start(t)
	f.SetRateLimit(3)
	var wait time.Duration
	for i := range 5 {
		resp, _, err := post(t, http.DefaultClient, f, chatRequest("hello"))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case i < 3 && resp.StatusCode != http.StatusOK:
			t.Fatalf("request %d: status %d, want 200", i, resp.StatusCode)
		case i >= 3 && resp.StatusCode != http.StatusTooManyRequests:
			t.Fatalf("request %d: status %d, want 429", i, resp.StatusCode)
		case i >= 3:
			if resp.Header.Get("Retry-After") != "1" {
				t.Errorf("Retry-After %q, want 1", resp.Header.Get("Retry-After"))
			}
			ms, err := strconv.Atoi(resp.Header.Get("Retry-After-Ms"))
			if err != nil || ms < 0 || ms > 1000 {
				t.Fatalf("retry-after-ms %q", resp.Header.Get("Retry-After-Ms"))
			}
			wait = time.Duration(ms) * time.Millisecond
		}
	}
	if f.Calls(aifake.Healthy) != 3 || f.Calls(aifake.RateLimit) != 2 {
		t.Errorf("healthy %d, rate limited %d; want 3 and 2", f.Calls(aifake.Healthy), f.Calls(aifake.RateLimit))
	}
	time.Sleep(wait + 10*time.Millisecond)
	resp, _, err := post(t, http.DefaultClient, f, chatRequest("hello"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("after the announced wait: status %d, want 200", resp.StatusCode)
	}
}

func TestHTTPControl(t *testing.T) {
	f := start(t)
	base := strings.TrimSuffix(f.URL(), "/v1")
	control := func(method, path, body string) (*http.Response, []byte) {
		t.Helper()
		hr, err := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	resp, body := control(http.MethodPost, "/_fake/mode", `{"mode":"5xx","server_status":503,"retry_after":"4s"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("set mode: %d %s", resp.StatusCode, body)
	}
	want := aifake.Settings{Mode: aifake.ServerError, Delay: "2s", RetryAfter: "4s", ServerStatus: 503}
	if got := f.Settings(); got != want {
		t.Errorf("settings %+v, want %+v", got, want)
	}
	if resp, _, _ := post(t, http.DefaultClient, f, chatRequest("hello")); resp.StatusCode != 503 {
		t.Errorf("status %d, want 503", resp.StatusCode)
	}

	for _, bad := range []string{`{"mode":"sideways"}`, `{"mode":"healthy","delay":"soon"}`, `{"server_status":404}`, `{"moed":"healthy"}`} {
		if resp, body := control(http.MethodPost, "/_fake/mode", bad); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d %s, want 400", bad, resp.StatusCode, body)
		}
	}
	if f.Mode() != aifake.ServerError {
		t.Errorf("a refused change moved the mode to %q", f.Mode())
	}

	resp, body = control(http.MethodGet, "/_fake/stats", "")
	var stats aifake.Stats
	if err := json.Unmarshal(body, &stats); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("stats: %d %v %s", resp.StatusCode, err, body)
	}
	sum := sha256.Sum256([]byte(testKey))
	if stats.Total != 1 || stats.Calls[aifake.ServerError] != 1 || stats.Mode != aifake.ServerError ||
		stats.BearerSHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("stats %+v", stats)
	}
	if strings.Contains(string(body), testKey) {
		t.Error("stats echo the bearer")
	}

	if resp, _ := control(http.MethodDelete, "/_fake/stats", ""); resp.StatusCode != http.StatusNoContent {
		t.Errorf("reset stats: %d", resp.StatusCode)
	}
	if f.Total() != 0 || f.Bearer() != "" {
		t.Errorf("after reset: total %d bearer %q", f.Total(), f.Bearer())
	}
	if resp, _ := control(http.MethodPut, "/_fake/mode", "{}"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d, want 405", resp.StatusCode)
	}
}

func TestModelsAndUnknownRoutes(t *testing.T) {
	f := start(t)
	f.SetMode(aifake.ServerError)
	resp, err := http.Get(f.URL() + "/models")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	err = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || list.Object != "list" || len(list.Data) == 0 {
		t.Errorf("models: %d %v %+v", resp.StatusCode, err, list)
	}
	resp, err = http.Get(f.URL() + "/embeddings")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown route: %d, want 404", resp.StatusCode)
	}
	if f.Total() != 0 {
		t.Errorf("non-completion routes counted: %d", f.Total())
	}
}

func TestConcurrentUseWhileSwitchingModes(t *testing.T) {
	f := start(t)
	f.SetDelay(time.Millisecond)
	modes := []aifake.Mode{aifake.Healthy, aifake.Slow, aifake.ServerError, aifake.RateLimit, aifake.Malformed}
	var wg sync.WaitGroup
	const n = 40
	for i := range n {
		wg.Go(func() {
			f.SetMode(modes[i%len(modes)])
			if _, _, err := post(t, http.DefaultClient, f, chatRequest("hello")); err != nil && !errors.Is(err, context.Canceled) {
				t.Error(err)
			}
			_ = f.Stats()
		})
	}
	wg.Wait()
	var sum int64
	for _, m := range aifake.Modes() {
		sum += f.Calls(m)
	}
	if f.Total() != n || sum != n {
		t.Errorf("total %d, sum of calls %d, want %d", f.Total(), sum, n)
	}
}

func TestSetModeRefusesAnUnknownMode(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("SetMode accepted an unknown mode")
		}
	}()
	aifake.New().SetMode("sideways")
}
