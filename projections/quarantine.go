package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/schemas"
)

// A record a projection cannot apply is quarantined: it goes to the
// projection_quarantine table in the transaction that moves the checkpoint
// past it, and its workspace is stalled. Every later event of a stalled
// workspace is held in the same table, in log order, instead of being
// applied out of order or thrown away; the other workspaces of the
// partition keep flowing. Replay applies a workspace's quarantined records
// in order once the cause is fixed.

// forgedError is an event that does not extend its workspace's hash chain:
// not a fact of this log. It is dead-lettered, never quarantined, and its
// workspace is not stalled.
type forgedError struct{ err error }

func (e *forgedError) Error() string { return e.err.Error() }
func (e *forgedError) Unwrap() error { return e.err }

// gapError is an event whose seq is past the next one of its workspace:
// the log lacks events it builds on (a torn transaction of a broker that
// broke atomicity). Applying it would hide the hole, dropping it would
// freeze the workspace silently: it is quarantined, so the stall shows.
type gapError struct{ err error }

func (e *gapError) Error() string { return e.err.Error() }
func (e *gapError) Unwrap() error { return e.err }

// checkGap refuses an event that skips seqs after chain.
func checkGap(chain schemas.Chain, d decoded) error {
	if d.env.Seq <= chain.Seq+1 {
		return nil
	}
	missing := fmt.Sprintf("seq %d", chain.Seq+1)
	if d.env.Seq > chain.Seq+2 {
		missing = fmt.Sprintf("seqs %d to %d", chain.Seq+1, d.env.Seq-1)
	}
	return &gapError{fmt.Errorf("event at %d/%d: workspace %s seq %d: the log lacks %s, which it builds on",
		d.partition, d.offset, d.env.WorkspaceID, d.env.Seq, missing)}
}

// payloadError is an event of the chain whose payload cannot be read.
type payloadError struct{ err error }

func (e *payloadError) Error() string { return e.err.Error() }
func (e *payloadError) Unwrap() error { return e.err }

// tip is the last quarantined record of a workspace; seq and hash are nil
// when that record did not decode.
type tip struct {
	seq  *int64
	hash *string
}

