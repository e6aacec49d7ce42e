package main_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/consumers/replay"
)

// crashLoop SIGKILLs the serving logbook process at random moments under
// continuous load, boots another on the same data, and then checks that
// every acknowledged command was decided exactly once and that the read
// models match the log.
type crashLoop struct {
	t          *testing.T
	seed       uint64
	rng        *rand.Rand
	cycles     int
	partitions int
	deadline   time.Time // hard: the whole test ends before it
	// warm, when set, bounds a wait at the start of each cycle for this
	// process to decide a command, so the kill lands on a working decider.
	warm time.Duration
	// boot starts a logbook process that serves the HTTP API.
	boot func() *proc
	// during adds faults in the middle of a cycle; nil for none.
	during func(cycle int)
	// tool runs an operator command (replay, audit verify) on the same log.
	tool  func(ctx context.Context, args ...string) *exec.Cmd
	procs []*proc // every incarnation, for the diagnostics
}

// newCrashLoop reads LOGBOOK_TEST_SEED and LOGBOOK_TEST_CRASH_CYCLES (to
// replay a schedule or run longer); the hard deadline grows with the cycles.
func newCrashLoop(t *testing.T, partitions, cycles int, base, perCycle time.Duration) *crashLoop {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("LOGBOOK_TEST_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("LOGBOOK_TEST_SEED: %v", err)
		}
		seed = n
	}
	if s := os.Getenv("LOGBOOK_TEST_CRASH_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 50 {
			t.Fatalf("LOGBOOK_TEST_CRASH_CYCLES must be 1..50, got %q", s)
		}
		cycles = n
	}
	t.Logf("crash loop: seed %d, %d cycles (rerun with LOGBOOK_TEST_SEED=%d)", seed, cycles, seed)
	return &crashLoop{t: t, seed: seed, rng: rand.New(rand.NewPCG(seed, 0)), cycles: cycles, partitions: partitions,
		deadline: time.Now().Add(base + time.Duration(cycles)*perCycle)}
}

// bounded caps a wait at the hard deadline.
func (l *crashLoop) bounded(d time.Duration) time.Duration {
	return max(0, min(d, time.Until(l.deadline)))
}

func (l *crashLoop) checkDeadline(what string) {
	if time.Now().After(l.deadline) {
		l.t.Fatalf("crash loop: hard deadline passed during %s", what)
	}
}

