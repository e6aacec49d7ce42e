package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The CloudEvents headers logbook puts on every event record (the Kafka
// binding, binary mode): a consumer routes on them without decoding values.
const (
	headerType   = "ce_type"
	headerSource = "ce_source"
	headerTime   = "ce_time"
)

// event is the part of logbook's event envelope this consumer reads; the
// envelope and payloads are described by schemas/events/*.json and by
// DESIGN.md's envelope section.
type event struct {
	WorkspaceID string          `json:"workspace_id"`
	Version     int             `json:"version"`
	Payload     json.RawMessage `json:"payload"`
}

type taskKey struct{ workspace, task string }

// Tally counts what an analyst asked for: tasks completed per workspace per
// day (UTC), and AI tokens per agent, attributed through the task's
// assignee when its result was recorded.
type Tally struct {
	Completed map[string]map[string]int // workspace → day → tasks
	Tokens    map[string]int64          // workspace/agent → prompt + completion tokens
	Events    int64                     // events read, of every type
	assignee  map[taskKey]string
}

func NewTally() *Tally {
	return &Tally{Completed: map[string]map[string]int{}, Tokens: map[string]int64{}, assignee: map[taskKey]string{}}
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// Record takes one event record. Types it does not count are skipped on
// their header alone, without decoding the value.
func (t *Tally) Record(r *kgo.Record) error {
	t.Events++
	typ := header(r, headerType)
	switch typ {
	case "task.assigned", "task.retried", "task.completed", "task.result_recorded":
	default:
		return nil
	}
	var e event
	if err := json.Unmarshal(r.Value, &e); err != nil {
		return fmt.Errorf("%s at partition %d offset %d: %w", typ, r.Partition, r.Offset, err)
	}
	if e.WorkspaceID == "" {
		e.WorkspaceID = strings.TrimPrefix(header(r, headerSource), "/logbook/workspaces/")
	}
	var p struct {
		TaskID   string `json:"task_id"`
		Assignee string `json:"assignee"`
		Usage    struct {
			Prompt     int64 `json:"prompt_tokens"`
			Completion int64 `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		return fmt.Errorf("%s payload at partition %d offset %d: %w", typ, r.Partition, r.Offset, err)
	}
	key := taskKey{e.WorkspaceID, p.TaskID}
	switch typ {
	case "task.assigned", "task.retried":
		t.assignee[key] = p.Assignee
	case "task.result_recorded":
		// usage is in every version of task.result_recorded (v1 and v2).
		t.Tokens[e.WorkspaceID+"/"+t.assignee[key]] += p.Usage.Prompt + p.Usage.Completion
	case "task.completed":
		at, err := time.Parse(time.RFC3339Nano, header(r, headerTime))
		if err != nil {
			at = r.Timestamp
		}
		day := at.UTC().Format(time.DateOnly)
		if t.Completed[e.WorkspaceID] == nil {
			t.Completed[e.WorkspaceID] = map[string]int{}
		}
		t.Completed[e.WorkspaceID][day]++
		delete(t.assignee, key) // done: its later events are not counted
	}
	return nil
}

// Write prints the tally as tab-separated lines, sorted.
func (t *Tally) Write(w io.Writer) {
	var lines []string
	for ws, days := range t.Completed {
		for day, n := range days {
			lines = append(lines, fmt.Sprintf("completed\t%s\t%s\t%d", ws, day, n))
		}
	}
	for agent, n := range t.Tokens {
		lines = append(lines, fmt.Sprintf("tokens\t%s\t%d", agent, n))
	}
	sort.Strings(lines)
	fmt.Fprintf(w, "# %d events read\n", t.Events)
	for _, l := range lines {
		fmt.Fprintln(w, l)
	}
}
