package projections_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/auth"
	"github.com/logbook-dev/logbook/projections"
	"github.com/logbook-dev/logbook/schemas"
)

// oldLog writes sealed events straight to the events topic, as a decider
// from before the edge refused NUL would have.
type oldLog struct {
	e     *env
	ws    string
	chain schemas.Chain
}

func (l *oldLog) append(evs ...domain.Event) {
	l.e.t.Helper()
	sealed, chain, err := schemas.Seal(l.chain, schemas.EventMeta{WorkspaceID: l.ws, CommandID: newID(),
		Actor: domain.Actor{ID: "old", Role: "admin"}}, evs)
	if err != nil {
		l.e.t.Fatal(err)
	}
	l.chain = chain
	for _, s := range sealed {
		l.produce(s)
	}
}

func (l *oldLog) produce(s schemas.EventEnvelope) {
	l.e.t.Helper()
	val, _ := json.Marshal(s)
	if err := l.e.cl.ProduceSync(context.Background(), &kgo.Record{Topic: l.e.cfg.Topics().Events,
		Key: []byte(l.ws), Value: val}).FirstErr(); err != nil {
		l.e.t.Fatal(err)
	}
}

func ev(typ, aggType, aggID string, version int64, payload any) domain.Event {
	return domain.Event{Type: typ, Aggregate: domain.AggregateRef{Type: aggType, ID: aggID, Version: version},
		OccurredAt: time.Now(), Payload: payload}
}

func (e *env) queries() *httptest.Server {
	r := chi.NewRouter()
	r.Use(asAdmin)
	projections.NewQueries(e.pool, quiet).Routes(r)
	srv := httptest.NewServer(r)
	e.t.Cleanup(srv.Close)
	return srv
}

// asAdmin authenticates every request as an admin key, as the server's
// auth middleware would.
func asAdmin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(auth.WithPrincipal(r.Context(), auth.Principal{ID: "root", Role: auth.RoleAdmin})))
	})
}

