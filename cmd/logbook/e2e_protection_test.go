package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/aifake"
	"github.com/logbook-dev/logbook/schemas"
)

// protectedWorkspace fills a workspace with a marker in every sensitive
// field: agent instructions, a task's input and its AI output, a hand
// recorded output, a failure reason and a cancel reason. It returns the
// markers it sent, and the AI-answered task.
func protectedWorkspace(t *testing.T, c *client, name string) (ws, aiTask string, markers []string) {
	t.Helper()
	mark := func(field string) string {
		m := "MRK" + strings.ToUpper(field) + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
		markers = append(markers, m)
		return m
	}
	w := wait
	ws = c.must(201, "POST", "/v1/workspaces", map[string]any{"name": name}, w, "wait=10").str("workspace_id")
	agent := c.must(201, "POST", "/v1/workspaces/"+ws+"/agents", map[string]any{"name": "bot", "model": "gpt-4o-mini",
		"instructions": "Answer as " + mark("instructions")}, w, "wait=10").str("agent_id")
	aiTask = c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "ai", "input": "Summarise " + mark("input"),
		"assignee": agent}, w, "wait=10").str("task_id")

	manual := func() string {
		return c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "by hand", "input": mark("input"),
			"assignee": "bootstrap-admin"}, w, "wait=10").str("task_id")
	}
	c.must(200, "POST", "/v1/workspaces/"+ws+"/members", map[string]any{"principal_id": "bootstrap-admin", "role": "admin"}, w, "wait=10")
	done, failed, cancelled := manual(), manual(), manual()
	for _, task := range []string{done, failed} {
		c.must(200, "POST", "/v1/workspaces/"+ws+"/tasks/"+task+"/start", nil, w, "wait=10")
	}
	base := "/v1/workspaces/" + ws + "/tasks/"
	c.must(200, "POST", base+done+"/result", map[string]any{"attempt": 1, "output": mark("output")}, w, "wait=10")
	c.must(200, "POST", base+failed+"/fail", map[string]any{"attempt": 1, "reason": mark("reason"), "retryable": true}, w, "wait=10")
	c.must(200, "POST", base+cancelled+"/cancel", map[string]any{"reason": mark("cancel")}, w, "wait=10")
	return ws, aiTask, markers
}

// markerScan collects the places a marker is found.
type markerScan struct {
	markers []string
	found   []string
}

func (s *markerScan) look(where string, b []byte) {
	for _, m := range s.markers {
		if bytes.Contains(b, []byte(m)) {
			s.found = append(s.found, where+": "+m)
		}
	}
}

// files scans every file under dir, raw: the broker's partitions, the
// database's files and logs.
func (s *markerScan) files(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		s.look("file "+path, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("scanned %d files under the data directory", n)
}

// live scans every record of every topic, read with a plain Kafka client
// (decompressed, aborted ones too), and every row of every table, as text.
func (s *markerScan) live(t *testing.T, kafkaConn []kgo.Opt, dbURL string) {
	t.Helper()
	look := s.look
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(append(kafkaConn, kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.KeepControlRecords())...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	offsets := map[string]map[int32]kgo.Offset{}
	want := map[string]map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset == 0 {
			return
		}
		if offsets[o.Topic] == nil {
			offsets[o.Topic], want[o.Topic] = map[int32]kgo.Offset{}, map[int32]int64{}
		}
		offsets[o.Topic][o.Partition] = kgo.NewOffset().AtStart()
		want[o.Topic][o.Partition] = o.Offset
	})
	if len(offsets) == 0 {
		t.Fatal("no records in any topic")
	}
	cl.AddConsumePartitions(offsets)
	records := 0
	for len(want) > 0 {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading the topics: %v left", want)
		}
		f.EachRecord(func(r *kgo.Record) {
			records++
			where := fmt.Sprintf("topic %s/%d@%d", r.Topic, r.Partition, r.Offset)
			look(where+" key", r.Key)
			look(where+" value", r.Value)
			for _, h := range r.Headers {
				look(where+" header "+h.Key, h.Value)
			}
			if p := want[r.Topic]; p != nil && r.Offset+1 >= p[r.Partition] {
				delete(p, r.Partition)
				if len(p) == 0 {
					delete(want, r.Topic)
				}
			}
		})
	}

	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		rows, err := conn.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{table}.Sanitize()+` t`)
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range texts {
			look("table "+table, []byte(s))
		}
	}
	t.Logf("scanned %d records of %d topics and the rows of %d tables", records, len(offsets), len(tables))
}

