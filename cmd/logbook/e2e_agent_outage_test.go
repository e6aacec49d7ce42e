package main_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/internal/aifake"
)

// providerKey is the provider key the agent tests configure; it must never
// reach a log line.
const providerKey = "sk-test-7f3a9c2e41b84d6f9a0e5c1b2d3e4f50"

// agentEnv is dev with the agent calling fake on short, test-sized timers.
func agentEnv(fake *aifake.Fake, extra ...string) []string {
	return append(append(devEnv(),
		"LOGBOOK_LOG_LEVEL=debug",
		"OPENAI_API_KEY="+providerKey, "OPENAI_BASE_URL="+fake.URL(),
		"LOGBOOK_AGENT_CALL_TIMEOUT=1s", "LOGBOOK_AGENT_HANDLER_TIMEOUT=8s",
		"LOGBOOK_AGENT_RETRY_BACKOFF=100ms", "LOGBOOK_AGENT_BREAKER_DELAY=1s",
		"LOGBOOK_AGENT_AUTH_PAUSE=2s", "LOGBOOK_AGENT_RAMP=4s", "LOGBOOK_AGENT_SWEEP_EVERY=2s"), extra...)
}

// trail reads a workspace's whole event trail.
func trail(c *client, ws string) ([]map[string]any, bool) {
	var out []map[string]any
	for {
		r := c.do("GET", fmt.Sprintf("/v1/workspaces/%s/events?limit=500&after_seq=%d", ws, len(out)), nil)
		if r.Status != 200 {
			return nil, false
		}
		evs, _ := r.Body["events"].([]any)
		for _, e := range evs {
			out = append(out, e.(map[string]any))
		}
		if len(evs) < 500 {
			return out, true
		}
	}
}

// outcomesPerTask counts, per task, the attempt outcomes in the trail.
func outcomesPerTask(evs []map[string]any) map[string]int {
	n := map[string]int{}
	for _, e := range evs {
		if e["type"] == "task.result_recorded" || e["type"] == "task.attempt_failed" {
			n[e["aggregate"].(map[string]any)["id"].(string)]++
		}
	}
	return n
}

