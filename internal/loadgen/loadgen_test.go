package loadgen

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

func TestParseMix(t *testing.T) {
	m, err := ParseMix(DefaultMix)
	if err != nil || m.String() != DefaultMix || !m.needsMember() {
		t.Fatalf("default mix: %v %q", err, m.String())
	}
	if m, err := ParseMix("create=1, rename = 2"); err != nil || m.total != 3 || m.needsMember() {
		t.Fatalf("spaces around weights: %v %+v", err, m)
	}
	for _, bad := range []string{"", "create=0", "create", "fly=3", "create=-1", "create=x", "create=1,create=2", "create=2000000"} {
		if _, err := ParseMix(bad); err == nil {
			t.Errorf("mix %q accepted", bad)
		}
	}
	// Draws follow the weights.
	m, _ = ParseMix("create=3,rename=1")
	rng := rand.New(rand.NewPCG(1, 2))
	n := map[Op]int{}
	for range 40000 {
		n[m.pick(rng)]++
	}
	if n[OpCreate] < 29000 || n[OpCreate] > 31000 || n[OpRename]+n[OpCreate] != 40000 {
		t.Fatalf("draws %v for weights 3:1", n)
	}
}

// An operation with no task in the state it needs walks the lifecycle back,
// and a task in flight is in no pool, so no two commands race on it.
func TestPlanWalksTheLifecycleBack(t *testing.T) {
	s := &space{id: "0b5e6a2c-0000-4000-8000-000000000000"}
	c := s.plan(OpComplete, "m", "in", 1)
	if c.op != OpCreate || c.path != "/v1/workspaces/"+s.id+"/tasks" {
		t.Fatalf("complete with no task: %+v", c)
	}
	s.settle(c, "t1")
	c = s.plan(OpComplete, "m", "in", 2)
	if c.op != OpAssign || c.task != "t1" || c.body["assignee"] != "m" {
		t.Fatalf("complete with a pending task: %+v", c)
	}
	if again := s.plan(OpAssign, "m", "in", 3); again.op != OpCreate {
		t.Fatalf("the task in flight was handed out again: %+v", again)
	}
	s.settle(c, "")
	if c = s.plan(OpComplete, "m", "in", 4); c.op != OpStart || c.task != "t1" {
		t.Fatalf("complete with an assigned task: %+v", c)
	}
	s.settle(c, "")
	if c = s.plan(OpComplete, "m", "in", 5); c.op != OpComplete || c.task != "t1" || !strings.HasSuffix(c.path, "/t1/complete") {
		t.Fatalf("complete with a started task: %+v", c)
	}
	s.settle(c, "")
	if c = s.plan(OpCancel, "m", "in", 6); c.op != OpCreate {
		t.Fatalf("a completed task was offered for cancelling: %+v", c)
	}
	r1, r2 := s.plan(OpRename, "m", "in", 7), s.plan(OpRename, "m", "in", 8)
	if r1.body["name"] == r2.body["name"] {
		t.Fatalf("two renames to one name: %v", r1.body)
	}
}

func view(spaces ...string) *logView {
	v := &logView{outcomes: map[string][]outcome{}, seqs: map[string]map[int64]event{}, lastSeq: map[string]int64{},
		tasks: map[string]map[string]string{}, names: map[string]string{}, effects: map[string]int{},
		order: map[string][]int64{}, spaces: map[string]bool{}}
	for _, ws := range spaces {
		v.spaces[ws] = true
	}
	return v
}

func accepted(id, ws string, seqs ...int64) outcome {
	o := outcome{CommandID: id, WorkspaceID: ws, Status: "accepted"}
	for _, s := range seqs {
		o.Events = append(o.Events, struct {
			Seq int64 `json:"seq"`
		}{s})
	}
	return o
}

func ev(ws string, seq int64, cmd, typ, agg string) event {
	e := event{Type: typ, WorkspaceID: ws, Seq: seq, CommandID: cmd}
	e.Aggregate.ID = agg
	return e
}