// TestSensitiveFieldsAreNeverStoredInPlaintext runs a workspace through
// every sensitive field, AI agent included, and finds none of them in
// clear anywhere logbook keeps data, while the API still serves them. Then
// it erases one of two such workspaces: the other reads as before, the
// trail still verifies, and the erased one's fields no longer open from
// the log, with the key service or without.
func TestSensitiveFieldsAreNeverStoredInPlaintext(t *testing.T) {
	fake := aifake.Start()
	t.Cleanup(fake.Close)
	dir := t.TempDir()
	p := start(t, agentEnv(fake), "dev", "--data", dir, "--http", "127.0.0.1:0")
	c := newClient(t, p.URL, p.Key)

	// The control: a workspace name is not sensitive, so the scan must
	// find it in every kind of place, or it proves nothing.
	control := "MRKCONTROL" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	ws, aiTask, markers := protectedWorkspace(t, c, control)
	gone, _, goneMarkers := protectedWorkspace(t, c, "erased")
	var answered response
	eventually(t, 60*time.Second, "the agent answers", func() bool {
		answered = c.do("GET", "/v1/workspaces/"+ws+"/tasks/"+aiTask, nil)
		return answered.str("status") == "completed"
	})
	// The provider was sent the plaintext; the API serves it back.
	if sent := fake.LastRequest(); len(sent.Messages) != 2 || !strings.Contains(sent.Messages[0].Content+sent.Messages[1].Content, "MRK") {
		t.Fatalf("the provider got %+v: want the opened instructions and input", sent.Messages)
	}
	output := answered.str("output")
	if !strings.HasPrefix(answered.str("input"), "Summarise MRKINPUT") || len(output) < 16 {
		t.Fatalf("the API serves %s: want the plaintext input and the AI output", answered.Raw)
	}
	markers = append(markers, output)
	served := c.must(200, "GET", "/v1/workspaces/"+ws+"/tasks?limit=500", nil)
	for _, m := range markers {
		if !strings.Contains(string(served.Raw), m) && !strings.Contains(string(c.must(200, "GET", "/v1/workspaces/"+ws, nil).Raw), m) {
			// The cancel reason is kept by the trail only.
			if !strings.HasPrefix(m, "MRKCANCEL") {
				t.Errorf("marker %s is not served back by the API", m)
			}
		}
	}
	trailEvents := c.must(200, "GET", "/v1/workspaces/"+ws+"/events?limit=500", nil)
	for _, m := range markers {
		if strings.Contains(string(trailEvents.Raw), m) {
			t.Errorf("the event trail shows %s in clear: it must show the sealed value its hashes cover", m)
		}
	}

	// Erase the second workspace.
	c.must(200, "POST", "/v1/workspaces/"+gone+"/erase", nil, wait, "wait=10")
	eventually(t, 30*time.Second, "the workspace shows erased", func() bool {
		return c.do("GET", "/v1/workspaces/"+gone, nil).str("status") == "erased"
	})
	if r := c.do("POST", "/v1/workspaces/"+gone+"/tasks", map[string]any{"title": "t", "input": "x"}, wait, "wait=10"); r.Status != 404 {
		t.Fatalf("a command to an erased workspace: %d %s, want 404", r.Status, r.Raw)
	}
	if again := c.must(200, "GET", "/v1/workspaces/"+ws+"/tasks/"+aiTask, nil); again.str("output") != output {
		t.Fatalf("the other workspace changed: %s", again.Raw)
	}
	if out, err := exec.Command(binary, "audit", "verify", "--data", dir).CombinedOutput(); err != nil {
		t.Fatalf("audit verify after erasure: %v\n%s", err, out)
	}
	// The log shows sealed values; with the master key, replay opens them,
	// except the erased workspace's, which nothing can open any more.
	replayed := func(args ...string) string {
		cmd := exec.Command(binary, append([]string{"replay", "--data", dir}, args...)...)
		cmd.Env = append(os.Environ(), "LOGBOOK_KAFKA_BROKERS=", "LOGBOOK_MASTER_KEY=", "LOGBOOK_MASTER_KEY_FILE=")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("replay %v: %v", args, err)
		}
		return string(out)
	}
	sealed, opened := replayed(), replayed("--decrypt")
	for _, m := range append(markers, goneMarkers...) {
		if strings.Contains(sealed, m) {
			t.Errorf("replay without the key shows %s", m)
		}
	}
	for _, m := range markers {
		if !strings.Contains(opened, m) {
			t.Errorf("replay --decrypt does not show %s", m)
		}
	}
	for _, m := range goneMarkers {
		if strings.Contains(opened, m) {
			t.Errorf("replay --decrypt shows %s of the erased workspace", m)
		}
	}
	dbURL, err := os.ReadFile(filepath.Join(dir, "postgres.url"))
	if err != nil {
		t.Fatal(err)
	}
	scan := &markerScan{markers: append(append(markers, goneMarkers...), control)}
	scan.live(t, devKafka(t, p, dir), strings.TrimSpace(string(dbURL)))
	p.stop() // flushes what the broker and the database hold in memory
	scan.files(t, dir)
	var leaks []string
	seen := map[string]bool{}
	for _, f := range scan.found {
		if !strings.HasSuffix(f, ": "+control) {
			leaks = append(leaks, f)
			continue
		}
		kind, _, _ := strings.Cut(f, " ")
		seen[kind] = true
	}
	if !seen["file"] || !seen["topic"] || !seen["table"] {
		t.Fatalf("the control marker was found in %v only: the scan cannot be trusted (%v)", seen, scan.found)
	}
	if len(leaks) > 0 {
		t.Fatalf("plaintext found at rest:\n%s", strings.Join(leaks, "\n"))
	}
}

