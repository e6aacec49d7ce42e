package projections

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/auth"
	"github.com/logbook-dev/logbook/internal/httpapi"
	"github.com/logbook-dev/logbook/internal/keyring"
	"github.com/logbook-dev/logbook/schemas"
)

// Page sizes of the list endpoints.
const (
	DefaultPageSize = 50
	MaxPageSize     = 500
)

// Opener gives back the plaintext of a sensitive field the read models
// hold sealed, from its workspace and slot (domain.Slot); a value that is
// not sealed comes back as it is. *keyring.Ring satisfies it.
type Opener interface {
	Open(ctx context.Context, workspace, slot, v string) (string, error)
}

// Queries serves the read models.
type Queries struct {
	pool *pgxpool.Pool
	log  *slog.Logger
	open Opener // nil serves fields as stored
	// exportPageSize is ExportPage; tests make it smaller.
	exportPageSize int
}

// NewQueries builds the query side.
func NewQueries(pool *pgxpool.Pool, log *slog.Logger) *Queries {
	if log == nil {
		log = slog.Default()
	}
	return &Queries{pool: pool, log: log, exportPageSize: ExportPage}
}

// WithOpener makes the queries serve sensitive fields in plaintext, opened
// with o. The event trail stays as recorded: its hashes cover the sealed
// values.
func (q *Queries) WithOpener(o Opener) *Queries {
	q.open = o
	return q
}

// opened replaces each sealed field with its plaintext. A field that cannot
// be opened now (the key ring cannot be read) fails the request with 503:
// a reader must not take a missing value for an empty one.
func (q *Queries) opened(ctx context.Context, ws, kind, id string, fields ...sealedField) error {
	if q.open == nil {
		return nil
	}
	for _, f := range fields {
		field, v := f.field, f.v
		if v == nil || *v == "" {
			continue
		}
		plain, err := q.open.Open(ctx, ws, domain.Slot(kind, id, field), *v)
		if errors.Is(err, keyring.ErrErased) {
			// Erased since the row was read: the field is gone.
			*v = ""
			continue
		}
		if err != nil {
			q.log.Warn("sensitive field cannot be opened", "workspace", ws, "field", field, "err", err)
			return httpapi.Unavailable(httpapi.CodeKeysUnavailable, "the workspace's data key cannot be read right now; retry", 5)
		}
		*v = plain
	}
	return nil
}

// sealedField is a field of a view that may hold a sealed value.
type sealedField struct {
	field string // domain.FieldInput…
	v     *string
}

func (q *Queries) openTask(ctx context.Context, t *TaskView) error {
	return q.opened(ctx, t.WorkspaceID, "task", t.ID, sealedField{domain.FieldInput, &t.Input},
		sealedField{domain.FieldOutput, &t.Output}, sealedField{domain.FieldFailureReason, &t.FailureReason})
}

// Routes mounts the query routes on r (already authenticated).
func (q *Queries) Routes(r chi.Router) {
	r.Get("/v1/workspaces", q.listWorkspaces)
	r.Get("/v1/workspaces/{ws}", q.guard(domain.PermRead, q.getWorkspace))
	r.Get("/v1/workspaces/{ws}/tasks", q.guard(domain.PermRead, q.listTasks))
	r.Get("/v1/workspaces/{ws}/tasks/{task}", q.guard(domain.PermRead, q.getTask))
	r.Get("/v1/workspaces/{ws}/events", q.guard(domain.PermAudit, q.listEvents))
	r.Get("/v1/workspaces/{ws}/events/export", q.guard(domain.PermAudit, q.exportEvents))
	r.Get("/v1/commands/{id}", q.getCommand)
	r.Get("/v1/keys", q.listKeys)
	r.Get("/v1/audit/keys", q.listKeyEvents)
	r.Get("/v1/audit/access", q.listAccess)
}