func getJSON(t *testing.T, url string, out any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil && resp.StatusCode == 200 {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// An event in the log is a fact: one with NUL in its fields (written before
// the edge refused NUL) projects exactly, and the workspace stays live.
func TestEventWithNULFromAnOldLogProjectsExactly(t *testing.T) {
	e := setup(t)
	e.projector(projections.ProjectionReadModels)
	srv := e.queries()
	l := &oldLog{e: e, ws: newID()}
	task := newID()
	l.append(ev(domain.EvWorkspaceCreated, domain.AggregateWorkspace, l.ws, 1, domain.WorkspaceCreated{Name: "n\x00ame"}))
	l.append(ev(domain.EvTaskCreated, domain.AggregateTask, task, 1,
		domain.TaskCreated{TaskID: task, Title: "\x01t", Input: "x\x00y", Priority: 1}))
	l.append(ev(domain.EvWorkspaceMemberAdded, domain.AggregateWorkspace, l.ws, 2,
		domain.WorkspaceMemberAdded{PrincipalID: "al\x00ice", Role: domain.RoleReader}))
	l.append(ev(domain.EvWorkspaceRenamed, domain.AggregateWorkspace, l.ws, 3, domain.WorkspaceRenamed{Name: "renamed"}))

	var ws projections.WorkspaceView
	e.eventually("every event projected", func() bool {
		return getJSON(t, srv.URL+"/v1/workspaces/"+l.ws, &ws) == 200 && ws.LastSeq == 4
	})
	if ws.Name != "renamed" || ws.ProjectionStalled || len(ws.Members) != 1 || ws.Members[0].PrincipalID != "al\x00ice" {
		t.Fatalf("workspace: %+v", ws)
	}
	var tv projections.TaskView
	if code := getJSON(t, srv.URL+"/v1/workspaces/"+l.ws+"/tasks/"+task, &tv); code != 200 {
		t.Fatalf("GET task = %d", code)
	}
	if tv.Input != "x\x00y" || tv.Title != "\x01t" {
		t.Fatalf("task input %q, title %q: want them exactly as the event says", tv.Input, tv.Title)
	}
	if n := e.count(`SELECT count(*) FROM events WHERE workspace_id = $1`, l.ws); n != 4 {
		t.Fatalf("trail holds %d events, want 4", n)
	}
	if n := e.count(`SELECT count(*) FROM projection_quarantine`); n != 0 {
		t.Fatalf("%d records quarantined, want none", n)
	}
}

// A log holding task.created v1 (written before labels) and v2 projects
// both: the v1 task reads with no labels and no due time, the v2 one with
// its own, and ?label= finds it.
func TestTaskCreatedV1AndV2Project(t *testing.T) {
	e := setup(t)
	e.projector(projections.ProjectionReadModels)
	srv := e.queries()
	l := &oldLog{e: e, ws: newID()}
	old, cur := newID(), newID()
	l.append(ev(domain.EvWorkspaceCreated, domain.AggregateWorkspace, l.ws, 1, domain.WorkspaceCreated{Name: "w"}))
	// v1, as the code of then sealed it.
	sealed, chain, err := schemas.Seal(l.chain, schemas.EventMeta{WorkspaceID: l.ws, CommandID: newID(),
		Actor: domain.Actor{ID: "old", Role: "admin"}}, []domain.Event{ev(domain.EvTaskCreated, domain.AggregateTask, old, 1,
		domain.TaskCreated{TaskID: old, Title: "before labels"})})
	if err != nil {
		t.Fatal(err)
	}
	v1 := sealed[0]
	v1.Version, v1.Payload = 1, json.RawMessage(`{"task_id":"`+old+`","title":"before labels","input":"","priority":0}`)
	if v1.Hash, err = schemas.ComputeHash(v1); err != nil {
		t.Fatal(err)
	}
	l.produce(v1)
	l.chain = schemas.Chain{Seq: chain.Seq, Hash: v1.Hash}
	due := time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)
	l.append(ev(domain.EvTaskCreated, domain.AggregateTask, cur, 1,
		domain.TaskCreated{TaskID: cur, Title: "with labels", Labels: []string{"bug", "customer:acme"}, DueAt: &due}))

	var page projections.TaskPage
	e.eventually("both tasks projected", func() bool {
		return getJSON(t, srv.URL+"/v1/workspaces/"+l.ws+"/tasks", &page) == 200 && len(page.Tasks) == 2
	})
	byID := map[string]projections.TaskView{}
	for _, tv := range page.Tasks {
		byID[tv.ID] = tv
	}
	if v := byID[old]; v.Labels == nil || len(v.Labels) != 0 || v.DueAt != nil || v.Title != "before labels" {
		t.Fatalf("v1 task: %+v", v)
	}
	if v := byID[cur]; len(v.Labels) != 2 || v.Labels[1] != "customer:acme" || v.DueAt == nil || !v.DueAt.Equal(due) {
		t.Fatalf("v2 task: %+v", v)
	}
	if code := getJSON(t, srv.URL+"/v1/workspaces/"+l.ws+"/tasks?label=customer:acme", &page); code != 200 ||
		len(page.Tasks) != 1 || page.Tasks[0].ID != cur {
		t.Fatalf("?label=customer:acme: %d %+v", code, page.Tasks)
	}
	if n := e.count(`SELECT count(*) FROM projection_quarantine`); n != 0 {
		t.Fatalf("%d records quarantined, want none", n)
	}
}

// An event past a hole in its workspace's chain (the log lost the events
// it builds on, as a broker that tears a transaction leaves it) stalls the
// workspace visibly, with what follows held; it is neither applied over the
// hole nor dropped as forged, which would freeze the workspace silently.
func TestGapInTheChainStallsTheWorkspaceVisibly(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.projector(projections.ProjectionReadModels)
	srv := e.queries()
	l := &oldLog{e: e, ws: newID()}
	l.append(ev(domain.EvWorkspaceCreated, domain.AggregateWorkspace, l.ws, 1, domain.WorkspaceCreated{Name: "before"}))
	var ws projections.WorkspaceView
	e.eventually("the workspace", func() bool { return getJSON(t, srv.URL+"/v1/workspaces/"+l.ws, &ws) == 200 })

	// Seq 2 and 3 never reach the log; 4 and 5 build on them.
	l.chain = schemas.Chain{Seq: 3, Hash: "hash-of-a-lost-event"}
	l.append(ev(domain.EvWorkspaceRenamed, domain.AggregateWorkspace, l.ws, 4, domain.WorkspaceRenamed{Name: "past the hole"}))
	l.append(ev(domain.EvWorkspaceRenamed, domain.AggregateWorkspace, l.ws, 5, domain.WorkspaceRenamed{Name: "after"}))
	e.eventually("both held", func() bool {
		return e.count(`SELECT count(*) FROM projection_quarantine WHERE workspace_id = $1`, l.ws) == 2
	})
	if getJSON(t, srv.URL+"/v1/workspaces/"+l.ws, &ws) != 200 || !ws.ProjectionStalled || ws.LastSeq != 1 || ws.Name != "before" ||
		ws.Stall == nil || ws.Stall.SinceSeq == nil || *ws.Stall.SinceSeq != 4 || ws.Stall.Records != 2 {
		t.Fatalf("workspace: %+v (stall %+v)", ws, ws.Stall)
	}
	q, err := projections.ListQuarantine(ctx, e.pool, l.ws, 10)
	if err != nil || len(q) != 2 || q[0].Held || !q[1].Held || !strings.Contains(q[0].Error, "lacks seqs 2 to 3") {
		t.Fatalf("quarantine: %+v, %v", q, err)
	}
	// Replay cannot close the hole: nothing is applied over it.
	reps, err := projections.NewReplayer(e.pool, nil).Replay(ctx, l.ws)
	if err != nil || len(reps) != 1 || reps[0].Applied != 0 || reps[0].Remaining != 2 {
		t.Fatalf("replay: %+v, %v", reps, err)
	}
}

// A record that truly cannot apply stalls its workspace without losing what
// follows; the other workspaces flow; replay after the fix catches up.
func TestUnappliableEventStallsItsWorkspaceUntilReplay(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.projector(projections.ProjectionReadModels)
	srv := e.queries()
	// Break the read-model schema for one title.
	if _, err := e.pool.Exec(ctx, `ALTER TABLE tasks ADD CONSTRAINT no_poison CHECK (title <> 'poison')`); err != nil {
		t.Fatal(err)
	}
	stalled, healthy := newID(), newID()
	e.send(newID(), domain.CmdWorkspaceCreate, stalled, &domain.WorkspaceCreateCmd{Name: "a"})
	e.send(newID(), domain.CmdWorkspaceCreate, healthy, &domain.WorkspaceCreateCmd{Name: "b"})
	e.eventually("workspaces", func() bool { return e.count(`SELECT count(*) FROM workspaces`) == 2 })

	poison, after := newID(), newID()
	e.send(newID(), domain.CmdTaskCreate, stalled, &domain.TaskCreateCmd{TaskID: poison, Title: "poison", Priority: 1})
	e.send(newID(), domain.CmdWorkspaceRename, stalled, &domain.WorkspaceRenameCmd{Name: "renamed"})
	e.send(newID(), domain.CmdTaskCreate, stalled, &domain.TaskCreateCmd{TaskID: after, Title: "after", Priority: 1})
	e.send(newID(), domain.CmdTaskCreate, healthy, &domain.TaskCreateCmd{TaskID: newID(), Title: "fine", Priority: 1})

	e.eventually("the healthy workspace's task", func() bool {
		return e.count(`SELECT count(*) FROM tasks WHERE workspace_id = $1`, healthy) == 1
	})
	e.eventually("the stalled workspace's events quarantined", func() bool {
		return e.count(`SELECT count(*) FROM projection_quarantine WHERE workspace_id = $1`, stalled) == 3
	})
	q, err := projections.ListQuarantine(ctx, e.pool, stalled, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 3 || q[0].Held || !q[1].Held || !q[2].Held || q[0].Seq == nil || *q[0].Seq != 2 {
		t.Fatalf("quarantine: %+v", q)
	}
	var ws projections.WorkspaceView
	if getJSON(t, srv.URL+"/v1/workspaces/"+stalled, &ws) != 200 || !ws.ProjectionStalled || ws.LastSeq != 1 ||
		ws.Stall == nil || ws.Stall.SinceSeq == nil || *ws.Stall.SinceSeq != 2 || ws.Stall.Records != 3 {
		t.Fatalf("stalled workspace view: %+v (stall %+v)", ws, ws.Stall)
	}
	sum, err := projections.Stalls(ctx, e.pool, 10)
	if err != nil || sum.Workspaces != 1 || sum.Records != 3 || len(sum.Stalled) != 1 || sum.Stalled[0].WorkspaceID != stalled {
		t.Fatalf("stalls: %+v, %v", sum, err)
	}

	// A forged event behind the quarantine is dropped, not held.
	var last schemas.EventEnvelope
	rows, err := e.pool.Query(ctx, `SELECT value FROM projection_quarantine WHERE workspace_id = $1 ORDER BY log_offset DESC LIMIT 1`, stalled)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v []byte
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(v, &last)
	}
	rows.Close()
	forged := (&oldLog{e: e, ws: stalled, chain: schemas.Chain{Seq: last.Seq, Hash: "not-the-hash"}})
	forged.append(ev(domain.EvWorkspaceRenamed, domain.AggregateWorkspace, stalled, 9, domain.WorkspaceRenamed{Name: "forged"}))
	e.send(newID(), domain.CmdWorkspaceRename, stalled, &domain.WorkspaceRenameCmd{Name: "final"})
	e.eventually("the next real event held", func() bool {
		return e.count(`SELECT count(*) FROM projection_quarantine WHERE workspace_id = $1`, stalled) == 4
	})

	// Replay before the fix: nothing moves, the cause is kept.
	rp := projections.NewReplayer(e.pool, nil)
	reps, err := rp.Replay(ctx, stalled)
	if err != nil || len(reps) != 1 || reps[0].Applied != 0 || reps[0].Remaining != 4 || reps[0].Error == "" {
		t.Fatalf("replay before the fix: %+v, %v", reps, err)
	}
	// The fix, then replay: the workspace reaches the log's last seq.
	if _, err := e.pool.Exec(ctx, `ALTER TABLE tasks DROP CONSTRAINT no_poison`); err != nil {
		t.Fatal(err)
	}
	if reps, err = rp.Replay(ctx, ""); err != nil || len(reps) != 1 || reps[0].Applied != 4 || reps[0].Remaining != 0 {
		t.Fatalf("replay after the fix: %+v, %v", reps, err)
	}
	if getJSON(t, srv.URL+"/v1/workspaces/"+stalled, &ws) != 200 || ws.ProjectionStalled || ws.LastSeq != 5 || ws.Name != "final" {
		t.Fatalf("after replay: %+v", ws)
	}
	if n := e.count(`SELECT count(*) FROM tasks WHERE workspace_id = $1`, stalled); n != 2 {
		t.Fatalf("%d tasks after replay, want 2", n)
	}
	// Later events apply directly again.
	e.send(newID(), domain.CmdWorkspaceRename, stalled, &domain.WorkspaceRenameCmd{Name: "live"})
	e.eventually("live again", func() bool {
		return getJSON(t, srv.URL+"/v1/workspaces/"+stalled, &ws) == 200 && ws.LastSeq == 6 && ws.Name == "live"
	})
	if n := e.count(`SELECT count(*) FROM projection_quarantine`); n != 0 {
		t.Fatalf("%d records left in quarantine", n)
	}
}
