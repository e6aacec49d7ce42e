package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
)

// devEnv keeps test processes off the developer's defaults. The
// failed-authentication throttle stays on, far above the default 30 a
// minute: tests send wrong keys on purpose, more than a client would.
func devEnv() []string {
	return []string{"LOGBOOK_ADMIN_KEY=", "LOGBOOK_DATABASE_URL=", "LOGBOOK_KAFKA_BROKERS=", "LOGBOOK_LOG_LEVEL=warn",
		"LOGBOOK_AUTH_FAILURES_PER_MINUTE=1000", "OPENAI_API_KEY=", "OPENAI_BASE_URL=", "LOGBOOK_AI_PROVIDER=",
		"LOGBOOK_MASTER_KEY=", "LOGBOOK_MASTER_KEY_FILE=", "LOGBOOK_SIGNING_KEY=", "LOGBOOK_SIGNING_KEY_FILE=",
		"LOGBOOK_SIGNING_PUBLIC_KEYS=", "LOGBOOK_SIGNING_PUBLIC_KEYS_FILE="}
}

// devKafka connects to the embedded broker of the dev instance on dir as
// its one principal (DIR/kafka.password).
func devKafka(t testing.TB, p *proc, dir string, opts ...kgo.Opt) []kgo.Opt {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "kafka.password"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := kafka.Config{Brokers: strings.Split(p.Kafka, ","), SASL: kafka.SASL{User: "logbook", Password: strings.TrimSpace(string(b))}}
	return append(cfg.Opts(), opts...)
}

func startDev(t *testing.T, dir string) *proc {
	return start(t, devEnv(), "dev", "--data", dir, "--http", "127.0.0.1:0")
}

// outcome polls GET /v1/commands/{id} until it is decided.
func outcome(t *testing.T, c *client, id string) response {
	t.Helper()
	var r response
	eventually(t, 60*time.Second, "outcome of "+id, func() bool {
		r = c.do("GET", "/v1/commands/"+id, nil)
		return r.Status == 200 && r.str("status") != "pending"
	})
	return r
}