// run drives the fleet through the kill cycles, starting on p, and returns
// the process left serving once the load has stopped.
func (l *crashLoop) run(f *fleet, p *proc) *proc {
	t := l.t
	l.serve(f, p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	for i := 1; i <= l.cycles; i++ {
		l.checkDeadline(fmt.Sprintf("cycle %d", i))
		// Some load reaches this process before its random lifetime starts.
		before := f.acks.Load()
		limit := time.Now().Add(l.bounded(20 * time.Second))
		for f.acks.Load() < before+20 && time.Now().Before(limit) {
			time.Sleep(20 * time.Millisecond)
		}
		if id := f.last.Load(); l.warm > 0 && id != nil {
			limit := time.Now().Add(l.bounded(l.warm))
			for !f.decided(*id) && time.Now().Before(limit) {
				time.Sleep(200 * time.Millisecond)
			}
		}
		life := 500*time.Millisecond + time.Duration(l.rng.Int64N(int64(3*time.Second)))
		if l.during != nil {
			time.Sleep(life / 2)
			l.during(i)
			time.Sleep(life - life/2)
		} else {
			time.Sleep(life)
		}
		p.kill() // SIGKILL of that one process
		dead := time.Duration(l.rng.Int64N(int64(time.Second)))
		t.Logf("cycle %d/%d: SIGKILL %s, random lifetime %s under load (acknowledged by it: %d, in all: %d); next boot in %s",
			i, l.cycles, p.cmd.Args[1], life.Round(time.Millisecond), f.acks.Load()-before, f.acks.Load(), dead.Round(time.Millisecond))
		time.Sleep(dead)
		l.checkDeadline(fmt.Sprintf("restart %d", i))
		p = l.boot()
		l.serve(f, p)
	}
	time.Sleep(l.bounded(3 * time.Second)) // the last process takes load too
	cancel()
	<-done
	return p
}

// serve points the load at p, a loopback address only.
func (l *crashLoop) serve(f *fleet, p *proc) {
	if !strings.HasPrefix(p.URL, "http://127.0.0.1:") {
		l.t.Fatalf("load only targets loopback, not %q", p.URL)
	}
	l.procs = append(l.procs, p)
	f.serve(p.URL)
}

// logView is the log as `logbook replay --from-beginning` shows it.
type logView struct {
	events  int
	lastSeq map[string]int64          // workspace → highest seq
	tasks   map[string]map[string]int // workspace → task id → task.created events
	decided map[string]bool           // command ids that caused events
	twice   []string                  // commands decided twice, tasks created twice
}

func (l *crashLoop) readLog() (logView, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.bounded(60*time.Second))
	defer cancel()
	cmd := l.tool(ctx, "replay", "--from-beginning")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	t0 := time.Now()
	out, err := cmd.Output()
	if ctx.Err() != nil {
		return logView{}, fmt.Errorf("replay --from-beginning did not reach the end of the log in %s", time.Since(t0).Round(time.Second))
	}
	if err != nil {
		return logView{}, fmt.Errorf("replay: %v: %s", err, stderr.String())
	}
	v := logView{lastSeq: map[string]int64{}, tasks: map[string]map[string]int{}, decided: map[string]bool{}}
	effects := map[string]int{} // command id + event type + aggregate id → events
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e struct {
			Type        string `json:"type"`
			WorkspaceID string `json:"workspace_id"`
			Seq         int64  `json:"seq"`
			CommandID   string `json:"command_id"`
			Aggregate   struct {
				ID string `json:"id"`
			} `json:"aggregate"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return logView{}, fmt.Errorf("replay line %q: %v", sc.Text(), err)
		}
		v.events++
		v.lastSeq[e.WorkspaceID] = max(v.lastSeq[e.WorkspaceID], e.Seq)
		v.decided[e.CommandID] = true
		k := e.CommandID + " " + e.Type + " " + e.Aggregate.ID
		if effects[k]++; effects[k] == 2 {
			v.twice = append(v.twice, "command "+k)
		}
		if e.Type == "task.created" {
			if v.tasks[e.WorkspaceID] == nil {
				v.tasks[e.WorkspaceID] = map[string]int{}
			}
			if v.tasks[e.WorkspaceID][e.Aggregate.ID]++; v.tasks[e.WorkspaceID][e.Aggregate.ID] == 2 {
				v.twice = append(v.twice, "task "+e.Aggregate.ID)
			}
		}
	}
	return v, sc.Err()
}

// readModelMismatches compares every workspace of the log with the read
// models: last_seq, and each task listed once.
func readModelMismatches(c *client, v logView) []string {
	spaces := make([]string, 0, len(v.lastSeq))
	for ws := range v.lastSeq {
		spaces = append(spaces, ws)
	}
	sort.Strings(spaces)
	var mu sync.Mutex
	var out []string
	parallel(len(spaces), 8, func(i int) {
		ws := spaces[i]
		var bad []string
		r := c.do("GET", "/v1/workspaces/"+ws, nil)
		if seq, _ := r.Body["last_seq"].(float64); r.Status != 200 || int64(seq) != v.lastSeq[ws] {
			bad = append(bad, fmt.Sprintf("workspace %s (log last_seq %d): read model %d %s", ws, v.lastSeq[ws], r.Status, r.Raw))
		}
		listed := map[string]int{}
		for cursor := ""; ; {
			r := c.do("GET", "/v1/workspaces/"+ws+"/tasks?limit=500"+cursorParam(cursor), nil)
			if r.Status != 200 {
				bad = append(bad, fmt.Sprintf("workspace %s: tasks %d", ws, r.Status))
				break
			}
			tasks, _ := r.Body["tasks"].([]any)
			for _, x := range tasks {
				id, _ := x.(map[string]any)["id"].(string)
				listed[id]++
			}
			if cursor, _ = r.Body["next_cursor"].(string); cursor == "" {
				break
			}
		}
		for id, n := range listed {
			if n > 1 || v.tasks[ws][id] == 0 {
				bad = append(bad, fmt.Sprintf("workspace %s: task %s listed %d times, created %d times in the log", ws, id, n, v.tasks[ws][id]))
			}
		}
		absent := 0
		for id := range v.tasks[ws] {
			if listed[id] == 0 {
				absent++
			}
		}
		if absent > 0 {
			bad = append(bad, fmt.Sprintf("workspace %s: %d tasks of the log not in the read model", ws, absent))
		}
		mu.Lock()
		out = append(out, bad...)
		mu.Unlock()
	})
	return out
}

// awaitOutcomes polls GET /v1/commands/{id} until every acknowledged
// command is decided or the wait ends; it returns the undecided ones and
// the rejections.
func (l *crashLoop) awaitOutcomes(c *client, acked map[string]ackedCommand, accepted map[string]bool) (undecided, rejected []string) {
	pending := make([]string, 0, len(acked))
	for id := range acked {
		pending = append(pending, id)
	}
	sort.Strings(pending)
	limit := time.Now().Add(l.bounded(60 * time.Second))
	var mu sync.Mutex
	for len(pending) > 0 {
		var still []string
		parallel(len(pending), 16, func(i int) {
			id := pending[i]
			r := c.do("GET", "/v1/commands/"+id, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.Status == 200 && r.str("status") == "accepted":
				accepted[id] = true
			case r.Status == 200 && r.str("status") == "rejected":
				rejected = append(rejected, fmt.Sprintf("%s %s: %s", acked[id].kind, id, r.Raw))
			default:
				still = append(still, id)
			}
		})
		pending = still
		if len(pending) == 0 || time.Now().After(limit) {
			break
		}
		time.Sleep(time.Second)
	}
	return pending, rejected
}

type auditResult struct {
	out []byte
	err error
}

// auditVerify runs `logbook audit verify` in the background.
func (l *crashLoop) auditVerify() <-chan auditResult {
	audited := make(chan auditResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), l.bounded(60*time.Second))
		defer cancel()
		out, err := l.tool(ctx, "audit", "verify").CombinedOutput()
		audited <- auditResult{out, err}
	}()
	return audited
}

// compareWithLog replays the log and compares the read models with it until
// they match (once projected) or the wait ends.
func (l *crashLoop) compareWithLog(c *client) (v logView, mismatches []string, err error) {
	limit := time.Now().Add(l.bounded(60 * time.Second))
	for {
		if v, err = l.readLog(); err != nil {
			return v, nil, err
		}
		if mismatches = readModelMismatches(c, v); len(mismatches) == 0 || time.Now().After(limit) {
			return v, mismatches, nil
		}
		time.Sleep(time.Second)
	}
}

// check runs every end check against the process c talks to and reports
// the figures.
func (l *crashLoop) check(f *fleet, c *client) {
	t := l.t
	acked, unexpected := f.snapshot()
	if len(acked) < 100 {
		t.Errorf("only %d commands acknowledged: the load did not reach the system, nothing is proven", len(acked))
	}
	accepted := map[string]bool{}
	undecided, rejected := l.awaitOutcomes(c, acked, accepted)

	audited := l.auditVerify() // reads the whole log too: alongside the replays
	v, mismatches, logErr := l.compareWithLog(c)
	var missing []string
	if logErr == nil {
		for id := range accepted {
			if !v.decided[id] {
				missing = append(missing, fmt.Sprintf("%s %s (%s)", acked[id].kind, id, acked[id].entity))
			}
		}
	}
	audit := <-audited
	completed := 0
	for _, p := range l.procs {
		completed += strings.Count(p.stderr.String(), "completed a transaction a crash had left half-committed")
	}

	t.Logf("figures: crash loop seed=%d cycles=%d torn_commits_completed=%d acknowledged=%d outcomes=%d (accepted=%d rejected=%d) undecided=%d duplicated=%d missing_from_log=%d read_model_mismatches=%d events_in_log=%d workspaces_in_log=%d sent=%d unreachable=%d refused_429_503=%d unexpected_answers=%d replay_error=%v audit=%q",
		l.seed, l.cycles, completed, len(acked), len(accepted)+len(rejected), len(accepted), len(rejected), len(undecided), len(v.twice),
		len(missing), len(mismatches), v.events, len(v.lastSeq), f.sent.Load(), f.unreachable.Load(), f.refused.Load(),
		len(unexpected), logErr, strings.TrimSpace(string(audit.out)))

	if len(undecided) > 0 {
		parts := map[int32]int{}
		for _, id := range undecided {
			parts[replay.PartitionOf(acked[id].workspace, int32(l.partitions))]++
		}
		t.Errorf("%d acknowledged commands never got an outcome (by partition: %v), e.g. %s", len(undecided), parts, sample(undecided, acked))
	}
	if len(rejected) > 0 {
		t.Errorf("%d acknowledged valid commands were rejected, e.g. %s", len(rejected), strings.Join(first(rejected, 5), "; "))
	}
	if len(unexpected) > 0 {
		t.Errorf("%d answers were neither an acknowledgement nor 429/503, e.g. %s", len(unexpected), strings.Join(first(unexpected, 5), "; "))
	}
	if logErr != nil {
		t.Errorf("the log could not be read to its end: %v", logErr)
	}
	if len(v.twice) > 0 {
		t.Errorf("decided twice: %s", strings.Join(first(v.twice, 10), "; "))
	}
	if len(missing) > 0 {
		t.Errorf("%d accepted commands have no event in the log, e.g. %s", len(missing), strings.Join(first(missing, 5), "; "))
	}
	if len(mismatches) > 0 {
		t.Errorf("read models differ from the log: %s", strings.Join(first(mismatches, 10), "; "))
	}
	if audit.err != nil || !strings.Contains(string(audit.out), " 0 broken chains") {
		t.Errorf("audit verify: %v\n%s", audit.err, audit.out)
	}
	if t.Failed() {
		t.Logf("status: %s", c.do("GET", "/v1/status", nil).Raw)
		l.logProcesses()
	}
}

// logProcesses shows each incarnation's restores, warnings and errors.
func (l *crashLoop) logProcesses() {
	for i, p := range l.procs {
		var lines []string
		for _, line := range strings.Split(p.stderr.String(), "\n") {
			if strings.Contains(line, "restore") || strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
				lines = append(lines, line)
			}
		}
		if len(lines) > 30 {
			lines = append([]string{fmt.Sprintf("(%d earlier lines)", len(lines)-30)}, lines[len(lines)-30:]...)
		}
		l.t.Logf("incarnation %d (%s) log:\n%s", i, p.cmd.Args[1], strings.Join(lines, "\n"))
	}
}

func sample(ids []string, acked map[string]ackedCommand) string {
	var out []string
	for _, id := range first(ids, 5) {
		a := acked[id]
		out = append(out, fmt.Sprintf("%s %s in workspace %s", a.kind, id, a.workspace))
	}
	return strings.Join(out, "; ")
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

// TestDevCrashLoopDecidesEveryAcknowledgedCommand: `logbook dev` under
// continuous load is SIGKILLed at random moments and restarted on the same
// data directory, cycle after cycle. Every acknowledged command still gets
// exactly one outcome, nothing is decided twice, the read models match the
// log and the hash chains verify.
func TestDevCrashLoopDecidesEveryAcknowledgedCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("crash loop: boots and kills logbook dev repeatedly")
	}
	dir := t.TempDir()
	env := append(devEnv(), "LOGBOOK_LOG_LEVEL=info") // restores are logged at info
	l := newCrashLoop(t, 6, 5, 2*time.Minute, 20*time.Second)
	l.boot = func() *proc { return start(t, env, "dev", "--data", dir, "--http", "127.0.0.1:0") }
	l.tool = func(ctx context.Context, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, binary, append(args, "--data", dir)...)
		cmd.Env = append(os.Environ(), env...)
		return cmd
	}
	p := l.boot()
	key := p.Key
	f := newFleet(key, 200, 24, l.seed)
	p = l.run(f, p)
	l.check(f, newClient(t, p.URL, key))
	if !t.Failed() {
		p.stop()
	}
}
