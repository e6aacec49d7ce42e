package projections

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/logbook-dev/logbook/domain"
)

// AgentWork is what the AI agent worker reads from the read models and
// where its instances report their providers' states.
type AgentWork struct{ pool *pgxpool.Pool }

// NewAgentWork returns the agent worker's view of the read models.
func NewAgentWork(pool *pgxpool.Pool) *AgentWork { return &AgentWork{pool: pool} }

// TaskWork is one task as the agent worker needs it.
type TaskWork struct {
	Status      string
	Attempt     int
	Version     int64
	Assignee    string
	Input       string
	Agent       *domain.Agent // nil unless the assignee is an agent of the workspace
	Policy      domain.AIPolicy
	TokensToday int64
}

// Work returns the task, its agent, the workspace's AI policy and the
// tokens it spent on day; found is false when the task is not there (yet).
func (a *AgentWork) Work(ctx context.Context, workspaceID, taskID string, day time.Time) (TaskWork, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var (
		w                          TaskWork
		input, assignee            *string
		agentID, name, role, model *string
		instructions               *string
	)
	err := a.pool.QueryRow(ctx, `SELECT t.status, t.attempt, t.version, t.assignee, t.input,
			a.id, a.name, a.role, a.model, a.instructions,
			w.ai_daily_budget, w.ai_fallback_mode, w.ai_requests_per_minute,
			COALESCE(u.prompt_tokens + u.completion_tokens, 0)
		FROM tasks t
		JOIN workspaces w ON w.id = t.workspace_id
		LEFT JOIN agents a ON a.workspace_id = t.workspace_id AND a.id = t.assignee
		LEFT JOIN ai_usage u ON u.workspace_id = t.workspace_id AND u.day = $3::date
		WHERE t.workspace_id = $1 AND t.id = $2`,
		dbText(workspaceID), dbText(taskID), day.UTC().Format(time.DateOnly)).Scan(
		&w.Status, &w.Attempt, &w.Version, &assignee, &input,
		&agentID, &name, &role, &model, &instructions,
		&w.Policy.DailyTokenBudget, &w.Policy.FallbackMode, &w.Policy.RequestsPerMinute, &w.TokensToday)
	if errors.Is(err, pgx.ErrNoRows) {
		return TaskWork{}, false, nil
	}
	if err != nil {
		return TaskWork{}, false, err
	}
	w.Assignee, w.Input = fromDBTextPtr(assignee), fromDBTextPtr(input)
	if agentID != nil {
		w.Agent = &domain.Agent{ID: fromDBText(*agentID), Name: fromDBTextPtr(name), Role: fromDBTextPtr(role),
			Model: fromDBTextPtr(model), Instructions: fromDBTextPtr(instructions)}
	}
	return w, true, nil
}

