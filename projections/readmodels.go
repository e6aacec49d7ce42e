package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

// Projection names: each is a checkpoint key and a consumer group.
const (
	ProjectionReadModels = "read_models"
	ProjectionResults    = "command_results"
)

// ReadModels projects the events topic into workspaces, members, agents,
// tasks, keys, the event trail and AI usage. Per batch it folds events in memory
// and writes each table in bulk.
type ReadModels struct {
	// Keys destroys an erased workspace's data key when its
	// workspace.erased event is applied; nil leaves keys alone (tests of
	// other concerns only).
	Keys KeyEraser
}

// KeyEraser destroys a workspace's data key; erasing an erased one again
// does nothing. *keyring.Ring satisfies it.
type KeyEraser interface {
	Erase(ctx context.Context, workspace string) error
}

type decoded struct {
	env       schemas.EventEnvelope
	ev        domain.Event
	rec       *kgo.Record
	partition int32
	offset    int64
}

// Apply implements Applier.
func (m ReadModels) Apply(ctx context.Context, tx pgx.Tx, partition int32, recs []*kgo.Record) error {
	evs := make([]decoded, 0, len(recs))
	for _, r := range recs {
		var env schemas.EventEnvelope
		if err := json.Unmarshal(r.Value, &env); err != nil || env.WorkspaceID == "" || env.Seq < 1 {
			return &decodeError{fmt.Errorf("event at %d/%d: not an event envelope (%v)", r.Partition, r.Offset, err)}
		}
		evs = append(evs, decoded{env: env, rec: r, partition: r.Partition, offset: r.Offset})
	}
	evs, err := holdBehindQuarantine(ctx, tx, evs)
	if err != nil {
		return err
	}
	if len(evs) == 0 {
		return nil
	}
	if err := verifyChains(ctx, tx, evs); err != nil {
		return err
	}
	// An event of the chain whose payload this version cannot read (a newer
	// schema version, say) is a fact all the same: it is quarantined, never
	// dropped.
	for i := range evs {
		if evs[i].ev, err = evs[i].env.Event(); err != nil {
			return &payloadError{fmt.Errorf("event at %d/%d: %w", evs[i].partition, evs[i].offset, err)}
		}
	}
	if err := copyTrail(ctx, tx, evs); err != nil {
		return fmt.Errorf("event trail: %w", err)
	}
	if err := applyWorkspaces(ctx, tx, evs); err != nil {
		return fmt.Errorf("workspaces: %w", err)
	}
	if err := applyTasks(ctx, tx, evs); err != nil {
		return fmt.Errorf("tasks: %w", err)
	}
	if err := applyErasures(ctx, tx, evs, m.Keys); err != nil {
		return fmt.Errorf("erasure: %w", err)
	}
	if err := applyKeys(ctx, tx, evs); err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	return applyUsage(ctx, tx, evs)
}

// verifyChains refuses events that do not extend their workspace's hash
// chain as stored: a forged or replayed record never reaches the read models
// (it goes to the dead-letter topic instead), and an event past a hole in
// the chain is quarantined (gapError).
func verifyChains(ctx context.Context, tx pgx.Tx, evs []decoded) error {
	chains := map[string]schemas.Chain{}
	var ids []string
	for _, d := range evs {
		if _, ok := chains[d.env.WorkspaceID]; !ok {
			chains[d.env.WorkspaceID] = schemas.Chain{}
			ids = append(ids, d.env.WorkspaceID)
		}
	}
	// One index probe per workspace for its head, however long its trail.
	rows, err := tx.Query(ctx, `SELECT u.id, e.seq, e.hash FROM unnest($1::text[]) AS u(id)
		CROSS JOIN LATERAL (SELECT seq, hash FROM events WHERE workspace_id = u.id ORDER BY seq DESC LIMIT 1) e`, ids)
	if err != nil {
		return err
	}
	for rows.Next() {
		var ws string
		var c schemas.Chain
		if err := rows.Scan(&ws, &c.Seq, &c.Hash); err != nil {
			rows.Close()
			return err
		}
		chains[ws] = c
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, d := range evs {
		if err := checkGap(chains[d.env.WorkspaceID], d); err != nil {
			return err
		}
		next, err := schemas.Verify(chains[d.env.WorkspaceID], d.env)
		if err != nil {
			return &forgedError{fmt.Errorf("event at %d/%d: %w", d.partition, d.offset, err)}
		}
		chains[d.env.WorkspaceID] = next
	}
	return nil
}

func copyTrail(ctx context.Context, tx pgx.Tx, evs []decoded) error {
	rows := make([][]any, len(evs))
	for i, d := range evs {
		e := d.env
		var corr, signed any
		if e.CorrelationID != "" {
			corr = e.CorrelationID
		}
		if e.Signed != nil {
			b, err := json.Marshal(e.Signed)
			if err != nil {
				return err
			}
			signed = string(b)
		}
		rows[i] = []any{e.WorkspaceID, e.Seq, e.ID, e.Type, e.Version, e.Aggregate.Type, e.Aggregate.ID,
			e.Aggregate.Version, e.CommandID, corr, e.Actor.ID, e.Actor.Role, e.OccurredAt, string(e.Payload),
			signed, e.PrevHash, e.Hash, d.partition, d.offset}
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"workspace_id", "seq", "id", "type", "version",
		"aggregate_type", "aggregate_id", "aggregate_version", "command_id", "correlation_id", "actor_id",
		"actor_role", "occurred_at", "payload", "signed", "prev_hash", "hash", "log_partition", "log_offset"},
		pgx.CopyFromRows(rows))
	return err
}

