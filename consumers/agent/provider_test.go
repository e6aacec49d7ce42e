package agent_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/consumers/agent"
	"github.com/logbook-dev/logbook/domain"
)

func TestErrorClassPolicy(t *testing.T) {
	tests := []struct {
		class                      agent.ErrorClass
		retryable, pauses, breaker bool
	}{
		{agent.ClassRateLimited, true, false, false},
		{agent.ClassQuotaExhausted, false, true, false},
		{agent.ClassUnauthorized, false, true, false},
		{agent.ClassUnavailable, true, false, true},
		{agent.ClassBadRequest, false, false, false},
		{agent.ClassMalformed, true, false, false},
	}
	for _, tt := range tests {
		if tt.class.Retryable() != tt.retryable || tt.class.PausesProvider() != tt.pauses || tt.class.CountsForBreaker() != tt.breaker {
			t.Errorf("%s: retryable %v pauses %v breaker %v", tt.class,
				tt.class.Retryable(), tt.class.PausesProvider(), tt.class.CountsForBreaker())
		}
	}
}

func TestProviderError(t *testing.T) {
	cause := errors.New("OpenAI error type \"requests\"")
	err := fmt.Errorf("calling: %w", &agent.ProviderError{
		Provider: "openai", Class: agent.ClassRateLimited, Status: 429, RetryAfter: 3 * time.Second, Err: cause,
	})
	want := `calling: AI provider openai: rate_limited (HTTP 429), retry after 3s: OpenAI error type "requests"`
	if err.Error() != want {
		t.Errorf("message\n %s\nwant\n %s", err, want)
	}
	if !errors.Is(err, cause) || agent.Classify(err) != agent.ClassRateLimited || agent.RetryAfter(err) != 3*time.Second {
		t.Errorf("the chain lost its cause, class or wait")
	}
	if pe, ok := agent.AsProviderError(err); !ok || pe.Status != 429 {
		t.Errorf("AsProviderError: %v %v", pe, ok)
	}
	bare := &agent.ProviderError{Provider: "local", Class: agent.ClassUnavailable}
	if bare.Error() != "AI provider local: unavailable" {
		t.Errorf("message %q", bare.Error())
	}

	if agent.Classify(nil) != "" || agent.RetryAfter(nil) != 0 {
		t.Error("nil has a class or a wait")
	}
	if agent.Classify(errors.New("something else")) != agent.ClassUnavailable {
		t.Error("an unclassified error is not treated as an outage")
	}
	if _, ok := agent.AsProviderError(errors.New("x")); ok {
		t.Error("AsProviderError found one in a plain error")
	}
}

func TestRequestAndResponseLogWithoutTheirText(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("call",
		"request", agent.Request{WorkspaceID: "ws-9", TaskID: "task-9", AgentName: "bot", Model: "m", Instructions: "SECRET-INSTRUCTIONS", Input: "SECRET-INPUT", Attempt: 2},
		"response", agent.Response{Output: "SECRET-OUTPUT", Usage: domain.TokenUsage{PromptTokens: 11, CompletionTokens: 7}, Model: "m", Provider: "openai"},
	)
	out := buf.String()
	if strings.Contains(out, "SECRET") {
		t.Errorf("sensitive text logged: %s", out)
	}
	for _, want := range []string{`"task_id":"task-9"`, `"attempt":2`, `"prompt_tokens":11`, `"provider":"openai"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s: %s", want, out)
		}
	}
}
