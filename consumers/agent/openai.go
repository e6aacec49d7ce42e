package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/logbook-dev/logbook/domain"
)

// OpenAIConfig configures the OpenAI provider. Zero fields take the defaults
// WithDefaults names.
type OpenAIConfig struct {
	// APIKey is sent as "Authorization: Bearer"; empty sends no header
	// (a local vLLM or Ollama).
	APIKey Secret
	// BaseURL is the API root ending in /v1 (OPENAI_BASE_URL), default
	// https://api.openai.com/v1: also Azure's /openai/v1 endpoint, vLLM,
	// Ollama or any OpenAI-compatible server.
	BaseURL string
	// Timeout bounds one call, answer included, default 60 s.
	Timeout time.Duration
	// MaxOutputTokens caps each answer, sent as max_completion_tokens (the
	// field OpenAI's reasoning models require; servers that read only
	// max_tokens, such as older Ollama, ignore it); 0 leaves the cap to
	// the provider.
	MaxOutputTokens int
	// Transport sends the HTTP requests, default a clone of
	// http.DefaultTransport keeping up to 64 idle connections per host.
	Transport http.RoundTripper
}

// Defaults of OpenAIConfig.
const (
	DefaultOpenAIBaseURL = "https://api.openai.com/v1"
	DefaultOpenAITimeout = 60 * time.Second
)

// WithDefaults returns c with every zero field set to its default.
func (c OpenAIConfig) WithDefaults() OpenAIConfig {
	if c.BaseURL == "" {
		c.BaseURL = DefaultOpenAIBaseURL
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultOpenAITimeout
	}
	if c.Transport == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		c.Transport = t
	}
	return c
}

// Validate reports a config the provider cannot run with.
func (c OpenAIConfig) Validate() error {
	u, err := url.Parse(c.BaseURL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return errors.New("agent: the OpenAI base URL must be an absolute http or https URL")
	case c.Timeout <= 0:
		return errors.New("agent: the OpenAI call timeout must be positive")
	case c.MaxOutputTokens < 0:
		return errors.New("agent: the OpenAI max output tokens must not be negative")
	}
	return nil
}

// OpenAI is the provider for OpenAI's chat completions API and the servers
// that speak it. The go-openai client under it never retries: retries,
// backoff and the circuit breaker are the caller's.
type OpenAI struct {
	client    *openai.Client
	timeout   time.Duration
	maxTokens int
	leak      func(string) bool // reports whether a text quotes the key
}

// NewOpenAI returns the provider for cfg, with defaults applied.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	key := cfg.APIKey.Reveal()
	oc := openai.DefaultConfig(key)
	oc.BaseURL = cfg.BaseURL
	oc.HTTPClient = &http.Client{Transport: recordingTransport{cfg.Transport}}
	return &OpenAI{
		client:    openai.NewClientWithConfig(oc),
		timeout:   cfg.Timeout,
		maxTokens: cfg.MaxOutputTokens,
		leak:      func(s string) bool { return key != "" && strings.Contains(s, key) },
	}, nil
}

// Name implements Provider.
func (*OpenAI) Name() string { return "openai" }

// Complete implements Provider: one chat completion, the agent's
// instructions as the system message and the task's input as the user
// message. Failures are *ProviderError.
func (o *OpenAI) Complete(ctx context.Context, r Request) (Response, error) {
	if r.Model == "" {
		return Response{}, o.failure(ClassBadRequest, 0, ErrNoModel)
	}
	callCtx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	x := &exchange{}
	resp, err := o.client.CreateChatCompletion(context.WithValue(callCtx, exchangeKey{}, x), o.chatRequest(r))
	if err != nil {
		return Response{}, o.classifyFailure(ctx, callCtx, x, err)
	}
	return o.answer(r, x, resp)
}

