package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

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
	env := serveEnv(cfg.Brokers, cfg.Prefix, pgtest.URL(t), 3)
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
