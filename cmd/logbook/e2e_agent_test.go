package main_test

import (
	"strings"
	"testing"
	"time"
)

// make run's promise: in dev, with no OPENAI_API_KEY, a task assigned to an
// agent is worked by the local responder and completes.
func TestDevAgentCompletesAssignedTaskWithLocalProvider(t *testing.T) {
	p := startDev(t, t.TempDir())
	c := newClient(t, p.URL, p.Key)
	ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "team"}, wait, "wait=10").str("workspace_id")
	agent := c.must(201, "POST", "/v1/workspaces/"+ws+"/agents", map[string]any{"name": "triage", "role": "engineer",
		"model": "gpt-4o-mini", "instructions": "Triage incoming bugs."}, wait, "wait=10").str("agent_id")
	task := c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "login broken",
		"input": "URGENT: users cannot log in since the deploy", "assignee": agent}, wait, "wait=10").str("task_id")
	var r response
	eventually(t, 30*time.Second, "the agent completes the task", func() bool {
		r = c.do("GET", "/v1/workspaces/"+ws+"/tasks/"+task, nil)
		return r.Status == 200 && r.str("status") == "completed"
	})
	if out := r.str("output"); !strings.Contains(out, "triage") && !strings.Contains(strings.ToLower(out), "priority") {
		t.Errorf("output does not look like the local responder's: %q", out)
	}
	if r.str("provider") != "local" || r.str("model") == "" {
		t.Errorf("result says provider %q model %q, want local and a model", r.str("provider"), r.str("model"))
	}
	if r.Body["attempt"].(float64) != 1 {
		t.Errorf("attempt %v, want 1", r.Body["attempt"])
	}
	usage, _ := r.Body["usage"].(map[string]any)
	if usage == nil || usage["prompt_tokens"].(float64) <= 0 {
		t.Errorf("usage %v, want tokens counted", r.Body["usage"])
	}
	st := c.must(200, "GET", "/v1/status", nil)
	ai, _ := st.Body["ai"].(map[string]any)
	if ai == nil {
		t.Fatalf("status has no ai section: %s", st.Raw)
	}
	if st.str("level") != "full" {
		t.Errorf("level %q, want full: %s", st.str("level"), st.Raw)
	}
	p.stop()
}
