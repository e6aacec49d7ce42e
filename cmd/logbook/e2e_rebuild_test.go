package main_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/logbook-dev/logbook/internal/kafkatest"
)

// The read models are rebuilt from the log while queries and commands go
// on. Every query is answered and none goes back in time: a workspace's
// last_seq never decreases and a task once read never vanishes. After the
// switch the live projection goes on in the new tables, and they equal,
// table by table, read models built from the log with nothing else running.
func TestProjectionsRebuildUnderQueryLoad(t *testing.T) {
	env := clusterEnv(t, 3)
	p := start(t, env, "serve", "--http", "127.0.0.1:0")
	c := newClient(t, p.URL, testKey)
	var dbURL string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "LOGBOOK_DATABASE_URL="); ok {
			dbURL = v
		}
	}

	spaces, perSpace := 3, 100
	if kafkatest.Real() {
		perSpace = 30 // a replicated transaction per decision on 2 shared cores
	}
	ws := make([]string, spaces)
	tasks := make([][]string, spaces)
	// Accepted (202) is enough: the read models are awaited below.
	accepted := func(path string, body any) string {
		r := c.do("POST", path, body, wait, "wait=10")
		if r.Status != 201 && r.Status != 202 {
			t.Errorf("POST %s = %d: %s", path, r.Status, r.Raw)
		}
		if id := r.str("task_id"); id != "" {
			return id
		}
		return r.str("workspace_id")
	}
	for i := range ws {
		ws[i] = accepted("/v1/workspaces", map[string]any{"name": fmt.Sprintf("rebuild-%d", i)})
		tasks[i] = make([]string, perSpace)
	}
	for i := range ws {
		projected(t, c, "/v1/workspaces/"+ws[i])
	}
	parallel(spaces*perSpace, 16, func(n int) {
		i, j := n%spaces, n/spaces
		tasks[i][j] = accepted("/v1/workspaces/"+ws[i]+"/tasks", map[string]any{"title": fmt.Sprintf("t%d", j), "labels": []string{"rebuild"}})
	})
	if t.Failed() {
		t.FailNow()
	}
	for i := range ws {
		for _, id := range tasks[i] {
			projected(t, c, "/v1/workspaces/"+ws[i]+"/tasks/"+id)
		}
	}

	// Readers: each query must answer 200 and never show less than before.
	ctx, stop := context.WithCancel(t.Context())
	var queries, during atomic.Int64
	var rebuilding atomic.Bool
	var mu sync.Mutex
	var failures []string
	fail := func(f string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(failures) < 20 {
			failures = append(failures, fmt.Sprintf(f, a...))
		}
	}
	var wg sync.WaitGroup
	for r := range 4 {
		wg.Go(func() {
			lastSeq := map[string]int64{}
			for n := 0; ctx.Err() == nil; n++ {
				i := (r + n) % spaces
				w := c.do("GET", "/v1/workspaces/"+ws[i], nil)
				task := c.do("GET", "/v1/workspaces/"+ws[i]+"/tasks/"+tasks[i][(n*7)%perSpace], nil)
				list := c.do("GET", "/v1/workspaces/"+ws[i]+"/tasks?label=rebuild&limit=5", nil)
				queries.Add(3)
				if rebuilding.Load() {
					during.Add(3)
				}
				if ctx.Err() != nil {
					return
				}
				for _, resp := range []response{w, task, list} {
					if resp.Status != 200 {
						fail("reader %d: %d %s", r, resp.Status, resp.Raw)
					}
				}
				seq, _ := w.Body["last_seq"].(float64)
				if int64(seq) < lastSeq[ws[i]] {
					fail("reader %d: workspace %s went back from seq %d to %v", r, ws[i], lastSeq[ws[i]], seq)
				}
				lastSeq[ws[i]] = int64(seq)
				if got, _ := list.Body["tasks"].([]any); len(got) != 5 {
					fail("reader %d: %d tasks listed, want 5: %s", r, len(got), list.Raw)
				}
			}
		})
	}
	// A writer: commands go on during the rebuild.
	var written []string
	wg.Go(func() {
		for n := 0; ctx.Err() == nil; n++ {
			r := c.do("POST", "/v1/workspaces/"+ws[n%spaces]+"/tasks", map[string]any{"title": fmt.Sprintf("during-%d", n)})
			if r.Status == 202 {
				written = append(written, ws[n%spaces]+"/"+r.str("task_id"))
			} else if ctx.Err() == nil {
				fail("writer: %d %s", r.Status, r.Raw)
			}
			time.Sleep(5 * time.Millisecond)
		}
	})

	time.Sleep(300 * time.Millisecond)
	rebuilding.Store(true)
	out := tool(t, env, "projections", "rebuild", "--keep-previous")
	rebuilding.Store(false)
	time.Sleep(500 * time.Millisecond)
	stop()
	wg.Wait()
	t.Logf("%s; %d queries, %d of them during the rebuild", strings.TrimSpace(out), queries.Load(), during.Load())
	if len(failures) > 0 {
		t.Fatalf("queries failed or went back in time:\n%s", strings.Join(failures, "\n"))
	}
	if during.Load() < 30 || len(written) == 0 {
		t.Fatalf("%d queries and %d commands during the rebuild: the test did not load it", during.Load(), len(written))
	}

	// The live projection goes on in the new tables.
	for _, id := range written {
		eventually(t, 20*time.Second, "a task written during the rebuild in the read models", func() bool {
			w, task, _ := strings.Cut(id, "/")
			return c.do("GET", "/v1/workspaces/"+w+"/tasks/"+task, nil).Status == 200
		})
	}
	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var previous, now int
	if err := conn.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM logbook_previous.tasks), (SELECT count(*) FROM public.tasks)`).
		Scan(&previous, &now); err != nil {
		t.Fatalf("the replaced read models were kept in logbook_previous: %v", err)
	}
	if _, err := conn.Exec(t.Context(), `UPDATE events SET type = type`); err == nil {
		t.Fatal("the rebuilt event trail can be rewritten: its immutability trigger is gone")
	}
	if previous < spaces*perSpace || now != spaces*perSpace+len(written) {
		t.Fatalf("tasks: %d replaced, %d now; want at least %d and exactly %d", previous, now, spaces*perSpace, spaces*perSpace+len(written))
	}

	// What the rebuilt read models became equals a rebuild from the log
	// with nothing running beside it.
	before := tool(t, env, "projections", "checksum")
	p.stop()
	tool(t, env, "projections", "rebuild", "--quiet")
	if after := tool(t, env, "projections", "checksum"); after != before {
		t.Fatalf("checksums after the rebuild under load:\n%s\nand from the log alone:\n%s", before, after)
	}
	if _, err := conn.Exec(t.Context(), `SELECT 1 FROM logbook_previous.tasks`); err == nil {
		t.Fatal("without --keep-previous the replaced read models stay")
	}
}

// tool runs the logbook binary to completion and returns its stdout.
func tool(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("logbook %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}