func (v *logView) add(e event) {
	v.order[e.WorkspaceID] = append(v.order[e.WorkspaceID], e.Seq)
	if v.seqs[e.WorkspaceID] == nil {
		v.seqs[e.WorkspaceID] = map[int64]event{}
	}
	v.seqs[e.WorkspaceID][e.Seq] = e
	v.effects[e.CommandID+" "+e.Type+" "+e.Aggregate.ID]++
}

// The checker counts each defect it exists to find, and nothing on a clean
// log.
func TestJudgeFindsWhatWentWrong(t *testing.T) {
	acked := []Acked{{ID: "c1", Workspace: "w"}, {ID: "c2", Op: OpCreate, Workspace: "w"}, {ID: "c3", Op: OpCreate, Workspace: "w"}}
	clean := func() *logView {
		v := view("w")
		v.outcomes["c1"] = []outcome{accepted("c1", "w", 1)}
		v.outcomes["c2"] = []outcome{accepted("c2", "w", 2)}
		// Answered again from the window, without its events: fine.
		v.outcomes["c3"] = []outcome{accepted("c3", "w", 3), {CommandID: "c3", WorkspaceID: "w", Status: "accepted"}}
		v.add(ev("w", 1, "c1", "workspace.created", "w"))
		v.add(ev("w", 2, "c2", "task.created", "t2"))
		v.add(ev("w", 3, "c3", "task.created", "t3"))
		return v
	}
	cases := []struct {
		name  string
		spoil func(v *logView)
		want  func(c *CheckResult) bool
	}{
		{"clean", func(*logView) {}, func(c *CheckResult) bool { return c.OK() && c.Accepted == 3 && c.Events == 3 }},
		{"no outcome", func(v *logView) { delete(v.outcomes, "c2") }, func(c *CheckResult) bool { return c.Lost == 1 }},
		{"outcome without its event", func(v *logView) {
			v.order["w"] = []int64{1, 2}
			delete(v.seqs["w"], 3)
		}, func(c *CheckResult) bool { return c.Lost == 1 && c.SeqGaps == 0 }},
		{"decided twice", func(v *logView) {
			v.outcomes["c3"][1] = accepted("c3", "w", 4)
			v.add(ev("w", 4, "c3", "task.created", "t3"))
		}, func(c *CheckResult) bool { return c.Duplicated == 2 }},
		{"answered again otherwise", func(v *logView) {
			v.outcomes["c3"][1] = outcome{CommandID: "c3", WorkspaceID: "w", Status: "rejected", Code: "conflict"}
		}, func(c *CheckResult) bool { return c.Duplicated == 1 }},
		{"seq gap", func(v *logView) { v.order["w"] = []int64{1, 3, 2} }, func(c *CheckResult) bool { return c.SeqGaps == 1 }},
		{"rejected", func(v *logView) {
			v.outcomes["c2"] = []outcome{{CommandID: "c2", WorkspaceID: "w", Status: "rejected", Code: "conflict"}}
		},
			func(c *CheckResult) bool { return c.OK() && c.Rejected == 1 && c.RejectedBy["conflict"] == 1 }},
	}
	for _, tc := range cases {
		v := clean()
		tc.spoil(v)
		out := &CheckResult{Acknowledged: len(acked), RejectedBy: map[string]int{}}
		v.judge(acked, out)
		if !tc.want(out) {
			var b bytes.Buffer
			out.WriteText(&b)
			t.Errorf("%s: %s", tc.name, b.String())
		}
	}
}

