package agent

import (
	"context"
	"time"

	"github.com/logbook-dev/logbook/domain"
)

// Store is what the worker reads from the read models and where it reports
// its state for the API tier's status.
type Store interface {
	// Work returns the task and, when its assignee is one of the
	// workspace's agents, the agent; found is false while the read model
	// does not have the task yet.
	Work(ctx context.Context, workspaceID, taskID string, day time.Time) (w Work, found bool, err error)
	// Unparked returns tasks left assigned to an agent for longer than idle
	// in workspaces not over their daily budget, and attempts started and
	// left without an outcome for longer than stalled (at the version
	// before their start), at most perWorkspace of each workspace.
	Unparked(ctx context.Context, day time.Time, idle, stalled time.Duration, perWorkspace, limit int) ([]Parked, error)
	// Waiting returns the oldest tasks of a workspace left assigned to one
	// of its agents at least minAge ago, at most limit.
	Waiting(ctx context.Context, workspaceID string, minAge time.Duration, limit int) ([]Parked, error)
	// Report records this instance's provider states.
	Report(ctx context.Context, instance string, providers []ProviderStatus) error
}

// Work is what the worker needs to act on one task.
type Work struct {
	Status   string
	Attempt  int
	Version  int64 // of the task, in the read model
	Assignee string
	Input    string
	Agent    *domain.Agent // nil when the assignee is not an agent
	Policy   domain.AIPolicy
	// TokensToday is what the workspace has spent today (UTC).
	TokensToday int64
}

// overBudget reports whether the workspace has spent its daily tokens.
func (w Work) overBudget() bool {
	return w.Policy.DailyTokenBudget > 0 && w.TokensToday >= w.Policy.DailyTokenBudget
}

// Parked is a task the worker left assigned.
type Parked struct {
	WorkspaceID string
	TaskID      string
	Assignee    string
	Version     int64
}
