package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/internal/pgtest"
	"github.com/logbook-dev/logbook/schemas"
)

// TestReplayAndAuditVerify: replay returns the log from the beginning or from
// a time, per workspace; audit verify passes on the real log and fails, naming
// the workspace and seq, once a forged event is appended.
func TestReplayAndAuditVerify(t *testing.T) {
	cfg := kafkatest.Config(t, 3)
	env := serveEnv(cfg.Brokers, cfg.Prefix, pgtest.URL(t), 3, saslEnv(cfg)...)
	p := start(t, env, "serve", "--http", "127.0.0.1:0")
	c := newClient(t, p.URL, testKey)
	wsA := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "a"}, wait, "wait=10").str("workspace_id")
	wsB := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "b"}, wait, "wait=10").str("workspace_id")
	for i := 0; i < 3; i++ {
		c.must(201, "POST", "/v1/workspaces/"+wsA+"/tasks", map[string]any{"title": "early"}, wait, "wait=10")
	}
	time.Sleep(1100 * time.Millisecond) // Kafka timestamps are milliseconds
	since := time.Now().UTC()
	time.Sleep(1100 * time.Millisecond)
	c.must(201, "POST", "/v1/workspaces/"+wsA+"/tasks", map[string]any{"title": "late"}, wait, "wait=10")

	replay := func(args ...string) []schemas.EventEnvelope {
		t.Helper()
		cmd := exec.Command(binary, append([]string{"replay"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("replay %v: %v", args, err)
		}
		var evs []schemas.EventEnvelope
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			var e schemas.EventEnvelope
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatalf("replay line: %v", err)
			}
			evs = append(evs, e)
		}
		return evs
	}
	if all := replay("--from-beginning"); len(all) != 6 {
		t.Fatalf("replay from the beginning: %d events, want 6", len(all))
	}
	onlyA := replay("--from-beginning", "--workspace", wsA)
	if len(onlyA) != 5 || onlyA[0].Seq != 1 || onlyA[4].Seq != 5 {
		t.Fatalf("replay of workspace A: %d events", len(onlyA))
	}
	late := replay("--since", since.Format(time.RFC3339Nano))
	if len(late) != 1 || late[0].WorkspaceID != wsA || late[0].Seq != 5 {
		t.Fatalf("replay --since: %+v", late)
	}
	early := replay("--until", since.Format(time.RFC3339Nano), "--type", "task.created")
	if len(early) != 3 || early[0].Type != "task.created" || early[2].Seq != 4 {
		t.Fatalf("replay --until --type task.created: %+v", early)
	}
	// CSV for spreadsheets, progress on stderr, and flags checked.
	{
		cmd := exec.Command(binary, "replay", "--format", "csv", "--workspace", wsA, "--type", "task.created,task.assigned")
		cmd.Env = append(os.Environ(), env...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("replay --format csv: %v: %s", err, stderr.String())
		}
		rows, err := csv.NewReader(strings.NewReader(string(out))).ReadAll()
		if err != nil || len(rows) != 5 || rows[0][0] != "occurred_at" || rows[1][3] != "task.created" || rows[4][2] != "5" ||
			!json.Valid([]byte(rows[4][len(rows[4])-1])) {
			t.Fatalf("replay --format csv: %v rows %q", err, rows)
		}
		// Events read: the workspace's partition, which B may share.
		if !strings.Contains(stderr.String(), "replay: done: ") || !strings.Contains(stderr.String(), " events read, 4 written") {
			t.Fatalf("replay progress on stderr: %q", stderr.String())
		}
		for _, bad := range [][]string{{"--type", "task.nope"}, {"--format", "xml"}, {"--until", "yesterday"},
			{"--since", "2026-01-02T00:00:00Z", "--until", "2026-01-01T00:00:00Z"}} {
			cmd := exec.Command(binary, append([]string{"replay"}, bad...)...)
			cmd.Env = append(os.Environ(), env...)
			if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), strings.TrimPrefix(bad[len(bad)-2], "--")) {
				t.Errorf("replay %v: %v %s, want a refusal naming the flag", bad, err, out)
			}
		}
	}

	verify := func() (string, error) {
		cmd := exec.Command(binary, "audit", "verify")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := verify(); err != nil || !strings.Contains(out, "verified 6 events in 2 workspaces: 0 broken chains") {
		t.Fatalf("audit verify on the real log: %v\n%s", err, out)
	}

	// Forge the next event of workspace B: right seq and prev_hash, but a
	// hash that does not cover what it says.
	last := replay("--from-beginning", "--workspace", wsB)[0]
	forged := last
	forged.Seq, forged.PrevHash = last.Seq+1, last.Hash
	forged.Type = "workspace.renamed"
	forged.Payload = json.RawMessage(`{"name":"mallory"}`)
	forged.Hash = last.Hash // not recomputed: tampering
	val, _ := json.Marshal(forged)
	cl, err := kgo.NewClient(append(cfg.Opts(), kgo.DefaultProduceTopic(cfg.Topics().Events))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(wsB), Value: val}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	out, err := verify()
	if err == nil || !strings.Contains(out, "BROKEN") || !strings.Contains(out, wsB) || !strings.Contains(out, "seq 2") {
		t.Fatalf("audit verify must fail on a forged event: %v\n%s", err, out)
	}
	// The read models refuse it too: it is dead-lettered, B keeps its name,
	// and B's next real event takes seq 2.
	dlq, err := kgo.NewClient(append(cfg.Opts(), kgo.ConsumeTopics(cfg.Topics().DLQ))...)
	if err != nil {
		t.Fatal(err)
	}
	defer dlq.Close()
	var dead []*kgo.Record
	dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer dcancel()
	for len(dead) == 0 && dctx.Err() == nil {
		dead = append(dead, dlq.PollFetches(dctx).Records()...)
	}
	if len(dead) != 1 || !strings.Contains(string(dead[0].Value), "mallory") {
		t.Fatalf("forged event not dead-lettered: %d records", len(dead))
	}
	if name := c.must(200, "GET", "/v1/workspaces/"+wsB, nil).str("name"); name != "b" {
		t.Fatalf("forged rename reached the read model: %q", name)
	}
	c.must(200, "POST", "/v1/workspaces/"+wsB+"/rename", map[string]any{"name": "b2"}, wait, "wait=10")
	eventually(t, 20*time.Second, "the real rename", func() bool {
		r := c.do("GET", "/v1/workspaces/"+wsB, nil)
		return r.Status == 200 && r.str("name") == "b2" && r.Body["last_seq"].(float64) == 2
	})
	p.stop()
}

