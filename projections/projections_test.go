package projections_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/consumers/decider"
	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/internal/pg"
	"github.com/logbook-dev/logbook/internal/pgtest"
	"github.com/logbook-dev/logbook/projections"
	"github.com/logbook-dev/logbook/schemas"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type env struct {
	t    *testing.T
	cfg  kafka.Config
	pool *pgxpool.Pool
	cl   *kgo.Client
}

func setup(t *testing.T) *env {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := kafkatest.Config(t, 4)
	if err := kafka.EnsureTopics(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	pool, err := pg.Connect(ctx, pgtest.URL(t), 10)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := projections.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	d, err := decider.New(decider.Config{Kafka: cfg, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	run(t, d.Run, d.Close)
	return &env{t: t, cfg: cfg, pool: pool, cl: cl}
}

// run starts a role and stops it at cleanup (or earlier via the returned func).
func run(t *testing.T, fn func(context.Context) error, closeFn func()) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fn(ctx); err != nil {
			t.Errorf("role stopped: %v", err)
		}
	}()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			closeFn()
			<-done
		}
	}
	t.Cleanup(stop)
	return stop
}

func (e *env) projector(name string) func() {
	topic, apply := e.cfg.Topics().Events, projections.Applier(projections.ReadModels{})
	if name == "command_results" {
		topic, apply = e.cfg.Topics().Results, projections.Results{}
	}
	p, err := projections.NewProjector(projections.ProjectorConfig{Kafka: e.cfg, Name: name, Topic: topic,
		Pool: e.pool, Apply: apply, Logger: quiet})
	if err != nil {
		e.t.Fatal(err)
	}
	return run(e.t, p.Run, p.Close)
}

