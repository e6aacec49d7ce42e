package domain

import "time"

// Aggregate types.
const (
	AggregateWorkspace = "workspace"
	AggregateTask      = "task"
)

// AggregateRef names the aggregate an event belongs to and the aggregate's
// version after the event (1 for the event that creates it).
type AggregateRef struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Version int64  `json:"version"`
}

// Event is a fact decided by Decide. The decider wraps it in an envelope
// (id, seq, hashes); Payload is one of the *Event payload types below.
type Event struct {
	Type       string
	Aggregate  AggregateRef
	OccurredAt time.Time
	Payload    any
}

// Event types; EventVersion gives the schema version each is decided at.
const (
	EvWorkspaceCreated         = "workspace.created"
	EvWorkspaceRenamed         = "workspace.renamed"
	EvWorkspaceArchived        = "workspace.archived"
	EvWorkspaceMemberAdded     = "workspace.member_added"
	EvWorkspaceMemberRemoved   = "workspace.member_removed"
	EvWorkspaceAgentRegistered = "workspace.agent_registered"
	EvWorkspaceAIPolicySet     = "workspace.ai_policy_set"
	EvWorkspaceErased          = "workspace.erased"
	EvTaskCreated              = "task.created"
	EvTaskAssigned             = "task.assigned"
	EvTaskAttemptStarted       = "task.attempt_started"
	EvTaskResultRecorded       = "task.result_recorded"
	EvTaskAttemptFailed        = "task.attempt_failed"
	EvTaskRetried              = "task.retried"
	EvTaskCompleted            = "task.completed"
	EvTaskCancelled            = "task.cancelled"
	EvKeyIssued                = "key.issued"
	EvKeyRevoked               = "key.revoked"
)

// eventVersions holds the types past schema version 1. Raising one needs a
// new schema file and an upcaster from the version before (schemas/).
var eventVersions = map[string]int{
	EvWorkspaceAIPolicySet: 2, // + requests_per_minute
	EvTaskResultRecorded:   2, // + provider, model
	EvTaskCreated:          2, // + labels, due_at
}

// EventVersion is the schema version an event type is decided at today.
func EventVersion(typ string) int {
	if v, ok := eventVersions[typ]; ok {
		return v
	}
	return 1
}

// EventTypes lists every event type Decide can emit.
var EventTypes = []string{
	EvWorkspaceCreated, EvWorkspaceRenamed, EvWorkspaceArchived,
	EvWorkspaceMemberAdded, EvWorkspaceMemberRemoved, EvWorkspaceAgentRegistered,
	EvWorkspaceAIPolicySet, EvWorkspaceErased,
	EvTaskCreated, EvTaskAssigned, EvTaskAttemptStarted, EvTaskResultRecorded,
	EvTaskAttemptFailed, EvTaskRetried, EvTaskCompleted, EvTaskCancelled,
	EvKeyIssued, EvKeyRevoked,
}

type WorkspaceCreated struct {
	Name string `json:"name"`
}

type WorkspaceRenamed struct {
	Name string `json:"name"`
}

type WorkspaceArchived struct{}

type WorkspaceMemberAdded struct {
	PrincipalID string `json:"principal_id"`
	Role        string `json:"role"`
}

type WorkspaceMemberRemoved struct {
	PrincipalID string `json:"principal_id"`
}

type WorkspaceAgentRegistered struct {
	AgentID      string `json:"agent_id"`
	Name         string `json:"name"`
	Role         string `json:"role"`
	Model        string `json:"model"`
	Instructions string `json:"instructions"`
}

type WorkspaceAIPolicySet struct {
	DailyTokenBudget  int64  `json:"daily_token_budget"`
	FallbackMode      string `json:"fallback_mode"`
	RequestsPerMinute int64  `json:"requests_per_minute"` // since v2
}

type WorkspaceErased struct{}

type TaskCreated struct {
	TaskID   string `json:"task_id"`
	Title    string `json:"title"`
	Input    string `json:"input"`
	Priority int    `json:"priority"`
	Assignee string `json:"assignee,omitempty"`
	// Since v2: labels (empty, never null) and the due time (null when none).
	Labels []string   `json:"labels"`
	DueAt  *time.Time `json:"due_at"`
}

type TaskAssigned struct {
	TaskID   string `json:"task_id"`
	Assignee string `json:"assignee"`
}

type TaskAttemptStarted struct {
	TaskID  string `json:"task_id"`
	Attempt int    `json:"attempt"`
}

type TaskResultRecorded struct {
	TaskID   string     `json:"task_id"`
	Attempt  int        `json:"attempt"`
	Output   string     `json:"output"`
	Usage    TokenUsage `json:"usage"`
	Provider string     `json:"provider"` // since v2; empty when not said
	Model    string     `json:"model"`    // since v2; empty when not said
}

type TaskAttemptFailed struct {
	TaskID    string     `json:"task_id"`
	Attempt   int        `json:"attempt"`
	Reason    string     `json:"reason"`
	Retryable bool       `json:"retryable"`
	Usage     TokenUsage `json:"usage"`
}

type TaskRetried struct {
	TaskID   string `json:"task_id"`
	Assignee string `json:"assignee"`
}

type TaskCompleted struct {
	TaskID string `json:"task_id"`
	Output string `json:"output,omitempty"`
}

type TaskCancelled struct {
	TaskID string `json:"task_id"`
	Reason string `json:"reason,omitempty"`
}

type KeyIssued struct {
	KeyID string `json:"key_id"`
	Role  string `json:"role"`
	Label string `json:"label,omitempty"`
	Hash  string `json:"hash"`
}

type KeyRevoked struct {
	KeyID string `json:"key_id"`
}

// NewEventPayload returns a pointer to a zero payload for an event type, for
// decoding, or nil for an unknown type.
func NewEventPayload(typ string) any {
	switch typ {
	case EvWorkspaceCreated:
		return &WorkspaceCreated{}
	case EvWorkspaceRenamed:
		return &WorkspaceRenamed{}
	case EvWorkspaceArchived:
		return &WorkspaceArchived{}
	case EvWorkspaceMemberAdded:
		return &WorkspaceMemberAdded{}
	case EvWorkspaceMemberRemoved:
		return &WorkspaceMemberRemoved{}
	case EvWorkspaceAgentRegistered:
		return &WorkspaceAgentRegistered{}
	case EvWorkspaceAIPolicySet:
		return &WorkspaceAIPolicySet{}
	case EvWorkspaceErased:
		return &WorkspaceErased{}
	case EvTaskCreated:
		return &TaskCreated{}
	case EvTaskAssigned:
		return &TaskAssigned{}
	case EvTaskAttemptStarted:
		return &TaskAttemptStarted{}
	case EvTaskResultRecorded:
		return &TaskResultRecorded{}
	case EvTaskAttemptFailed:
		return &TaskAttemptFailed{}
	case EvTaskRetried:
		return &TaskRetried{}
	case EvTaskCompleted:
		return &TaskCompleted{}
	case EvTaskCancelled:
		return &TaskCancelled{}
	case EvKeyIssued:
		return &KeyIssued{}
	case EvKeyRevoked:
		return &KeyRevoked{}
	}
	return nil
}