func TestEndToEndThousandTasksAcrossFiftyWorkspaces(t *testing.T) {
	dir := t.TempDir()
	p := startDev(t, dir)
	if p.Key == "" {
		t.Fatal("dev did not print an admin key on first start")
	}
	c := newClient(t, p.URL, p.Key)

	const nWS, perWS = 50, 20
	type ws struct{ id, agent, member string }
	spaces := make([]ws, nWS)
	var mu sync.Mutex
	var commandIDs []string
	record := func(id string) {
		mu.Lock()
		commandIDs = append(commandIDs, id)
		mu.Unlock()
	}
	parallel(nWS, 10, func(i int) {
		r := c.do("POST", "/v1/workspaces", map[string]any{"name": fmt.Sprintf("ws-%d", i)}, wait, "wait=10")
		if r.Status != 201 {
			t.Errorf("create workspace: %d %s", r.Status, r.Raw)
			return
		}
		spaces[i].id = r.str("workspace_id")
		record(r.str("command_id"))
		a := c.do("POST", "/v1/workspaces/"+spaces[i].id+"/agents",
			map[string]any{"name": "ada", "role": "engineer", "model": "local", "instructions": "be brief"}, wait, "wait=10")
		if a.Status != 201 || a.str("agent_id") == "" {
			t.Errorf("register agent: %d %s", a.Status, a.Raw)
			return
		}
		spaces[i].agent = a.str("agent_id")
		record(a.str("command_id"))
		spaces[i].member = fmt.Sprintf("operator-%d", i)
		m := c.do("POST", "/v1/workspaces/"+spaces[i].id+"/members", map[string]any{"principal_id": spaces[i].member, "role": "writer"}, wait, "wait=10")
		if m.Status != 200 {
			t.Errorf("add member: %d %s", m.Status, m.Raw)
			return
		}
		record(m.str("command_id"))
	})
	if t.Failed() {
		t.FailNow()
	}

	// 1,000 tasks, concurrently, without waiting: 202 and ids.
	type task struct{ ws, agent, member, id string }
	tasks := make([]task, nWS*perWS)
	parallel(len(tasks), 32, func(i int) {
		s := spaces[i%nWS]
		r := c.do("POST", "/v1/workspaces/"+s.id+"/tasks", map[string]any{"title": fmt.Sprintf("task %d", i), "input": "do it", "priority": i % 10})
		if r.Status != 202 || r.str("task_id") == "" || r.str("command_id") == "" {
			t.Errorf("create task: %d %s", r.Status, r.Raw)
			return
		}
		tasks[i] = task{s.id, s.agent, s.member, r.str("task_id")}
		record(r.str("command_id"))
	})
	if t.Failed() {
		t.FailNow()
	}

	// Move some through their lifecycle: every 4th completed by hand,
	// every 4th+1 cancelled, every 4th+2 assigned to the AI agent (which
	// completes it with the local provider), the rest stay pending.
	want := map[string]string{}
	parallel(len(tasks), 16, func(i int) {
		tk := tasks[i]
		base := "/v1/workspaces/" + tk.ws + "/tasks/" + tk.id
		step := func(path string, body any) bool {
			r := c.do("POST", base+path, body, wait, "wait=20")
			if r.Status != 200 {
				t.Errorf("%s: %d %s", path, r.Status, r.Raw)
				return false
			}
			record(r.str("command_id"))
			return true
		}
		var status string
		switch i % 4 {
		case 0:
			if !step("/assign", map[string]any{"assignee": tk.member}) || !step("/start", nil) || !step("/complete", map[string]any{"output": "done"}) {
				return
			}
			status = "completed"
		case 1:
			if !step("/cancel", map[string]any{"reason": "not needed"}) {
				return
			}
			status = "cancelled"
		case 2:
			if !step("/assign", map[string]any{"assignee": tk.agent}) {
				return
			}
			status = "completed"
		default:
			status = "pending"
		}
		mu.Lock()
		want[tk.id] = status
		mu.Unlock()
	})
	if t.Failed() {
		t.FailNow()
	}

	// Every command has exactly one outcome, and all were accepted.
	var rejected atomic.Int64
	parallel(len(commandIDs), 16, func(i int) {
		r := outcomeNoFatal(c, commandIDs[i])
		if r.str("status") != "accepted" {
			rejected.Add(1)
			t.Errorf("command %s: %s", commandIDs[i], r.Raw)
		}
	})
	if rejected.Load() > 0 {
		t.FailNow()
	}

	// Every task reads back with the right state (paging through each
	// workspace) once the read models have caught up.
	got := map[string]string{}
	for _, s := range spaces {
		eventually(t, 60*time.Second, "tasks of "+s.id, func() bool {
			n := 0
			cursor := ""
			for {
				r := c.do("GET", "/v1/workspaces/"+s.id+"/tasks?limit=7"+cursorParam(cursor), nil)
				if r.Status != 200 {
					return false // not projected yet
				}
				for _, v := range r.Body["tasks"].([]any) {
					m := v.(map[string]any)
					id, st := m["id"].(string), m["status"].(string)
					got[id] = st
					if st != want[id] {
						return false
					}
					n++
				}
				next, _ := r.Body["next_cursor"].(string)
				if next == "" {
					break
				}
				cursor = next
			}
			return n == perWS
		})
	}
	for id, st := range want {
		if got[id] != st {
			t.Errorf("task %s: status %q, want %q", id, got[id], st)
		}
	}
	if len(want) != len(tasks) {
		t.Fatalf("lifecycle covered %d tasks of %d", len(want), len(tasks))
	}

	// The log's hash chains verify.
	out, err := exec.Command(binary, "audit", "verify", "--data", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "0 broken chains") {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
	p.stop()
}

// outcomeNoFatal is outcome for worker goroutines (no FailNow there).
func outcomeNoFatal(c *client, id string) response {
	deadline := time.Now().Add(120 * time.Second)
	for {
		r := c.do("GET", "/v1/commands/"+id, nil)
		if (r.Status == 200 && r.str("status") != "pending") || time.Now().After(deadline) {
			return r
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRestartKeepsDataAndSeqContinues(t *testing.T) {
	dir := t.TempDir()
	p := startDev(t, dir)
	key := p.Key
	c := newClient(t, p.URL, key)
	ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "persist"}, wait, "wait=10").str("workspace_id")
	var taskIDs []string
	for i := 0; i < 5; i++ {
		taskIDs = append(taskIDs, c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "t"}, wait, "wait=10").str("task_id"))
	}
	eventually(t, 30*time.Second, "trail", func() bool {
		r := c.do("GET", "/v1/workspaces/"+ws+"/events", nil)
		if r.Status != 200 {
			return false // not projected yet
		}
		return len(r.Body["events"].([]any)) == 6
	})
	p.stop()

	p2 := startDev(t, dir)
	if p2.Key != "" {
		t.Fatal("the admin key must be printed only once")
	}
	c2 := newClient(t, p2.URL, key)
	for _, id := range taskIDs {
		c2.must(200, "GET", "/v1/workspaces/"+ws+"/tasks/"+id, nil)
	}
	c2.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "after restart"}, wait, "wait=20")
	var seqs []int
	eventually(t, 30*time.Second, "trail after restart", func() bool {
		r := c2.do("GET", "/v1/workspaces/"+ws+"/events", nil)
		if r.Status != 200 {
			return false // not projected yet
		}
		seqs = seqs[:0]
		for _, e := range r.Body["events"].([]any) {
			seqs = append(seqs, int(e.(map[string]any)["seq"].(float64)))
		}
		return len(seqs) == 7
	})
	for i, s := range seqs {
		if s != i+1 {
			t.Fatalf("seq after restart not gapless: %v", seqs)
		}
	}
	p2.stop()
}