// holdBehindQuarantine takes the events of stalled workspaces out of evs
// and holds them in the quarantine, after checking each extends the chain
// of what is held before it. It returns the events to apply.
func holdBehindQuarantine(ctx context.Context, tx pgx.Tx, evs []decoded) ([]decoded, error) {
	if len(evs) == 0 {
		return evs, nil
	}
	ids := make([]string, 0, len(evs))
	seen := map[string]bool{}
	for _, d := range evs {
		if !seen[d.env.WorkspaceID] {
			seen[d.env.WorkspaceID] = true
			ids = append(ids, d.env.WorkspaceID)
		}
	}
	// Only records before the batch hold it: a replay applies a stalled
	// workspace's records while its later ones are still quarantined.
	first := evs[0].rec
	rows, err := tx.Query(ctx, `SELECT DISTINCT ON (workspace_id) workspace_id, seq, hash FROM projection_quarantine
		WHERE projection = $1 AND workspace_id = ANY($2) AND log_partition = $3 AND log_offset < $4
		ORDER BY workspace_id, log_offset DESC`,
		ProjectionReadModels, ids, first.Partition, first.Offset)
	if err != nil {
		return nil, err
	}
	tips := map[string]*tip{}
	for rows.Next() {
		var ws string
		var t tip
		if err := rows.Scan(&ws, &t.seq, &t.hash); err != nil {
			rows.Close()
			return nil, err
		}
		tips[ws] = &t
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(tips) == 0 {
		return evs, nil
	}
	apply := evs[:0:0]
	for _, d := range evs {
		t := tips[d.env.WorkspaceID]
		if t == nil {
			apply = append(apply, d)
			continue
		}
		reason := "held behind an earlier record of this workspace that could not be applied"
		if t.seq != nil && t.hash != nil {
			held := schemas.Chain{Seq: *t.seq, Hash: *t.hash}
			if gap := checkGap(held, d); gap != nil {
				reason = gap.Error()
			} else if _, err := schemas.Verify(held, d.env); err != nil {
				return nil, &forgedError{fmt.Errorf("event at %d/%d: %w", d.partition, d.offset, err)}
			}
		}
		if err := quarantine(ctx, tx, ProjectionReadModels, d.rec, true, reason); err != nil {
			return nil, err
		}
		seq, hash := d.env.Seq, d.env.Hash
		t.seq, t.hash = &seq, &hash
	}
	return apply, nil
}

// quarantine stores r; held is false for the record that failed and true for
// the records held behind it.
func quarantine(ctx context.Context, tx pgx.Tx, projection string, r *kgo.Record, held bool, reason string) error {
	var probe struct {
		WorkspaceID string  `json:"workspace_id"`
		Seq         *int64  `json:"seq"`
		Hash        *string `json:"hash"`
	}
	if json.Unmarshal(r.Value, &probe) != nil || probe.WorkspaceID == "" {
		probe.WorkspaceID, probe.Seq, probe.Hash = string(r.Key), nil, nil
	}
	_, err := tx.Exec(ctx, `INSERT INTO projection_quarantine
		(projection, log_partition, log_offset, workspace_id, seq, hash, held, error, value)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING`,
		projection, r.Partition, r.Offset, dbText(probe.WorkspaceID), probe.Seq, probe.Hash, held, dbText(reason), r.Value)
	return err
}

// Quarantined is one quarantined record, as operators list it.
type Quarantined struct {
	Projection    string    `json:"projection"`
	Partition     int32     `json:"partition"`
	Offset        int64     `json:"offset"`
	WorkspaceID   string    `json:"workspace_id"`
	Seq           *int64    `json:"seq,omitempty"`
	Held          bool      `json:"held"`
	Error         string    `json:"error"`
	QuarantinedAt time.Time `json:"quarantined_at"`
}

// ListQuarantine lists quarantined records in log order, of one workspace
// when workspaceID is set, at most limit of them.
func ListQuarantine(ctx context.Context, pool *pgxpool.Pool, workspaceID string, limit int) ([]Quarantined, error) {
	return collect(ctx, pool, `SELECT projection, log_partition, log_offset, workspace_id, seq, held, error, quarantined_at
		FROM projection_quarantine WHERE ($1 = '' OR workspace_id = $1)
		ORDER BY projection, log_partition, log_offset LIMIT $2`, []any{dbText(workspaceID), limit},
		func(row pgx.Rows) (Quarantined, error) {
			var q Quarantined
			err := row.Scan(&q.Projection, &q.Partition, &q.Offset, &q.WorkspaceID, &q.Seq, &q.Held, &q.Error, &q.QuarantinedAt)
			q.WorkspaceID, q.Error = fromDBText(q.WorkspaceID), fromDBText(q.Error)
			return q, err
		})
}

// Stall describes a stalled workspace.
type Stall struct {
	WorkspaceID string `json:"workspace_id"`
	// SinceSeq is the seq of the first event not applied, when known.
	SinceSeq *int64 `json:"since_seq,omitempty"`
	// Records is how many records wait in the quarantine.
	Records int64 `json:"records"`
}

// StallSummary is what operators see of the quarantine: how many
// workspaces are stalled and records wait, and the oldest stalls.
type StallSummary struct {
	Workspaces int     `json:"stalled_workspaces"`
	Records    int64   `json:"quarantined_records"`
	Stalled    []Stall `json:"stalled"`
}

// Stalls summarises the quarantine, listing at most limit stalled
// workspaces of the read models, oldest first.
func Stalls(ctx context.Context, pool *pgxpool.Pool, limit int) (StallSummary, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var sum StallSummary
	if err := pool.QueryRow(ctx, `SELECT count(DISTINCT workspace_id) FILTER (WHERE projection = $1), count(*)
		FROM projection_quarantine`, ProjectionReadModels).Scan(&sum.Workspaces, &sum.Records); err != nil {
		return sum, err
	}
	var err error
	sum.Stalled, err = collect(ctx, pool, `SELECT workspace_id, min(seq), count(*) FROM projection_quarantine
		WHERE projection = $1 GROUP BY workspace_id ORDER BY min(quarantined_at), workspace_id LIMIT $2`,
		[]any{ProjectionReadModels, limit}, func(row pgx.Rows) (Stall, error) {
			var s Stall
			err := row.Scan(&s.WorkspaceID, &s.SinceSeq, &s.Records)
			s.WorkspaceID = fromDBText(s.WorkspaceID)
			return s, err
		})
	return sum, err
}

// stallOf returns the stall of one workspace, nil when it is not stalled.
func stallOf(ctx context.Context, pool *pgxpool.Pool, ws string) (*Stall, error) {
	s := Stall{WorkspaceID: ws}
	err := pool.QueryRow(ctx, `SELECT min(seq), count(*) FROM projection_quarantine
		WHERE projection = $1 AND workspace_id = $2`, ProjectionReadModels, dbText(ws)).Scan(&s.SinceSeq, &s.Records)
	if err != nil || s.Records == 0 {
		return nil, err
	}
	return &s, nil
}

// ReplayReport says what a replay did for one projection and workspace.
type ReplayReport struct {
	Projection  string `json:"projection"`
	WorkspaceID string `json:"workspace_id"`
	Applied     int    `json:"applied"`
	Remaining   int    `json:"remaining"`
	// Error is why the first remaining record still cannot be applied.
	Error string `json:"error,omitempty"`
}

// Replayer applies quarantined records again, for operators after the
// cause is fixed.
type Replayer struct {
	Pool *pgxpool.Pool
	// Appliers by projection name.
	Appliers map[string]Applier
}

// NewReplayer returns a replayer of the projections logbook runs; keys
// destroys the data keys of workspaces whose erasure it applies.
func NewReplayer(pool *pgxpool.Pool, keys KeyEraser) *Replayer {
	return &Replayer{Pool: pool, Appliers: map[string]Applier{
		ProjectionReadModels: ReadModels{Keys: keys}, ProjectionResults: Results{},
	}}
}

// Replay applies the quarantined records of every stalled workspace, or of
// one when workspaceID is set, each workspace in log order in one
// transaction: a workspace catches up as far as its records now apply.
func (rp *Replayer) Replay(ctx context.Context, workspaceID string) ([]ReplayReport, error) {
	type target struct{ projection, ws string }
	targets, err := collect(ctx, rp.Pool, `SELECT DISTINCT projection, workspace_id FROM projection_quarantine
		WHERE ($1 = '' OR workspace_id = $1) ORDER BY projection, workspace_id`, []any{dbText(workspaceID)},
		func(row pgx.Rows) (target, error) {
			var t target
			return t, row.Scan(&t.projection, &t.ws)
		})
	if err != nil {
		return nil, err
	}
	var reports []ReplayReport
	for _, t := range targets {
		rep, err := rp.replayOne(ctx, t.projection, t.ws)
		if err != nil {
			return reports, fmt.Errorf("replay %s of workspace %s: %w", t.projection, fromDBText(t.ws), err)
		}
		reports = append(reports, rep)
	}
	return reports, nil
}

func (rp *Replayer) replayOne(ctx context.Context, projection, storedWS string) (ReplayReport, error) {
	rep := ReplayReport{Projection: projection, WorkspaceID: fromDBText(storedWS)}
	apply := rp.Appliers[projection]
	if apply == nil {
		return rep, fmt.Errorf("unknown projection %q", projection)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	tx, err := rp.Pool.Begin(ctx)
	if err != nil {
		return rep, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	recs, err := quarantinedRecords(ctx, tx, projection, storedWS)
	if err != nil || len(recs) == 0 {
		return rep, err
	}
	// The checkpoint row is what the projector locks for every batch of
	// the partition: holding it keeps the projector from holding new
	// events behind records this replay is about to apply.
	if _, err := tx.Exec(ctx, `SELECT 1 FROM projection_checkpoints WHERE projection = $1 AND partition = $2 FOR UPDATE`,
		projection, recs[0].Partition); err != nil {
		return rep, err
	}
	if recs, err = quarantinedRecords(ctx, tx, projection, storedWS); err != nil {
		return rep, err
	}
	applied, failure, err := applyInOrder(ctx, tx, projection, apply, recs)
	if err != nil {
		return rep, err
	}
	rep.Applied, rep.Remaining = applied, len(recs)-applied
	if failure != nil {
		rep.Error = failure.Error()
		first := recs[applied]
		if _, err := tx.Exec(ctx, `UPDATE projection_quarantine SET held = false, error = $4
			WHERE projection = $1 AND log_partition = $2 AND log_offset = $3`,
			projection, first.Partition, first.Offset, dbText(rep.Error)); err != nil {
			return rep, err
		}
	}
	return rep, tx.Commit(ctx)
}

// applyInOrder applies recs, all at once when it can, else one at a time
// up to the first that fails permanently; each applied record leaves the
// quarantine in the same savepoint.
func applyInOrder(ctx context.Context, tx pgx.Tx, projection string, apply Applier, recs []*kgo.Record) (applied int, failure, err error) {
	try := func(batch []*kgo.Record) error {
		sp, err := tx.Begin(ctx)
		if err != nil {
			return err
		}
		for _, r := range batch {
			if _, err := sp.Exec(ctx, `DELETE FROM projection_quarantine
				WHERE projection = $1 AND log_partition = $2 AND log_offset = $3`, projection, r.Partition, r.Offset); err != nil {
				_ = sp.Rollback(ctx)
				return err
			}
		}
		if err := apply.Apply(ctx, sp, batch[0].Partition, batch); err != nil {
			if rerr := sp.Rollback(ctx); rerr != nil {
				return errors.Join(err, rerr)
			}
			return err
		}
		return sp.Commit(ctx)
	}
	err = try(recs)
	if err == nil {
		return len(recs), nil, nil
	}
	if !permanent(err) {
		return 0, nil, err
	}
	for i, r := range recs {
		if err := try([]*kgo.Record{r}); err != nil {
			if permanent(err) {
				return i, err, nil
			}
			return i, nil, err
		}
	}
	return len(recs), nil, nil
}

func quarantinedRecords(ctx context.Context, tx pgx.Tx, projection, storedWS string) ([]*kgo.Record, error) {
	rows, err := tx.Query(ctx, `SELECT log_partition, log_offset, value FROM projection_quarantine
		WHERE projection = $1 AND workspace_id = $2 ORDER BY log_partition, log_offset`, projection, storedWS)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var recs []*kgo.Record
	for rows.Next() {
		r := &kgo.Record{}
		if err := rows.Scan(&r.Partition, &r.Offset, &r.Value); err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, rows.Err()
}