// TestLogAndMasterKeyRestoreEverything loses the database and rebuilds the
// read models from the log with the master key: every sensitive field of a
// kept workspace reads back, an erased workspace's stay gone.
func TestLogAndMasterKeyRestoreEverything(t *testing.T) {
	dir := t.TempDir()
	p := startDev(t, dir)
	c := newClient(t, p.URL, p.Key)
	ws, _, _ := protectedWorkspace(t, c, "kept")
	gone, _, _ := protectedWorkspace(t, c, "erased")
	c.must(200, "POST", "/v1/workspaces/"+gone+"/erase", nil, wait, "wait=10")
	before := map[string]string{}
	eventually(t, 30*time.Second, "both workspaces projected", func() bool {
		return c.do("GET", "/v1/workspaces/"+gone, nil).str("status") == "erased"
	})
	for _, w := range []string{ws, gone} {
		before[w] = tasksOf(t, c, w)
	}
	p.stop()

	// The disaster: the database is gone; the log and master.key remain.
	if err := os.RemoveAll(filepath.Join(dir, "postgres")); err != nil {
		t.Fatal(err)
	}
	p = startDev(t, dir)
	c = newClient(t, p.URL, p.Key)
	eventually(t, 60*time.Second, "the read models rebuilt from the log", func() bool {
		// The two workspaces may sit on different partitions: either can
		// come back first.
		return c.do("GET", "/v1/workspaces/"+gone, nil).str("status") == "erased" &&
			c.do("GET", "/v1/workspaces/"+ws, nil).Status == 200 && tasksOf(t, c, ws) == before[ws]
	})
	if !strings.Contains(before[ws], "MRKINPUT") || !strings.Contains(before[ws], "MRKOUTPUT") || !strings.Contains(before[ws], "MRKREASON") {
		t.Fatalf("the kept workspace's tasks lack their fields: %s", before[ws])
	}
	if after := tasksOf(t, c, gone); after != before[gone] || strings.Contains(after, "MRK") {
		t.Fatalf("the erased workspace's tasks after the rebuild: %s, before: %s", after, before[gone])
	}
}