func (o *OpenAI) chatRequest(r Request) openai.ChatCompletionRequest {
	var msgs []openai.ChatCompletionMessage
	if r.Instructions != "" {
		msgs = append(msgs, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleSystem, Content: r.Instructions})
	}
	msgs = append(msgs, openai.ChatCompletionMessage{Role: openai.ChatMessageRoleUser, Content: r.Input})
	return openai.ChatCompletionRequest{Model: r.Model, Messages: msgs, MaxCompletionTokens: o.maxTokens}
}

// answer turns a decoded 200 into a Response, or a malformed failure.
func (o *OpenAI) answer(r Request, x *exchange, resp openai.ChatCompletionResponse) (Response, error) {
	if len(resp.Choices) == 0 {
		return Response{}, o.failure(ClassMalformed, x.status, ErrNoChoices)
	}
	msg := resp.Choices[0].Message
	if strings.TrimSpace(msg.Content) == "" {
		if msg.Refusal != "" {
			return Response{}, o.failure(ClassMalformed, x.status, fmt.Errorf("%w: the model refused", ErrEmptyOutput))
		}
		return Response{}, o.failure(ClassMalformed, x.status, ErrEmptyOutput)
	}
	if resp.Usage.PromptTokens < 0 || resp.Usage.CompletionTokens < 0 {
		return Response{}, o.failure(ClassMalformed, x.status, errors.New("the answer reports negative token usage"))
	}
	model := resp.Model
	if model == "" {
		model = r.Model
	}
	return Response{
		Output: msg.Content,
		Usage: domain.TokenUsage{
			PromptTokens:     int64(resp.Usage.PromptTokens),
			CompletionTokens: int64(resp.Usage.CompletionTokens),
		},
		Model:    model,
		Provider: o.Name(),
	}, nil
}

// classifyFailure maps a failed call to its class. ctx is the caller's
// context, callCtx the one bounded by the call timeout.
func (o *OpenAI) classifyFailure(ctx, callCtx context.Context, x *exchange, err error) *ProviderError {
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	switch {
	case !x.sent && ctx.Err() == nil: // go-openai refused the request before sending it
		return o.failure(ClassBadRequest, 0, err)
	case errors.As(err, &apiErr):
		return o.statusFailure(x, apiErr.HTTPStatusCode, apiErr.Type, apiErrorCode(apiErr), apiErrorCause(apiErr))
	case errors.As(err, &reqErr): // an error status without OpenAI's error JSON
		return o.statusFailure(x, reqErr.HTTPStatusCode, "", "", errors.New("the error body is not an OpenAI error"))
	case ctx.Err() != nil: // the caller gave up: its own deadline, or shutdown
		return o.failure(ClassUnavailable, x.status, ctx.Err())
	case callCtx.Err() != nil:
		return o.failure(ClassUnavailable, x.status, fmt.Errorf("no answer within %s: %w", o.timeout, context.DeadlineExceeded))
	case x.status >= 400 || (x.status != 0 && x.status < 200): // its body could not be read
		return o.statusFailure(x, x.status, "", "", err)
	case x.status != 0 && !networkError(err): // a success status, an undecodable body
		return o.failure(ClassMalformed, x.status, fmt.Errorf("the answer cannot be decoded: %w", err))
	default: // refused, reset or cut connections
		return o.failure(ClassUnavailable, x.status, err)
	}
}

// statusFailure is the failure of an error status, with the wait the
// provider asked for.
func (o *OpenAI) statusFailure(x *exchange, status int, typ, code string, cause error) *ProviderError {
	pe := o.failure(statusClass(status, typ, code), status, cause)
	pe.RetryAfter = retryAfter(x.header, time.Now())
	return pe
}

// failure builds the provider's error, withholding a cause that quotes
// the API key.
func (o *OpenAI) failure(class ErrorClass, status int, err error) *ProviderError {
	pe := &ProviderError{Provider: o.Name(), Class: class, Status: status, Err: err}
	if o.leak(pe.Error()) {
		pe.Err = errors.New("cause withheld: it quoted the API key")
	}
	return pe
}

