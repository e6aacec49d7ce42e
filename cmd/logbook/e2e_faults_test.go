package main_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/logbook-dev/logbook/internal/pgembed"
	"github.com/logbook-dev/logbook/internal/pgtest"
)

// TestKafkaOutageIsReadOnly: with the log unreachable, commands get 503 +
// Retry-After at once and queries keep serving from Postgres.
func TestKafkaOutageIsReadOnly(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	env := serveEnv(cluster.ListenAddrs(), "logbook.", pgtest.URL(t), 2, "LOGBOOK_LOG_LEVEL=error")
	p := start(t, env, "serve", "--http", "127.0.0.1:0")
	c := newClient(t, p.URL, testKey)
	ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "before"}, wait, "wait=10").str("workspace_id")
	eventually(t, 20*time.Second, "projected", func() bool { return c.do("GET", "/v1/workspaces/"+ws, nil).Status == 200 })

	cluster.Close()
	eventually(t, 30*time.Second, "read_only status", func() bool {
		return c.must(200, "GET", "/v1/status", nil).str("level") == "read_only"
	})
	t0 := time.Now()
	r := c.do("POST", "/v1/workspaces", map[string]any{"name": "during"})
	if r.Status != 503 || r.Header.Get("Retry-After") == "" || r.str("code") != "read_only" {
		t.Fatalf("command during outage: %d %v %s", r.Status, r.Header, r.Raw)
	}
	if d := time.Since(t0); d > 2*time.Second {
		t.Errorf("read-only answer took %s; it must not wait for the dead log", d)
	}
	c.must(200, "GET", "/v1/workspaces/"+ws, nil)
	c.must(200, "GET", "/v1/workspaces/"+ws+"/events", nil)
	p.stop()
}

// TestPostgresOutageKeepsAcceptingCommands: with Postgres down, commands are
// still accepted into the log and queries answer 503; when it returns the
// projections catch up and nothing is lost.
func TestPostgresOutageKeepsAcceptingCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pg")
	srv, err := pgembed.Start(t.Context(), pgembed.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	port := srv.Port()
	defer func() { _ = srv.Stop() }()

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	env := serveEnv(cluster.ListenAddrs(), "logbook.", srv.URL(), 2, "LOGBOOK_LOG_LEVEL=error")
	p := start(t, env, "serve", "--http", "127.0.0.1:0")
	c := newClient(t, p.URL, testKey)
	ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "pg"}, wait, "wait=10").str("workspace_id")

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "queries_degraded status", func() bool {
		return c.must(200, "GET", "/v1/status", nil).str("level") == "queries_degraded"
	})
	var tasks, cmds []string
	for i := 0; i < 10; i++ {
		r := c.must(202, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "while pg is down"})
		tasks = append(tasks, r.str("task_id"))
		cmds = append(cmds, r.str("command_id"))
	}
	if r := c.do("GET", "/v1/workspaces/"+ws, nil); r.Status != 503 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("query during outage: %d %s", r.Status, r.Raw)
	}

	srv, err = pgembed.Start(t.Context(), pgembed.Config{Dir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range tasks {
		eventually(t, 60*time.Second, "task "+id+" projected after recovery", func() bool {
			return c.do("GET", "/v1/workspaces/"+ws+"/tasks/"+id, nil).Status == 200
		})
	}
	for _, id := range cmds {
		if r := outcome(t, c, id); r.str("status") != "accepted" {
			t.Fatalf("command %s after recovery: %s", id, r.Raw)
		}
	}
	eventually(t, 30*time.Second, "gapless trail after recovery", func() bool {
		r := c.do("GET", "/v1/workspaces/"+ws+"/events", nil)
		if r.Status != 200 {
			return false
		}
		evs := r.Body["events"].([]any)
		for i, e := range evs {
			if int(e.(map[string]any)["seq"].(float64)) != i+1 {
				t.Fatalf("gap in the trail after recovery at %d", i)
			}
		}
		return len(evs) == 11
	})
	p.stop()
}
