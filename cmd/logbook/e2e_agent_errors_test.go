package main_test

import (
	"strings"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/internal/aifake"
)

// agentRig is one dev process whose agent calls a fake provider.
type agentRig struct {
	t    *testing.T
	fake *aifake.Fake
	c    *client
	p    *proc
}

func newAgentRig(t *testing.T) *agentRig {
	fake := aifake.Start()
	t.Cleanup(fake.Close)
	p := start(t, agentEnv(fake), "dev", "--data", t.TempDir(), "--http", "127.0.0.1:0")
	return &agentRig{t: t, fake: fake, c: newClient(t, p.URL, p.Key), p: p}
}

// workspace creates a workspace with one agent and, if policy is not nil,
// that AI policy.
func (r *agentRig) workspace(policy map[string]any) (ws, agent string) {
	ws = r.c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "w"}, wait, "wait=10").str("workspace_id")
	agent = r.c.must(201, "POST", "/v1/workspaces/"+ws+"/agents", map[string]any{"name": "bot", "model": "gpt-4o-mini",
		"instructions": "Be brief."}, wait, "wait=10").str("agent_id")
	if policy != nil {
		r.c.must(200, "PUT", "/v1/workspaces/"+ws+"/ai-policy", policy, wait, "wait=10")
	}
	return ws, agent
}

func (r *agentRig) task(ws, agent string) string {
	return r.c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "t", "input": "write a haiku",
		"assignee": agent}, wait, "wait=10").str("task_id")
}

// until waits for the task to reach status and returns it.
func (r *agentRig) until(ws, task, status string, within time.Duration) response {
	r.t.Helper()
	var got response
	eventually(r.t, within, "task "+status, func() bool {
		got = r.c.do("GET", "/v1/workspaces/"+ws+"/tasks/"+task, nil)
		return got.Status == 200 && got.str("status") == status
	})
	return got
}

// failure returns the task's task.attempt_failed payload.
func (r *agentRig) failure(ws, task string) map[string]any {
	r.t.Helper()
	evs, ok := trail(r.c, ws)
	if !ok {
		r.t.Fatal("trail unreadable")
	}
	for _, e := range evs {
		if e["type"] == "task.attempt_failed" && e["aggregate"].(map[string]any)["id"] == task {
			return e["payload"].(map[string]any)
		}
	}
	r.t.Fatalf("no task.attempt_failed for %s", task)
	return nil
}

// healthy puts the provider back and waits for the breaker to close.
func (r *agentRig) healthy() {
	r.t.Helper()
	r.fake.SetMode(aifake.Healthy)
	eventually(r.t, 30*time.Second, "provider closed", func() bool {
		m := r.c.do("GET", "/metrics", nil)
		return strings.Contains(string(m.Raw), `logbook_ai_provider_state{provider="openai"} 0`)
	})
}

func (r *agentRig) providerState() string {
	m := string(r.c.do("GET", "/metrics", nil).Raw)
	for _, s := range []string{"0", "1", "2", "3"} {
		if strings.Contains(m, `logbook_ai_provider_state{provider="openai"} `+s+"\n") {
			return map[string]string{"0": "closed", "1": "half_open", "2": "open", "3": "paused"}[s]
		}
	}
	return ""
}

