package main_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/internal/pgtest"
)

// recoveryData gives a deployment something of everything the read models
// hold: workspaces, a member, an agent, tasks through their lifecycle, an
// API key issued through the log, a refusal. It returns a task and the
// command id of its create, sent with an Idempotency-Key.
func recoveryData(t *testing.T, c *client) (ws, task, key string) {
	t.Helper()
	ws = c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "recovery"}, wait, "wait=10").str("workspace_id")
	other := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "other"}, wait, "wait=10").str("workspace_id")
	c.must(200, "POST", "/v1/workspaces/"+ws+"/members", map[string]any{"principal_id": "pat", "role": "writer"}, wait, "wait=10")
	c.must(201, "POST", "/v1/workspaces/"+ws+"/agents", map[string]any{"name": "ada", "role": "engineer", "model": "m"}, wait, "wait=10")
	key = "recovery-key"
	task = c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "keyed", "labels": []string{"dr"}},
		wait, "wait=10", "Idempotency-Key", key).str("task_id")
	for i := range 20 {
		id := c.must(201, "POST", "/v1/workspaces/"+other+"/tasks", map[string]any{"title": fmt.Sprintf("t%d", i)}, wait, "wait=10").str("task_id")
		if i%4 == 0 {
			c.must(200, "POST", "/v1/workspaces/"+other+"/tasks/"+id+"/cancel", map[string]any{"reason": "not needed"}, wait, "wait=10")
		}
	}
	c.do("POST", "/v1/workspaces/"+other+"/tasks/no-such-task/cancel", map[string]any{"reason": "x"}, wait, "wait=10")
	c.must(201, "POST", "/v1/keys", map[string]any{"role": "reader", "workspaces": []string{ws}, "label": "dr"})
	newClient(t, c.base, "lbk_not_a_key").must(401, "GET", "/v1/workspaces/"+ws, nil) // the access audit
	return ws, task, key
}

// checksumsSettle waits until the read models' checksums stop changing and
// returns them.
func checksumsSettle(t *testing.T, env []string) string {
	t.Helper()
	var last string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(300 * time.Millisecond) {
		now := tool(t, env, "projections", "checksum")
		if now == last {
			return now
		}
		last = now
	}
	t.Fatal("the read models never settled")
	return ""
}

// Disaster recovery (a): the read-model database is lost. logbook starts on
// an empty one, builds the read models again from the log, and every table
// built from the log ends with the checksum it had before the loss.
func TestRecoveryReadModelDatabaseLost(t *testing.T) {
	cfg := kafkatest.Config(t, 3)
	dbURL := pgtest.URL(t)
	env := serveEnv(cfg.Brokers, cfg.Prefix, dbURL, 3, saslEnv(cfg)...)
	p := start(t, env, "serve", "--http", "127.0.0.1:0")
	c := newClient(t, p.URL, testKey)
	ws, task, _ := recoveryData(t, c)
	projected(t, c, "/v1/workspaces/"+ws+"/tasks/"+task)
	before := checksumsSettle(t, env)
	p.stop()

	conn, err := pgx.Connect(t.Context(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(t.Context(), `DROP SCHEMA public CASCADE; CREATE SCHEMA public`); err != nil {
		t.Fatal(err)
	}
	conn.Close(context.Background())

	lost := time.Now()
	p = start(t, env, "serve", "--http", "127.0.0.1:0")
	c = newClient(t, p.URL, testKey)
	var after string
	eventually(t, 60*time.Second, "the read models rebuilt to their checksums", func() bool {
		after = tool(t, env, "projections", "checksum")
		return after == before
	})
	t.Logf("read models back in %s:\n%s", time.Since(lost).Round(time.Millisecond), after)
	if got := c.must(200, "GET", "/v1/workspaces/"+ws+"/tasks/"+task, nil); got.str("title") != "keyed" {
		t.Fatalf("task after recovery: %s", got.Raw)
	}
}

// Disaster recovery (b): the decider-state topic is lost. `logbook decider
// rebuild-state` writes it again from the events and results; commands go
// on with no seq gap and no duplicate, and the chains verify.
func TestRecoveryDeciderStateLost(t *testing.T) {
	cfg := kafkatest.Config(t, 3)
	env := serveEnv(cfg.Brokers, cfg.Prefix, pgtest.URL(t), 3, saslEnv(cfg)...)
	p := start(t, env, "serve", "--http", "127.0.0.1:0")
	c := newClient(t, p.URL, testKey)
	ws, task, key := recoveryData(t, c)
	seqBefore := projected(t, c, "/v1/workspaces/"+ws).Body["last_seq"].(float64)
	p.stop()

	kafkatest.LoseTopic(t, cfg, cfg.Topics().DeciderState)
	out := tool(t, env, "decider", "rebuild-state")
	if !strings.Contains(out, "rebuilt the decider state of 3 partitions") {
		t.Fatalf("rebuild-state: %s", out)
	}

	p = start(t, env, "serve", "--http", "127.0.0.1:0")
	c = newClient(t, p.URL, testKey)
	again := c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "keyed", "labels": []string{"dr"}},
		wait, "wait=10", "Idempotency-Key", key)
	if again.str("task_id") != task {
		t.Fatalf("the keyed request again: %s, want task %s", again.Raw, task)
	}
	next := c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "after"}, wait, "wait=10").str("task_id")
	projected(t, c, "/v1/workspaces/"+ws+"/tasks/"+next)
	if seq := c.must(200, "GET", "/v1/workspaces/"+ws, nil).Body["last_seq"].(float64); seq != seqBefore+1 {
		t.Fatalf("last_seq %v after one new task, was %v: a gap or a duplicate", seq, seqBefore)
	}
	cmd := exec.Command(binary, "audit", "verify")
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "0 broken chains") {
		t.Fatalf("audit verify after the rebuild: %v\n%s", err, out)
	}
}

