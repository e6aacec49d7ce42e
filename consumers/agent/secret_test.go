package agent_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/consumers/agent"
	"github.com/logbook-dev/logbook/internal/aifake"
)

func TestSecretNeverPrints(t *testing.T) {
	s := agent.Secret("sk-secret-canary")
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "key", s, "cfg", agent.OpenAIConfig{APIKey: s})
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "key", s)
	js, err := json.Marshal(map[string]any{"key": s, "cfg": agent.OpenAIConfig{APIKey: s}})
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{
		fmt.Sprintf("%v %s %q %x %+v %#v", s, s, s, s, s, s),
		fmt.Sprintf("%v %+v %#v", agent.OpenAIConfig{APIKey: s}, agent.OpenAIConfig{APIKey: s}, agent.OpenAIConfig{APIKey: s}),
		buf.String(), string(js),
	}
	for _, out := range outputs {
		if strings.Contains(out, "canary") {
			t.Errorf("the secret leaks: %s", out)
		}
	}
	if s.Reveal() != "sk-secret-canary" {
		t.Errorf("Reveal %q", s.Reveal())
	}
}

// TestNoKeyPromptOrOutputInErrorsOrLogs drives the OpenAI provider through
// every mode of the fake, whose 401 quotes the bearer and whose 400 quotes
// the prompt, and logs everything a caller could log with a plain slog
// handler (not the redacting one: the types must hold on their own).
func TestNoKeyPromptOrOutputInErrorsOrLogs(t *testing.T) {
	const (
		instructions = "INSTRUCTIONS-CANARY You are the CFO."
		input        = "INPUT-CANARY the confidential merger plan"
	)
	f := startFake(t)
	f.SetDelay(time.Second)
	cfg := agent.OpenAIConfig{APIKey: testKey, BaseURL: f.URL(), Timeout: 300 * time.Millisecond}
	p, err := agent.NewOpenAI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req := agent.Request{WorkspaceID: "ws", TaskID: "t", AgentName: "cfo", Model: "gpt-test", Instructions: instructions, Input: input, Attempt: 1}

	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	var texts []string
	var outputs []string
	for _, mode := range aifake.Modes() {
		f.SetMode(mode)
		resp, err := p.Complete(t.Context(), req)
		log.Error("call", "mode", mode, "request", req, "response", resp, "err", err, "config", cfg, "provider", p)
		if resp.Output != "" {
			outputs = append(outputs, resp.Output)
		}
		if err != nil {
			texts = append(texts, fmt.Sprintf("%v|%+v|%#v|%s", err, err, err, err))
			for e := errors.Unwrap(err); e != nil; e = errors.Unwrap(e) {
				texts = append(texts, e.Error())
			}
		}
	}
	if f.Calls(aifake.Unauthorized) != 1 || f.Calls(aifake.BadRequest) != 1 || len(outputs) == 0 {
		t.Fatalf("the modes that quote the key and the prompt, or the answer, were not reached")
	}
	js, _ := json.Marshal(cfg)
	texts = append(texts, logs.String(), string(js), fmt.Sprintf("%v|%+v|%#v|%+v|%#v", cfg, cfg, cfg, p, p))

	canaries := append([]string{testKey.Reveal(), "LEAKCANARY", "INSTRUCTIONS-CANARY", "INPUT-CANARY"}, outputs...)
	for _, text := range texts {
		for _, c := range canaries {
			if strings.Contains(text, c) {
				t.Errorf("%q leaks into: %s", c, text)
			}
		}
	}
}