func TestConcurrentConflictingTransitionsHaveOneWinner(t *testing.T) {
	p := startDev(t, t.TempDir())
	c := newClient(t, p.URL, p.Key)
	ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "race"}, wait, "wait=10").str("workspace_id")
	// Assigned to a member: a task assigned to an AI agent would be started
	// by the agent worker too.
	const member = "operator"
	c.must(200, "POST", "/v1/workspaces/"+ws+"/members", map[string]any{"principal_id": member, "role": "writer"}, wait, "wait=10")
	task := c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "contended", "assignee": member}, wait, "wait=10").str("task_id")

	// 20 clients race to move the same task: 10 start it, 10 cancel it.
	var ok, conflict, other atomic.Int64
	parallel(20, 20, func(i int) {
		action := "/start"
		if i%2 == 1 {
			action = "/cancel"
		}
		r := c.do("POST", "/v1/workspaces/"+ws+"/tasks/"+task+action, nil, wait, "wait=20")
		switch r.Status {
		case 200:
			ok.Add(1)
		case 409:
			conflict.Add(1)
		default:
			other.Add(1)
			t.Errorf("%s: %d %s", action, r.Status, r.Raw)
		}
	})
	// start then cancel are both legal in sequence (in_progress can be
	// cancelled); start after cancel is not. So: either exactly one cancel
	// wins (and everything after it conflicts), or one start wins and then
	// one cancel wins.
	if other.Load() != 0 || ok.Load()+conflict.Load() != 20 || ok.Load() < 1 || ok.Load() > 2 {
		t.Fatalf("ok=%d conflict=%d other=%d", ok.Load(), conflict.Load(), other.Load())
	}
	eventually(t, 30*time.Second, "task state", func() bool {
		r := c.do("GET", "/v1/workspaces/"+ws+"/tasks/"+task, nil) // 404 until projected
		return r.Status == 200 && r.str("status") == "cancelled" && r.Body["version"].(float64) == float64(2+ok.Load())
	})

	// Pure contention: 20 concurrent starts of one assigned task.
	task2 := c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "contended 2", "assignee": member}, wait, "wait=10").str("task_id")
	ok.Store(0)
	conflict.Store(0)
	parallel(20, 20, func(int) {
		switch r := c.do("POST", "/v1/workspaces/"+ws+"/tasks/"+task2+"/start", nil, wait, "wait=20"); r.Status {
		case 200:
			ok.Add(1)
		case 409:
			conflict.Add(1)
			if r.Header.Get("Content-Type") != "application/problem+json" {
				t.Errorf("409 without problem+json")
			}
		default:
			t.Errorf("start: %d %s", r.Status, r.Raw)
		}
	})
	if ok.Load() != 1 || conflict.Load() != 19 {
		t.Fatalf("want exactly one winner and 19 conflicts, got ok=%d conflict=%d", ok.Load(), conflict.Load())
	}
	p.stop()
}