// guard lets a request through to a workspace route only when its
// principal may p there. A principal without a grant gets what an unknown
// workspace gets, from the same query: no answer tells them apart.
func (q *Queries) guard(p domain.Permission, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		pr, _ := auth.FromContext(r.Context())
		if pr.Role == auth.RoleAdmin {
			h(w, r)
			return
		}
		ws, err := httpapi.PathID(r, "ws")
		if err != nil {
			q.fail(w, r, err)
			return
		}
		ctx, cancel := queryCtx(r)
		defer cancel()
		role, err := memberRole(ctx, q.pool, ws, pr.ID)
		if err != nil {
			q.fail(w, r, err)
			return
		}
		switch domain.Authorize(pr.Role, role, p) {
		case domain.Hidden:
			auth.NoteDenial(r.Context(), ws, true)
			q.fail(w, r, notFound("workspace"))
		case domain.Forbidden:
			auth.NoteDenial(r.Context(), ws, false)
			q.fail(w, r, domain.ForbiddenError("key role %s with member role %s in this workspace may not %s it", pr.Role, role, p))
		default:
			h(w, r)
		}
	}
}

// fail answers an error; an unreachable database is a 503, not a 500.
func (q *Queries) fail(w http.ResponseWriter, r *http.Request, err error) {
	if unreachable(err) {
		httpapi.WriteError(w, r, q.log, httpapi.Unavailable(httpapi.CodeQueriesDegraded, "the read models are unreachable; commands are still accepted", 5))
		return
	}
	httpapi.WriteError(w, r, q.log, err)
}

// unreachable tells connection failures and timeouts (Postgres down or
// overloaded) from errors in the query itself.
func unreachable(err error) bool {
	var connErr *pgconn.ConnectError
	var netErr net.Error
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08 connection exception, 53 insufficient resources, 57 operator
		// intervention (shutdown): the server, not the query, is the problem.
		c := pgErr.Code[:2]
		return c == "08" || c == "53" || c == "57"
	}
	return errors.As(err, &connErr) || errors.As(err, &netErr) || pgconn.Timeout(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF)
}

func notFound(what string) error { return domain.NotFound("%s not found", what) }

func queryCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}