// applyWorkspaces handles the (rare) workspace events statement by statement
// in one pipelined batch, then bumps each workspace's last_seq once.
func applyWorkspaces(ctx context.Context, tx pgx.Tx, evs []decoded) error {
	b := &pgx.Batch{}
	lastSeq := map[string]int64{}
	for _, d := range evs {
		e, ws, at := d.env, d.env.WorkspaceID, d.env.OccurredAt
		lastSeq[ws] = e.Seq
		if e.Aggregate.Type != domain.AggregateWorkspace {
			continue
		}
		v := e.Aggregate.Version
		switch p := d.ev.Payload.(type) {
		case *domain.WorkspaceCreated:
			b.Queue(`INSERT INTO workspaces (id, name, status, version, last_seq, created_at, updated_at)
				VALUES ($1, $2, 'active', $3, $4, $5, $5)`, ws, dbText(p.Name), v, e.Seq, at)
		case *domain.WorkspaceRenamed:
			b.Queue(`UPDATE workspaces SET name = $2, version = $3, updated_at = $4 WHERE id = $1`, ws, dbText(p.Name), v, at)
		case *domain.WorkspaceArchived:
			b.Queue(`UPDATE workspaces SET status = 'archived', version = $2, updated_at = $3 WHERE id = $1`, ws, v, at)
		case *domain.WorkspaceErased:
			b.Queue(`UPDATE workspaces SET status = 'erased', version = $2, updated_at = $3 WHERE id = $1`, ws, v, at)
			b.Queue(`UPDATE agents SET instructions = NULL WHERE workspace_id = $1`, ws)
		case *domain.WorkspaceMemberAdded:
			b.Queue(`INSERT INTO members (workspace_id, principal_id, role) VALUES ($1, $2, $3)
				ON CONFLICT (workspace_id, principal_id) DO UPDATE SET role = EXCLUDED.role`, ws, dbText(p.PrincipalID), dbText(p.Role))
			b.Queue(`UPDATE workspaces SET version = $2, updated_at = $3 WHERE id = $1`, ws, v, at)
		case *domain.WorkspaceMemberRemoved:
			b.Queue(`DELETE FROM members WHERE workspace_id = $1 AND principal_id = $2`, ws, dbText(p.PrincipalID))
			b.Queue(`UPDATE workspaces SET version = $2, updated_at = $3 WHERE id = $1`, ws, v, at)
		case *domain.WorkspaceAgentRegistered:
			b.Queue(`INSERT INTO agents (workspace_id, id, name, role, model, instructions, created_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, ws, dbText(p.AgentID), dbText(p.Name), dbText(p.Role), dbText(p.Model),
				dbText(p.Instructions), at)
			b.Queue(`UPDATE workspaces SET version = $2, updated_at = $3 WHERE id = $1`, ws, v, at)
		case *domain.WorkspaceAIPolicySet:
			b.Queue(`UPDATE workspaces SET ai_daily_budget = $2, ai_fallback_mode = $3, ai_requests_per_minute = $4,
				version = $5, updated_at = $6 WHERE id = $1`, ws, p.DailyTokenBudget, dbText(p.FallbackMode), p.RequestsPerMinute, v, at)
		}
	}
	ids := make([]string, 0, len(lastSeq))
	seqs := make([]int64, 0, len(lastSeq))
	for id, s := range lastSeq {
		ids = append(ids, id)
		seqs = append(seqs, s)
	}
	b.Queue(`UPDATE workspaces w SET last_seq = u.seq FROM unnest($1::text[], $2::bigint[]) AS u(id, seq)
		WHERE w.id = u.id AND w.last_seq < u.seq`, ids, seqs)
	return tx.SendBatch(ctx, b).Close()
}

const taskColumns = `workspace_id, id, title, input, priority, assignee, status, attempt, output,
	failure_reason, prompt_tokens, completion_tokens, version, created_at, updated_at, provider, model, labels, due_at`

// applyTasks loads the touched tasks once, folds the batch's events over them
// with domain.Evolve and upserts them with one statement.
func applyTasks(ctx context.Context, tx pgx.Tx, evs []decoded) error {
	type key struct{ ws, id string }
	touched := map[key]*domain.Task{}
	var order []key
	var wsIDs, taskIDs []string
	for _, d := range evs {
		if d.env.Aggregate.Type != domain.AggregateTask {
			continue
		}
		k := key{d.env.WorkspaceID, d.env.Aggregate.ID}
		if _, ok := touched[k]; !ok {
			touched[k] = nil
			order = append(order, k)
			wsIDs = append(wsIDs, k.ws)
			taskIDs = append(taskIDs, dbText(k.id))
		}
	}
	if len(order) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT `+taskColumns+` FROM tasks t
		WHERE (t.workspace_id, t.id) IN (SELECT * FROM unnest($1::text[], $2::text[]))`, wsIDs, taskIDs)
	if err != nil {
		return err
	}
	stored := map[key]bool{}
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			rows.Close()
			return err
		}
		touched[key{t.WorkspaceID, t.ID}] = t
		stored[key{t.WorkspaceID, t.ID}] = true
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, d := range evs {
		if d.env.Aggregate.Type != domain.AggregateTask {
			continue
		}
		k := key{d.env.WorkspaceID, d.env.Aggregate.ID}
		s := domain.Evolve(domain.State{Task: touched[k]}, d.ev)
		if s.Task != nil {
			s.Task.WorkspaceID = k.ws
			s.Task.UpdatedAt = d.env.OccurredAt
		}
		touched[k] = s.Task
	}
	// Tasks new to the read model are copied in; the others are upserted.
	// No other writer can add one meanwhile: the checkpoint row's lock
	// serializes the projectors of a partition, and a workspace's tasks live
	// in one partition.
	var fresh, known []*domain.Task
	for _, k := range order {
		switch t := touched[k]; {
		case t == nil:
		case stored[k]:
			known = append(known, t)
		default:
			fresh = append(fresh, t)
		}
	}
	if err := copyTasks(ctx, tx, fresh); err != nil {
		return err
	}
	return upsertTasks(ctx, tx, known)
}

// taskRow is a task as the tasks table's columns (taskColumns).
func taskRow(t *domain.Task) ([]any, error) {
	labels, err := json.Marshal(nonNil(t.Labels))
	if err != nil {
		return nil, err
	}
	return []any{dbText(t.WorkspaceID), dbText(t.ID), dbText(t.Title), dbText(t.Input), int32(t.Priority),
		dbTextPtr(t.Assignee), dbText(t.Status), int32(t.Attempt), dbTextPtr(t.Output), dbTextPtr(t.FailureReason),
		t.Usage.PromptTokens, t.Usage.CompletionTokens, t.Version, t.CreatedAt, t.UpdatedAt,
		dbTextPtr(t.Provider), dbTextPtr(t.Model), string(labels), t.DueAt}, nil
}

func copyTasks(ctx context.Context, tx pgx.Tx, tasks []*domain.Task) error {
	if len(tasks) == 0 {
		return nil
	}
	rows := make([][]any, len(tasks))
	for i, t := range tasks {
		r, err := taskRow(t)
		if err != nil {
			return err
		}
		rows[i] = r
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"tasks"}, taskColumnList, pgx.CopyFromRows(rows))
	return err
}

