package main_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/internal/aifake"
)

// answered counts a workspace's recorded results, by task.
func answered(t *testing.T, c *client, ws string) (map[string]int, bool) {
	t.Helper()
	evs, ok := trail(c, ws)
	if !ok {
		return nil, false
	}
	n := map[string]int{}
	for _, e := range evs {
		if e["type"] == "task.result_recorded" {
			n[e["aggregate"].(map[string]any)["id"].(string)]++
		}
	}
	return n, true
}

// One workspace's deep AI backlog does not hold up another's few tasks
// queued behind it on the same partition: the worker shelves a workspace's
// assignments past its share, its window moves on, and the shelved tasks
// take their turns from the read model. First come, first served, the small
// workspace would wait for all 300 of the big one's answers.
func TestAIBacklogOfOneWorkspaceDoesNotStarveAnother(t *testing.T) {
	fake := aifake.Start()
	defer fake.Close()
	fake.SetMode(aifake.ServerError)
	// A window of 32 held events: the big workspace's backlog is many
	// windows deep, as 10,000 tasks are in production's 256.
	dev := start(t, agentEnv(fake, "LOGBOOK_PARTITIONS=1", "LOGBOOK_AGENT_WINDOW=32", "LOGBOOK_RATE_PER_KEY=-1", "LOGBOOK_LOG_LEVEL=warn"),
		"dev", "--data", t.TempDir(), "--http", "127.0.0.1:0")
	c := newClient(t, dev.URL, dev.Key)

	const nBig, nSmall = 300, 10
	space := func(name string) (string, string) {
		ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": name}, wait, "wait=10").str("workspace_id")
		agent := c.must(201, "POST", "/v1/workspaces/"+ws+"/agents", map[string]any{"name": "bot", "model": "gpt-4o-mini",
			"instructions": "Be brief."}, wait, "wait=10").str("agent_id")
		return ws, agent
	}
	big, bigAgent := space("big")
	small, smallAgent := space("small")
	create := func(ws, agent string, n int) {
		parallel(n, 16, func(i int) {
			r := c.do("POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": fmt.Sprint("t", i), "input": "summarise",
				"assignee": agent})
			if r.Status != 202 {
				t.Errorf("create: %d %s", r.Status, r.Raw)
			}
		})
	}
	create(big, bigAgent, nBig)
	create(small, smallAgent, nSmall) // behind all of the big one's, in the one partition
	eventually(t, 60*time.Second, "the breaker open", func() bool { return aiProviderState(c) == "open" })

	fake.SetRateLimit(25)
	fake.SetMode(aifake.Healthy)
	var bigWhenSmallDone int
	eventually(t, 120*time.Second, "the small workspace's tasks answered", func() bool {
		s, ok := answered(t, c, small)
		if !ok || len(s) < nSmall {
			return false
		}
		b, ok := answered(t, c, big)
		bigWhenSmallDone = len(b)
		return ok
	})
	if bigWhenSmallDone >= nBig/2 {
		t.Fatalf("the small workspace's %d tasks were done only after %d of the big one's %d", nSmall, bigWhenSmallDone, nBig)
	}
	t.Logf("small workspace done after %d of the big one's %d answers", bigWhenSmallDone, nBig)

	// Shelved tasks are all worked, each once.
	eventually(t, 120*time.Second, "every task answered", func() bool {
		b, ok := answered(t, c, big)
		return ok && len(b) == nBig
	})
	for ws, want := range map[string]int{big: nBig, small: nSmall} {
		n, _ := answered(t, c, ws)
		for task, k := range n {
			if k != 1 {
				t.Errorf("task %s has %d results", task, k)
			}
		}
		if len(n) != want {
			t.Errorf("workspace %s: %d tasks answered, want %d", ws, len(n), want)
		}
	}
	if calls := fake.Calls(aifake.Healthy); calls != nBig+nSmall {
		t.Errorf("the provider answered %d calls for %d tasks: a task was asked twice", calls, nBig+nSmall)
	}
}