// WorkspaceView is the body of GET /v1/workspaces/{ws}.
type WorkspaceView struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Status    string          `json:"status"`
	Version   int64           `json:"version"`
	LastSeq   int64           `json:"last_seq"`
	AIPolicy  domain.AIPolicy `json:"ai_policy"`
	Members   []domain.Member `json:"members"`
	Agents    []AgentView     `json:"agents"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
	// ProjectionStalled is true while events of this workspace wait in the
	// quarantine: what is shown stops at Stall.SinceSeq - 1.
	ProjectionStalled bool   `json:"projection_stalled"`
	Stall             *Stall `json:"stall,omitempty"`
}

// AgentView is an agent as listed in a workspace.
type AgentView struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Role         string    `json:"role"`
	Model        string    `json:"model"`
	Instructions *string   `json:"instructions"`
	CreatedAt    time.Time `json:"created_at"`
}

func (q *Queries) getWorkspace(w http.ResponseWriter, r *http.Request) {
	ws, err := httpapi.PathID(r, "ws")
	if err != nil {
		q.fail(w, r, err)
		return
	}
	ctx, cancel := queryCtx(r)
	defer cancel()
	var v WorkspaceView
	err = q.pool.QueryRow(ctx, `SELECT id, name, status, version, last_seq, ai_daily_budget, ai_fallback_mode, ai_requests_per_minute,
			created_at, updated_at
		FROM workspaces WHERE id = $1`, ws).Scan(&v.ID, &v.Name, &v.Status, &v.Version, &v.LastSeq,
		&v.AIPolicy.DailyTokenBudget, &v.AIPolicy.FallbackMode, &v.AIPolicy.RequestsPerMinute, &v.CreatedAt, &v.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		err = q.missingWorkspace(ctx, ws)
	}
	if err != nil {
		q.fail(w, r, err)
		return
	}
	v.Name, v.AIPolicy.FallbackMode = fromDBText(v.Name), fromDBText(v.AIPolicy.FallbackMode)
	if v.Stall, err = stallOf(ctx, q.pool, ws); err != nil {
		q.fail(w, r, err)
		return
	}
	v.ProjectionStalled = v.Stall != nil
	v.Members, err = collect(ctx, q.pool, `SELECT principal_id, role FROM members WHERE workspace_id = $1 ORDER BY principal_id`,
		[]any{ws}, func(row pgx.Rows) (domain.Member, error) {
			var m domain.Member
			err := row.Scan(&m.PrincipalID, &m.Role)
			m.PrincipalID, m.Role = fromDBText(m.PrincipalID), fromDBText(m.Role)
			return m, err
		})
	if err != nil {
		q.fail(w, r, err)
		return
	}
	v.Agents, err = collect(ctx, q.pool, `SELECT id, name, role, model, instructions, created_at FROM agents
		WHERE workspace_id = $1 ORDER BY created_at, id`, []any{ws}, func(row pgx.Rows) (AgentView, error) {
		var a AgentView
		err := row.Scan(&a.ID, &a.Name, &a.Role, &a.Model, &a.Instructions, &a.CreatedAt)
		a.ID, a.Name, a.Role, a.Model = fromDBText(a.ID), fromDBText(a.Name), fromDBText(a.Role), fromDBText(a.Model)
		if a.Instructions != nil {
			*a.Instructions = fromDBText(*a.Instructions)
		}
		if err == nil {
			err = q.opened(ctx, ws, "agent", a.ID, sealedField{domain.FieldInstructions, a.Instructions})
		}
		return a, err
	})
	if err != nil {
		q.fail(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, v)
}

func collect[T any](ctx context.Context, pool *pgxpool.Pool, sql string, args []any, scan func(pgx.Rows) (T, error)) ([]T, error) {
	rows, err := pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// TaskView is a task as the API shows it.
type TaskView struct {
	ID            string `json:"id"`
	WorkspaceID   string `json:"workspace_id"`
	Title         string `json:"title"`
	Input         string `json:"input"`
	Priority      int    `json:"priority"`
	Assignee      string `json:"assignee,omitempty"`
	Status        string `json:"status"`
	Attempt       int    `json:"attempt"`
	Output        string `json:"output,omitempty"`
	Provider      string `json:"provider,omitempty"`
	Model         string `json:"model,omitempty"`
	FailureReason string `json:"failure_reason,omitempty"`
	// WaitingFor says why an assigned task is not being worked:
	// WaitingAIBudget while its agent's workspace has spent today's tokens.
	WaitingFor string            `json:"waiting_for,omitempty"`
	Usage      domain.TokenUsage `json:"usage"`
	// Labels is always a list; DueAt is absent when the task has none.
	Labels    Labels     `json:"labels"`
	DueAt     *time.Time `json:"due_at,omitempty"`
	Version   int64      `json:"version"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
}

// Labels are a task's labels; none is [] in JSON, never null.
type Labels []string

func (l Labels) MarshalJSON() ([]byte, error) { return json.Marshal(nonNil(l)) }

// WaitingAIBudget is a task's waiting_for while its workspace's daily
// token budget is spent and an agent is its assignee.
const WaitingAIBudget = "ai_budget"

// budgetWaits returns which assignees of a workspace wait for its AI
// budget: its agents, while it has spent today's (UTC) tokens; none
// otherwise. One query, asked only for pages with an assigned task.
func (q *Queries) budgetWaits(ctx context.Context, ws string, views []TaskView) error {
	assigned := false
	for _, v := range views {
		assigned = assigned || v.Status == domain.TaskStatusAssigned
	}
	if !assigned {
		return nil
	}
	rows, err := q.pool.Query(ctx, `SELECT a.id FROM agents a
		JOIN workspaces w ON w.id = a.workspace_id
		LEFT JOIN ai_usage u ON u.workspace_id = w.id AND u.day = $2::date
		WHERE a.workspace_id = $1 AND w.ai_daily_budget > 0
			AND COALESCE(u.prompt_tokens + u.completion_tokens, 0) >= w.ai_daily_budget`,
		dbText(ws), time.Now().UTC().Format(time.DateOnly))
	if err != nil {
		return err
	}
	agents, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (string, error) {
		var id string
		err := row.Scan(&id)
		return fromDBText(id), err
	})
	if err != nil || len(agents) == 0 {
		return err
	}
	for i := range views {
		if views[i].Status == domain.TaskStatusAssigned && slices.Contains(agents, views[i].Assignee) {
			views[i].WaitingFor = WaitingAIBudget
		}
	}
	return nil
}