// ProviderReport is one provider's state as one worker instance reported it.
type ProviderReport struct {
	Instance    string    `json:"instance"`
	Provider    string    `json:"provider"`
	State       string    `json:"state"`
	Reason      string    `json:"reason,omitempty"`
	Since       time.Time `json:"since"`
	Transitions int64     `json:"transitions"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// Report records an instance's provider states.
func (a *AgentWork) Report(ctx context.Context, reports []ProviderReport) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	b := &pgx.Batch{}
	for _, r := range reports {
		b.Queue(`INSERT INTO agent_status (instance, provider, state, reason, since, transitions, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, now())
			ON CONFLICT (instance, provider) DO UPDATE SET state = EXCLUDED.state, reason = EXCLUDED.reason,
				since = EXCLUDED.since, transitions = EXCLUDED.transitions, updated_at = EXCLUDED.updated_at`,
			r.Instance, r.Provider, r.State, r.Reason, r.Since, r.Transitions)
	}
	return a.pool.SendBatch(ctx, b).Close()
}

// Reports returns the provider states reported within the last fresh.
func (a *AgentWork) Reports(ctx context.Context, fresh time.Duration) ([]ProviderReport, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := a.pool.Query(ctx, `SELECT instance, provider, state, reason, since, transitions, updated_at
		FROM agent_status WHERE updated_at > now() - make_interval(secs => $1) ORDER BY instance, provider`,
		fresh.Seconds())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (ProviderReport, error) {
		var r ProviderReport
		err := row.Scan(&r.Instance, &r.Provider, &r.State, &r.Reason, &r.Since, &r.Transitions, &r.UpdatedAt)
		return r, err
	})
}

// OverBudget counts the workspaces that have spent their daily token budget
// on day.
func (a *AgentWork) OverBudget(ctx context.Context, day time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var n int
	err := a.pool.QueryRow(ctx, `SELECT count(*) FROM workspaces w JOIN ai_usage u ON u.workspace_id = w.id
		WHERE w.ai_daily_budget > 0 AND u.day = $1::date AND u.prompt_tokens + u.completion_tokens >= w.ai_daily_budget`,
		day.UTC().Format(time.DateOnly)).Scan(&n)
	return n, err
}

// Parked is a task left assigned to an agent.
type Parked struct {
	WorkspaceID string
	TaskID      string
	Assignee    string
	Version     int64
}

// Unparked returns tasks assigned to an agent for longer than idle, in
// active workspaces not over their daily token budget on day, and attempts an
// agent started and left without an outcome for longer than stalled (a
// provider call that failed after the start), oldest first, at most
// perWorkspace of each workspace so a deep backlog does not take the whole
// sweep: the tasks the agent worker left waiting (for a budget, a request
// rate or their workspace's turn) and may have forgotten. A started task
// is returned at the version its assignment gave it, one before its start.
func (a *AgentWork) Unparked(ctx context.Context, day time.Time, idle, stalled time.Duration, perWorkspace, limit int) ([]Parked, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := a.pool.Query(ctx, `SELECT workspace_id, id, assignee, version FROM (
			SELECT t.workspace_id, t.id, t.assignee, t.updated_at,
				CASE WHEN t.status = 'in_progress' THEN t.version - 1 ELSE t.version END AS version,
				row_number() OVER (PARTITION BY t.workspace_id ORDER BY t.updated_at) AS n
			FROM tasks t
			JOIN agents a ON a.workspace_id = t.workspace_id AND a.id = t.assignee
			JOIN workspaces w ON w.id = t.workspace_id
			LEFT JOIN ai_usage u ON u.workspace_id = t.workspace_id AND u.day = $1::date
			WHERE w.status = 'active' AND (
				(t.status = 'assigned' AND t.updated_at < now() - make_interval(secs => $2)
					AND (w.ai_daily_budget = 0 OR COALESCE(u.prompt_tokens + u.completion_tokens, 0) < w.ai_daily_budget))
				OR (t.status = 'in_progress' AND t.updated_at < now() - make_interval(secs => $3)))
		) waiting WHERE n <= $4
		ORDER BY updated_at LIMIT $5`, day.UTC().Format(time.DateOnly), idle.Seconds(), stalled.Seconds(), perWorkspace, limit)
	return collectParked(rows, err)
}

// Waiting returns the oldest tasks of an active workspace assigned to one of its
// agents at least minAge ago (younger ones may be the event path's), at
// most limit: the ones the worker left waiting.
func (a *AgentWork) Waiting(ctx context.Context, workspaceID string, minAge time.Duration, limit int) ([]Parked, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := a.pool.Query(ctx, `SELECT t.workspace_id, t.id, t.assignee, t.version FROM tasks t
		JOIN agents a ON a.workspace_id = t.workspace_id AND a.id = t.assignee
		JOIN workspaces w ON w.id = t.workspace_id AND w.status = 'active'
		WHERE t.workspace_id = $1 AND t.status = 'assigned' AND t.updated_at <= now() - make_interval(secs => $2)
		ORDER BY t.updated_at LIMIT $3`, dbText(workspaceID), minAge.Seconds(), limit)
	return collectParked(rows, err)
}

func collectParked(rows pgx.Rows, err error) ([]Parked, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Parked, error) {
		var p Parked
		err := row.Scan(&p.WorkspaceID, &p.TaskID, &p.Assignee, &p.Version)
		p.WorkspaceID, p.TaskID, p.Assignee = fromDBText(p.WorkspaceID), fromDBText(p.TaskID), fromDBText(p.Assignee)
		return p, err
	})
}