var taskColumnList = strings.Fields(strings.ReplaceAll(taskColumns, ",", " "))

func upsertTasks(ctx context.Context, tx pgx.Tx, tasks []*domain.Task) error {
	if len(tasks) == 0 {
		return nil
	}
	cols := struct {
		ws, id, title, input, assignee, status, output, reason []*string
		provider, model, labels                                []*string
		due                                                    []*time.Time
		priority, attempt                                      []int32
		prompt, completion, version                            []int64
		created, updated                                       []time.Time
	}{}
	str := func(s string) *string { s = dbText(s); return &s }
	for _, t := range tasks {
		cols.ws = append(cols.ws, str(t.WorkspaceID))
		cols.id = append(cols.id, str(t.ID))
		cols.title = append(cols.title, str(t.Title))
		cols.input = append(cols.input, str(t.Input))
		cols.priority = append(cols.priority, int32(t.Priority))
		cols.assignee = append(cols.assignee, dbTextPtr(t.Assignee))
		cols.status = append(cols.status, str(t.Status))
		cols.attempt = append(cols.attempt, int32(t.Attempt))
		cols.output = append(cols.output, dbTextPtr(t.Output))
		cols.reason = append(cols.reason, dbTextPtr(t.FailureReason))
		cols.prompt = append(cols.prompt, t.Usage.PromptTokens)
		cols.completion = append(cols.completion, t.Usage.CompletionTokens)
		cols.version = append(cols.version, t.Version)
		cols.created = append(cols.created, t.CreatedAt)
		cols.updated = append(cols.updated, t.UpdatedAt)
		cols.provider = append(cols.provider, dbTextPtr(t.Provider))
		cols.model = append(cols.model, dbTextPtr(t.Model))
		labels, err := json.Marshal(nonNil(t.Labels))
		if err != nil {
			return err
		}
		lbl := string(labels) // JSON as it is: labels hold no NUL (the domain refuses it)
		cols.labels = append(cols.labels, &lbl)
		cols.due = append(cols.due, t.DueAt)
	}
	_, err := tx.Exec(ctx, `INSERT INTO tasks (`+taskColumns+`)
		SELECT c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18::jsonb, c19
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::text[],
			$8::int[], $9::text[], $10::text[], $11::bigint[], $12::bigint[], $13::bigint[], $14::timestamptz[],
			$15::timestamptz[], $16::text[], $17::text[], $18::text[], $19::timestamptz[])
			AS u(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19)
		ON CONFLICT (workspace_id, id) DO UPDATE SET title = EXCLUDED.title, input = EXCLUDED.input,
			priority = EXCLUDED.priority, assignee = EXCLUDED.assignee, status = EXCLUDED.status,
			attempt = EXCLUDED.attempt, output = EXCLUDED.output, failure_reason = EXCLUDED.failure_reason,
			prompt_tokens = EXCLUDED.prompt_tokens, completion_tokens = EXCLUDED.completion_tokens,
			version = EXCLUDED.version, updated_at = EXCLUDED.updated_at, provider = EXCLUDED.provider,
			model = EXCLUDED.model, labels = EXCLUDED.labels, due_at = EXCLUDED.due_at`,
		cols.ws, cols.id, cols.title, cols.input, cols.priority, cols.assignee, cols.status, cols.attempt,
		cols.output, cols.reason, cols.prompt, cols.completion, cols.version, cols.created, cols.updated,
		cols.provider, cols.model, cols.labels, cols.due)
	return err
}

