package decider

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

// The decider-state topic outlives the code that writes it, so its records
// have formats of their own, spelled out here rather than borrowed from the
// domain's JSON tags (renaming a domain field must not change what a restore
// reads). Every record carries its format in "v".
//
//   - Format 0: no "v". The domain structs' JSON, as logbook wrote it before
//     formats existed; the offset record is a bare integer. Its idempotency
//     window has two shapes: whole results ("command_id", "status",
//     "aggregate_id") in the oldest records, compact outcomes ("id",
//     "rejected", "aggregate") later.
//
//   - Format 1: the structs below. Fields added later are optional and
//     omitted when empty (requests_per_minute; a task's provider and
//     model), so format 1 written before them reads as it always did.
//
//   - Format 2: the values of format 1; task records are keyed by
//     workspace and task ("task/<workspace>\x00<task>", state.go), where
//     earlier formats keyed them by task id alone, which let two
//     workspaces' tasks of one id collide on a partition. The number
//     changed so that code reading "task/<id>" refuses these records
//     instead of misplacing them.
//
//   - Format 3: the idempotency window leaves the workspace record, where
//     every transaction rewrote all of it (up to 256 outcomes), for one
//     record per remembered command ("cmd/<workspace>\x00<command>",
//     commandRecord), written once and tombstoned when the window lets it
//     go. A task record keeps what decisions read (status, assignee,
//     attempt, usage, version), not the task's text: the events hold that.
//     A window read from an earlier format is written out as command
//     records with the workspace's first format-3 record (state.go).
//
// A restore reads every format up to stateFormat and refuses a later one
// loudly: loading what it cannot read as empty would forget decided commands.
// testdata/state holds records of every format, read by the tests.
const stateFormat = 3

type workspaceRecord struct {
	V         int             `json:"v"`
	Workspace *workspaceV1    `json:"workspace"`
	Chain     chainV1         `json:"chain"`
	Recent    []outcomeRecord `json:"recent,omitempty"` // oldest first
}

type workspaceV1 struct {
	ID        string              `json:"id"`
	Name      string              `json:"name"`
	Status    string              `json:"status"`
	Version   int64               `json:"version"`
	CreatedAt time.Time           `json:"created_at"`
	Members   map[string]memberV1 `json:"members,omitempty"`
	Agents    map[string]agentV1  `json:"agents,omitempty"`
	Policy    policyV1            `json:"policy"`
}

type memberV1 struct {
	PrincipalID string `json:"principal_id"`
	Role        string `json:"role"`
}

type agentV1 struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Role         string `json:"role"`
	Model        string `json:"model"`
	Instructions string `json:"instructions"`
}

type policyV1 struct {
	DailyTokenBudget  int64  `json:"daily_token_budget"`
	FallbackMode      string `json:"fallback_mode"`
	RequestsPerMinute int64  `json:"requests_per_minute,omitempty"`
}

type chainV1 struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// commandRecord is one remembered outcome (format 3).
type commandRecord struct {
	V int `json:"v"`
	outcomeRecord
}

type outcomeRecord struct {
	ID          string      `json:"id"`
	Rejected    bool        `json:"rejected,omitempty"`
	Code        domain.Code `json:"code,omitempty"`
	Reason      string      `json:"reason,omitempty"`
	Field       string      `json:"field,omitempty"`
	AggregateID string      `json:"aggregate,omitempty"`
	Digest      string      `json:"digest,omitempty"`
}

