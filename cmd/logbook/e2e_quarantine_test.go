package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// NUL can reach no read model: the edge refuses it, naming the field.
func TestEdgeRefusesNUL(t *testing.T) {
	p := startDev(t, t.TempDir())
	c := newClient(t, p.URL, p.Key)
	r := c.must(422, "POST", "/v1/workspaces", `{"name":"a\u0000b"}`, wait, "wait=5")
	if r.str("field") != "name" {
		t.Fatalf("problem names %q, want name: %s", r.str("field"), r.Raw)
	}
	ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "ok"}, wait, "wait=10").str("workspace_id")
	r = c.must(422, "POST", "/v1/workspaces/"+ws+"/tasks", `{"title":"t","input":"x\u0000y","priority":1}`, wait, "wait=5")
	if r.str("field") != "input" {
		t.Fatalf("problem names %q, want input: %s", r.str("field"), r.Raw)
	}
	// The workspace is still live.
	c.must(200, "POST", "/v1/workspaces/"+ws+"/rename", map[string]any{"name": "still live"}, wait, "wait=10")
	eventually(t, 30*time.Second, "rename visible", func() bool {
		return c.do("GET", "/v1/workspaces/"+ws, nil).str("name") == "still live"
	})
}

// A record the read models cannot hold stalls only its workspace, visibly;
// `logbook dlq replay` after the fix brings it to the log's last seq.
func TestStalledWorkspaceIsVisibleAndReplayCatchesUp(t *testing.T) {
	dir := t.TempDir()
	p := startDev(t, dir)
	c := newClient(t, p.URL, p.Key)
	ctx := context.Background()
	url, err := os.ReadFile(filepath.Join(dir, "postgres.url"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := pgx.Connect(ctx, strings.TrimSpace(string(url)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	if _, err := db.Exec(ctx, `ALTER TABLE tasks ADD CONSTRAINT no_poison CHECK (title <> 'poison')`); err != nil {
		t.Fatal(err)
	}

	ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "a"}, wait, "wait=10").str("workspace_id")
	other := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "b"}, wait, "wait=10").str("workspace_id")
	c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "poison", "priority": 1}, wait, "wait=10")
	c.must(200, "POST", "/v1/workspaces/"+ws+"/rename", map[string]any{"name": "renamed"}, wait, "wait=10")
	c.must(201, "POST", "/v1/workspaces/"+other+"/tasks", map[string]any{"title": "fine", "priority": 1}, wait, "wait=10")

	eventually(t, 30*time.Second, "the other workspace's task", func() bool {
		r := c.do("GET", "/v1/workspaces/"+other+"/tasks", nil)
		tasks, _ := r.Body["tasks"].([]any)
		return len(tasks) == 1
	})
	eventually(t, 30*time.Second, "the stall in /v1/status", func() bool {
		proj, _ := c.do("GET", "/v1/status", nil).Body["projections"].(map[string]any)
		n, _ := proj["stalled_workspaces"].(float64)
		return n == 1
	})
	r := c.must(200, "GET", "/v1/workspaces/"+ws, nil)
	if r.Body["projection_stalled"] != true || r.Body["last_seq"] != float64(1) {
		t.Fatalf("stalled workspace: %s", r.Raw)
	}
	metrics := string(c.must(200, "GET", "/metrics", nil).Raw)
	if !strings.Contains(metrics, "logbook_projection_stalled_workspaces 1") {
		t.Fatalf("metrics do not show the stall:\n%s", grepLines(metrics, "logbook_projection"))
	}

	out, err := exec.Command(binary, "dlq", "list", "--data", dir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), ws) || !strings.Contains(string(out), "failed") || !strings.Contains(string(out), "held") {
		t.Fatalf("dlq list: %v\n%s", err, out)
	}
	// Before the fix, replay reports the cause and fails.
	if out, err := exec.Command(binary, "dlq", "replay", "--data", dir).CombinedOutput(); err == nil {
		t.Fatalf("dlq replay before the fix must fail:\n%s", out)
	}
	if _, err := db.Exec(ctx, `ALTER TABLE tasks DROP CONSTRAINT no_poison`); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(binary, "dlq", "replay", "--workspace", ws, "--data", dir).CombinedOutput(); err != nil {
		t.Fatalf("dlq replay: %v\n%s", err, out)
	}
	r = c.must(200, "GET", "/v1/workspaces/"+ws, nil)
	if r.Body["projection_stalled"] != false || r.Body["last_seq"] != float64(3) || r.str("name") != "renamed" {
		t.Fatalf("after replay: %s", r.Raw)
	}
	if out, err := exec.Command(binary, "audit", "verify", "--data", dir).CombinedOutput(); err != nil {
		t.Fatalf("audit verify: %v\n%s", err, out)
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// RFC 9110: a 405 says which methods the resource allows.
func TestMethodNotAllowedListsAllow(t *testing.T) {
	p := startDev(t, t.TempDir())
	c := newClient(t, p.URL, p.Key)
	r := c.must(405, "DELETE", "/v1/workspaces", nil)
	if got := r.Header.Get("Allow"); got != "GET, POST" {
		t.Fatalf("Allow %q, want GET, POST", got)
	}
	r = c.must(405, "PATCH", "/v1/workspaces/"+"00000000-0000-0000-0000-000000000000", nil)
	if got := r.Header.Get("Allow"); got != "GET" {
		t.Fatalf("Allow %q, want GET", got)
	}
}