// Disaster recovery (c): the cluster is lost. An export taken before
// (`logbook log export`) is imported into an empty cluster (`logbook log
// import`); the chains verify there and logbook serves the same data: the
// read models built from it equal the lost ones, table by table, log
// offsets aside.
func TestRecoveryClusterLostFromAnExport(t *testing.T) {
	cfg := kafkatest.Config(t, 3)
	env := serveEnv(cfg.Brokers, cfg.Prefix, pgtest.URL(t), 3, saslEnv(cfg)...)
	p := start(t, env, "serve", "--http", "127.0.0.1:0")
	c := newClient(t, p.URL, testKey)
	ws, task, key := recoveryData(t, c)
	projected(t, c, "/v1/workspaces/"+ws+"/tasks/"+task)
	checksumsSettle(t, env)
	before := tool(t, env, "projections", "checksum", "--portable")
	dir := t.TempDir() + "/export"
	out := tool(t, env, "log", "export", "--dir", dir)
	p.stop()
	if !strings.Contains(out, "32 events") {
		t.Fatalf("export: %s", out)
	}

	fresh := kafkatest.Config(t, 3)
	env2 := serveEnv(fresh.Brokers, fresh.Prefix, pgtest.URL(t), 3, saslEnv(fresh)...)
	t.Log(tool(t, env2, "log", "import", "--dir", dir))
	cmd := exec.Command(binary, "audit", "verify")
	cmd.Env = append(os.Environ(), env2...)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "verified 32 events in 3 workspaces: 0 broken chains") {
		t.Fatalf("audit verify in the new cluster: %v\n%s", err, out)
	}
	if out := exec.Command(binary, "log", "import", "--dir", dir); true {
		out.Env = append(os.Environ(), env2...)
		if b, err := out.CombinedOutput(); err == nil || !strings.Contains(string(b), "not empty") {
			t.Fatalf("a second import into the same cluster: %v %s", err, b)
		}
	}

	p = start(t, env2, "serve", "--http", "127.0.0.1:0")
	c = newClient(t, p.URL, testKey)
	var after string
	eventually(t, 30*time.Second, "the read models of the new cluster equal the lost ones", func() bool {
		after = tool(t, env2, "projections", "checksum", "--portable")
		return after == before
	})
	again := c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "keyed", "labels": []string{"dr"}},
		wait, "wait=10", "Idempotency-Key", key)
	if again.str("task_id") != task {
		t.Fatalf("the keyed request in the new cluster: %s, want task %s", again.Raw, task)
	}
	c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "after"}, wait, "wait=10")
}