type taskRecord struct {
	V             int       `json:"v"`
	ID            string    `json:"id"`
	WorkspaceID   string    `json:"workspace_id"`
	Title         string    `json:"title"`
	Input         string    `json:"input"`
	Priority      int       `json:"priority"`
	Assignee      string    `json:"assignee,omitempty"`
	Status        string    `json:"status"`
	Attempt       int       `json:"attempt"`
	Output        string    `json:"output,omitempty"`
	Provider      string    `json:"provider,omitempty"`
	Model         string    `json:"model,omitempty"`
	FailureReason string    `json:"failure_reason,omitempty"`
	Usage         usageV1   `json:"usage"`
	Version       int64     `json:"version"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// taskRecordV3 is a task as decisions see it (format 3).
type taskRecordV3 struct {
	V           int     `json:"v"`
	ID          string  `json:"id"`
	WorkspaceID string  `json:"workspace_id"`
	Assignee    string  `json:"assignee,omitempty"`
	Status      string  `json:"status"`
	Attempt     int     `json:"attempt"`
	Usage       usageV1 `json:"usage"`
	Version     int64   `json:"version"`
}

type usageV1 struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

// keyRecord is an API key's state: its hash, never the key. Format 1 is the
// first that has keys.
type keyRecord struct {
	V         int       `json:"v"`
	ID        string    `json:"id"`
	Role      string    `json:"role"`
	Label     string    `json:"label,omitempty"`
	Hash      string    `json:"hash"`
	Status    string    `json:"status"`
	Version   int64     `json:"version"`
	IssuedAt  time.Time `json:"issued_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

type offsetRecord struct {
	V    int   `json:"v"`
	Next int64 `json:"next_command_offset"`
}

// outcomeV0 reads a window entry of any format: both shapes of format 0
// and format 1 (outcomeRecord's keys).
type outcomeV0 struct {
	ID          string      `json:"id"`
	CommandID   string      `json:"command_id"`
	Rejected    bool        `json:"rejected"`
	Status      string      `json:"status"`
	Code        domain.Code `json:"code"`
	Reason      string      `json:"reason"`
	Field       string      `json:"field"`
	Aggregate   string      `json:"aggregate"`
	AggregateID string      `json:"aggregate_id"`
	Digest      string      `json:"digest"`
}

func (o outcomeV0) outcome() outcome {
	out := outcome{CommandID: o.ID, Rejected: o.Rejected, Code: o.Code, Reason: o.Reason, Field: o.Field,
		AggregateID: o.Aggregate, Digest: o.Digest}
	if out.CommandID == "" {
		out.CommandID = o.CommandID
	}
	if out.AggregateID == "" {
		out.AggregateID = o.AggregateID
	}
	if o.Status == schemas.ResultRejected {
		out.Rejected = true
	}
	return out
}

// errNewerFormat is a record written by a later logbook.
var errNewerFormat = errors.New("written by a newer logbook")

// formatOf reads the "v" of a JSON record: 0 when it has none.
func formatOf(value []byte) (int, error) {
	var probe struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(value, &probe); err != nil {
		return 0, err
	}
	if probe.V == nil {
		return 0, nil
	}
	if *probe.V > stateFormat {
		return *probe.V, fmt.Errorf("format %d: %w (this one reads formats 0 to %d)", *probe.V, errNewerFormat, stateFormat)
	}
	if *probe.V < 1 {
		return *probe.V, fmt.Errorf("format %d: no logbook writes it", *probe.V)
	}
	return *probe.V, nil
}

func encodeWorkspace(w workspaceState) ([]byte, error) {
	rec := workspaceRecord{V: stateFormat, Chain: chainV1(w.Chain)}
	if ws := w.Workspace; ws != nil {
		v := workspaceV1{ID: ws.ID, Name: ws.Name, Status: ws.Status, Version: ws.Version, CreatedAt: ws.CreatedAt,
			Policy: policyV1(ws.Policy)}
		if len(ws.Members) > 0 {
			v.Members = make(map[string]memberV1, len(ws.Members))
			for k, m := range ws.Members {
				v.Members[k] = memberV1(m)
			}
		}
		if len(ws.Agents) > 0 {
			v.Agents = make(map[string]agentV1, len(ws.Agents))
			for k, a := range ws.Agents {
				v.Agents[k] = agentV1(a)
			}
		}
		rec.Workspace = &v
	}
	return json.Marshal(rec)
}

// encodeCommand is the record of one outcome of the window.
func encodeCommand(o outcome) ([]byte, error) {
	return json.Marshal(commandRecord{V: stateFormat, outcomeRecord: outcomeRecord{ID: o.CommandID, Rejected: o.Rejected,
		Code: o.Code, Reason: o.Reason, Field: o.Field, AggregateID: o.AggregateID, Digest: o.Digest}})
}

func decodeCommand(value []byte) (outcome, error) {
	format, err := formatOf(value)
	if err != nil {
		return outcome{}, err
	}
	if format < 3 {
		return outcome{}, fmt.Errorf("command record of format %d: no logbook writes it", format)
	}
	var o outcomeV0
	if err := json.Unmarshal(value, &o); err != nil {
		return outcome{}, err
	}
	if o.ID == "" {
		return outcome{}, errors.New("command record without an id")
	}
	return o.outcome(), nil
}

// decodeWorkspace reads a workspace record; held says whether it holds the
// window (formats before 3), which then replaces the one in memory.
func decodeWorkspace(value []byte) (w *workspaceState, held bool, err error) {
	format, err := formatOf(value)
	if err != nil {
		return nil, false, err
	}
	// Format 0 spelled the workspace and the chain as format 1 does; only
	// its window differs, and outcomeV0 reads every shape.
	var rec struct {
		Workspace *workspaceV1 `json:"workspace"`
		Chain     chainV1      `json:"chain"`
		Recent    []outcomeV0  `json:"recent"`
	}
	if err := json.Unmarshal(value, &rec); err != nil {
		return nil, false, err
	}
	w = &workspaceState{Chain: schemas.Chain(rec.Chain)}
	if v := rec.Workspace; v != nil {
		ws := &domain.Workspace{ID: v.ID, Name: v.Name, Status: v.Status, Version: v.Version, CreatedAt: v.CreatedAt,
			Policy: domain.AIPolicy(v.Policy)}
		if len(v.Members) > 0 {
			ws.Members = make(map[string]domain.Member, len(v.Members))
			for k, m := range v.Members {
				ws.Members[k] = domain.Member(m)
			}
		}
		if len(v.Agents) > 0 {
			ws.Agents = make(map[string]domain.Agent, len(v.Agents))
			for k, a := range v.Agents {
				ws.Agents[k] = domain.Agent(a)
			}
		}
		w.Workspace = ws
	}
	if format >= 3 {
		if len(rec.Recent) > 0 {
			return nil, false, errors.New("a format-3 workspace record holds a window")
		}
		return w, false, nil
	}
	for i, o := range rec.Recent {
		out := o.outcome()
		if out.CommandID == "" {
			return nil, false, fmt.Errorf("window entry %d has no command id", i)
		}
		if w.Recent == nil {
			w.Recent = &window{}
		}
		w.Recent.add(out, false, 0)
	}
	return w, true, nil
}

func encodeTask(t *domain.Task) ([]byte, error) {
	return json.Marshal(taskRecordV3{V: stateFormat, ID: t.ID, WorkspaceID: t.WorkspaceID, Assignee: t.Assignee,
		Status: t.Status, Attempt: t.Attempt, Usage: usageV1(t.Usage), Version: t.Version})
}

// decodeTask reads every format (0 to 2 spell a task alike; 3 keeps only
// what decisions read, and so does the task it returns).
func decodeTask(value []byte) (*domain.Task, error) {
	if _, err := formatOf(value); err != nil {
		return nil, err
	}
	var r taskRecord
	if err := json.Unmarshal(value, &r); err != nil {
		return nil, err
	}
	if r.ID == "" {
		return nil, errors.New("task record without an id")
	}
	return &domain.Task{ID: r.ID, WorkspaceID: r.WorkspaceID, Assignee: r.Assignee, Status: r.Status, Attempt: r.Attempt,
		Usage: domain.TokenUsage(r.Usage), Version: r.Version}, nil
}

func encodeKey(k *domain.Key) ([]byte, error) {
	return json.Marshal(keyRecord{V: stateFormat, ID: k.ID, Role: k.Role, Label: k.Label, Hash: k.Hash, Status: k.Status,
		Version: k.Version, IssuedAt: k.IssuedAt, RevokedAt: k.RevokedAt})
}

func decodeKey(value []byte) (*domain.Key, error) {
	format, err := formatOf(value)
	if err != nil {
		return nil, err
	}
	if format == 0 {
		return nil, errors.New("key record without a format: no logbook writes it")
	}
	var r keyRecord
	if err := json.Unmarshal(value, &r); err != nil {
		return nil, err
	}
	if r.ID == "" {
		return nil, errors.New("key record without an id")
	}
	return &domain.Key{ID: r.ID, Role: r.Role, Label: r.Label, Hash: r.Hash, Status: r.Status, Version: r.Version,
		IssuedAt: r.IssuedAt, RevokedAt: r.RevokedAt}, nil
}

func encodeOffset(next int64) []byte {
	b, _ := json.Marshal(offsetRecord{V: stateFormat, Next: next})
	return b
}

// decodeOffset reads a format-1 offset record or a format-0 bare integer.
func decodeOffset(value []byte) (int64, error) {
	if n, err := strconv.ParseInt(string(value), 10, 64); err == nil {
		return n, nil
	}
	format, err := formatOf(value)
	if err != nil {
		return 0, err
	}
	if format == 0 {
		return 0, errors.New("offset record is neither a number nor versioned")
	}
	var r offsetRecord
	if err := json.Unmarshal(value, &r); err != nil {
		return 0, err
	}
	return r.Next, nil
}