func taskView(t *domain.Task) TaskView {
	return TaskView{ID: t.ID, WorkspaceID: t.WorkspaceID, Title: t.Title, Input: t.Input, Priority: t.Priority,
		Assignee: t.Assignee, Status: t.Status, Attempt: t.Attempt, Output: t.Output, Provider: t.Provider,
		Model: t.Model, FailureReason: t.FailureReason, Usage: t.Usage, Labels: t.Labels, DueAt: t.DueAt,
		Version: t.Version, CreatedAt: t.CreatedAt, UpdatedAt: t.UpdatedAt}
}

// workspaceExists answers 404 for tasks and events of a workspace that does
// not exist, rather than an empty list.
func (q *Queries) workspaceExists(ctx context.Context, ws string) error {
	var one int
	err := q.pool.QueryRow(ctx, `SELECT 1 FROM workspaces WHERE id = $1`, ws).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return q.missingWorkspace(ctx, ws)
	}
	return err
}

// missingWorkspace tells a workspace that does not exist from one whose
// first events wait in the quarantine.
func (q *Queries) missingWorkspace(ctx context.Context, ws string) error {
	s, err := stallOf(ctx, q.pool, ws)
	if err != nil {
		return err
	}
	if s == nil {
		return notFound("workspace")
	}
	return httpapi.Unavailable(httpapi.CodeProjectionStalled, "the read models of this workspace are stalled before its first event; operators: logbook dlq list", 30)
}

func (q *Queries) getTask(w http.ResponseWriter, r *http.Request) {
	ws, err := httpapi.PathID(r, "ws")
	if err == nil {
		var task string
		if task, err = httpapi.PathID(r, "task"); err == nil {
			ctx, cancel := queryCtx(r)
			defer cancel()
			var t *domain.Task
			t, err = scanTask(q.pool.QueryRow(ctx, `SELECT `+taskColumns+` FROM tasks WHERE workspace_id = $1 AND id = $2`, ws, task))
			if errors.Is(err, pgx.ErrNoRows) {
				err = notFound("task")
			}
			if err == nil {
				v := []TaskView{taskView(t)}
				if err = q.openTask(ctx, &v[0]); err == nil {
					err = q.budgetWaits(ctx, ws, v)
				}
				if err == nil {
					w.Header().Set("ETag", strconv.Quote(strconv.FormatInt(t.Version, 10)))
					httpapi.WriteJSON(w, http.StatusOK, v[0])
					return
				}
			}
		}
	}
	q.fail(w, r, err)
}

// workspacePage reads what every list route takes: the workspace id and
// the page size.
func workspacePage(r *http.Request) (ws string, limit int, err error) {
	if ws, err = httpapi.PathID(r, "ws"); err != nil {
		return "", 0, err
	}
	limit, err = pageSize(r)
	return ws, limit, err
}

// queryParam reads an optional query parameter. Given empty or more than
// once, it is refused: neither means "the default" to every client.
func queryParam(r *http.Request, name string) (string, bool, error) {
	vs, ok := r.URL.Query()[name]
	switch {
	case !ok:
		return "", false, nil
	case len(vs) > 1:
		return "", false, domain.Invalid(name, "%s is given %d times: give it once", name, len(vs))
	case vs[0] == "":
		return "", false, domain.Invalid(name, "%s is empty: leave it out for the default", name)
	case !utf8.ValidString(vs[0]):
		// Postgres would refuse it as a parameter: no value of ours is such text.
		return "", false, domain.Invalid(name, "%s must be valid UTF-8", name)
	}
	return vs[0], true, nil
}

// cursorParam reads ?cursor=, the last id of the previous page (a UUID),
// "" for the first page.
func cursorParam(r *http.Request) (string, error) {
	cursor, _, err := queryParam(r, "cursor")
	if err == nil && cursor != "" {
		if _, perr := uuid.Parse(cursor); perr != nil {
			err = domain.Invalid("cursor", "malformed cursor")
		}
	}
	return cursor, err
}

