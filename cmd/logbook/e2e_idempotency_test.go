package main_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// mustBeKeyReused asserts the refusal of an Idempotency-Key sent with another
// request than its first.
func mustBeKeyReused(t *testing.T, r response, what string) {
	t.Helper()
	if r.Status != 422 || r.Header.Get("Content-Type") != "application/problem+json" ||
		r.str("code") != "idempotency_key_reused" || r.str("field") != "Idempotency-Key" {
		t.Fatalf("%s: %d %s, want 422 idempotency_key_reused", what, r.Status, r.Raw)
	}
}

// scrapeMetric reads one unlabelled value from /metrics.
func scrapeMetric(t *testing.T, c *client, name string) float64 {
	t.Helper()
	for _, l := range strings.Split(string(c.must(200, "GET", "/metrics", nil).Raw), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// projected polls a GET route until the read models have what it names.
func projected(t *testing.T, c *client, path string) response {
	t.Helper()
	var r response
	eventually(t, 30*time.Second, path+" projected", func() bool {
		r = c.do("GET", path, nil)
		return r.Status == 200
	})
	return r
}

func TestIdempotencyKeyWithAnotherBodyIsRefused(t *testing.T) {
	p := startDev(t, t.TempDir())
	c := newClient(t, p.URL, p.Key)
	ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "keys"}, wait, "wait=10").str("workspace_id")
	tasks := "/v1/workspaces/" + ws + "/tasks"
	wantEvents := 1

	// The first request is decided; the same request again, written
	// otherwise, gets its outcome; another body is refused, whether the
	// decider answers (right after) or the read model does (later).
	first := c.must(201, "POST", tasks, `{"title":"first","priority":1}`, wait, "wait=10", "Idempotency-Key", "k-decided")
	wantEvents++
	mustBeKeyReused(t, c.do("POST", tasks, `{"title":"second","priority":1}`, wait, "wait=10", "Idempotency-Key", "k-decided"), "another body, waiting")
	again := c.must(201, "POST", tasks, "{ \"priority\": 1,\n  \"title\": \"first\" }", wait, "wait=10", "Idempotency-Key", "k-decided")
	if again.str("command_id") != first.str("command_id") || again.str("task_id") != first.str("task_id") {
		t.Fatalf("retry of the same request: %s, want the outcome of %s", again.Raw, first.Raw)
	}
	outcome(t, c, first.str("command_id")) // in the read model now
	mustBeKeyReused(t, c.do("POST", tasks, `{"title":"first","priority":2}`, "Idempotency-Key", "k-decided"), "another body, decided")
	mustBeKeyReused(t, c.do("POST", tasks, `{"title":"second"}`, wait, "wait=10", "Idempotency-Key", "k-decided"), "another body, decided, waiting")
	if o := outcome(t, c, first.str("command_id")); o.str("status") != "accepted" {
		t.Fatalf("the refusals replaced the first outcome: %s", o.Raw)
	}
	task := projected(t, c, tasks+"/"+first.str("task_id"))
	if task.str("title") != "first" {
		t.Fatalf("task: %s", task.Raw)
	}

	// Two bodies under one key in flight at once: one is decided, the
	// other refused, and the task holds the body of the one decided.
	// Usually both reach the decider, whose window refuses the second; on a
	// starved machine the second may start late and meet the read model
	// instead. Both paths must answer alike; the unit tests of the decider
	// and of the outcome reader pin the in-flight path deterministically.
	dupsBefore := scrapeMetric(t, c, "logbook_decider_duplicates_total")
	for round := 0; round < 5; round++ {
		key := fmt.Sprintf("k-race-%d", round)
		titles := []string{fmt.Sprintf("x-%d", round), fmt.Sprintf("y-%d", round)}
		answers := make([]response, 2)
		var ready, done sync.WaitGroup
		ready.Add(1)
		for i := range titles {
			done.Add(1)
			go func() {
				defer done.Done()
				ready.Wait()
				answers[i] = c.do("POST", tasks, map[string]any{"title": titles[i]}, wait, "wait=10", "Idempotency-Key", key)
			}()
		}
		ready.Done()
		done.Wait()
		won := -1
		for i, a := range answers {
			if a.Status == 201 {
				if won >= 0 {
					t.Fatalf("round %d: both bodies accepted: %s / %s", round, answers[0].Raw, answers[1].Raw)
				}
				won = i
			}
		}
		if won < 0 {
			t.Fatalf("round %d: neither body accepted: %d %s / %d %s", round, answers[0].Status, answers[0].Raw, answers[1].Status, answers[1].Raw)
		}
		mustBeKeyReused(t, answers[1-won], fmt.Sprintf("round %d, the body not decided", round))
		wantEvents++
		if task := projected(t, c, tasks+"/"+answers[won].str("task_id")); task.str("title") != titles[won] {
			t.Fatalf("round %d: the task holds %q, the accepted request sent %q", round, task.str("title"), titles[won])
		}
	}

	t.Logf("%v of 5 races refused by the decider's window (the rest by the read model)",
		scrapeMetric(t, c, "logbook_decider_duplicates_total")-dupsBefore)

	// The same request twenty times at once: one command, one event, and
	// every request gets the same outcome.
	const n = 20
	answers := make([]response, n)
	parallel(n, n, func(i int) {
		answers[i] = c.do("POST", tasks, map[string]any{"title": "once", "priority": 3}, wait, "wait=10", "Idempotency-Key", "k-same")
	})
	wantEvents++
	for i, a := range answers {
		if a.Status != 201 || a.str("command_id") != answers[0].str("command_id") || a.str("task_id") != answers[0].str("task_id") {
			t.Fatalf("request %d: %d %s, want the outcome of %s", i, a.Status, a.Raw, answers[0].Raw)
		}
	}

	eventually(t, 30*time.Second, "trail", func() bool {
		r := c.do("GET", "/v1/workspaces/"+ws+"/events", nil)
		return r.Status == 200 && len(r.Body["events"].([]any)) >= wantEvents
	})
	time.Sleep(500 * time.Millisecond)
	if got := len(c.must(200, "GET", "/v1/workspaces/"+ws+"/events", nil).Body["events"].([]any)); got != wantEvents {
		t.Fatalf("%d events, want %d: one per command, none for a refused or repeated request", got, wantEvents)
	}
	p.stop()
}