func TestReportIsSelfContained(t *testing.T) {
	r := &Result{RunID: "r1", Config: ReportConfig{Workspaces: 2, Mix: DefaultMix, Duration: "0s"},
		Timeline: []Sample{{At: 1, Acknowledged: 10, P50Ms: 2, P99Ms: 9, MaxMs: 12, Lag: map[string]int64{"decider": 4}},
			{At: 2, Acknowledged: 20, Throttled: 3, P50Ms: 3, P99Ms: 8, MaxMs: 9, Lag: map[string]int64{"decider": 0}}},
		Check: &CheckResult{Acknowledged: 30, Accepted: 30}}
	var b bytes.Buffer
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"<svg", "polyline", "decider", "clean", "■ acknowledged/s (last 20.0)"} {
		if !strings.Contains(page, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	for _, remote := range []string{"<script", "src=", "href=", "http://", "https://", "ZgotmplZ"} {
		if strings.Contains(page, remote) {
			t.Errorf("report holds %q: it must open offline, whole", remote)
		}
	}
}

// Against the bare handler every command of the lifecycle mix is
// acknowledged, in a closed loop and in an open one, and the run stops by
// itself at its bound.
func TestRunAgainstTheBareHandler(t *testing.T) {
	srv := httptest.NewServer(BareHandler())
	defer srv.Close()
	for _, rate := range []float64{0, 2000} {
		mix, _ := ParseMix(DefaultMix)
		res, err := Run(context.Background(), Config{URL: srv.URL, Key: "k", Workspaces: 7, Commands: 600,
			Concurrency: 8, Rate: rate, Mix: mix, InputBytes: 32, Seed: 1, Lag: func(context.Context) (map[string]int64, error) { return nil, nil }})
		if err != nil {
			t.Fatalf("rate %v: %v", rate, err)
		}
		// The open loop drops what falls due while Concurrency are in
		// flight, and says so.
		if res.Sent+res.Dropped != 600 || res.Acknowledged != res.Sent || res.Sent < 300 || res.Failed != 0 || res.Refused != 0 || res.DrainError != "" {
			t.Fatalf("rate %v: sent %d dropped %d acknowledged %d failed %d (%v) refused %d drain %q", rate, res.Sent, res.Dropped,
				res.Acknowledged, res.Failed, res.Failures, res.Refused, res.DrainError)
		}
		if len(res.Workspaces) != 7 || res.ByOp[OpCreate].Acknowledged == 0 || res.ByOp[OpComplete].Acknowledged == 0 {
			t.Fatalf("rate %v: workspaces %v, by op %+v", rate, res.Workspaces, res.ByOp)
		}
	}
	// A run that reuses a past run's workspaces creates none.
	var created atomic.Int64
	mux := http.NewServeMux()
	mux.Handle("/", BareHandler())
	mux.HandleFunc("POST /v1/workspaces", func(w http.ResponseWriter, r *http.Request) {
		created.Add(1)
		BareHandler().ServeHTTP(w, r)
	})
	counting := httptest.NewServer(mux)
	defer counting.Close()
	mix, _ := ParseMix("create=1")
	cfg := Config{URL: counting.URL, Key: "k", Workspaces: 5, Commands: 50, Concurrency: 4, Mix: mix, Seed: 2,
		Lag: func(context.Context) (map[string]int64, error) { return nil, nil }}
	first, err := Run(context.Background(), cfg)
	if err != nil || created.Load() != 5 {
		t.Fatalf("first run: %v, %d workspaces created", err, created.Load())
	}
	cfg.Workspaces, cfg.Reuse = 0, first.Workspaces
	again, err := Run(context.Background(), cfg)
	if err != nil || created.Load() != 5 || !slices.Equal(again.Workspaces, first.Workspaces) || again.Acknowledged != 50 {
		t.Fatalf("reusing run: %v, %d workspaces created, drove %v (first %v), %d acknowledged", err, created.Load(),
			again.Workspaces, first.Workspaces, again.Acknowledged)
	}

	// A body that is not JSON is refused, as logbook would.
	resp, err := http.Post(srv.URL+"/v1/workspaces/x/tasks", "application/json", strings.NewReader("{"))
	if err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad body: %v %v", resp, err)
	}
	resp.Body.Close()
}