// pageOf cuts rows read with LIMIT limit+1 to one page, with the cursor of
// the next page ("" after the last).
func pageOf[T any](rows []T, limit int, cursor func(T) string) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	return rows[:limit], cursor(rows[limit-1])
}

// pageSize reads ?limit=, 1..MaxPageSize.
func pageSize(r *http.Request) (int, error) {
	s, ok, err := queryParam(r, "limit")
	if err != nil || !ok {
		return DefaultPageSize, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxPageSize {
		return 0, domain.Invalid("limit", "must be an integer from 1 to %d", MaxPageSize)
	}
	return n, nil
}

var taskStatuses = map[string]bool{
	domain.TaskStatusPending: true, domain.TaskStatusAssigned: true, domain.TaskStatusInProgress: true,
	domain.TaskStatusCompleted: true, domain.TaskStatusFailed: true, domain.TaskStatusCancelled: true,
}

// TaskPage is a page of GET /v1/workspaces/{ws}/tasks.
type TaskPage struct {
	Tasks []TaskView `json:"tasks"`
	// NextCursor is the cursor of the next page; absent on the last.
	NextCursor string `json:"next_cursor,omitempty"`
}

// listTasks pages by task id (UUIDv7: creation order); the cursor is the
// last id of the previous page.
func (q *Queries) listTasks(w http.ResponseWriter, r *http.Request) {
	ws, limit, err := workspacePage(r)
	if err != nil {
		q.fail(w, r, err)
		return
	}
	status, _, err := queryParam(r, "status")
	if err != nil {
		q.fail(w, r, err)
		return
	}
	if status != "" && !taskStatuses[status] {
		q.fail(w, r, domain.Invalid("status", "unknown task status %q", httpapi.Truncate(status)))
		return
	}
	label, _, err := queryParam(r, "label")
	if err == nil && (strings.IndexByte(label, 0) >= 0 || utf8.RuneCountInString(label) > domain.MaxTaskLabelLen) {
		err = domain.Invalid("label", "no task has such a label: labels are at most %d characters, without NUL", domain.MaxTaskLabelLen)
	}
	if err != nil {
		q.fail(w, r, err)
		return
	}
	cursor, err := cursorParam(r)
	if err != nil {
		q.fail(w, r, err)
		return
	}
	ctx, cancel := queryCtx(r)
	defer cancel()
	if err := q.workspaceExists(ctx, ws); err != nil {
		q.fail(w, r, err)
		return
	}
	tasks, err := collect(ctx, q.pool, `SELECT `+taskColumns+` FROM tasks
		WHERE workspace_id = $1 AND ($2 = '' OR status = $2) AND id > $3 AND ($5 = '' OR labels ? $5)
		ORDER BY id LIMIT $4`,
		[]any{ws, status, cursor, limit + 1, label}, func(row pgx.Rows) (TaskView, error) {
			t, err := scanTask(row)
			if err != nil {
				return TaskView{}, err
			}
			v := taskView(t)
			return v, q.openTask(ctx, &v)
		})
	if err != nil {
		q.fail(w, r, err)
		return
	}
	var page TaskPage
	page.Tasks, page.NextCursor = pageOf(tasks, limit, func(t TaskView) string { return t.ID })
	if err := q.budgetWaits(ctx, ws, page.Tasks); err != nil {
		q.fail(w, r, err)
		return
	}
	httpapi.WriteJSON(w, http.StatusOK, page)
}

// WorkspaceSummary is a workspace as GET /v1/workspaces lists it.
type WorkspaceSummary struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
	// Role is the caller's membership role; absent for an admin key that
	// is no member.
	Role      string    `json:"role,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// WorkspacePage is a page of GET /v1/workspaces.
type WorkspacePage struct {
	Workspaces []WorkspaceSummary `json:"workspaces"`
	// NextCursor is the cursor of the next page; absent on the last.
	NextCursor string `json:"next_cursor,omitempty"`
}

// listWorkspaces pages the caller's workspaces (every one, for an admin
// key) by id; erased workspaces are gone as far as callers can tell.
func (q *Queries) listWorkspaces(w http.ResponseWriter, r *http.Request) {
	limit, err := pageSize(r)
	if err != nil {
		q.fail(w, r, err)
		return
	}
	cursor, err := cursorParam(r)
	if err != nil {
		q.fail(w, r, err)
		return
	}
	pr, _ := auth.FromContext(r.Context())
	ctx, cancel := queryCtx(r)
	defer cancel()
	spaces, err := collect(ctx, q.pool, `SELECT w.id, w.name, w.status, coalesce(m.role, ''), w.created_at
		FROM workspaces w LEFT JOIN members m ON m.workspace_id = w.id AND m.principal_id = $1
		WHERE ($2 OR m.principal_id IS NOT NULL) AND w.status <> 'erased' AND w.id > $3
		ORDER BY w.id LIMIT $4`,
		[]any{pr.ID, pr.Role == auth.RoleAdmin, cursor, limit + 1}, func(row pgx.Rows) (WorkspaceSummary, error) {
			var v WorkspaceSummary
			err := row.Scan(&v.ID, &v.Name, &v.Status, &v.Role, &v.CreatedAt)
			v.Name = fromDBText(v.Name)
			return v, err
		})
	if err != nil {
		q.fail(w, r, err)
		return
	}
	var page WorkspacePage
	page.Workspaces, page.NextCursor = pageOf(spaces, limit, func(v WorkspaceSummary) string { return v.ID })
	httpapi.WriteJSON(w, http.StatusOK, page)
}

// EventPage is a page of GET /v1/workspaces/{ws}/events.
type EventPage struct {
	Events []EventView `json:"events"`
	// NextAfterSeq is after_seq of the next page; absent on a short page.
	NextAfterSeq *int64 `json:"next_after_seq,omitempty"`
}

// EventView is an event of the trail, as stored and hashed; exports hold
// the same lines.
type EventView = schemas.TrailEvent

// eventColumns are what scanEvent reads, in its order.
const eventColumns = `workspace_id, seq, id, type, version, aggregate_type, aggregate_id,
	aggregate_version, command_id, coalesce(correlation_id, ''), actor_id, actor_role, occurred_at, payload::text,
	signed::text, prev_hash, hash, log_partition, log_offset`

// scanEvent reads a row of eventColumns. The payload is the stored text (a
// json column keeps it as written), so the hash recomputes from it.
func scanEvent(row pgx.Rows) (EventView, error) {
	var v EventView
	var payload string
	var signed *string
	e := &v.EventEnvelope
	err := row.Scan(&e.WorkspaceID, &e.Seq, &e.ID, &e.Type, &e.Version, &e.Aggregate.Type, &e.Aggregate.ID,
		&e.Aggregate.Version, &e.CommandID, &e.CorrelationID, &e.Actor.ID, &e.Actor.Role, &e.OccurredAt,
		&payload, &signed, &e.PrevHash, &e.Hash, &v.LogPartition, &v.LogOffset)
	if err != nil {
		return v, err
	}
	e.Payload = json.RawMessage(payload)
	e.OccurredAt = e.OccurredAt.UTC()
	if signed != nil {
		e.Signed = &schemas.SignedCommand{}
		err = json.Unmarshal([]byte(*signed), e.Signed)
	}
	return v, err
}

func (q *Queries) listEvents(w http.ResponseWriter, r *http.Request) {
	ws, limit, err := workspacePage(r)
	if err != nil {
		q.fail(w, r, err)
		return
	}
	q.trail(w, r, ws, limit, true)
}

// listKeyEvents is the key registry's trail: every key issued and revoked.
func (q *Queries) listKeyEvents(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.RequireAdmin(r.Context()); err != nil {
		q.fail(w, r, err)
		return
	}
	limit, err := pageSize(r)
	if err != nil {
		q.fail(w, r, err)
		return
	}
	q.trail(w, r, domain.KeyRegistry, limit, false)
}

// trail answers a page of the event trail of ws after ?after_seq=; with
// exists, an unknown workspace is a 404.
func (q *Queries) trail(w http.ResponseWriter, r *http.Request, ws string, limit int, exists bool) {
	after := int64(0)
	s, ok, err := queryParam(r, "after_seq")
	if err != nil {
		q.fail(w, r, err)
		return
	}
	if ok {
		if after, err = strconv.ParseInt(s, 10, 64); err != nil || after < 0 {
			q.fail(w, r, domain.Invalid("after_seq", "must be a non-negative integer"))
			return
		}
	}
	ctx, cancel := queryCtx(r)
	defer cancel()
	if exists {
		if err := q.workspaceExists(ctx, ws); err != nil {
			q.fail(w, r, err)
			return
		}
	}
	events, err := collect(ctx, q.pool, `SELECT `+eventColumns+`
		FROM events WHERE workspace_id = $1 AND seq > $2 ORDER BY seq LIMIT $3`, []any{ws, after, limit}, scanEvent)
	if err != nil {
		q.fail(w, r, err)
		return
	}
	page := EventPage{Events: events}
	if len(events) == limit {
		page.NextAfterSeq = &events[len(events)-1].Seq
	}
	httpapi.WriteJSON(w, http.StatusOK, page)
}

// CommandView is the body of GET /v1/commands/{id}.
type CommandView struct {
	CommandID   string             `json:"command_id"`
	Status      string             `json:"status"` // pending | accepted | rejected
	Type        string             `json:"type,omitempty"`
	WorkspaceID string             `json:"workspace_id,omitempty"`
	Code        string             `json:"code,omitempty"`
	Reason      string             `json:"reason,omitempty"`
	Field       string             `json:"field,omitempty"`
	AggregateID string             `json:"aggregate_id,omitempty"`
	Events      []schemas.EventRef `json:"events,omitempty"`
	DecidedAt   *time.Time         `json:"decided_at,omitempty"`
}

// Outcome returns the recorded outcome of a command, or nil while pending.
func (q *Queries) Outcome(ctx context.Context, id string) (*schemas.Result, error) {
	found, err := q.outcomes(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	return found[id], nil
}

// outcomes reads the first outcome of each command id it finds, in one
// query.
func (q *Queries) outcomes(ctx context.Context, ids []string) (map[string]*schemas.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := q.pool.Query(ctx, `SELECT id, workspace_id, type, status, code, reason, field, aggregate_id, events, decided_at, request_digest, actor_id
		FROM commands WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	found := make(map[string]*schemas.Result, len(ids))
	for rows.Next() {
		var res schemas.Result
		var code, reason, field, agg, digest, actor *string
		var events []byte
		if err := rows.Scan(&res.CommandID, &res.WorkspaceID, &res.CommandType, &res.Status,
			&code, &reason, &field, &agg, &events, &res.DecidedAt, &digest, &actor); err != nil {
			return nil, err
		}
		res.Code, res.Reason, res.Field, res.AggregateID = domain.Code(deref(code)), deref(reason), deref(field), deref(agg)
		res.RequestDigest, res.ActorID = deref(digest), deref(actor)
		if len(events) > 0 {
			_ = json.Unmarshal(events, &res.Events)
		}
		found[res.CommandID] = &res
	}
	return found, rows.Err()
}

func (q *Queries) getCommand(w http.ResponseWriter, r *http.Request) {
	id, err := httpapi.PathID(r, "id")
	if err != nil {
		q.fail(w, r, notFound("command"))
		return
	}
	res, err := q.Outcome(r.Context(), id)
	if err != nil {
		q.fail(w, r, err)
		return
	}
	if p, _ := auth.FromContext(r.Context()); res != nil && p.Role != auth.RoleAdmin && res.ActorID != p.ID {
		res = nil // another principal's command reads exactly like an unknown one
	}
	if res == nil {
		// Accepted by the API but not decided yet (or never sent): the
		// log is the only place that knows, and it answers by deciding.
		httpapi.WriteJSON(w, http.StatusOK, CommandView{CommandID: id, Status: "pending"})
		return
	}
	at := res.DecidedAt.UTC()
	httpapi.WriteJSON(w, http.StatusOK, CommandView{CommandID: res.CommandID, Status: res.Status, Type: res.CommandType,
		WorkspaceID: res.WorkspaceID, Code: string(res.Code), Reason: res.Reason, Field: res.Field,
		AggregateID: res.AggregateID, Events: res.Events, DecidedAt: &at})
}
