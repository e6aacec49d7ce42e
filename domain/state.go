package domain

import "time"

// Workspace statuses.
const (
	WorkspaceStatusActive   = "active"
	WorkspaceStatusArchived = "archived"
	WorkspaceStatusErased   = "erased"
)

// Task statuses.
const (
	TaskStatusPending    = "pending"
	TaskStatusAssigned   = "assigned"
	TaskStatusInProgress = "in_progress"
	TaskStatusCompleted  = "completed"
	TaskStatusFailed     = "failed"
	TaskStatusCancelled  = "cancelled"
)

type Member struct {
	PrincipalID string `json:"principal_id"`
	Role        string `json:"role"`
}

type Agent struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	Role         string `json:"role"`
	Model        string `json:"model"`
	Instructions string `json:"instructions"`
}

type AIPolicy struct {
	DailyTokenBudget int64  `json:"daily_token_budget"` // 0: no budget
	FallbackMode     string `json:"fallback_mode"`
	// RequestsPerMinute caps the workspace's AI provider calls; 0: no cap.
	RequestsPerMinute int64 `json:"requests_per_minute,omitempty"`
}

// Workspace is the state of one workspace aggregate, rebuilt by Evolve.
type Workspace struct {
	ID        string            `json:"id"`
	Name      string            `json:"name"`
	Status    string            `json:"status"`
	Version   int64             `json:"version"`
	CreatedAt time.Time         `json:"created_at"`
	Members   map[string]Member `json:"members,omitempty"` // by principal id
	Agents    map[string]Agent  `json:"agents,omitempty"`  // by agent id
	Policy    AIPolicy          `json:"policy"`
}

// Task is the state of one task aggregate, rebuilt by Evolve.
type Task struct {
	ID          string `json:"id"`
	WorkspaceID string `json:"workspace_id"`
	Title       string `json:"title"`
	Input       string `json:"input"`
	Priority    int    `json:"priority"`
	Assignee    string `json:"assignee,omitempty"`
	Status      string `json:"status"`
	Attempt     int    `json:"attempt"`
	Output      string `json:"output,omitempty"`
	// Provider and Model say what produced Output, when it was recorded.
	Provider      string     `json:"provider,omitempty"`
	Model         string     `json:"model,omitempty"`
	FailureReason string     `json:"failure_reason,omitempty"`
	Usage         TokenUsage `json:"usage"`
	Labels        []string   `json:"labels,omitempty"`
	DueAt         *time.Time `json:"due_at,omitempty"`
	Version       int64      `json:"version"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// State is what Decide needs to judge one command: the workspace (nil when it
// does not exist) and, for task commands, the target task, for key commands
// the target key (nil when it does not exist).
type State struct {
	Workspace *Workspace
	Task      *Task
	Key       *Key
}
