package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
)

// CheckConfig says where the checker reads the log.
type CheckConfig struct {
	Kafka kafka.Config
	// Wait bounds how long outcomes, events and read models may take to
	// appear before what is missing counts as lost or mismatched.
	Wait time.Duration
	// From is where the run began in each topic (LogEnds before the run);
	// a topic without is read from its start.
	From map[string]map[int32]int64
}

// LogEnds returns the end offsets of the events and results topics: taken
// before a run, the checker reads only what the run wrote.
func LogEnds(ctx context.Context, cfg kafka.Config) (map[string]map[int32]int64, error) {
	cl, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	t := cfg.Topics()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, t.Events, t.Results)
	if err != nil {
		return nil, err
	}
	return offsetsByTopic(ends)
}

func offsetsByTopic(l kadm.ListedOffsets) (map[string]map[int32]int64, error) {
	out := map[string]map[int32]int64{}
	var err error
	l.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			err = fmt.Errorf("%s/%d: %w", o.Topic, o.Partition, o.Err)
			return
		}
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.Offset
	})
	return out, err
}

// CheckResult is what the checker found. Lost, Duplicated, SeqGaps and
// Mismatches must all be zero.
type CheckResult struct {
	Acknowledged int            `json:"acknowledged"`
	Accepted     int            `json:"accepted"`
	Rejected     int            `json:"rejected"`
	RejectedBy   map[string]int `json:"rejected_by_code,omitempty"`
	// Lost: acknowledged with no outcome in the log, or accepted with an
	// event its outcome names missing from the log.
	Lost int `json:"lost"`
	// Duplicated: one command's effect (event type and aggregate) in the
	// log twice, or one command with two different outcomes.
	Duplicated int `json:"duplicated"`
	// SeqGaps: a workspace's events not numbered 1, 2, 3… in log order.
	SeqGaps int `json:"seq_gaps"`
	// Mismatches: a workspace or task of the read models that differs from
	// what the log says.
	Mismatches   int      `json:"read_model_mismatches"`
	Events       int      `json:"events_read"`
	Results      int      `json:"results_read"`
	TasksChecked int      `json:"tasks_checked"`
	Examples     []string `json:"examples,omitempty"`
	Seconds      float64  `json:"seconds"`
}

// OK reports a clean check.
func (c *CheckResult) OK() bool {
	return c.Lost == 0 && c.Duplicated == 0 && c.SeqGaps == 0 && c.Mismatches == 0
}

func (c *CheckResult) note(format string, args ...any) {
	if len(c.Examples) < 20 {
		c.Examples = append(c.Examples, fmt.Sprintf(format, args...))
	}
}

// WriteText prints the finding for a person.
func (c *CheckResult) WriteText(w io.Writer) {
	verdict := "clean"
	if !c.OK() {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "check %s: %d acknowledged commands followed to the log (%d accepted, %d rejected); lost %d, duplicated %d, seq gaps %d, read-model mismatches %d (%d events, %d results, %d tasks read in %.1f s)\n",
		verdict, c.Acknowledged, c.Accepted, c.Rejected, c.Lost, c.Duplicated, c.SeqGaps, c.Mismatches,
		c.Events, c.Results, c.TasksChecked, c.Seconds)
	for code, n := range c.RejectedBy {
		fmt.Fprintf(w, "  rejected %s: %d\n", code, n)
	}
	for _, e := range c.Examples {
		fmt.Fprintf(w, "  %s\n", e)
	}
}

// outcome is a result record as the checker reads it.
type outcome struct {
	CommandID   string `json:"command_id"`
	WorkspaceID string `json:"workspace_id"`
	Status      string `json:"status"`
	Code        string `json:"code"`
	Events      []struct {
		Seq int64 `json:"seq"`
	} `json:"events"`
}

