package agent_test

import (
	"context"
	"strings"
	"testing"

	"github.com/logbook-dev/logbook/consumers/agent"
	"github.com/logbook-dev/logbook/domain"
)

func localReq(input string) agent.Request {
	return agent.Request{
		WorkspaceID: "ws-1", TaskID: "task-1", AgentName: "triage", Model: "gpt-4o",
		Instructions: "Triage incoming support requests.\nAnswer in English.", Input: input, Attempt: 1,
	}
}

func TestLocalIsDeterministic(t *testing.T) {
	var l agent.Local
	a, err := l.Complete(t.Context(), localReq("The checkout page is down for all customers."))
	if err != nil {
		t.Fatal(err)
	}
	// Another task, attempt and model with the same agent and input: the
	// same answer.
	other := localReq("The checkout page is down for all customers.")
	other.TaskID, other.Attempt, other.Model, other.WorkspaceID = "task-2", 3, "", "ws-2"
	for range 3 {
		b, err := l.Complete(t.Context(), other)
		if err != nil {
			t.Fatal(err)
		}
		if a != b {
			t.Fatalf("same input, different answers:\n%+v\n%+v", a, b)
		}
	}
	c, _ := l.Complete(t.Context(), localReq("Fix a typo in the README someday."))
	if c.Output == a.Output {
		t.Error("different inputs, same answer")
	}
	if a.Model != "local-rules-v1" || a.Provider != "local" || l.Name() != "local" {
		t.Errorf("model %q provider %q name %q", a.Model, a.Provider, l.Name())
	}
}

func TestLocalAnswersWithTheTemplate(t *testing.T) {
	resp, err := agent.Local{}.Complete(t.Context(), localReq("The checkout page is down for all customers.\nPlease look."))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"Agent: triage\n",
		"Role: Triage incoming support requests.\n",
		"Priority: critical (urgency 9/9); signals: down, customers\n",
		"Category: incident\n",
		"Summary: The checkout page is down for all customers.\n",
		"Checks:\n- ok: no problems found\n",
		"Next steps:\n1. Start now: this is critical priority.\n2. Page the owner on call",
	} {
		if !strings.Contains(resp.Output, line) {
			t.Errorf("answer lacks %q:\n%s", line, resp.Output)
		}
	}
	if strings.Contains(resp.Output, "Answer in English") {
		t.Error("the role is more than the instructions' first line")
	}
	words := int64(len(strings.Fields(resp.Output)))
	prompt := int64(len(strings.Fields(localReq("").Instructions)) + 10)
	if resp.Usage != (domain.TokenUsage{PromptTokens: prompt, CompletionTokens: words}) {
		t.Errorf("usage %+v, want %d prompt and %d completion words", resp.Usage, prompt, words)
	}
}

func TestLocalPrioritises(t *testing.T) {
	tests := []struct {
		input    string
		priority string
		category string
	}{
		{"Security breach: customer data exposed, act immediately.", "Priority: critical", "Category: incident"},
		{"The export crashes with an error on large files, customers complain.", "Priority: critical", "Category: bug"},
		{"Login fails with an error for some users.", "Priority: high (urgency 7/9)", "Category: bug"},
		{"Please implement CSV export for the reports page.", "Priority: normal (urgency 3/9)", "Category: feature"},
		{"How do I rotate my API key?", "Priority: normal", "Category: question"},
		{"Fix a cosmetic typo in the docs whenever you can.", "Priority: low (urgency 0/9)", "Category: docs"},
		{"Tidy the build scripts.", "Priority: normal (urgency 3/9)", "Category: task"},
	}
	for _, tt := range tests {
		resp, err := agent.Local{}.Complete(t.Context(), localReq(tt.input))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(resp.Output, tt.priority) || !strings.Contains(resp.Output, tt.category) {
			t.Errorf("%q: want %q and %q in:\n%s", tt.input, tt.priority, tt.category, resp.Output)
		}
	}
}

func TestLocalValidatesTheInput(t *testing.T) {
	long := strings.Repeat("word ", 60) // 300 characters
	tests := []struct {
		name     string
		req      agent.Request
		findings []string
	}{
		{"empty", localReq("  \n\t "), []string{"- error: the input is empty", "1. Ask the requester what the task is.", "Summary: (empty input)"}},
		{"short", localReq("fix"), []string{"- warning: the input is only 1 word(s)"}},
		{"long line", localReq("Some context first.\n" + long), []string{"- warning: line 2 is 300 characters long (over 200)"}},
		{"many long lines", localReq(strings.Repeat(long+"\n", 8)), []string{"line 5 is 300", "- warning: and 3 more over-long lines"}},
		{"control", localReq("Clean this up\x07 please now."), []string{"- warning: line 1 contains control characters"}},
		{"brackets", localReq("Check the call f(a, [b, c) please."), []string{"- warning: brackets ( [ { are not balanced"}},
		{"no instructions", agent.Request{AgentName: "x", Input: "Write the release notes today."}, []string{"- note: the agent has no instructions", "Role: (no instructions)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := agent.Local{}.Complete(t.Context(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range tt.findings {
				if !strings.Contains(resp.Output, f) {
					t.Errorf("answer lacks %q:\n%s", f, resp.Output)
				}
			}
			if strings.Contains(resp.Output, "ok: no problems found") {
				t.Errorf("a flawed input passes:\n%s", resp.Output)
			}
		})
	}
}

func TestLocalAnswerFitsTheDomain(t *testing.T) {
	huge := strings.Repeat("é"+strings.Repeat("x", 300)+"\n", domain.MaxTextLen/300)
	resp, err := agent.Local{}.Complete(t.Context(), agent.Request{AgentName: strings.Repeat("n", 200), Instructions: huge, Input: huge})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Output) > domain.MaxTextLen || strings.ContainsRune(resp.Output, 0) {
		t.Errorf("answer of %d bytes", len(resp.Output))
	}
}

func TestLocalStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := agent.Local{}.Complete(ctx, localReq("anything"))
	if agent.Classify(err) != agent.ClassUnavailable {
		t.Errorf("err %v", err)
	}
}