// tasksOf lists a workspace's tasks as the API serves them, without the
// fields a rebuild may renumber.
func tasksOf(t *testing.T, c *client, ws string) string {
	t.Helper()
	r := c.must(200, "GET", "/v1/workspaces/"+ws+"/tasks?limit=500", nil)
	tasks, _ := r.Body["tasks"].([]any)
	var out []string
	for _, x := range tasks {
		m := x.(map[string]any)
		out = append(out, fmt.Sprintf("%v|%v|%v|%v|%v", m["id"], m["status"], m["input"], m["output"], m["failure_reason"]))
	}
	return strings.Join(out, "\n")
}

// TestForgedCommandsAndEventsAreCaught plays someone with write access to
// the broker: commands produced straight to the commands topic, unsigned
// or signed for another actor, are rejected and change nothing; an event
// appended with a correct hash chain but a borrowed signature passes the
// chain and fails audit verify, which names it.
func TestForgedCommandsAndEventsAreCaught(t *testing.T) {
	dir := t.TempDir()
	p := startDev(t, dir)
	c := newClient(t, p.URL, p.Key)
	ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "real"}, wait, "wait=10").str("workspace_id")
	c.must(200, "POST", "/v1/workspaces/"+ws+"/rename", map[string]any{"name": "renamed"}, wait, "wait=10")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(devKafka(t, p, dir, kgo.ConsumeTopics("logbook.commands", "logbook.events"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// The signed rename, as an attacker reading the topic sees it.
	var signedCmd map[string]any
	var events []schemas.EventEnvelope
	for signedCmd == nil || len(events) == 0 || events[len(events)-1].Type != "workspace.renamed" {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatal("the rename and its events are not in the log")
		}
		f.EachRecord(func(r *kgo.Record) {
			if r.Topic == "logbook.events" {
				var e schemas.EventEnvelope
				if json.Unmarshal(r.Value, &e) == nil && e.WorkspaceID == ws {
					events = append(events, e)
				}
				return
			}
			var m map[string]any
			if json.Unmarshal(r.Value, &m) == nil && m["type"] == "workspace.rename" && m["workspace_id"] == ws {
				signedCmd = m
			}
		})
	}
	if signedCmd["signature"] == nil {
		t.Fatalf("the API tier's command is not signed: %v", signedCmd)
	}
	produce := func(topic string, v any) {
		t.Helper()
		b, _ := json.Marshal(v)
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(ws), Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	forge := func(change func(m map[string]any)) string {
		m := map[string]any{}
		for k, v := range signedCmd {
			m[k] = v
		}
		m["id"] = uuid.NewString()
		m["payload"] = map[string]any{"name": "forged"}
		change(m)
		produce("logbook.commands", m)
		return m["id"].(string)
	}
	forgedActor := forge(func(m map[string]any) {
		m["payload"] = signedCmd["payload"]
		m["actor"] = map[string]any{"id": "forged-no-such-key", "role": "admin"}
	})
	unsigned := forge(func(m map[string]any) {
		delete(m, "signature")
		m["actor"] = map[string]any{"id": "forged-no-such-key", "role": "admin"}
	})
	borrowed := forge(func(map[string]any) {}) // the signature of another command
	for name, id := range map[string]string{"forged actor": forgedActor, "unsigned": unsigned, "borrowed signature": borrowed} {
		r := outcome(t, c, id)
		if r.str("status") != "rejected" || r.str("field") != "signature" {
			t.Fatalf("%s: %s, want rejected naming the signature", name, r.Raw)
		}
	}
	if got := c.must(200, "GET", "/v1/workspaces/"+ws, nil).str("name"); got != "renamed" {
		t.Fatalf("a forged command changed the workspace: name %q", got)
	}
	verify := func() (string, int) {
		cmd := exec.Command(binary, "audit", "verify", "--data", dir)
		cmd.Env = append(os.Environ(), "LOGBOOK_KAFKA_BROKERS=", "LOGBOOK_SIGNING_KEY=", "LOGBOOK_SIGNING_KEY_FILE=",
			"LOGBOOK_SIGNING_PUBLIC_KEYS=", "LOGBOOK_SIGNING_PUBLIC_KEYS_FILE=")
		out, err := cmd.CombinedOutput()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	if out, code := verify(); code != 0 || !strings.Contains(out, " 0 bad") {
		t.Fatalf("audit verify before the forgery: exit %d\n%s", code, out)
	}

	// A forged event: the next seq, a correct prev_hash and hash (anyone
	// can compute them), the actor an admin, the signature borrowed.
	last := events[len(events)-1]
	fake := last
	fake.ID, fake.Seq, fake.PrevHash = uuid.NewString(), last.Seq+1, last.Hash
	fake.Type, fake.Payload = "workspace.renamed", json.RawMessage(`{"name":"forged"}`)
	fake.Aggregate.Version++
	fake.Actor = domain.Actor{ID: "forged-no-such-key", Role: "admin"}
	if fake.Hash, err = schemas.ComputeHash(fake); err != nil {
		t.Fatal(err)
	}
	produce("logbook.events", fake)
	out, code := verify()
	if code != 1 || !strings.Contains(out, "BAD SIGNATURE workspace "+ws+" seq "+strconv.FormatInt(fake.Seq, 10)) || !strings.Contains(out, " 0 broken chains") {
		t.Fatalf("audit verify after a forged event with a sound chain: exit %d\n%s\nwant exit 1 naming seq %d", code, out, fake.Seq)
	}
}

// TestMasterKeyRotates puts a new master key first, rewraps every
// workspace key under it, retires the old one, and reads every field back:
// no event was rewritten.
func TestMasterKeyRotates(t *testing.T) {
	dir := t.TempDir()
	p := startDev(t, dir)
	c := newClient(t, p.URL, p.Key)
	adminKey := p.Key // printed on the first start only
	ws, aiTask, _ := protectedWorkspace(t, c, "rotated")
	eventually(t, 30*time.Second, "the tasks projected and the agent's answer in", func() bool {
		return strings.Contains(tasksOf(t, c, ws), "MRKREASON") &&
			c.do("GET", "/v1/workspaces/"+ws+"/tasks/"+aiTask, nil).str("status") == "completed"
	})
	before := tasksOf(t, c, ws)
	events := c.must(200, "GET", "/v1/workspaces/"+ws+"/events?limit=500", nil).Raw

	keyFile := filepath.Join(dir, "master.key")
	old, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	fresh := "rotated:" + strings.Repeat("ab", 32)
	if err := os.WriteFile(keyFile, []byte(fresh+"\n"+string(old)), 0o600); err != nil {
		t.Fatal(err)
	}
	p.stop()
	p = startDev(t, dir)
	rewrap := exec.Command(binary, "keys", "rewrap", "--data", dir)
	rewrap.Env = append(os.Environ(), "LOGBOOK_KAFKA_BROKERS=", "LOGBOOK_MASTER_KEY=", "LOGBOOK_MASTER_KEY_FILE=")
	out, err := rewrap.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "under master key rotated") || strings.Contains(string(out), "rewrapped 0 ") {
		t.Fatalf("keys rewrap: %v\n%s", err, out)
	}
	p.stop()

	// The old key retired: only the new one is left.
	if err := os.WriteFile(keyFile, []byte(fresh+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p = startDev(t, dir)
	c = newClient(t, p.URL, adminKey)
	var last response
	ok := false
	for deadline := time.Now().Add(30 * time.Second); !ok && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		last = c.do("GET", "/v1/workspaces/"+ws+"/tasks?limit=500", nil)
		ok = last.Status == 200 && tasksOf(t, c, ws) == before
	}
	if !ok {
		t.Fatalf("the fields do not read back under the new master key: %d %s\nbefore:\n%s\n%s", last.Status, last.Raw, before, p.stderr.String())
	}
	if after := c.must(200, "GET", "/v1/workspaces/"+ws+"/events?limit=500", nil).Raw; string(after) != string(events) {
		t.Fatal("the trail changed: rotation must not rewrite an event")
	}
}