// event is an event envelope as the checker reads it.
type event struct {
	Type        string `json:"type"`
	WorkspaceID string `json:"workspace_id"`
	Seq         int64  `json:"seq"`
	CommandID   string `json:"command_id"`
	Aggregate   struct {
		ID string `json:"id"`
	} `json:"aggregate"`
	Payload struct {
		Name string `json:"name"`
	} `json:"payload"`
}

// logView is what the log says about the run's workspaces.
type logView struct {
	outcomes map[string][]outcome         // command id → its results
	seqs     map[string]map[int64]event   // workspace → seq → event
	lastSeq  map[string]int64             // workspace → highest seq
	tasks    map[string]map[string]string // workspace → task → status its events lead to
	names    map[string]string            // workspace → name its events lead to
	effects  map[string]int               // command, type, aggregate → events
	order    map[string][]int64           // workspace → seqs in log order
	pos      map[string]map[int32]int64   // topic → partition → next offset
	spaces   map[string]bool
}

// Check follows every acknowledged command of res to its outcome in the log
// (read_committed) and compares the read models of the run's workspaces
// with the log. url and key reach the API of the read models.
func Check(ctx context.Context, res *Result, cfg CheckConfig, url, key string, client *http.Client) (*CheckResult, error) {
	t0 := time.Now()
	if cfg.Wait <= 0 {
		cfg.Wait = 2 * time.Minute
	}
	cl, err := kgo.NewClient(cfg.Kafka.Opts()...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	topics := cfg.Kafka.Topics()
	from := cfg.From
	if from == nil {
		from = res.LogFrom
	}
	if from[topics.Events] == nil || from[topics.Results] == nil {
		starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, topics.Events, topics.Results)
		if err != nil {
			return nil, fmt.Errorf("check: %w", err)
		}
		if from, err = offsetsByTopic(starts); err != nil {
			return nil, fmt.Errorf("check: %w", err)
		}
	}
	v := &logView{outcomes: map[string][]outcome{}, seqs: map[string]map[int64]event{}, lastSeq: map[string]int64{},
		tasks: map[string]map[string]string{}, names: map[string]string{}, effects: map[string]int{},
		order: map[string][]int64{}, pos: map[string]map[int32]int64{topics.Events: maps.Clone(from[topics.Events]),
			topics.Results: maps.Clone(from[topics.Results])}, spaces: map[string]bool{}}
	for _, ws := range res.Workspaces {
		v.spaces[ws] = true
	}
	out := &CheckResult{Acknowledged: len(res.History), RejectedBy: map[string]int{}}
	deadline := time.Now().Add(cfg.Wait)

	// Read until every acknowledged command has an outcome and every
	// accepted one's events are in the log, or the wait ends.
	for {
		if err := v.read(ctx, cl, topics.Results, v.addOutcome); err != nil {
			return nil, fmt.Errorf("check: results: %w", err)
		}
		if err := v.read(ctx, cl, topics.Events, v.addEvent); err != nil {
			return nil, fmt.Errorf("check: events: %w", err)
		}
		if v.missing(res.History) == 0 || time.Now().After(deadline) {
			break
		}
		if !sleep(ctx, 250*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
	v.judge(res.History, out)
	if err := v.compare(ctx, out, url, key, client, deadline); err != nil {
		return nil, err
	}
	out.Seconds = time.Since(t0).Seconds()
	return out, nil
}

// read reads a topic from where the last read stopped to its end.
func (v *logView) read(ctx context.Context, cl *kgo.Client, topic string, fn func(*kgo.Record)) error {
	pos := v.pos[topic]
	return kafka.ReadToEnd(ctx, cl, topic, maps.Clone(pos), func(r *kgo.Record) error {
		pos[r.Partition] = r.Offset + 1
		fn(r)
		return nil
	})
}

func (v *logView) addOutcome(r *kgo.Record) {
	if !v.spaces[string(r.Key)] {
		return
	}
	var o outcome
	if json.Unmarshal(r.Value, &o) == nil && o.CommandID != "" {
		v.outcomes[o.CommandID] = append(v.outcomes[o.CommandID], o)
	}
}

func (v *logView) addEvent(r *kgo.Record) {
	if !v.spaces[string(r.Key)] {
		return
	}
	var e event
	if json.Unmarshal(r.Value, &e) != nil || e.WorkspaceID == "" {
		return
	}
	ws := e.WorkspaceID
	v.order[ws] = append(v.order[ws], e.Seq)
	if v.seqs[ws] == nil {
		v.seqs[ws] = map[int64]event{}
		v.tasks[ws] = map[string]string{}
	}
	v.seqs[ws][e.Seq] = e
	v.lastSeq[ws] = max(v.lastSeq[ws], e.Seq)
	v.effects[e.CommandID+" "+e.Type+" "+e.Aggregate.ID]++
	switch e.Type {
	case "workspace.created", "workspace.renamed":
		v.names[ws] = e.Payload.Name
	case "task.created":
		v.tasks[ws][e.Aggregate.ID] = "pending"
	case "task.assigned":
		v.tasks[ws][e.Aggregate.ID] = "assigned"
	case "task.attempt_started":
		v.tasks[ws][e.Aggregate.ID] = "in_progress"
	case "task.completed":
		v.tasks[ws][e.Aggregate.ID] = "completed"
	case "task.cancelled":
		v.tasks[ws][e.Aggregate.ID] = "cancelled"
	}
}

// missing counts acknowledged commands whose outcome, or an event it names,
// is not in the log yet.
func (v *logView) missing(acked []Acked) int {
	n := 0
	for _, a := range acked {
		os := v.outcomes[a.ID]
		if len(os) == 0 {
			n++
			continue
		}
		for _, e := range os[0].Events {
			if _, ok := v.seqs[os[0].WorkspaceID][e.Seq]; !ok {
				n++
				break
			}
		}
	}
	return n
}

// judge counts what the log shows.
func (v *logView) judge(acked []Acked, out *CheckResult) {
	for _, a := range acked {
		os := v.outcomes[a.ID]
		if len(os) == 0 {
			out.Lost++
			out.note("lost: %s command %s in workspace %s has no outcome in the log", opName(a.Op), a.ID, a.Workspace)
			continue
		}
		o := os[0]
		for _, other := range os[1:] {
			// A redelivered command (a client's or a transport's retry)
			// is answered again from the window: the same status, without
			// the events (the window keeps no event list, and the read
			// models keep the first answer). Another status, or other
			// events, means it was decided twice.
			window := len(other.Events) == 0
			if other.Status != o.Status || (!window && !slices.Equal(seqsOf(other), seqsOf(o))) {
				out.Duplicated++
				out.note("decided twice: command %s: %s then %s", a.ID, describe(o), describe(other))
				break
			}
		}
		switch o.Status {
		case "accepted":
			out.Accepted++
		default:
			out.Rejected++
			out.RejectedBy[o.Code]++
			if len(out.Examples) < 5 {
				out.note("rejected (not a loss, but a mix should not cause it): %s command %s: %s", opName(a.Op), a.ID, o.Code)
			}
		}
		for _, e := range o.Events {
			got, ok := v.seqs[o.WorkspaceID][e.Seq]
			if !ok || got.CommandID != a.ID {
				out.Lost++
				out.note("lost: command %s was accepted with event seq %d of workspace %s, which the log lacks", a.ID, e.Seq, o.WorkspaceID)
				break
			}
		}
	}
	for k, n := range v.effects {
		if n > 1 {
			out.Duplicated++
			out.note("duplicated: %d events for one effect (command, type, aggregate: %s)", n, k)
		}
	}
	for ws, order := range v.order {
		for i, seq := range order {
			if seq != int64(i+1) {
				out.SeqGaps++
				out.note("seq: workspace %s has seq %d where the log's event %d should be seq %d", ws, seq, i+1, i+1)
				break
			}
		}
		out.Events += len(order)
	}
	for _, os := range v.outcomes {
		out.Results += len(os)
	}
}

func seqsOf(o outcome) []int64 {
	s := make([]int64, len(o.Events))
	for i, e := range o.Events {
		s[i] = e.Seq
	}
	return s
}

func describe(o outcome) string {
	if o.Status == "accepted" {
		return fmt.Sprintf("accepted with events %v", seqsOf(o))
	}
	return o.Status + " " + o.Code
}

func opName(op Op) string {
	if op == "" {
		return "set-up"
	}
	return string(op)
}

// compare reads every workspace of the run and its tasks through the API
// and compares them with the log, waiting (within the deadline) for the
// projections to catch up before calling a difference a mismatch.
func (v *logView) compare(ctx context.Context, out *CheckResult, url, key string, client *http.Client, deadline time.Time) error {
	spaces := make([]string, 0, len(v.spaces))
	for ws := range v.spaces {
		spaces = append(spaces, ws)
	}
	sort.Strings(spaces)
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		next = make(chan string)
	)
	for range min(16, max(1, len(spaces))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ws := range next {
				var diffs []string
				tasks := 0
				for {
					diffs, tasks = v.compareSpace(ctx, ws, url, key, client)
					if len(diffs) == 0 || time.Now().After(deadline) || !sleep(ctx, 500*time.Millisecond) {
						break
					}
				}
				mu.Lock()
				out.TasksChecked += tasks
				if len(diffs) > 0 {
					out.Mismatches++
					out.note("read model: workspace %s: %s", ws, strings.Join(diffs[:min(3, len(diffs))], "; "))
				}
				mu.Unlock()
			}
		}()
	}
	for _, ws := range spaces {
		next <- ws
	}
	close(next)
	wg.Wait()
	return ctx.Err()
}