func TestIdempotencyKeyReturnsFirstOutcome(t *testing.T) {
	p := startDev(t, t.TempDir())
	c := newClient(t, p.URL, p.Key)
	ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "idem"}, wait, "wait=10").str("workspace_id")
	first := c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "once"}, wait, "wait=10", "Idempotency-Key", "k-1")
	again := c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "once"}, wait, "wait=10", "Idempotency-Key", "k-1")
	async := c.must(202, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "twice?"}, "Idempotency-Key", "k-2")
	asyncAgain := c.do("POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "twice?"}, "Idempotency-Key", "k-2")
	if first.str("command_id") != again.str("command_id") || first.str("task_id") != again.str("task_id") {
		t.Fatalf("retry got another command: %s vs %s", first.Raw, again.Raw)
	}
	if async.str("task_id") != asyncAgain.str("task_id") || async.str("command_id") != asyncAgain.str("command_id") {
		t.Fatalf("async retry got another task: %s vs %s", async.Raw, asyncAgain.Raw)
	}
	outcome(t, c, asyncAgain.str("command_id"))
	eventually(t, 30*time.Second, "trail", func() bool {
		r := c.do("GET", "/v1/workspaces/"+ws+"/events", nil)
		if r.Status != 200 {
			return false // not projected yet
		}
		return len(r.Body["events"].([]any)) == 3 // workspace + two tasks, never a second event
	})
	time.Sleep(500 * time.Millisecond)
	if n := len(c.must(200, "GET", "/v1/workspaces/"+ws+"/events", nil).Body["events"].([]any)); n != 3 {
		t.Fatalf("want 3 events, got %d", n)
	}
	p.stop()
}

