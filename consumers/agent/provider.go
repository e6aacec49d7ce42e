package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/logbook-dev/logbook/domain"
)

// Request is one task for a model. Instructions and Input are sensitive:
// its LogValue leaves them out.
type Request struct {
	WorkspaceID, TaskID, AgentName, Model, Instructions, Input string
	Attempt                                                    int
}

// LogValue implements slog.LogValuer: the ids, the agent and the model,
// never the instructions or the input.
func (r Request) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("workspace_id", r.WorkspaceID),
		slog.String("task_id", r.TaskID),
		slog.String("agent", r.AgentName),
		slog.String("model", r.Model),
		slog.Int("attempt", r.Attempt),
	)
}

// Response is the model's answer. Output is sensitive: its LogValue leaves
// it out.
type Response struct {
	Output   string
	Usage    domain.TokenUsage
	Model    string // the model that answered, as the provider names it
	Provider string // Provider.Name of the provider that answered
}

// LogValue implements slog.LogValuer: who answered and the usage, never the
// output.
func (r Response) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("provider", r.Provider),
		slog.String("model", r.Model),
		slog.Int64("prompt_tokens", r.Usage.PromptTokens),
		slog.Int64("completion_tokens", r.Usage.CompletionTokens),
	)
}

// Provider answers tasks. Complete returns a *ProviderError on failure, so
// callers decide on retries, backoff and pauses from its Class alone.
type Provider interface {
	Name() string
	Complete(ctx context.Context, r Request) (Response, error)
}

// ErrorClass is what a provider failure means for the caller.
type ErrorClass string

// Error classes.
const (
	// ClassRateLimited: 429 rate limit. Retry after RetryAfter (or a
	// backoff when the provider gave none).
	ClassRateLimited ErrorClass = "rate_limited"
	// ClassQuotaExhausted: the spend-limit 429 (insufficient_quota). Pause
	// the provider and alert; retrying cannot help.
	ClassQuotaExhausted ErrorClass = "quota_exhausted"
	// ClassUnauthorized: 401 or 403, the key is refused. Pause the provider
	// and alert; retrying cannot help.
	ClassUnauthorized ErrorClass = "unauthorized"
	// ClassUnavailable: 5xx, timeouts, resets, hangs, connection failures.
	// Retryable; counts towards the circuit breaker.
	ClassUnavailable ErrorClass = "unavailable"
	// ClassBadRequest: 400, 404, 422 and the like: this request will never
	// succeed. Fail the attempt, do not retry.
	ClassBadRequest ErrorClass = "bad_request"
	// ClassMalformed: 200 with a body that is not a usable answer. Fail the
	// attempt; a retry may get a good one.
	ClassMalformed ErrorClass = "malformed"
)

// Retryable reports whether the same request may succeed if tried again.
func (c ErrorClass) Retryable() bool {
	return c == ClassRateLimited || c == ClassUnavailable || c == ClassMalformed
}

// PausesProvider reports whether the provider should get no more calls
// until someone acts (a new key, a raised spend limit).
func (c ErrorClass) PausesProvider() bool {
	return c == ClassQuotaExhausted || c == ClassUnauthorized
}

// CountsForBreaker reports whether the failure is an outage the circuit
// breaker should count.
func (c ErrorClass) CountsForBreaker() bool { return c == ClassUnavailable }

// ProviderError is a failed provider call. Its message names the provider,
// the class, the status and a cause that never holds the API key, the
// prompt or the model's output: provider error bodies can echo both, so
// they are not kept.
type ProviderError struct {
	Provider   string
	Class      ErrorClass
	Status     int           // HTTP status; 0 when none was received
	RetryAfter time.Duration // the wait the provider asked for; 0 if none
	Err        error
}

func (e *ProviderError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "AI provider %s: %s", e.Provider, e.Class)
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *ProviderError) Unwrap() error { return e.Err }

// Causes of failures that have no error of their own.
var (
	ErrNoChoices   = errors.New("the answer has no choices")
	ErrEmptyOutput = errors.New("the answer is empty")
	ErrNoModel     = errors.New("the request names no model")
)

// AsProviderError finds the *ProviderError in err's chain.
func AsProviderError(err error) (*ProviderError, bool) {
	var pe *ProviderError
	ok := errors.As(err, &pe)
	return pe, ok
}

// Classify returns the class of err: "" for nil, the class of its
// *ProviderError, else ClassUnavailable (a failure nobody classified is
// treated as an outage: retried, and counted by the breaker).
func Classify(err error) ErrorClass {
	if err == nil {
		return ""
	}
	if pe, ok := AsProviderError(err); ok {
		return pe.Class
	}
	return ClassUnavailable
}

// RetryAfter returns the wait the provider asked for in err; 0 if none.
func RetryAfter(err error) time.Duration {
	if pe, ok := AsProviderError(err); ok {
		return pe.RetryAfter
	}
	return 0
}
