package decider_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/logbook-dev/logbook/consumers/decider"
	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/internal/signing"
	"github.com/logbook-dev/logbook/schemas"
)

type harness struct {
	t   *testing.T
	cfg kafka.Config
	cl  *kgo.Client
}

func newHarness(t *testing.T) *harness {
	cfg := kafkatest.Config(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(cfg.Opts(), kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return &harness{t: t, cfg: cfg, cl: cl}
}

func (h *harness) startDecider() (stop func()) { return h.startDeciderWith(nil) }

func (h *harness) startDeciderWith(v *signing.Verifier) (stop func()) {
	d, err := decider.New(decider.Config{Kafka: h.cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		SessionTimeout: 6 * time.Second, Verifier: v})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := d.Run(ctx); err != nil {
			h.t.Errorf("decider: %v", err)
		}
	}()
	return func() { cancel(); d.Close(); <-done }
}

func (h *harness) send(id, typ, ws string, payload any) {
	h.t.Helper()
	h.sendKeyed(id, typ, ws, "", payload)
}

// read consumes a whole topic (read_committed) until done says enough.
func read[T any](h *harness, topic string, done func([]T) bool) []T {
	h.t.Helper()
	cl, err := kgo.NewClient(append(h.cfg.Opts(), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out []T
	for !done(out) {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			h.t.Fatalf("timed out reading %s: have %d records", topic, len(out))
		}
		f.EachRecord(func(r *kgo.Record) {
			var v T
			if err := json.Unmarshal(r.Value, &v); err != nil {
				h.t.Fatalf("decode %s: %v", topic, err)
			}
			out = append(out, v)
		})
	}
	return out
}

// readAll reads a topic to its end once no transaction is open on it
// (read_committed). A real broker writes a transaction's commit markers to
// its partitions one by one: a result seen committed does not mean its
// events' partition is readable yet, so it waits for the last stable
// offsets to reach the high watermarks.
func readAll[T any](h *harness, topic string) []T {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	adm := kadm.NewClient(h.cl)
	var ends kadm.ListedOffsets
	for {
		stable, err1 := adm.ListCommittedOffsets(ctx, topic)
		hwms, err2 := adm.ListEndOffsets(ctx, topic)
		if err := errors.Join(err1, err2); err != nil {
			h.t.Fatal(err)
		}
		settled := true
		hwms.Each(func(o kadm.ListedOffset) {
			s, _ := stable.Lookup(topic, o.Partition)
			settled = settled && s.Offset == o.Offset
		})
		if settled {
			ends = stable
			break
		}
		select {
		case <-ctx.Done():
			h.t.Fatalf("%s: a transaction stayed open", topic)
		case <-time.After(50 * time.Millisecond):
		}
	}
	// Offsets count transaction markers too: read until every partition's
	// position passes its end offset.
	cl, err := kgo.NewClient(append(h.cfg.Opts(), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords())...)
	if err != nil {
		h.t.Fatal(err)
	}
	defer cl.Close()
	next := map[int32]int64{}
	done := func() bool {
		ok := true
		ends.Each(func(o kadm.ListedOffset) { ok = ok && next[o.Partition] >= o.Offset })
		return ok
	}
	var out []T
	for !done() {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			h.t.Fatalf("timed out reading %s to its end", topic)
		}
		f.EachRecord(func(r *kgo.Record) {
			next[r.Partition] = r.Offset + 1
			if r.Attrs.IsControl() {
				return
			}
			var v T
			if err := json.Unmarshal(r.Value, &v); err != nil {
				h.t.Fatalf("decode %s: %v", topic, err)
			}
			out = append(out, v)
		})
	}
	return out
}

func atLeast[T any](n int) func([]T) bool { return func(v []T) bool { return len(v) >= n } }

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func TestDeciderWritesChainedEventsAndRestoresState(t *testing.T) {
	h := newHarness(t)
	stop := h.startDecider()

	wsA, wsB := newID(), newID()
	h.send(newID(), domain.CmdWorkspaceCreate, wsA, &domain.WorkspaceCreateCmd{Name: "a"})
	h.send(newID(), domain.CmdWorkspaceCreate, wsB, &domain.WorkspaceCreateCmd{Name: "b"})
	createTask := newID()
	task := newID()
	h.send(createTask, domain.CmdTaskCreate, wsA, &domain.TaskCreateCmd{TaskID: task, Title: "t", Priority: 1})
	h.send(createTask, domain.CmdTaskCreate, wsA, &domain.TaskCreateCmd{TaskID: task, Title: "t", Priority: 1}) // redelivery
	h.send(newID(), domain.CmdTaskComplete, wsA, &domain.TaskCompleteCmd{TaskID: task})                         // illegal: pending
	h.send(newID(), domain.CmdTaskCreate, newID(), &domain.TaskCreateCmd{TaskID: newID(), Title: "x"})          // unknown workspace

	results := read(h, h.cfg.Topics().Results, atLeast[schemas.Result](6))
	byID := map[string][]schemas.Result{}
	for _, r := range results {
		byID[r.CommandID] = append(byID[r.CommandID], r)
	}
	if got := byID[createTask]; len(got) != 2 || got[0].Status != schemas.ResultAccepted || got[1].Status != schemas.ResultAccepted ||
		got[0].AggregateID != task || got[1].AggregateID != task {
		t.Fatalf("redelivered create: want the first outcome twice, got %+v", got)
	}
	var conflicts, notFound int
	for _, r := range results {
		switch r.Code {
		case domain.CodeConflict:
			conflicts++
		case domain.CodeNotFound:
			notFound++
		}
	}
	if conflicts != 1 || notFound != 1 {
		t.Fatalf("want 1 conflict and 1 not_found, got %d and %d: %+v", conflicts, notFound, results)
	}

	events := readAll[schemas.EventEnvelope](h, h.cfg.Topics().Events)
	if len(events) != 3 {
		t.Fatalf("want 3 events (2 workspaces, 1 task), got %d", len(events))
	}
	chains := map[string]schemas.Chain{}
	for _, e := range events {
		next, err := schemas.Verify(chains[e.WorkspaceID], e)
		if err != nil {
			t.Fatal(err)
		}
		chains[e.WorkspaceID] = next
		if err := schemas.ValidateEventPayload(e.Type, e.Version, e.Payload); err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
	}

	// A new decider restores state from the decider-state topic: the chain
	// continues, the task exists, and the old command is still a duplicate.
	stop()
	stop = h.startDecider()
	defer stop()
	assign := newID()
	h.send(createTask, domain.CmdTaskCreate, wsA, &domain.TaskCreateCmd{TaskID: task, Title: "t", Priority: 1})
	h.send(newID(), domain.CmdWorkspaceRegisterAgent, wsA, &domain.WorkspaceRegisterAgentCmd{AgentID: "agent-1", Name: "ada", Role: "dev", Model: "m"})
	h.send(assign, domain.CmdTaskAssign, wsA, &domain.TaskAssignCmd{TaskID: task, Assignee: "agent-1"})

	results = read(h, h.cfg.Topics().Results, atLeast[schemas.Result](9))
	var last schemas.Result
	creates := 0
	for _, r := range results {
		if r.CommandID == assign {
			last = r
		}
		if r.CommandID == createTask {
			creates++
			if r.Status != schemas.ResultAccepted || r.AggregateID != task {
				t.Fatalf("redelivered create after restore must get the first outcome: %+v", r)
			}
		}
	}
	if creates != 3 {
		t.Fatalf("want 3 outcomes of the create (first, redelivery, after restore), got %d", creates)
	}
	if last.Status != schemas.ResultAccepted {
		t.Fatalf("assign after restore: %+v", last)
	}
	events = readAll[schemas.EventEnvelope](h, h.cfg.Topics().Events)
	chains = map[string]schemas.Chain{}
	for _, e := range events {
		next, err := schemas.Verify(chains[e.WorkspaceID], e)
		if err != nil {
			t.Fatalf("after restore: %v", err)
		}
		chains[e.WorkspaceID] = next
	}
	if len(events) != 5 || chains[wsA].Seq != 4 {
		t.Fatalf("want 5 events and workspace A at seq 4, got %d events, seq %d", len(events), chains[wsA].Seq)
	}
}

func TestDeciderRejectsUndecodablePayloadWithField(t *testing.T) {
	h := newHarness(t)
	stop := h.startDecider()
	defer stop()
	ws := newID()
	h.send(newID(), domain.CmdWorkspaceCreate, ws, &domain.WorkspaceCreateCmd{Name: "a"})
	bad := newID()
	env := schemas.CommandEnvelope{ID: bad, Type: domain.CmdTaskCreate, WorkspaceID: ws, IssuedAt: time.Now(),
		Payload: json.RawMessage(`{"task_id":"x","title":"t","bogus":1}`)}
	val, _ := json.Marshal(env)
	if err := h.cl.ProduceSync(context.Background(), &kgo.Record{Topic: h.cfg.Topics().Commands, Key: []byte(ws), Value: val}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	results := read(h, h.cfg.Topics().Results, atLeast[schemas.Result](2))
	for _, r := range results {
		if r.CommandID == bad {
			if r.Status != schemas.ResultRejected || r.Code != domain.CodeInvalid || r.Field != "payload" || !strings.Contains(r.Reason, "bogus") {
				t.Fatalf("want invalid rejection, got %+v", r)
			}
			return
		}
	}
	t.Fatal(fmt.Sprint("no result for ", bad))
}

func TestDeciderRefusesToOutgrowAStateRecord(t *testing.T) {
	h := newHarness(t)
	stop := h.startDecider()
	defer stop()
	ws := newID()
	h.send(newID(), domain.CmdWorkspaceCreate, ws, &domain.WorkspaceCreateCmd{Name: "big"})
	instructions := strings.Repeat("x", domain.MaxTextLen)
	for i := 0; i < 14; i++ {
		h.send(fmt.Sprintf("agent-cmd-%d", i), domain.CmdWorkspaceRegisterAgent, ws, &domain.WorkspaceRegisterAgentCmd{
			AgentID: fmt.Sprintf("agent-%d", i), Name: fmt.Sprintf("a%d", i), Role: "r", Model: "m", Instructions: instructions})
	}
	// After a refusal the decider keeps deciding: a small command still works.
	last := newID()
	h.send(last, domain.CmdWorkspaceRename, ws, &domain.WorkspaceRenameCmd{Name: "still alive"})
	results := read(h, h.cfg.Topics().Results, atLeast[schemas.Result](16))
	var accepted, refused int
	sawLast := false
	for _, r := range results {
		sawLast = sawLast || r.CommandID == last
		switch {
		case r.CommandType != domain.CmdWorkspaceRegisterAgent:
		case r.Status == schemas.ResultAccepted:
			accepted++
		case r.Code == domain.CodeInvalid:
			refused++
		}
		if r.CommandID == last && r.Status != schemas.ResultAccepted {
			t.Fatalf("decider stuck after a refusal: %+v", r)
		}
	}
	if !sawLast {
		t.Fatal("no outcome for the command after the refusals")
	}
	if accepted < 10 || refused == 0 || accepted+refused != 14 {
		t.Fatalf("accepted %d, refused %d of 14 large agents", accepted, refused)
	}
}

// sendKeyed sends a command as the API does for a request with an
// Idempotency-Key: with its request digest ("" for none).
func (h *harness) sendKeyed(id, typ, ws, digest string, payload any) {
	h.t.Helper()
	env, err := schemas.EncodeCommand(domain.Command{ID: id, Type: typ, WorkspaceID: ws,
		Actor: domain.Actor{ID: "tester", Role: "admin"}, IssuedAt: time.Now(), Payload: payload}, "")
	if err != nil {
		h.t.Fatal(err)
	}
	env.RequestDigest = digest
	val, _ := json.Marshal(env)
	if err := h.cl.ProduceSync(context.Background(), &kgo.Record{Topic: h.cfg.Topics().Commands, Key: []byte(ws), Value: val}).FirstErr(); err != nil {
		h.t.Fatal(err)
	}
}

func TestDeciderRefusesAKeyReusedForAnotherRequest(t *testing.T) {
	h := newHarness(t)
	stop := h.startDecider()
	ws, cmd, task := newID(), newID(), newID()
	d1, d2 := strings.Repeat("a1", 32), strings.Repeat("b2", 32) // digests of two requests
	h.send(newID(), domain.CmdWorkspaceCreate, ws, &domain.WorkspaceCreateCmd{Name: "a"})
	h.sendKeyed(cmd, domain.CmdTaskCreate, ws, d1, &domain.TaskCreateCmd{TaskID: task, Title: "first"})
	h.sendKeyed(cmd, domain.CmdTaskCreate, ws, d2, &domain.TaskCreateCmd{TaskID: task, Title: "second"}) // same key, other body
	h.sendKeyed(cmd, domain.CmdTaskCreate, ws, d1, &domain.TaskCreateCmd{TaskID: task, Title: "first"})  // a true retry

	check := func(rs []schemas.Result, want int) {
		t.Helper()
		var got []schemas.Result
		for _, r := range rs {
			if r.CommandID == cmd {
				got = append(got, r)
			}
		}
		if len(got) != want {
			t.Fatalf("want %d results for the keyed command, got %d: %+v", want, len(got), got)
		}
		for i, r := range got {
			reused := i%2 == 1 // the requests alternate: first, second, first…
			switch {
			case reused && (r.Status != schemas.ResultRejected || r.Code != "idempotency_key_reused" ||
				r.Field != "Idempotency-Key" || r.RequestDigest != d2 || len(r.Events) != 0):
				t.Fatalf("result %d: another body under the same key must be refused with its own digest, got %+v", i, r)
			case !reused && (r.Status != schemas.ResultAccepted || r.AggregateID != task || r.RequestDigest != d1):
				t.Fatalf("result %d: the first request and its retries must get the first outcome, got %+v", i, r)
			}
		}
	}
	check(read(h, h.cfg.Topics().Results, atLeast[schemas.Result](4)), 3)
	if events := readAll[schemas.EventEnvelope](h, h.cfg.Topics().Events); len(events) != 2 {
		t.Fatalf("want 2 events (workspace, one task), got %d", len(events))
	}

	// The digest survives a restore from the decider-state topic, and the
	// refusal did not replace the first outcome in the window.
	stop()
	stop = h.startDecider()
	defer stop()
	h.sendKeyed(cmd, domain.CmdTaskCreate, ws, d2, &domain.TaskCreateCmd{TaskID: task, Title: "second"})
	h.sendKeyed(cmd, domain.CmdTaskCreate, ws, d1, &domain.TaskCreateCmd{TaskID: task, Title: "first"})
	check(read(h, h.cfg.Topics().Results, atLeast[schemas.Result](6)), 5)
	if events := readAll[schemas.EventEnvelope](h, h.cfg.Topics().Events); len(events) != 2 {
		t.Fatalf("after restore: want 2 events, got %d", len(events))
	}
}

// Task ids are unique within their workspace only: two workspaces on one
// partition each have a task "t1", and neither sees, refuses or changes the
// other's, also after a restart restores them from the state topic.
func TestTaskIDsAreScopedToTheirWorkspace(t *testing.T) {
	h := newHarness(t)
	stop := h.startDecider()
	// Two workspaces that the commands topic puts on one partition.
	seen := map[int32]string{}
	var a, b string
	for a == "" {
		ws := newID()
		env, err := schemas.EncodeCommand(domain.Command{ID: newID(), Type: domain.CmdWorkspaceCreate, WorkspaceID: ws,
			Actor: domain.Actor{ID: "tester", Role: "admin"}, IssuedAt: time.Now(), Payload: &domain.WorkspaceCreateCmd{Name: "w"}}, "")
		if err != nil {
			t.Fatal(err)
		}
		val, _ := json.Marshal(env)
		res := h.cl.ProduceSync(context.Background(), &kgo.Record{Topic: h.cfg.Topics().Commands, Key: []byte(ws), Value: val})
		r, err := res.First()
		if err != nil {
			t.Fatal(err)
		}
		if other, ok := seen[r.Partition]; ok {
			a, b = other, ws
		}
		seen[r.Partition] = ws
	}
	created := len(seen) + 1
	for _, ws := range []string{a, b} {
		h.send(newID(), domain.CmdTaskCreate, ws, &domain.TaskCreateCmd{TaskID: "t1", Title: "task of " + ws})
	}
	h.send(newID(), domain.CmdTaskCancel, a, &domain.TaskCancelCmd{TaskID: "t1"})
	results := read(h, h.cfg.Topics().Results, atLeast[schemas.Result](created+3))
	for _, r := range results {
		if r.Status != schemas.ResultAccepted {
			t.Fatalf("%s in %s: %s %s", r.CommandType, r.WorkspaceID, r.Status, r.Reason)
		}
	}
	stop()
	stop = h.startDecider() // restored from decider-state
	defer stop()
	h.send(newID(), domain.CmdTaskCancel, b, &domain.TaskCancelCmd{TaskID: "t1"})
	h.send(newID(), domain.CmdTaskCancel, a, &domain.TaskCancelCmd{TaskID: "t1"}) // already cancelled: refused
	results = read(h, h.cfg.Topics().Results, atLeast[schemas.Result](created+5))
	last := results[len(results)-2:]
	if last[0].WorkspaceID != b || last[0].Status != schemas.ResultAccepted {
		t.Errorf("cancelling b's t1 after a restart: %+v", last[0])
	}
	if last[1].WorkspaceID != a || last[1].Status != schemas.ResultRejected || last[1].Code != domain.CodeConflict {
		t.Errorf("cancelling a's t1 twice: %+v", last[1])
	}
}

// The counters count committed work only: a transaction that failed to write
// its results and was decided again counts its duplicate once.
func TestCountersLeaveOutAbortedTransactions(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := kafka.Config{Brokers: c.ListenAddrs(), Partitions: 1}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	h := &harness{t: t, cfg: cfg, cl: cl}
	ws, create := newID(), newID()
	h.send(create, domain.CmdWorkspaceCreate, ws, &domain.WorkspaceCreateCmd{Name: "a"})
	h.send(create, domain.CmdWorkspaceCreate, ws, &domain.WorkspaceCreateCmd{Name: "a"}) // redelivery

	// The first write to the results topic fails for good.
	var failed atomic.Bool
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		r := req.(*kmsg.ProduceRequest)
		if r.TransactionID == nil || failed.Load() {
			return nil, nil, false
		}
		hit := false
		resp := r.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range r.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			name := rt.Topic
			if info := c.TopicIDInfo(rt.TopicID); name == "" && info != nil {
				name = info.Topic
			}
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				if name == cfg.Topics().Results {
					sp.ErrorCode, hit = kerr.InvalidRecord.Code, true
				}
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		if !hit {
			c.KeepControl()
			return nil, nil, false
		}
		failed.Store(true)
		return resp, nil, true
	})
	c.KeepControl()

	d, err := decider.New(decider.Config{Kafka: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SessionTimeout: 6 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(runCtx) }()
	defer func() { stop(); d.Close(); <-done }()

	results := read(h, cfg.Topics().Results, atLeast[schemas.Result](2))
	if len(results) != 2 || !failed.Load() {
		t.Fatalf("want the two answers once, after a failed write; got %d (write failed: %v)", len(results), failed.Load())
	}
	var s decider.Stats
	for s = d.Snapshot(); s.Transactions == 0 && ctx.Err() == nil; s = d.Snapshot() {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Aborts < 1 || s.Commands != 2 || s.Duplicates != 1 || s.Accepted != 2 || s.Events != 1 {
		t.Fatalf("counters after one aborted and one committed transaction: %+v", s)
	}
}