func (e *env) send(id, typ, ws string, payload any) {
	e.t.Helper()
	env, err := schemas.EncodeCommand(domain.Command{ID: id, Type: typ, WorkspaceID: ws,
		Actor: domain.Actor{ID: "tester", Role: "admin"}, IssuedAt: time.Now(), Payload: payload}, "")
	if err != nil {
		e.t.Fatal(err)
	}
	val, _ := json.Marshal(env)
	if err := e.cl.ProduceSync(context.Background(), &kgo.Record{Topic: e.cfg.Topics().Commands, Key: []byte(ws), Value: val}).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func TestProjectorBuildsReadModelsOnceAcrossRestarts(t *testing.T) {
	e := setup(t)
	stopRM := e.projector("read_models")
	e.projector("command_results")

	const workspaces, tasksPer = 5, 40
	var wss []string
	for i := 0; i < workspaces; i++ {
		ws := newID()
		wss = append(wss, ws)
		e.send(newID(), domain.CmdWorkspaceCreate, ws, &domain.WorkspaceCreateCmd{Name: "ws"})
		e.send(newID(), domain.CmdWorkspaceRegisterAgent, ws, &domain.WorkspaceRegisterAgentCmd{AgentID: "a1", Name: "ada", Role: "dev", Model: "m"})
	}
	var tasks [][2]string
	for i := 0; i < tasksPer; i++ {
		for _, ws := range wss {
			id := newID()
			tasks = append(tasks, [2]string{ws, id})
			e.send(newID(), domain.CmdTaskCreate, ws, &domain.TaskCreateCmd{TaskID: id, Title: "t", Input: "in", Priority: 2})
		}
		if i == tasksPer/2 {
			// Restart the projector mid-stream: it resumes at its checkpoint.
			stopRM()
			stopRM = e.projector("read_models")
		}
	}
	total := workspaces * tasksPer
	e.eventually("all tasks projected", func() bool { return e.count(`SELECT count(*) FROM tasks`) == total })

	// Move every task of the first workspace through its lifecycle.
	for _, tk := range tasks {
		if tk[0] != wss[0] {
			continue
		}
		e.send(newID(), domain.CmdTaskAssign, tk[0], &domain.TaskAssignCmd{TaskID: tk[1], Assignee: "a1"})
		e.send(newID(), domain.CmdTaskStartAttempt, tk[0], &domain.TaskStartAttemptCmd{TaskID: tk[1]})
		e.send(newID(), domain.CmdTaskRecordResult, tk[0], &domain.TaskRecordResultCmd{TaskID: tk[1], Attempt: 1, Output: "out",
			Usage: domain.TokenUsage{PromptTokens: 10, CompletionTokens: 5}})
	}
	e.eventually("lifecycle projected", func() bool {
		return e.count(`SELECT count(*) FROM tasks WHERE workspace_id = $1 AND status = 'completed'`, wss[0]) == tasksPer
	})
	if got := e.count(`SELECT prompt_tokens FROM ai_usage WHERE workspace_id = $1`, wss[0]); got != 10*tasksPer {
		t.Errorf("ai usage prompt tokens = %d, want %d", got, 10*tasksPer)
	}
	wantEvents := workspaces*2 + total + tasksPer*4 // created+agent, task.created, assigned+started+result+completed
	e.eventually("trail complete", func() bool { return e.count(`SELECT count(*) FROM events`) == wantEvents })
	// Gapless per workspace.
	if n := e.count(`SELECT count(*) FROM (SELECT workspace_id FROM events GROUP BY workspace_id
		HAVING max(seq) <> count(*) OR min(seq) <> 1) g`); n != 0 {
		t.Fatalf("%d workspaces with gaps in seq", n)
	}
	e.eventually("command outcomes", func() bool {
		return e.count(`SELECT count(*) FROM commands WHERE status = 'accepted'`) == workspaces*2+total+tasksPer*3
	})
	// The trail is append-only.
	if _, err := e.pool.Exec(context.Background(), `UPDATE events SET type = 'x'`); err == nil {
		t.Fatal("updating the event trail must fail")
	}
}

func TestQueriesServeReadModels(t *testing.T) {
	e := setup(t)
	e.projector("read_models")
	e.projector("command_results")
	ws := newID()
	create := newID()
	e.send(create, domain.CmdWorkspaceCreate, ws, &domain.WorkspaceCreateCmd{Name: "research"})
	var ids []string
	for i := 0; i < 7; i++ {
		id := newID()
		ids = append(ids, id)
		e.send(newID(), domain.CmdTaskCreate, ws, &domain.TaskCreateCmd{TaskID: id, Title: "t", Priority: 1})
	}
	e.send(newID(), domain.CmdTaskCancel, ws, &domain.TaskCancelCmd{TaskID: ids[0]})
	e.eventually("projected", func() bool {
		return e.count(`SELECT count(*) FROM tasks WHERE status = 'cancelled'`) == 1
	})

	r := chi.NewRouter()
	r.Use(asAdmin)
	projections.NewQueries(e.pool, quiet).Routes(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	get := func(path string, wantStatus int, out any) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != wantStatus {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("GET %s = %d, want %d: %s", path, resp.StatusCode, wantStatus, b)
		}
		if out != nil {
			if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
				t.Fatal(err)
			}
		}
	}
	var wsView projections.WorkspaceView
	get("/v1/workspaces/"+ws, 200, &wsView)
	if wsView.Name != "research" || wsView.LastSeq != 9 {
		t.Fatalf("workspace view: %+v", wsView)
	}
	// Cursor pagination visits every task once, in creation order.
	var seen []string
	cursor := ""
	for page := 0; page < 10; page++ {
		var body struct {
			Tasks      []projections.TaskView `json:"tasks"`
			NextCursor string                 `json:"next_cursor"`
		}
		get("/v1/workspaces/"+ws+"/tasks?limit=3"+cursorParam(cursor), 200, &body)
		for _, tv := range body.Tasks {
			seen = append(seen, tv.ID)
		}
		if body.NextCursor == "" {
			break
		}
		cursor = body.NextCursor
	}
	if len(seen) != len(ids) {
		t.Fatalf("paged %d tasks, want %d", len(seen), len(ids))
	}
	for i := range ids {
		if seen[i] != ids[i] {
			t.Fatalf("page order: got %v, want %v", seen, ids)
		}
	}
	var filtered struct {
		Tasks []projections.TaskView `json:"tasks"`
	}
	get("/v1/workspaces/"+ws+"/tasks?status=cancelled", 200, &filtered)
	if len(filtered.Tasks) != 1 || filtered.Tasks[0].ID != ids[0] {
		t.Fatalf("status filter: %+v", filtered.Tasks)
	}
	// The trail verifies as served.
	var trail struct {
		Events []projections.EventView `json:"events"`
	}
	get("/v1/workspaces/"+ws+"/events?limit=100", 200, &trail)
	var chain schemas.Chain
	for _, ev := range trail.Events {
		var err error
		if chain, err = schemas.Verify(chain, ev.EventEnvelope); err != nil {
			t.Fatalf("served trail: %v", err)
		}
	}
	if chain.Seq != 9 {
		t.Fatalf("trail ends at seq %d, want 9", chain.Seq)
	}
	var cmd projections.CommandView
	e.eventually("outcome", func() bool { return e.count(`SELECT count(*) FROM commands WHERE id = $1`, create) == 1 })
	get("/v1/commands/"+create, 200, &cmd)
	if cmd.Status != "accepted" || cmd.WorkspaceID != ws {
		t.Fatalf("command view: %+v", cmd)
	}
	get("/v1/commands/"+newID(), 200, &cmd)
	if cmd.Status != "pending" {
		t.Fatalf("unknown command: %+v", cmd)
	}
	get("/v1/workspaces/"+newID(), 404, nil)
	get("/v1/workspaces/not-a-uuid/tasks", 404, nil)
	get("/v1/workspaces/"+newID()+"/tasks", 404, nil)
	get("/v1/workspaces/"+ws+"/tasks?limit=0", 422, nil)
	get("/v1/workspaces/"+ws+"/tasks?limit=abc", 422, nil)
	get("/v1/workspaces/"+ws+"/tasks?status=bogus", 422, nil)
	get("/v1/workspaces/"+ws+"/tasks?cursor=zzz", 422, nil)
	get("/v1/workspaces/"+ws+"/events?after_seq=-1", 422, nil)
	get("/v1/workspaces/"+ws+"/tasks/"+newID(), 404, nil)
}