// procKiB reads a KiB figure of /proc/PID/status: "VmRSS" now, "VmHWM" at peak.
func procKiB(t testing.TB, pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field+":" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// metricValue reads an unlabelled sample from a /metrics page; -1 when absent.
func metricValue(page, name string) float64 {
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func aiProviderState(c *client) string {
	st := c.do("GET", "/v1/status", nil)
	ai, _ := st.Body["ai"].(map[string]any)
	ps, _ := ai["providers"].([]any)
	for _, p := range ps {
		if m := p.(map[string]any); m["provider"] == "openai" {
			return m["state"].(string)
		}
	}
	return ""
}

func aiBacklog(c *client) float64 {
	st := c.do("GET", "/v1/status", nil)
	ai, _ := st.Body["ai"].(map[string]any)
	b, _ := ai["backlog"].(map[string]any)
	n, _ := b["events"].(float64)
	return n
}

// The war story, scaled to test time: AI tasks keep coming, the provider
// goes down, and the outage costs delay only. Reads keep answering,
// commands are accepted, the breaker opens and provider calls stay
// bounded, the agent backlog grows while the worker's memory stays flat;
// when the provider is back the backlog drains on a ramp, every assigned
// task gets exactly one outcome, and the level returns to full.
func TestAIOutageCostsOnlyDelay(t *testing.T) {
	fake := aifake.Start()
	defer fake.Close()
	// Windows of 8 held events: the outage's backlog outgrows them, as a
	// long outage outgrows production's 256.
	const window = 8
	p := start(t, agentEnv(fake, "LOGBOOK_AGENT_WINDOW="+strconv.Itoa(window)), "dev", "--data", t.TempDir(), "--http", "127.0.0.1:0")
	c := newClient(t, p.URL, p.Key)

	const nWS = 3
	spaces := make([]string, nWS)
	agents := make([]string, nWS)
	for i := range spaces {
		spaces[i] = c.must(201, "POST", "/v1/workspaces", map[string]any{"name": fmt.Sprintf("team %d", i)}, wait, "wait=10").str("workspace_id")
		agents[i] = c.must(201, "POST", "/v1/workspaces/"+spaces[i]+"/agents", map[string]any{"name": "writer",
			"model": "gpt-4o-mini", "instructions": "Answer briefly."}, wait, "wait=10").str("agent_id")
	}

	// AI tasks arrive continuously until told to stop.
	var mu sync.Mutex
	created := map[string]string{} // task -> workspace
	stop := make(chan struct{})
	var creating sync.WaitGroup
	var refused atomic.Int64
	creating.Add(1)
	go func() {
		defer creating.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(40 * time.Millisecond):
			}
			ws := spaces[i%nWS]
			r := c.do("POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": fmt.Sprintf("t%d", i),
				"input": "summarise the incident", "assignee": agents[i%nWS]})
			if r.Status != 202 {
				refused.Add(1)
				continue
			}
			mu.Lock()
			created[r.str("task_id")] = ws
			mu.Unlock()
		}
	}()

	// Healthy: tasks complete.
	eventually(t, 30*time.Second, "the first AI results", func() bool { return fake.Calls(aifake.Healthy) >= 5 })

	// The provider goes fully down.
	fake.SetMode(aifake.ServerError)
	downAt := time.Now()
	eventually(t, 30*time.Second, "status says ai_degraded with the breaker open", func() bool {
		st := c.do("GET", "/v1/status", nil)
		return st.str("level") == "ai_degraded" && aiProviderState(c) != "closed"
	})
	rssBefore := procKiB(t, p.cmd.Process.Pid, "VmRSS")
	backlogBefore := aiBacklog(c)
	callsAtOpen := fake.Total()
	// Reads all answer, quickly, for the rest of the outage.
	var reads, slow int
	var slowest time.Duration
	for time.Since(downAt) < 12*time.Second {
		for _, ws := range spaces {
			t0 := time.Now()
			r := c.do("GET", "/v1/workspaces/"+ws+"/tasks?limit=50", nil)
			d := time.Since(t0)
			if r.Status != 200 {
				t.Fatalf("read during the outage: %d %s", r.Status, r.Raw)
			}
			reads++
			slowest = max(slowest, d)
			if d > 500*time.Millisecond {
				slow++
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	outage := time.Since(downAt)
	callsInOutage := fake.Total() - callsAtOpen
	// The backlog stays in Kafka: the workspaces' partitions are not
	// fetched past their window, and the worker holds about that much (a
	// window, and what the fetch that filled it brought past it).
	metrics := string(c.do("GET", "/metrics", nil).Raw)
	paused, held, parts := metricValue(metrics, "logbook_agent_paused_partitions"), metricValue(metrics, "logbook_agent_held_events"),
		metricValue(metrics, "logbook_agent_partitions")
	if paused < 1 || held > 3*float64(window)*parts || parts < 1 {
		t.Errorf("during the outage: %v of %v partitions paused, %v events held: want the full windows paused, about %d held each",
			paused, parts, held, window)
	}
	rssAfter := procKiB(t, p.cmd.Process.Pid, "VmRSS")
	backlogAfter := aiBacklog(c)
	if slow > reads/100 {
		t.Errorf("%d of %d reads took over 500ms during the outage (slowest %v)", slow, reads, slowest)
	}
	// Open breaker: two probes per 1s delay, not a retry storm of every
	// queued task.
	if limit := int64(4 * outage / time.Second); callsInOutage > limit {
		t.Errorf("%d provider calls in %v of open breaker, want at most %d", callsInOutage, outage, limit)
	}
	if backlogAfter <= backlogBefore {
		t.Errorf("agent backlog did not grow during the outage: %v -> %v", backlogBefore, backlogAfter)
	}
	if growth := rssAfter - rssBefore; growth > 64<<10 {
		t.Errorf("worker RSS grew by %d KiB during the outage (%d -> %d)", growth, rssBefore, rssAfter)
	}
	if refused.Load() != 0 {
		t.Errorf("%d task creations refused: commands must be accepted during an AI outage", refused.Load())
	}
	t.Logf("figures: outage %v: %d reads (slowest %v), %d provider calls with the breaker open, agent backlog %v -> %v events, RSS %d -> %d KiB, %v of %v partitions paused holding %v events",
		outage.Round(time.Millisecond), reads, slowest, callsInOutage, backlogBefore, backlogAfter, rssBefore, rssAfter, paused, parts, held)

	// The provider is back: calls resume on a ramp, the backlog drains.
	fake.SetMode(aifake.Healthy)
	eventually(t, 30*time.Second, "the breaker closes", func() bool {
		m := c.do("GET", "/metrics", nil)
		return strings.Contains(string(m.Raw), `logbook_ai_provider_state{provider="openai"} 0`)
	})
	if m := string(c.do("GET", "/metrics", nil).Raw); !strings.Contains(m, "logbook_ai_call_limit ") ||
		strings.Contains(m, "logbook_ai_call_limit 16\n") {
		t.Errorf("concurrency did not restart on a ramp after the breaker closed")
	}
	close(stop)
	creating.Wait()
	mu.Lock()
	want := len(created)
	mu.Unlock()
	eventually(t, 90*time.Second, "every assigned task has exactly one outcome", func() bool {
		got := 0
		for _, ws := range spaces {
			evs, ok := trail(c, ws)
			if !ok {
				return false
			}
			for task, n := range outcomesPerTask(evs) {
				if n != 1 {
					t.Fatalf("task %s has %d outcomes", task, n)
				}
				got++
			}
		}
		return got == want
	})
	eventually(t, 30*time.Second, "level back to full", func() bool { return c.do("GET", "/v1/status", nil).str("level") == "full" })
	p.stop()
	if strings.Contains(p.stderr.String(), providerKey) {
		t.Fatal("the provider key appears in the logs")
	}
}