func TestBadInputGetsPreciseProblems(t *testing.T) {
	p := startDev(t, t.TempDir())
	c := newClient(t, p.URL, p.Key)
	ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "bad"}, wait, "wait=10").str("workspace_id")
	task := c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "t"}, wait, "wait=10").str("task_id")
	big := `{"name":"` + strings.Repeat("x", 300<<10) + `"}`
	cases := []struct {
		name, method, path string
		body               any
		headers            []string
		status             int
		field              string
	}{
		{"malformed json", "POST", "/v1/workspaces", `{"name":`, nil, 400, ""},
		{"not an object", "POST", "/v1/workspaces", `[1,2]`, nil, 400, ""},
		{"duplicate key", "POST", "/v1/workspaces", `{"name":"a","name":"b"}`, nil, 400, "name"},
		{"NUL in a field", "POST", "/v1/workspaces", `{"name":"a\u0000"}`, nil, 422, "name"},
		{"trailing data", "POST", "/v1/workspaces", `{"name":"a"} {}`, nil, 400, ""},
		{"unknown field", "POST", "/v1/workspaces", `{"name":"a","owner":"me"}`, nil, 422, "owner"},
		{"wrong type", "POST", "/v1/workspaces/" + ws + "/tasks", `{"title":"t","priority":"high"}`, nil, 422, "priority"},
		{"missing name", "POST", "/v1/workspaces", `{}`, nil, 422, "name"},
		{"title too long", "POST", "/v1/workspaces/" + ws + "/tasks", map[string]any{"title": strings.Repeat("t", 501)}, nil, 422, "title"},
		{"priority out of range", "POST", "/v1/workspaces/" + ws + "/tasks", map[string]any{"title": "t", "priority": 99}, nil, 422, "priority"},
		{"oversized body", "POST", "/v1/workspaces", big, nil, 413, ""},
		{"unknown workspace", "POST", "/v1/workspaces/00000000-0000-7000-8000-000000000000/tasks", map[string]any{"title": "t"}, []string{wait, "wait=10"}, 404, ""},
		{"malformed workspace id", "GET", "/v1/workspaces/abc", nil, nil, 404, ""},
		{"unknown task", "GET", "/v1/workspaces/" + ws + "/tasks/00000000-0000-7000-8000-000000000000", nil, nil, 404, ""},
		{"illegal transition", "POST", "/v1/workspaces/" + ws + "/tasks/" + task + "/complete", nil, []string{wait, "wait=10"}, 409, ""},
		{"assign to nobody", "POST", "/v1/workspaces/" + ws + "/tasks/" + task + "/assign", map[string]any{"assignee": ""}, nil, 422, "assignee"},
		{"assign to a stranger", "POST", "/v1/workspaces/" + ws + "/tasks/" + task + "/assign", map[string]any{"assignee": "nobody"}, []string{wait, "wait=10"}, 422, "assignee"},
		{"bad correlation id", "POST", "/v1/workspaces", map[string]any{"name": "a"}, []string{"X-Correlation-ID", "has space"}, 400, "X-Correlation-ID"},
		{"bad expected version", "POST", "/v1/workspaces/" + ws + "/tasks/" + task + "/cancel", nil, []string{"If-Match", "soon"}, 400, "If-Match"},
		{"stale expected version", "POST", "/v1/workspaces/" + ws + "/tasks/" + task + "/cancel", nil, []string{"If-Match", "7", wait, "wait=10"}, 409, ""},
		{"empty if-match", "POST", "/v1/workspaces", map[string]any{"name": "a"}, []string{"If-Match", ""}, 400, "If-Match"},
		{"overflowing if-match", "POST", "/v1/workspaces", map[string]any{"name": "a"}, []string{"If-Match", "99999999999999999999"}, 400, "If-Match"},
		{"empty idempotency key", "POST", "/v1/workspaces", map[string]any{"name": "a"}, []string{"Idempotency-Key", ""}, 400, "Idempotency-Key"},
		{"unknown route", "GET", "/v1/nothing", nil, nil, 404, ""},
		{"wrong method", "DELETE", "/v1/workspaces", nil, nil, 405, ""},
		{"bad limit", "GET", "/v1/workspaces/" + ws + "/tasks?limit=100000", nil, nil, 422, "limit"},
		{"empty limit", "GET", "/v1/workspaces/" + ws + "/tasks?limit=", nil, nil, 422, "limit"},
		{"empty cursor", "GET", "/v1/workspaces/" + ws + "/tasks?cursor=", nil, nil, 422, "cursor"},
		{"status twice", "GET", "/v1/workspaces/" + ws + "/tasks?status=pending&status=failed", nil, nil, 422, "status"},
		{"empty after_seq", "GET", "/v1/workspaces/" + ws + "/events?after_seq=", nil, nil, 422, "after_seq"},
		{"null for a field", "POST", "/v1/workspaces/" + ws + "/tasks", `{"title":"t","input":null}`, nil, 422, "input"},
		{"result without a body", "POST", "/v1/workspaces/" + ws + "/tasks/" + task + "/result", nil, nil, 400, ""},
		{"result without attempt", "POST", "/v1/workspaces/" + ws + "/tasks/" + task + "/result", `{"output":"x"}`, nil, 422, "attempt"},
		{"negative attempt", "POST", "/v1/workspaces/" + ws + "/tasks/" + task + "/fail", `{"attempt":-1,"reason":"x"}`, nil, 422, "attempt"},
		{"attempt past int64", "POST", "/v1/workspaces/" + ws + "/tasks/" + task + "/fail", `{"attempt":9223372036854775808,"reason":"x"}`, nil, 422, "attempt"},
		{"metrics by POST", "POST", "/metrics", nil, nil, 405, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, p.URL, p.Key)
			r := c.do(tc.method, tc.path, tc.body, tc.headers...)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Raw)
			}
			if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("content type %q: %s", ct, r.Raw)
			}
			if tc.field != "" && r.str("field") != tc.field {
				t.Fatalf("field %q, want %q: %s", r.str("field"), tc.field, r.Raw)
			}
			if r.str("title") == "" || r.Body["status"].(float64) != float64(tc.status) {
				t.Fatalf("incomplete problem: %s", r.Raw)
			}
		})
	}
	t.Run("wrong content type", func(t *testing.T) {
		r := newClient(t, p.URL, p.Key).do("POST", "/v1/workspaces", `{"name":"a"}`, "Content-Type", "text/plain")
		if r.Status != 415 {
			t.Fatalf("status %d: %s", r.Status, r.Raw)
		}
	})
	t.Run("missing key", func(t *testing.T) {
		r := newClient(t, p.URL, "").do("GET", "/v1/workspaces/"+ws, nil)
		if r.Status != 401 || r.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("status %d: %s", r.Status, r.Raw)
		}
	})
	t.Run("invalid key", func(t *testing.T) {
		r := newClient(t, p.URL, "lbk_not-a-key").do("POST", "/v1/workspaces", map[string]any{"name": "a"})
		if r.Status != 401 {
			t.Fatalf("status %d: %s", r.Status, r.Raw)
		}
	})
	if strings.Contains(p.stderr.String(), p.Key) {
		t.Fatal("the admin key reached a log line")
	}
	p.stop()
}

