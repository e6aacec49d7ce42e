package projections_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/pg"
	"github.com/logbook-dev/logbook/internal/pgtest"
	"github.com/logbook-dev/logbook/projections"
	"github.com/logbook-dev/logbook/schemas"
)

// Every command the domain accepts produces events that the projector
// stores and the query API returns unchanged, on a real Postgres.
func FuzzAcceptedCommandsRoundTrip(f *testing.F) {
	for _, s := range [][2]string{{"name", "input"}, {"\x01lead", "x"}, {"日本語", "\U0001F600"}, {"tab\tin", "\r\n"},
		{"\u2028sep", "back\\slash"}, {`"quoted"`, "<&>"}, {"\x7f\u0085x", "\x01"}} {
		for k := range 4 {
			f.Add(uint8(k), s[0], s[1])
		}
	}
	ctx := context.Background()
	pool, err := pg.Connect(ctx, pgtest.URL(f), 4)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(pool.Close)
	if err := projections.Migrate(ctx, pool); err != nil {
		f.Fatal(err)
	}
	r := chi.NewRouter()
	r.Use(asAdmin)
	projections.NewQueries(pool, quiet).Routes(r)
	srv := httptest.NewServer(r)
	f.Cleanup(srv.Close)
	var offset atomic.Int64
	f.Fuzz(func(t *testing.T, kind uint8, a, b string) {
		ws := newID()
		var state domain.State
		var chain schemas.Chain
		decide := func(typ string, payload any) bool {
			cmd := domain.Command{ID: newID(), Type: typ, WorkspaceID: ws, Actor: domain.Actor{ID: "fuzz", Role: "admin"},
				IssuedAt: time.Now(), Payload: payload}
			events, err := domain.Decide(state, cmd, time.Now())
			if err != nil {
				return false
			}
			sealed, next, err := schemas.Seal(chain, schemas.EventMeta{WorkspaceID: ws, CommandID: cmd.ID, Actor: cmd.Actor}, events)
			if err != nil {
				t.Fatal(err)
			}
			chain = next
			for _, e := range events {
				state = domain.Evolve(state, e)
			}
			recs := make([]*kgo.Record, len(sealed))
			for i, s := range sealed {
				val, _ := json.Marshal(s)
				recs[i] = &kgo.Record{Partition: 0, Offset: offset.Add(1), Value: val}
			}
			tx, err := pool.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx) //nolint:errcheck // no-op after commit
			if err := (projections.ReadModels{}).Apply(ctx, tx, 0, recs); err != nil {
				t.Fatalf("the projector cannot store what the domain accepted (%s %q %q): %v", typ, a, b, err)
			}
			if err := tx.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			return true
		}
		name := a
		if !decide(domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: name}) {
			name = "ws"
			if !decide(domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: name}) {
				t.Fatal("a plain workspace was refused")
			}
		}
		var view projections.WorkspaceView
		task := newID()
		switch kind % 4 {
		case 1:
			if !decide(domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: task, Title: a, Input: b, Priority: 1}) {
				return
			}
			var tv projections.TaskView
			if code := getJSON(t, srv.URL+"/v1/workspaces/"+ws+"/tasks/"+task, &tv); code != 200 {
				t.Fatalf("GET task = %d", code)
			}
			if want := state.Task; tv.Title != want.Title || tv.Input != want.Input {
				t.Fatalf("task title %q input %q; the events say %q %q", tv.Title, tv.Input, want.Title, want.Input)
			}
			return
		case 2:
			if !decide(domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{AgentID: "agent", Name: a, Model: b, Role: b, Instructions: a}) {
				return
			}
		case 3:
			if !decide(domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: a, Role: domain.RoleReader}) {
				return
			}
		}
		if code := getJSON(t, srv.URL+"/v1/workspaces/"+ws, &view); code != 200 {
			t.Fatalf("GET workspace = %d", code)
		}
		want := state.Workspace
		if view.Name != want.Name || view.LastSeq != chain.Seq || len(view.Agents) != len(want.Agents) || len(view.Members) != len(want.Members) {
			t.Fatalf("workspace %+v; the events say %+v", view, want)
		}
		for _, ag := range view.Agents {
			w := want.Agents[ag.ID]
			if ag.Name != w.Name || ag.Model != w.Model || ag.Role != w.Role || ag.Instructions == nil || *ag.Instructions != w.Instructions {
				t.Fatalf("agent %+v; the events say %+v", ag, w)
			}
		}
		for _, m := range view.Members {
			if w, ok := want.Members[m.PrincipalID]; !ok || w.Role != m.Role {
				t.Fatalf("member %+v not as the events say", m)
			}
		}
	})
}