// TestAuditExportVerifiesOffline: an auditor of a workspace exports its
// trail through the binary; the file verifies offline, with no broker or
// database; one changed letter of a task title, or the chain head cut off,
// fails verification naming the place. An auditor of another workspace
// gets the 404 an unknown workspace gets.
func TestAuditExportVerifiesOffline(t *testing.T) {
	dir := t.TempDir()
	p := startDev(t, dir)
	admin := newClient(t, p.URL, p.Key)
	wsA := admin.must(201, "POST", "/v1/workspaces", map[string]any{"name": "audited"}, wait, "wait=10").str("workspace_id")
	wsB := admin.must(201, "POST", "/v1/workspaces", map[string]any{"name": "elsewhere"}, wait, "wait=10").str("workspace_id")
	_, keyA := createKey(t, p, "auditor", wsA)
	_, keyB := createKey(t, p, "auditor", wsB)
	var tasks []string
	for _, title := range []string{"Quarterly report", "Vendor review", "Backlog triage"} {
		tasks = append(tasks, admin.must(201, "POST", "/v1/workspaces/"+wsA+"/tasks",
			map[string]any{"title": title, "input": "details <b> & é", "priority": 2}, wait, "wait=10").str("task_id"))
	}
	cancelled := admin.must(200, "POST", "/v1/workspaces/"+wsA+"/tasks/"+tasks[0]+"/cancel", map[string]any{"reason": "duplicate"}, wait, "wait=10")
	evs, _ := cancelled.Body["events"].([]any)
	if len(evs) == 0 {
		t.Fatalf("cancel: no events: %s", cancelled.Raw)
	}
	lastSeq := evs[len(evs)-1].(map[string]any)["seq"].(float64)
	eventually(t, 30*time.Second, "the trail projected", func() bool {
		return admin.do("GET", "/v1/workspaces/"+wsA, nil).Body["last_seq"] == lastSeq
	})

	run := func(key string, args ...string) (stdout, stderr string, code int) {
		t.Helper()
		cmd := exec.Command(binary, args...)
		cmd.Env = append(os.Environ(), "LOGBOOK_API_KEY="+key, "LOGBOOK_URL="+p.URL)
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		switch {
		case errors.As(err, &exit):
			code = exit.ExitCode()
		case err != nil:
			t.Fatalf("logbook %v: %v", args, err)
		}
		return out.String(), errOut.String(), code
	}
	files := t.TempDir()
	file := filepath.Join(files, "audited.ndjson")
	if _, errOut, code := run(keyA, "audit", "export", "--workspace", wsA, "--out", file); code != 0 ||
		!strings.Contains(errOut, fmt.Sprintf("exported %d events of workspace %s", int(lastSeq), wsA)) {
		t.Fatalf("audit export: exit %d\n%s", code, errOut)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("export file: %v, %v", fi, err)
	}
	verify := func(path string) (string, int) {
		t.Helper()
		out, errOut, code := run("", "audit", "verify", "--file", path)
		return out + errOut, code
	}
	if out, code := verify(file); code != 0 || !strings.Contains(out, fmt.Sprintf("verified export of workspace %s: %d events", wsA, int(lastSeq))) {
		t.Fatalf("audit verify --file on the export: exit %d\n%s", code, out)
	}
	// To stdout: the same events.
	stdout, _, code := run(keyA, "audit", "export", "--workspace", wsA)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || strings.Count(stdout, "\n") != strings.Count(string(raw), "\n") {
		t.Fatalf("export to stdout: exit %d, %d lines, want %d", code, strings.Count(stdout, "\n"), strings.Count(string(raw), "\n"))
	}

	// One letter of a task title.
	at := bytes.Index(raw, []byte("Vendor review"))
	lineStart := bytes.LastIndexByte(raw[:at], '\n') + 1
	var ev schemas.EventEnvelope
	if err := json.Unmarshal(raw[lineStart:lineStart+bytes.IndexByte(raw[lineStart:], '\n')], &ev); err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(raw)
	tampered[at] = 'v'
	tamperedFile := filepath.Join(files, "tampered.ndjson")
	if err := os.WriteFile(tamperedFile, tampered, 0o600); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("BROKEN seq %d (event %s): hash does not match", ev.Seq, ev.ID)
	if out, code := verify(tamperedFile); code != 1 || !strings.Contains(out, want) {
		t.Fatalf("a changed title: exit %d, want 1 and %q:\n%s", code, want, out)
	}
	// The last line cut off.
	cut := raw[:bytes.LastIndexByte(raw[:len(raw)-1], '\n')+1]
	cutFile := filepath.Join(files, "cut.ndjson")
	if err := os.WriteFile(cutFile, cut, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := verify(cutFile); code != 1 || !strings.Contains(out, "truncated") {
		t.Fatalf("a truncated export: exit %d\n%s", code, out)
	}

	// Another workspace's auditor: the 404 of an unknown workspace.
	other := filepath.Join(files, "other.ndjson")
	if _, errOut, code := run(keyB, "audit", "export", "--workspace", wsA, "--out", other); code == 0 ||
		!strings.Contains(errOut, "404 Not Found: workspace not found") {
		t.Fatalf("export by another workspace's auditor: exit %d\n%s", code, errOut)
	}
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Fatalf("a refused export left a file: %v", err)
	}
	path := "/v1/workspaces/%s/events/export"
	hidden := newClient(t, p.URL, keyB).do("GET", fmt.Sprintf(path, wsA), nil)
	missing := newClient(t, p.URL, keyB).do("GET", fmt.Sprintf(path, uuid.NewString()), nil)
	if hidden.Status != 404 || string(hidden.Raw) != string(missing.Raw) {
		t.Fatalf("another tenant's export answers %d %s, an unknown one %d %s", hidden.Status, hidden.Raw, missing.Status, missing.Raw)
	}
	if r := newClient(t, p.URL, keyB).do("GET", fmt.Sprintf(path, wsB), nil); r.Status != 200 {
		t.Fatalf("its own workspace's export: %d", r.Status)
	}
	p.stop()
}