func scanTask(row pgx.Row) (*domain.Task, error) {
	var t domain.Task
	var input, assignee, output, reason, provider, model *string
	var labels []byte
	var priority, attempt int32
	err := row.Scan(&t.WorkspaceID, &t.ID, &t.Title, &input, &priority, &assignee, &t.Status, &attempt, &output,
		&reason, &t.Usage.PromptTokens, &t.Usage.CompletionTokens, &t.Version, &t.CreatedAt, &t.UpdatedAt,
		&provider, &model, &labels, &t.DueAt)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(labels, &t.Labels); err != nil {
		return nil, fmt.Errorf("task %s labels: %w", t.ID, err)
	}
	if len(t.Labels) == 0 {
		t.Labels = nil // as the domain holds none
	}
	if t.DueAt != nil {
		due := t.DueAt.UTC()
		t.DueAt = &due
	}
	t.Priority, t.Attempt = int(priority), int(attempt)
	t.ID, t.Title = fromDBText(t.ID), fromDBText(t.Title)
	t.Input, t.Assignee = fromDBTextPtr(input), fromDBTextPtr(assignee)
	t.Output, t.FailureReason = fromDBTextPtr(output), fromDBTextPtr(reason)
	t.Provider, t.Model = fromDBTextPtr(provider), fromDBTextPtr(model)
	return &t, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// applyErasures destroys erased workspaces' data keys and drops their
// tasks' sensitive fields (input, output, failure reason; applyWorkspaces
// drops agents' instructions). It runs after the task upsert so events
// earlier in the same batch cannot bring them back. The key goes first: a
// batch that fails after it is applied again, and erasing twice is
// harmless.
func applyErasures(ctx context.Context, tx pgx.Tx, evs []decoded, keys KeyEraser) error {
	for _, d := range evs {
		if d.env.Type != domain.EvWorkspaceErased {
			continue
		}
		if keys != nil {
			if err := keys.Erase(ctx, d.env.WorkspaceID); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE tasks SET input = NULL, output = NULL, failure_reason = NULL WHERE workspace_id = $1`, d.env.WorkspaceID); err != nil {
			return err
		}
	}
	return nil
}

// applyUsage adds the token usage recorded by attempts to the per-day totals.
func applyUsage(ctx context.Context, tx pgx.Tx, evs []decoded) error {
	type key struct {
		ws  string
		day string
	}
	sums := map[key]*domain.TokenUsage{}
	for _, d := range evs {
		var u domain.TokenUsage
		switch p := d.ev.Payload.(type) {
		case *domain.TaskResultRecorded:
			u = p.Usage
		case *domain.TaskAttemptFailed:
			u = p.Usage
		default:
			continue
		}
		k := key{d.env.WorkspaceID, d.env.OccurredAt.UTC().Format(time.DateOnly)}
		if sums[k] == nil {
			sums[k] = &domain.TokenUsage{}
		}
		sums[k].PromptTokens += u.PromptTokens
		sums[k].CompletionTokens += u.CompletionTokens
	}
	if len(sums) == 0 {
		return nil
	}
	var ws, days []string
	var prompt, completion []int64
	for k, u := range sums {
		ws, days = append(ws, k.ws), append(days, k.day)
		prompt, completion = append(prompt, u.PromptTokens), append(completion, u.CompletionTokens)
	}
	_, err := tx.Exec(ctx, `INSERT INTO ai_usage (workspace_id, day, prompt_tokens, completion_tokens)
		SELECT ws, day::date, p, c FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) AS u(ws, day, p, c)
		ON CONFLICT (workspace_id, day) DO UPDATE SET prompt_tokens = ai_usage.prompt_tokens + EXCLUDED.prompt_tokens,
			completion_tokens = ai_usage.completion_tokens + EXCLUDED.completion_tokens`, ws, days, prompt, completion)
	return err
}

// Results projects the results topic into the commands table: one outcome
// per command id, the first one kept (a later result for the same id, such
// as the refusal of a reused Idempotency-Key, never replaces it).
type Results struct{}

// Apply implements Applier.
func (Results) Apply(ctx context.Context, tx pgx.Tx, _ int32, recs []*kgo.Record) error {
	results := make([]schemas.Result, 0, len(recs))
	ids := make([]string, 0, len(recs))
	fresh := make(map[string]bool, len(recs)) // an id once per batch; false once found stored
	for _, r := range recs {
		res, err := schemas.DecodeResult(r.Value)
		if err != nil || res.CommandID == "" {
			return &decodeError{fmt.Errorf("result at %d/%d: not a result (%v)", r.Partition, r.Offset, err)}
		}
		if _, seen := fresh[res.CommandID]; seen {
			continue
		}
		fresh[res.CommandID] = true
		results = append(results, res)
		ids = append(ids, res.CommandID)
	}
	rows, err := tx.Query(ctx, `SELECT id FROM commands WHERE id = ANY($1)`, ids)
	if err != nil {
		return err
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, id := range stored {
		fresh[id] = false
	}
	opt := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	// The rest are new: copied in. Should another partition's projector
	// add one of them meanwhile, the copy breaks the key, and the batch is
	// applied again one record at a time, which finds it.
	out := make([][]any, 0, len(results))
	for _, res := range results {
		if !fresh[res.CommandID] {
			continue
		}
		ev, err := json.Marshal(res.Events)
		if err != nil {
			return err
		}
		out = append(out, []any{res.CommandID, res.WorkspaceID, res.CommandType, res.Status, opt(string(res.Code)),
			opt(res.Reason), opt(res.Field), opt(res.AggregateID), string(ev), res.DecidedAt, opt(res.RequestDigest), opt(res.ActorID)})
	}
	if len(out) == 0 {
		return nil
	}
	_, err = tx.CopyFrom(ctx, pgx.Identifier{"commands"}, []string{"id", "workspace_id", "type", "status", "code", "reason",
		"field", "aggregate_id", "events", "decided_at", "request_digest", "actor_id"}, pgx.CopyFromRows(out))
	return err
}

// nonNil is labels as the read models keep them: a list, empty when none.
func nonNil(labels []string) []string {
	if labels == nil {
		return []string{}
	}
	return labels
}