// TestLoadgenChecksEveryAcknowledgedCommand: loadgen's figures add up, its
// checker follows every acknowledged command of a lifecycle mix to the log
// and the read models and finds them clean; after a task of the run is
// changed behind the log's back, `loadgen check` on the run's report finds
// exactly that task and fails.
func TestLoadgenChecksEveryAcknowledgedCommand(t *testing.T) {
	dir := t.TempDir()
	p := startDev(t, dir)
	report := filepath.Join(t.TempDir(), "run.json")
	out, err := exec.Command(binary, "loadgen", "--url", p.URL, "--key", p.Key, "--data", dir, "--workspaces", "4",
		"--commands", "400", "--concurrency", "8", "--json", "--progress=false", "--timeout", "2m", "--report", report).Output()
	if err != nil {
		t.Fatalf("loadgen: %v\n%s", err, out)
	}
	var res map[string]any
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("loadgen output %q: %v", out, err)
	}
	n := func(k string) float64 { v, _ := res[k].(float64); return v }
	if n("accepted")+n("refused")+n("failed") != 400 || n("accepted") == 0 || n("failed") != 0 {
		t.Fatalf("loadgen figures do not add up: %v", res)
	}
	if n("end_to_end_per_s") <= 0 || n("end_to_end_per_s") > n("accepted_per_s") {
		t.Fatalf("end-to-end rate %v must be positive and at most the accepted rate %v", n("end_to_end_per_s"), n("accepted_per_s"))
	}
	if res["check_ok"] != true || n("lost")+n("duplicated")+n("seq_gaps")+n("read_model_mismatches") != 0 {
		t.Fatalf("the check of a sound run failed: %v", res)
	}
	page, err := os.ReadFile(strings.TrimSuffix(report, ".json") + ".html")
	if err != nil || !strings.Contains(string(page), "<svg") || strings.Contains(string(page), "<script") {
		t.Fatalf("HTML report: %v", err)
	}

	// Change one pending task of the run in the read models, not in the log.
	var rep struct {
		Workspaces []string `json:"workspace_ids"`
		History    []struct {
			Op, Workspace, Task string
		} `json:"history"`
	}
	raw, err := os.ReadFile(report)
	if err != nil || json.Unmarshal(raw, &rep) != nil || len(rep.Workspaces) != 4 {
		t.Fatalf("report %s: %v", report, err)
	}
	url, err := os.ReadFile(filepath.Join(dir, "postgres.url"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db, err := pgx.Connect(ctx, strings.TrimSpace(string(url)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	var task string
	if err := db.QueryRow(ctx, `UPDATE tasks SET status = 'completed'
		WHERE (workspace_id, id) = (SELECT workspace_id, id FROM tasks WHERE workspace_id = ANY($1) AND status = 'pending' LIMIT 1)
		RETURNING id`, rep.Workspaces).Scan(&task); err != nil {
		t.Fatalf("no pending task of the run to change: %v", err)
	}
	out, err = exec.Command(binary, "loadgen", "check", "--url", p.URL, "--key", p.Key, "--data", dir,
		"--report", report, "--check-wait", "2s").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "read-model mismatches 1 ") ||
		!strings.Contains(string(out), "task "+task+" is completed, the log says pending") {
		t.Fatalf("loadgen check must find the changed task %s and fail: %v\n%s", task, err, out)
	}

	if out, err := exec.Command(binary, "loadgen", "--url", "http://10.0.0.1:8080", "--key", "k").CombinedOutput(); err == nil {
		t.Fatalf("loadgen must refuse non-loopback targets without --allow-remote: %s", out)
	}
	p.stop()
}