// statusClass classifies an HTTP error status, with OpenAI's error type and
// code where the body had them.
func statusClass(status int, typ, code string) ErrorClass {
	switch {
	case status == http.StatusPaymentRequired || (status == http.StatusTooManyRequests && spendLimit(typ, code)):
		return ClassQuotaExhausted
	case status == http.StatusTooManyRequests:
		return ClassRateLimited
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return ClassUnauthorized
	case status == http.StatusRequestTimeout || status >= 500:
		return ClassUnavailable
	case status >= 400:
		return ClassBadRequest
	}
	return ClassUnavailable
}

// spendLimit reports whether a 429 is the spend limit, not the rate limit.
func spendLimit(typ, code string) bool {
	for _, s := range []string{"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"} {
		if typ == s || code == s {
			return true
		}
	}
	return false
}

// apiErrorCause keeps what identifies an OpenAI error: its type, code and
// parameter. The message is dropped: it can quote the prompt or the key
// (OpenAI's own 401 quotes part of it).
func apiErrorCause(e *openai.APIError) error {
	parts := []string{"type " + strconv.Quote(e.Type)}
	if code := apiErrorCode(e); code != "" {
		parts = append(parts, "code "+strconv.Quote(code))
	}
	if e.Param != nil {
		parts = append(parts, "param "+strconv.Quote(*e.Param))
	}
	return errors.New("OpenAI error " + strings.Join(parts, ", "))
}

// apiErrorCode is e's code as text; "" when the body had none (go-openai
// decodes a null code as the number 0).
func apiErrorCode(e *openai.APIError) string {
	switch c := e.Code.(type) {
	case nil:
		return ""
	case int:
		if c == 0 {
			return ""
		}
	}
	return fmt.Sprint(e.Code)
}

// networkError reports whether err is a connection failing, rather than a
// body that arrived whole and could not be decoded.
func networkError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// maxRetryAfter bounds the wait retryAfter reports.
const maxRetryAfter = 24 * time.Hour

// retryAfter reads the wait a provider asked for: retry-after-ms, else
// Retry-After (seconds or an HTTP date), else the later of OpenAI's
// x-ratelimit-reset-requests and x-ratelimit-reset-tokens; 0 if none, at
// most 24 hours.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if h == nil {
		return 0
	}
	if ms, err := strconv.ParseFloat(h.Get("Retry-After-Ms"), 64); err == nil && ms > 0 {
		return time.Duration(min(ms, float64(maxRetryAfter/time.Millisecond)) * float64(time.Millisecond))
	}
	if v := h.Get("Retry-After"); v != "" {
		if secs, err := strconv.Atoi(v); err == nil {
			return time.Duration(min(max(secs, 0), int(maxRetryAfter/time.Second))) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return min(max(t.Sub(now), 0), maxRetryAfter)
		}
	}
	var wait time.Duration
	for _, name := range []string{"X-Ratelimit-Reset-Requests", "X-Ratelimit-Reset-Tokens"} {
		if d, err := time.ParseDuration(h.Get(name)); err == nil {
			wait = max(wait, d)
		}
	}
	return min(wait, maxRetryAfter)
}

// exchange is what the transport saw of one call: whether a request left,
// and the status and headers of the last response.
type exchange struct {
	sent   bool
	status int
	header http.Header
}

type exchangeKey struct{}

// recordingTransport fills in the *exchange in each request's context:
// go-openai's errors carry the status but not the headers (Retry-After).
// A call's RoundTrips run on the goroutine that made it, so the exchange
// needs no lock.
type recordingTransport struct{ next http.RoundTripper }

func (t recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	x, _ := req.Context().Value(exchangeKey{}).(*exchange)
	if x != nil {
		x.sent = true
	}
	resp, err := t.next.RoundTrip(req)
	if x != nil && resp != nil {
		x.status, x.header = resp.StatusCode, resp.Header
	}
	return resp, err
}