func TestPoisonRecordIsDeadLetteredAndTheProjectionMovesOn(t *testing.T) {
	e := setup(t)
	e.projector("read_models")
	ws := newID()
	e.send(newID(), domain.CmdWorkspaceCreate, ws, &domain.WorkspaceCreateCmd{Name: "before"})
	e.eventually("workspace", func() bool { return e.count(`SELECT count(*) FROM workspaces`) == 1 })

	// Garbage on the events topic, on the workspace's partition, then more
	// real events behind it.
	if err := e.cl.ProduceSync(context.Background(), &kgo.Record{Topic: e.cfg.Topics().Events, Key: []byte(ws),
		Value: []byte(`{"not":"an event"`)}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	task := newID()
	e.send(newID(), domain.CmdTaskCreate, ws, &domain.TaskCreateCmd{TaskID: task, Title: "after"})
	e.eventually("the task behind the poison", func() bool { return e.count(`SELECT count(*) FROM tasks WHERE id = $1`, task) == 1 })

	cl, err := kgo.NewClient(append(e.cfg.Opts(), kgo.ConsumeTopics(e.cfg.Topics().DLQ))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := cl.PollFetches(ctx)
	recs := f.Records()
	if len(recs) != 1 || string(recs[0].Value) != `{"not":"an event"` {
		t.Fatalf("dead letters: %d records, errors %v", len(recs), f.Errors())
	}
}

// cursorParam is the query parameter that asks for the page after cursor;
// none for the first page (an empty cursor is refused).
func cursorParam(cursor string) string {
	if cursor == "" {
		return ""
	}
	return "&cursor=" + cursor
}

// Erasing a workspace drops every sensitive field of it from the read
// models (task input, output, failure reason; agent instructions) and
// leaves other workspaces as they were.
func TestErasureDropsSensitiveFieldsFromReadModels(t *testing.T) {
	e := setup(t)
	e.projector("read_models")
	e.projector("command_results")
	t.Cleanup(func() { // on failure, say which commands the decider refused
		if !t.Failed() {
			return
		}
		rows, err := e.pool.Query(context.Background(), `SELECT type, coalesce(reason, '') FROM commands WHERE status <> 'accepted'`)
		if err != nil {
			t.Log(err)
			return
		}
		defer rows.Close()
		for rows.Next() {
			var typ, reason string
			_ = rows.Scan(&typ, &reason)
			t.Log("refused:", typ, reason)
		}
	})
	wss := []string{newID(), newID()}
	for _, ws := range wss {
		e.send(newID(), domain.CmdWorkspaceCreate, ws, &domain.WorkspaceCreateCmd{Name: "ws"})
		e.send(newID(), domain.CmdWorkspaceRegisterAgent, ws, &domain.WorkspaceRegisterAgentCmd{AgentID: "a1", Name: "ada",
			Model: "m", Instructions: "MARK-instructions"})
		e.send(newID(), domain.CmdTaskCreate, ws, &domain.TaskCreateCmd{TaskID: "done", Title: "t", Input: "MARK-input"})
		e.send(newID(), domain.CmdTaskAssign, ws, &domain.TaskAssignCmd{TaskID: "done", Assignee: "a1"})
		e.send(newID(), domain.CmdTaskStartAttempt, ws, &domain.TaskStartAttemptCmd{TaskID: "done"})
		e.send(newID(), domain.CmdTaskRecordResult, ws, &domain.TaskRecordResultCmd{TaskID: "done", Attempt: 1, Output: "MARK-output"})
		e.send(newID(), domain.CmdTaskCreate, ws, &domain.TaskCreateCmd{TaskID: "failed", Title: "t", Input: "MARK-input"})
		e.send(newID(), domain.CmdTaskAssign, ws, &domain.TaskAssignCmd{TaskID: "failed", Assignee: "a1"})
		e.send(newID(), domain.CmdTaskStartAttempt, ws, &domain.TaskStartAttemptCmd{TaskID: "failed"})
		e.send(newID(), domain.CmdTaskFailAttempt, ws, &domain.TaskFailAttemptCmd{TaskID: "failed", Attempt: 1, Reason: "MARK-reason"})
	}
	marked := func(ws string) int {
		return e.count(`SELECT count(*) FROM tasks WHERE workspace_id = $1 AND (input LIKE 'MARK%' OR output LIKE 'MARK%'
			OR failure_reason LIKE 'MARK%')`, ws) +
			e.count(`SELECT count(*) FROM agents WHERE workspace_id = $1 AND instructions LIKE 'MARK%'`, ws)
	}
	e.eventually("both workspaces projected", func() bool {
		return e.count(`SELECT count(*) FROM tasks WHERE status IN ('completed', 'failed')`) == 4
	})
	if n := marked(wss[0]); n != 3 {
		t.Fatalf("%d rows carry the markers before the erase, want 3", n)
	}
	e.send(newID(), domain.CmdWorkspaceErase, wss[0], &domain.WorkspaceEraseCmd{})
	e.eventually("erased", func() bool {
		return e.count(`SELECT count(*) FROM workspaces WHERE id = $1 AND status = 'erased'`, wss[0]) == 1
	})
	if n := marked(wss[0]); n != 0 {
		t.Errorf("%d rows of the erased workspace still carry sensitive fields", n)
	}
	if n := marked(wss[1]); n != 3 {
		t.Errorf("the other workspace lost data: %d marked rows, want 3", n)
	}
}