// compareSpace lists what the read models show of one workspace that
// differs from the log, and how many tasks it read.
func (v *logView) compareSpace(ctx context.Context, ws, url, key string, client *http.Client) ([]string, int) {
	var diffs []string
	var w struct {
		Name    string `json:"name"`
		LastSeq int64  `json:"last_seq"`
	}
	if code, err := getJSON(ctx, client, url+"/v1/workspaces/"+ws, key, &w); err != nil || code != http.StatusOK {
		return []string{fmt.Sprintf("GET workspace: %d %v", code, err)}, 0
	}
	if w.LastSeq != v.lastSeq[ws] {
		diffs = append(diffs, fmt.Sprintf("last_seq %d, the log's %d", w.LastSeq, v.lastSeq[ws]))
	}
	if w.Name != v.names[ws] {
		diffs = append(diffs, fmt.Sprintf("name %q, the log's %q", w.Name, v.names[ws]))
	}
	listed := map[string]string{}
	for cursor := ""; ; {
		var page struct {
			Tasks []struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			} `json:"tasks"`
			Next string `json:"next_cursor"`
		}
		path := url + "/v1/workspaces/" + ws + "/tasks?limit=500"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if code, err := getJSON(ctx, client, path, key, &page); err != nil || code != http.StatusOK {
			return append(diffs, fmt.Sprintf("GET tasks: %d %v", code, err)), len(listed)
		}
		for _, t := range page.Tasks {
			if _, twice := listed[t.ID]; twice {
				diffs = append(diffs, fmt.Sprintf("task %s listed twice", t.ID))
			}
			listed[t.ID] = t.Status
		}
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	for id, want := range v.tasks[ws] {
		got, ok := listed[id]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("task %s of the log not listed", id))
		case got != want:
			diffs = append(diffs, fmt.Sprintf("task %s is %s, the log says %s", id, got, want))
		}
	}
	for id := range listed {
		if _, ok := v.tasks[ws][id]; !ok {
			diffs = append(diffs, fmt.Sprintf("task %s listed, not in the log", id))
		}
	}
	return diffs, len(listed)
}

func getJSON(ctx context.Context, client *http.Client, url, key string, into any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, nil
	}
	return resp.StatusCode, json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(into)
}
