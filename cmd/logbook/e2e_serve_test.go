package main_test

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestServeProcessesShareWorkAndSurviveAKill runs one API process and two
// processes sharing the decider and projector roles, kills one of the two
// mid-run, and checks that every command has exactly one outcome and every
// event is in the log and the read models exactly once.
func TestServeProcessesShareWorkAndSurviveAKill(t *testing.T) {
	env := clusterEnv(t, 6)
	api := start(t, env, "serve", "--roles", "api", "--http", "127.0.0.1:0")
	w1 := start(t, env, "serve", "--roles", "decider,projector")
	w2 := start(t, env, "serve", "--roles", "decider,projector")
	c := newClient(t, api.URL, testKey)

	const nWS = 12
	spaces := make([]string, nWS)
	parallel(nWS, 6, func(i int) {
		r := c.do("POST", "/v1/workspaces", map[string]any{"name": fmt.Sprintf("ws-%d", i)}, wait, "wait=30")
		if r.Status != 201 {
			t.Errorf("create workspace: %d %s", r.Status, r.Raw)
			return
		}
		spaces[i] = r.str("workspace_id")
	})
	if t.Failed() {
		t.FailNow()
	}

	// Continuous load from a bounded client while one worker is killed.
	var (
		mu   sync.Mutex
		cmds []string
		sent atomic.Int64
	)
	const total = 600
	killed := make(chan struct{})
	go func() {
		for sent.Load() < total/3 {
			time.Sleep(20 * time.Millisecond)
		}
		w1.kill() // SIGKILL: no goodbye to the group, transaction left open
		close(killed)
	}()
	parallel(total, 12, func(i int) {
		r := c.do("POST", "/v1/workspaces/"+spaces[i%nWS]+"/tasks", map[string]any{"title": fmt.Sprintf("t%d", i)})
		sent.Add(1)
		if r.Status != 202 {
			t.Errorf("create task: %d %s", r.Status, r.Raw)
			return
		}
		mu.Lock()
		cmds = append(cmds, r.str("command_id"))
		mu.Unlock()
	})
	<-killed
	if t.Failed() {
		t.FailNow()
	}

	var notAccepted atomic.Int64
	parallel(len(cmds), 12, func(i int) {
		if r := outcomeNoFatal(c, cmds[i]); r.str("status") != "accepted" {
			notAccepted.Add(1)
			t.Errorf("command %s: %s", cmds[i], r.Raw)
		}
	})
	if notAccepted.Load() > 0 {
		t.Logf("surviving worker's log:\n%s\napi log:\n%s", w2.stderr.String(), api.stderr.String())
	}
	// Every workspace's trail: gapless, each task created exactly once.
	created := 0
	for _, ws := range spaces {
		eventually(t, 90*time.Second, "trail of "+ws, func() bool {
			r := c.do("GET", "/v1/workspaces/"+ws+"/events?limit=500", nil)
			if r.Status != 200 {
				return false // not projected yet
			}
			evs := r.Body["events"].([]any)
			seen := map[string]bool{}
			for i, e := range evs {
				m := e.(map[string]any)
				if int(m["seq"].(float64)) != i+1 {
					t.Fatalf("workspace %s: seq %v at position %d", ws, m["seq"], i)
				}
				if m["type"] == "task.created" {
					id := m["aggregate"].(map[string]any)["id"].(string)
					if seen[id] {
						t.Fatalf("task %s created twice", id)
					}
					seen[id] = true
				}
			}
			if len(seen) == total/nWS {
				created += len(seen)
				return true
			}
			return false
		})
	}
	fmt.Printf("serve kill test: sent=%d acknowledged=%d accepted=%d lost=%d duplicated=0\n",
		total, len(cmds), len(cmds)-int(notAccepted.Load()), total-created)
	if created != total {
		t.Fatalf("created %d tasks, want %d", created, total)
	}
	verify := exec.Command(binary, "audit", "verify")
	verify.Env = append(verify.Environ(), env...)
	if out, err := verify.CombinedOutput(); err != nil || !strings.Contains(string(out), "0 broken chains") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	w2.stop()
	api.stop()
}

// TestBacklogAnswers429UntilTheDeciderCatchesUp: with no decider running the
// commands pile up in the log; past the configured backlog the API answers
// 429 with Retry-After instead of accepting more, and admits again once a
// decider has drained the backlog. Nothing accepted is lost.
func TestBacklogAnswers429UntilTheDeciderCatchesUp(t *testing.T) {
	env := clusterEnv(t, 2, "LOGBOOK_MAX_COMMAND_LAG=20")
	api := start(t, env, "serve", "--roles", "api,projector", "--http", "127.0.0.1:0")
	c := newClient(t, api.URL, testKey)

	var accepted []string
	refused := 0
	for i := 0; i < 400 && refused == 0; i++ {
		r := c.do("POST", "/v1/workspaces", map[string]any{"name": fmt.Sprintf("w%d", i)})
		switch r.Status {
		case 202:
			accepted = append(accepted, r.str("command_id"))
		case 429:
			refused++
			if r.str("code") != "backlog" {
				t.Fatalf("429 for another reason than the backlog: %s", r.Raw)
			}
			if r.Header.Get("Retry-After") == "" || r.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("429 without Retry-After or problem: %v %s", r.Header, r.Raw)
			}
		default:
			t.Fatalf("status %d: %s", r.Status, r.Raw)
		}
		time.Sleep(10 * time.Millisecond) // let the lag monitor see the backlog
	}
	if refused == 0 || len(accepted) < 20 {
		t.Fatalf("backlog never refused: accepted %d, refused %d\n%s\n%s", len(accepted), refused, c.do("GET", "/v1/status", nil).Raw, api.stderr.String())
	}

	if d, ok := c.must(200, "GET", "/v1/status", nil).Body["decider"].(map[string]any); !ok || d["lag"].(float64) < 20 {
		t.Fatalf("status does not show the backlog: %v", d)
	}
	dec := start(t, env, "serve", "--roles", "decider")
	for _, id := range accepted {
		if r := outcomeNoFatal(c, id); r.str("status") != "accepted" {
			t.Fatalf("command %s after the backlog drained: %s", id, r.Raw)
		}
	}
	eventually(t, 30*time.Second, "admission again", func() bool {
		return c.do("POST", "/v1/workspaces", map[string]any{"name": "after"}).Status == 202
	})
	var status response
	eventually(t, 10*time.Second, "status shows the lag", func() bool {
		status = c.must(200, "GET", "/v1/status", nil)
		d, ok := status.Body["decider"].(map[string]any)
		return ok && d["lag"].(float64) < 20
	})
	dec.stop()
	api.stop()
}