// Each class of provider failure gets its behaviour: a refused request
// fails the attempt for good, an unusable answer fails it retryably, a
// rate limit is waited out, a refused key or spend limit pauses the
// provider without retries, and hangs and resets open the breaker. A
// workspace whose policy allows it gets local answers meanwhile.
func TestAgentProviderErrorClasses(t *testing.T) {
	r := newAgentRig(t)

	t.Run("bad_request fails the attempt, not retryable", func(t *testing.T) {
		r.t = t
		r.fake.SetMode(aifake.BadRequest)
		r.fake.ResetStats()
		ws, agent := r.workspace(nil)
		task := r.task(ws, agent)
		got := r.until(ws, task, "failed", 30*time.Second)
		if !strings.Contains(got.str("failure_reason"), "bad_request") {
			t.Errorf("failure reason %q", got.str("failure_reason"))
		}
		if f := r.failure(ws, task); f["retryable"] != false {
			t.Errorf("retryable %v, want false", f["retryable"])
		}
		if n := r.fake.Calls(aifake.BadRequest); n != 1 {
			t.Errorf("%d calls, want 1: a refused request is not retried", n)
		}
	})

	t.Run("malformed answer fails the attempt, retryable; a retry completes", func(t *testing.T) {
		r.t = t
		r.fake.SetMode(aifake.Malformed)
		r.fake.ResetStats()
		ws, agent := r.workspace(nil)
		task := r.task(ws, agent)
		r.until(ws, task, "failed", 30*time.Second)
		if f := r.failure(ws, task); f["retryable"] != true {
			t.Errorf("retryable %v, want true", f["retryable"])
		}
		if n := r.fake.Calls(aifake.Malformed); n != 1 {
			t.Errorf("%d calls, want 1", n)
		}
		r.healthy()
		r.c.must(200, "POST", "/v1/workspaces/"+ws+"/tasks/"+task+"/retry", nil, wait, "wait=10")
		got := r.until(ws, task, "completed", 30*time.Second)
		if got.Body["attempt"].(float64) != 2 {
			t.Errorf("completed on attempt %v, want 2", got.Body["attempt"])
		}
		if got.str("provider") != "openai" || got.str("model") != "gpt-4o-mini" {
			t.Errorf("result says provider %q model %q, want openai gpt-4o-mini", got.str("provider"), got.str("model"))
		}
	})

	t.Run("requests_per_minute spaces a workspace's calls", func(t *testing.T) {
		r.t = t
		r.healthy()
		ws, agent := r.workspace(map[string]any{"requests_per_minute": 60})
		eventually(t, 10*time.Second, "the workspace shows its request cap", func() bool {
			policy, _ := r.c.do("GET", "/v1/workspaces/"+ws, nil).Body["ai_policy"].(map[string]any)
			return policy["requests_per_minute"] == 60.0
		})
		start := time.Now()
		tasks := make([]string, 6)
		for i := range tasks {
			tasks[i] = r.task(ws, agent)
		}
		for _, task := range tasks {
			r.until(ws, task, "completed", 40*time.Second)
		}
		// One call a second: the first at once, the others left assigned
		// and drained as the rate allows, about 5s for the last. Uncapped,
		// all six complete within a second.
		if d := time.Since(start); d < 3500*time.Millisecond {
			t.Errorf("6 calls at 60/min done in %v", d)
		}
	})

	t.Run("rate limit is waited out per Retry-After", func(t *testing.T) {
		r.t = t
		r.fake.SetRetryAfter(time.Second)
		r.fake.SetMode(aifake.RateLimit)
		r.fake.ResetStats()
		ws, agent := r.workspace(nil)
		task := r.task(ws, agent)
		eventually(t, 30*time.Second, "a rate-limited call", func() bool { return r.fake.Calls(aifake.RateLimit) >= 1 })
		time.Sleep(2500 * time.Millisecond)
		// Retry-After 1s: at most one call a second, never a storm.
		if n := r.fake.Calls(aifake.RateLimit); n > 4 {
			t.Errorf("%d rate-limited calls in 2.5s with Retry-After 1s", n)
		}
		if s := r.providerState(); s != "closed" {
			t.Errorf("a rate limit moved the provider to %s", s)
		}
		r.fake.SetMode(aifake.Healthy)
		r.until(ws, task, "completed", 30*time.Second)
	})

	for _, mode := range []aifake.Mode{aifake.Quota, aifake.Unauthorized, aifake.Forbidden} {
		t.Run(string(mode)+" pauses the provider without retries", func(t *testing.T) {
			r.t = t
			r.fake.SetMode(mode)
			r.fake.ResetStats()
			ws, agent := r.workspace(nil)
			task := r.task(ws, agent)
			eventually(t, 30*time.Second, "provider paused", func() bool { return r.providerState() == "paused" })
			// Paused for 2s: in one second, at most the one probe that
			// ends a pause, never retries.
			before := r.fake.Calls(mode)
			time.Sleep(time.Second)
			if n := r.fake.Calls(mode) - before; n > 1 {
				t.Errorf("%d calls in 1s while paused: the provider is being retried", n)
			}
			reason := map[aifake.Mode]string{aifake.Quota: "quota_exhausted"}[mode]
			if reason == "" {
				reason = "unauthorized"
			}
			eventually(t, 10*time.Second, "status ai_degraded, naming "+reason, func() bool {
				st := r.c.must(200, "GET", "/v1/status", nil)
				return st.str("level") == "ai_degraded" && strings.Contains(string(st.Raw), `"reason":"`+reason+`"`)
			})
			if got := r.c.do("GET", "/v1/workspaces/"+ws+"/tasks/"+task, nil); got.str("status") == "failed" {
				t.Errorf("the task failed; it should wait for the provider")
			}
			r.fake.SetMode(aifake.Healthy)
			r.until(ws, task, "completed", 30*time.Second)
			r.healthy()
		})
	}

	for _, mode := range []aifake.Mode{aifake.Hang, aifake.Reset} {
		t.Run(string(mode)+" opens the breaker; the task waits and completes", func(t *testing.T) {
			r.t = t
			r.fake.SetMode(mode)
			ws, agent := r.workspace(nil)
			task := r.task(ws, agent)
			eventually(t, 40*time.Second, "breaker open", func() bool { s := r.providerState(); return s == "open" || s == "half_open" })
			if got := r.c.do("GET", "/v1/workspaces/"+ws+"/tasks/"+task, nil); got.str("status") == "failed" {
				t.Errorf("the task failed; it should wait for the provider")
			}
			r.fake.SetMode(aifake.Healthy)
			r.until(ws, task, "completed", 40*time.Second)
			r.healthy()
		})
	}

	t.Run("fallback local answers while the provider is down", func(t *testing.T) {
		r.t = t
		r.fake.SetMode(aifake.ServerError)
		ws, agent := r.workspace(map[string]any{"fallback_mode": "local"})
		waiting, waitingAgent := r.workspace(nil)
		// Open the breaker with a workspace that has no fallback.
		stuck := r.task(waiting, waitingAgent)
		eventually(t, 40*time.Second, "breaker open", func() bool { return r.providerState() == "open" })
		task := r.task(ws, agent)
		got := r.until(ws, task, "completed", 30*time.Second)
		if !strings.Contains(got.str("output"), "Priority") || got.str("provider") != "local" {
			t.Errorf("output %q from %q is not the local responder's", got.str("output"), got.str("provider"))
		}
		if s := r.c.must(200, "GET", "/v1/workspaces/"+waiting+"/tasks/"+stuck, nil).str("status"); s == "completed" || s == "failed" {
			t.Errorf("the task without fallback is %s; it should wait", s)
		}
		r.fake.SetMode(aifake.Healthy)
		if p := r.until(waiting, stuck, "completed", 40*time.Second).str("provider"); p != "openai" {
			t.Errorf("the waiting task was answered by %q, want openai", p)
		}
	})

	t.Run("a spent daily budget leaves tasks assigned", func(t *testing.T) {
		r.t = t
		r.healthy()
		ws, agent := r.workspace(map[string]any{"daily_token_budget": 5})
		first := r.task(ws, agent)
		r.until(ws, first, "completed", 30*time.Second)
		eventually(t, 10*time.Second, "status counts the workspace over budget, at level ai_degraded", func() bool {
			st := r.c.must(200, "GET", "/v1/status", nil)
			ai, _ := st.Body["ai"].(map[string]any)
			n, _ := ai["workspaces_over_budget"].(float64)
			reason, _ := ai["degraded"].(string)
			return n >= 1 && st.str("level") == "ai_degraded" && strings.Contains(reason, "budget")
		})
		second := r.task(ws, agent)
		time.Sleep(2 * time.Second)
		if got := r.c.must(200, "GET", "/v1/workspaces/"+ws+"/tasks/"+second, nil); got.str("status") != "assigned" ||
			got.str("waiting_for") != "ai_budget" {
			t.Errorf("a task over the budget is %s waiting for %q, want assigned, waiting for ai_budget", got.str("status"), got.str("waiting_for"))
		}
		page := r.c.must(200, "GET", "/v1/workspaces/"+ws+"/tasks?status=assigned", nil)
		if tasks, _ := page.Body["tasks"].([]any); len(tasks) != 1 || tasks[0].(map[string]any)["waiting_for"] != "ai_budget" {
			t.Errorf("the task list does not say the task waits for the budget: %s", page.Raw)
		}
		// A raised budget (as a new day would) lets the sweep start it.
		r.c.must(200, "PUT", "/v1/workspaces/"+ws+"/ai-policy", map[string]any{"daily_token_budget": 1000000}, wait, "wait=10")
		r.until(ws, second, "completed", 30*time.Second)
		if got := r.c.must(200, "GET", "/v1/workspaces/"+ws+"/tasks/"+second, nil); got.str("waiting_for") != "" {
			t.Errorf("a completed task waits for %q", got.str("waiting_for"))
		}
		eventually(t, 10*time.Second, "the level back to full", func() bool {
			return r.c.must(200, "GET", "/v1/status", nil).str("level") == "full"
		})
	})

	r.t = t
	r.p.stop()
	if strings.Contains(r.p.stderr.String(), providerKey) {
		t.Fatal("the provider key appears in the logs")
	}
}
