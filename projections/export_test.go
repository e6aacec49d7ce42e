package projections_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/projections"
	"github.com/logbook-dev/logbook/schemas"
)

// exportFixture is a workspace of seven events in the trail, some whose
// payloads only verify if the stored bytes are served exactly (keys not in
// alphabetical order, U+0000, HTML characters, non-ASCII text), and a query
// server whose exports read three events per page.
func exportFixture(t *testing.T, wrap func(http.Handler) http.Handler) (*env, *oldLog, *httptest.Server, func()) {
	e := setup(t)
	stop := e.projector(projections.ProjectionReadModels)
	l := &oldLog{e: e, ws: newID()}
	l.append(ev(domain.EvWorkspaceCreated, domain.AggregateWorkspace, l.ws, 1, domain.WorkspaceCreated{Name: "audit <me> & café"}))
	for i := range 5 {
		task := newID()
		l.append(ev(domain.EvTaskCreated, domain.AggregateTask, task, 1,
			domain.TaskCreated{TaskID: task, Title: "t" + string(rune('a'+i)), Input: "x\x00y", Priority: i}))
	}
	l.append(ev(domain.EvWorkspaceRenamed, domain.AggregateWorkspace, l.ws, 2, domain.WorkspaceRenamed{Name: "ünïcode"}))
	e.eventually("the trail", func() bool { return e.count(`SELECT count(*) FROM events WHERE workspace_id = $1`, l.ws) == 7 })

	q := projections.NewQueries(e.pool, quiet)
	projections.SetExportPageSize(q, 3)
	r := chi.NewRouter()
	r.Use(asAdmin)
	if wrap != nil {
		r.Use(wrap)
	}
	q.Routes(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return e, l, srv, stop
}

// An export streams the trail in pages, each line the event the trail
// route serves, and verifies offline.
func TestExportStreamsTheTrailVerifiably(t *testing.T) {
	_, l, srv, _ := exportFixture(t, nil)
	resp, err := http.Get(srv.URL + "/v1/workspaces/" + l.ws + "/events/export")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != schemas.ExportMediaType {
		t.Fatalf("export: %d %q, %v: %s", resp.StatusCode, resp.Header.Get("Content-Type"), err, body)
	}
	rep, err := schemas.VerifyExport(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("export does not verify: %v\n%s", err, body)
	}
	if rep.WorkspaceID != l.ws || rep.Events != 7 || rep.Head != l.chain {
		t.Fatalf("export report %+v, want head %+v", rep, l.chain)
	}

	var trail projections.EventPage
	if code := getJSON(t, srv.URL+"/v1/workspaces/"+l.ws+"/events?limit=100", &trail); code != 200 {
		t.Fatalf("trail: %d", code)
	}
	lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
	if len(lines) != 9 || len(trail.Events) != 7 {
		t.Fatalf("%d lines, %d trail events", len(lines), len(trail.Events))
	}
	for i, e := range trail.Events {
		want, _ := json.Marshal(e)
		if lines[i+1] != string(want) {
			t.Errorf("line %d is\n%s\nthe trail serves\n%s", i+2, lines[i+1], want)
		}
	}

	missing, err := http.Get(srv.URL + "/v1/workspaces/" + newID() + "/events/export")
	if err != nil {
		t.Fatal(err)
	}
	missing.Body.Close()
	if missing.StatusCode != 404 || missing.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("export of an unknown workspace: %d %s", missing.StatusCode, missing.Header.Get("Content-Type"))
	}
}

// breakAfterFirstPage runs once, when the first page has been flushed.
type breakAfterFirstPage struct {
	http.ResponseWriter
	once *sync.Once
	fn   func()
}

func (b breakAfterFirstPage) Flush() {
	b.ResponseWriter.(http.Flusher).Flush()
	b.once.Do(b.fn)
}

func (b breakAfterFirstPage) Unwrap() http.ResponseWriter { return b.ResponseWriter }

// Postgres failing after the first page: the client sees the response cut,
// and what it got ends without a chain head, so it verifies as truncated.
func TestExportInterruptedEndsWithoutChainHead(t *testing.T) {
	var (
		once  sync.Once
		fixed *env
	)
	drop := func() {
		if _, err := fixed.pool.Exec(context.Background(), `DROP TABLE events`); err != nil {
			t.Errorf("drop the trail: %v", err)
		}
	}
	e, l, srv, stopProjector := exportFixture(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(breakAfterFirstPage{ResponseWriter: w, once: &once, fn: drop}, r)
		})
	})
	fixed = e
	stopProjector() // it reads the trail too

	resp, err := http.Get(srv.URL + "/v1/workspaces/" + l.ws + "/events/export")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || err == nil {
		t.Fatalf("an interrupted export must be cut, not ended: %d, %v\n%s", resp.StatusCode, err, body)
	}
	var lines int
	for sc := bufio.NewScanner(bytes.NewReader(body)); sc.Scan(); {
		lines++
	}
	if lines != 4 { // the header and the first page
		t.Fatalf("got %d lines before the cut, want 4:\n%s", lines, body)
	}
	_, err = schemas.VerifyExport(bytes.NewReader(body))
	var b *schemas.ExportBreak
	if !errors.As(err, &b) || !strings.Contains(b.Reason, "truncated") {
		t.Fatalf("verifying the cut export: %v, want truncated", err)
	}
}
