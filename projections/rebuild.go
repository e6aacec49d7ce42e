package projections

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
)

// Projection is one topic projected into the read models.
type Projection struct {
	Name, Topic string
	Apply       Applier
}

// Projections are every projection of the read-model schema: the projector
// role runs them and a rebuild fills all of them.
func Projections(t kafka.Topics, keys KeyEraser) []Projection {
	return []Projection{
		{ProjectionReadModels, t.Events, ReadModels{Keys: keys}},
		{ProjectionResults, t.Results, Results{}},
		{ProjectionAccess, t.Access, AccessLog{}},
	}
}

// The schemas a rebuild uses beside the live one: the new read models are
// filled in RebuildSchema; the ones they replace are kept in PreviousSchema
// when asked to.
const (
	RebuildSchema  = "logbook_rebuild"
	PreviousSchema = "logbook_previous"
)

// carried are tables of the read-model schema not built from the log (what
// agent workers last reported): a switch copies their rows across.
var carried = []string{"agent_status", "instances"}

// RebuildConfig configures a blue-green rebuild of the read models.
type RebuildConfig struct {
	Kafka kafka.Config
	// Live serves the queries; its current schema holds the read models
	// the rebuild replaces.
	Live *pgxpool.Pool
	// Connect opens a pool whose unqualified names resolve in schema.
	Connect     func(ctx context.Context, schema string) (*pgxpool.Pool, error)
	Projections []Projection
	// KeepPrevious keeps the replaced read models in PreviousSchema
	// instead of dropping them.
	KeepPrevious bool
	// SwitchLag starts the switch once the new read models are at most
	// this many records behind the live ones (default 2000): the live
	// projection is held while the rest is applied.
	SwitchLag int64
	// HoldLimit bounds how long the live projection may be held.
	HoldLimit time.Duration
	// MaxPollRecords bounds one poll of the fill (default 20000).
	MaxPollRecords int
	// Progress is called about once a second while filling.
	Progress func(RebuildProgress)
	Logger   *slog.Logger
}

// RebuildProgress is how far a rebuild's fill has come.
type RebuildProgress struct {
	Applied   int64         // records applied into the new read models
	Remaining int64         // offsets between their checkpoints and the ends of the topics
	PerSecond float64       // records applied per second since the last report
	ETA       time.Duration // Remaining at PerSecond; 0 when unknown
}

// RebuildReport is what a finished rebuild did.
type RebuildReport struct {
	Schema  string        // the schema that now holds the new read models
	Records int64         // records applied into them
	Fill    time.Duration // from the start until the switch began
	Hold    time.Duration // how long the live projection was held at the switch
	Switch  time.Duration // how long queries could wait on the renames
	Kept    bool          // the replaced read models are in PreviousSchema
}

// Rebuild fills a new copy of the read models from offset 0 in
// RebuildSchema while the live ones keep serving, then switches them in one
// transaction: the live projection is held, the new read models catch up to
// exactly where it stood (or past it), and the tables change schema
// together, so every query reads either the old read models or the new
// ones. The live projectors go on with the new tables from their
// checkpoints. A rebuild that stops before the switch changes nothing live;
// the next one starts over.
func Rebuild(ctx context.Context, cfg RebuildConfig) (RebuildReport, error) {
	if cfg.SwitchLag <= 0 {
		cfg.SwitchLag = 2000
	}
	if cfg.HoldLimit <= 0 {
		cfg.HoldLimit = 30 * time.Second
	}
	if cfg.MaxPollRecords <= 0 {
		cfg.MaxPollRecords = 20000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var rep RebuildReport
	if err := cfg.Live.QueryRow(ctx, `SELECT current_schema()`).Scan(&rep.Schema); err != nil {
		return rep, fmt.Errorf("rebuild: live schema: %w", err)
	}
	if rep.Schema == RebuildSchema || rep.Schema == PreviousSchema {
		return rep, fmt.Errorf("rebuild: the live read models cannot be in schema %s", rep.Schema)
	}
	// One rebuild at a time: another would drop this one's schemas.
	lock, err := cfg.Live.Acquire(ctx)
	if err != nil {
		return rep, err
	}
	defer lock.Release()
	var mine bool
	if err := lock.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext('logbook projections rebuild'))`).Scan(&mine); err != nil {
		return rep, fmt.Errorf("rebuild: %w", err)
	}
	if !mine {
		return rep, errors.New("rebuild: another rebuild of these read models is running")
	}
	defer lock.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext('logbook projections rebuild'))`) //nolint:errcheck // the session ends anyway

	start := time.Now()
	next := pgx.Identifier{RebuildSchema}.Sanitize()
	if _, err := cfg.Live.Exec(ctx, `DROP SCHEMA IF EXISTS `+next+` CASCADE`); err != nil {
		return rep, fmt.Errorf("rebuild: drop a past rebuild: %w", err)
	}
	if _, err := cfg.Live.Exec(ctx, `CREATE SCHEMA `+next); err != nil {
		return rep, fmt.Errorf("rebuild: %w", err)
	}
	pool, err := cfg.Connect(ctx, RebuildSchema)
	if err != nil {
		return rep, err
	}
	defer pool.Close()
	if err := Migrate(ctx, pool); err != nil {
		return rep, fmt.Errorf("rebuild: new read models: %w", err)
	}
	deferred, err := dropSecondaryIndexes(ctx, pool)
	if err != nil {
		return rep, fmt.Errorf("rebuild: %w", err)
	}
	// Built once the fill has the log as it stood: one sorted build per
	// index instead of an update per row.
	buildIndexes := func() error {
		if len(deferred) == 0 {
			return nil
		}
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		// Sorted builds of large tables outlast the pool's statement
		// timeout; the connection goes back with the defaults restored.
		if _, err := conn.Exec(ctx, `SET statement_timeout = 0`); err != nil {
			return err
		}
		defer conn.Exec(context.WithoutCancel(ctx), `RESET statement_timeout`) //nolint:errcheck // best effort
		for len(deferred) > 0 {
			if _, err := conn.Exec(ctx, deferred[0]); err != nil {
				return fmt.Errorf("rebuild: build index: %w", err)
			}
			deferred = deferred[1:]
		}
		return nil
	}
	// Once caught up: the indexes, then what the log no longer holds.
	var accessFrom int64
	carried := false
	caughtUp := func() error {
		if err := buildIndexes(); err != nil {
			return err
		}
		if carried {
			return nil
		}
		var err error
		accessFrom, err = carryPast(ctx, pool, rep.Schema)
		carried = err == nil
		return err
	}
	adm, err := kgo.NewClient(cfg.Kafka.Opts()...)
	if err != nil {
		return rep, fmt.Errorf("rebuild: %w", err)
	}
	defer adm.Close()

	var total int64
	for round := 1; ; round++ {
		f, err := startFill(ctx, cfg, pool)
		if err != nil {
			return rep, err
		}
		err = rb(cfg).waitForLive(ctx, pool, kadm.NewClient(adm), f, caughtUp)
		if err == nil {
			rep.Fill = time.Since(start)
			rep.Hold, rep.Switch, err = rb(cfg).switchOver(ctx, rep.Schema, pool, f.stop, accessFrom)
		}
		f.stop()
		total += f.applied()
		rep.Records = total
		// A switch that failed rolled back whole (a lock wait, a deadlock
		// with another tool, the hold's limit): fill on and try again.
		var ve *versionError
		if err == nil || errors.As(err, &ve) || round == 3 || ctx.Err() != nil {
			if err != nil {
				return rep, err
			}
			break
		}
		cfg.Logger.Warn("rebuild: switch failed; filling on and trying again", "round", round, "err", err)
	}
	if _, err := cfg.Live.Exec(ctx, `DROP SCHEMA IF EXISTS `+next+` CASCADE`); err != nil {
		cfg.Logger.Warn("rebuild: could not drop the emptied rebuild schema", "err", err)
	}
	rep.Kept = cfg.KeepPrevious
	if !cfg.KeepPrevious {
		if _, err := cfg.Live.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{PreviousSchema}.Sanitize()+` CASCADE`); err != nil {
			cfg.Logger.Warn("rebuild: could not drop the replaced read models", "schema", PreviousSchema, "err", err)
		}
	}
	return rep, nil
}

// fill is the rebuild's projectors at work.
type fill struct {
	fillers  []*Projector
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	once     sync.Once
	caughtUp atomic.Int32 // fillers that have applied the log as it stood at the start
	errOnce  sync.Once
	err      chan error
}

func (f *fill) failed(err error) { f.errOnce.Do(func() { f.err <- err }) }

// done reports whether every filler has applied the log as it stood when
// the fill started.
func (f *fill) done() bool { return int(f.caughtUp.Load()) == len(f.fillers) }

// startFill runs a standalone projector per projection into pool, each
// from its checkpoint there.
func startFill(ctx context.Context, cfg RebuildConfig, pool *pgxpool.Pool) (*fill, error) {
	fctx, cancel := context.WithCancel(ctx)
	f := &fill{cancel: cancel, err: make(chan error, 1)}
	for _, spec := range cfg.Projections {
		p, err := NewProjector(ProjectorConfig{Kafka: cfg.Kafka, Name: spec.Name, Topic: spec.Topic, Pool: pool,
			Apply: spec.Apply, MaxPollRecords: cfg.MaxPollRecords, Standalone: true, Logger: cfg.Logger})
		if err != nil {
			f.stop()
			return nil, err
		}
		f.fillers = append(f.fillers, p)
		f.wg.Go(func() {
			if err := p.CatchUp(fctx); err != nil {
				if fctx.Err() == nil {
					f.failed(err)
				}
				return
			}
			f.caughtUp.Add(1)
			_ = p.Run(fctx)
		})
	}
	return f, nil
}

// stop ends the fill: a transaction in flight rolls back, so the new read
// models stay exactly at their checkpoints.
func (f *fill) stop() {
	f.once.Do(func() {
		f.cancel()
		f.wg.Wait()
		for _, p := range f.fillers {
			p.Close()
		}
	})
}

func (f *fill) applied() int64 {
	var n int64
	for _, p := range f.fillers {
		n += p.Applied()
	}
	return n
}

// dropSecondaryIndexes drops the indexes of pool's schema that no key or
// constraint needs (the fill's upserts and chain checks use only those) and
// returns the statements that build them again.
func dropSecondaryIndexes(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	rows, err := pool.Query(ctx, `SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i
		JOIN pg_class c ON c.oid = i.indexrelid
		WHERE c.relnamespace = current_schema()::regnamespace AND NOT i.indisprimary AND NOT i.indisunique
		ORDER BY c.relname`)
	if err != nil {
		return nil, err
	}
	type index struct{ name, def string }
	idx, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (index, error) {
		var i index
		return i, r.Scan(&i.name, &i.def)
	})
	if err != nil {
		return nil, err
	}
	defs := make([]string, 0, len(idx))
	for _, i := range idx {
		if _, err := pool.Exec(ctx, `DROP INDEX `+pgx.Identifier{i.name}.Sanitize()); err != nil {
			return nil, err
		}
		defs = append(defs, i.def)
	}
	return defs, nil
}

// rb carries a rebuild's configuration to its steps.
type rb RebuildConfig

// waitForLive reports progress until the fill has applied the log as it
// stood at the start and the new read models are within SwitchLag records
// of the live ones.
func (r rb) waitForLive(ctx context.Context, pool *pgxpool.Pool, adm *kadm.Client, f *fill, caughtUp func() error) error {
	topics := make([]string, 0, len(r.Projections))
	for _, p := range r.Projections {
		topics = append(topics, p.Topic)
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last, lastAt := int64(0), time.Now()
	for {
		if f.done() {
			if err := caughtUp(); err != nil {
				return err
			}
			behind, err := r.lagBehind(ctx, r.Live, pool)
			if err == nil && behind <= r.SwitchLag {
				return nil
			}
			if err != nil {
				r.Logger.Warn("rebuild: cannot compare checkpoints; retrying", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-f.err:
			return fmt.Errorf("rebuild: %w", err)
		case <-tick.C:
		}
		if r.Progress == nil || time.Since(lastAt) < time.Second {
			continue
		}
		remaining, err := remainingOffsets(ctx, adm, pool, topics, r.Projections)
		if err != nil {
			continue
		}
		n, now := f.applied(), time.Now()
		pr := RebuildProgress{Applied: n, Remaining: remaining, PerSecond: float64(n-last) / now.Sub(lastAt).Seconds()}
		if pr.PerSecond > 0 {
			pr.ETA = time.Duration(float64(remaining) / pr.PerSecond * float64(time.Second))
		}
		r.Progress(pr)
		last, lastAt = n, now
	}
}

// remainingOffsets sums, over every projected partition, the offsets
// between the new read models' checkpoint and the end of the topic.
func remainingOffsets(ctx context.Context, adm *kadm.Client, pool *pgxpool.Pool, topics []string, specs []Projection) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(lctx, topics...)
	if err != nil {
		return 0, err
	}
	cps, err := readCheckpoints(lctx, pool)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, spec := range specs {
		ends.Each(func(o kadm.ListedOffset) {
			if o.Topic == spec.Topic && o.Err == nil {
				sum += max(0, o.Offset-cps[checkpointKey{spec.Name, o.Partition}])
			}
		})
	}
	return sum, nil
}

type checkpointKey struct {
	projection string
	partition  int32
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func readCheckpoints(ctx context.Context, q querier) (map[checkpointKey]int64, error) {
	rows, err := q.Query(ctx, `SELECT projection, partition, next_offset FROM projection_checkpoints`)
	if err != nil {
		return nil, err
	}
	out := map[checkpointKey]int64{}
	for rows.Next() {
		var k checkpointKey
		var off int64
		if err := rows.Scan(&k.projection, &k.partition, &off); err != nil {
			rows.Close()
			return nil, err
		}
		out[k] = off
	}
	return out, rows.Err()
}

// lagBehind is how many offsets the new read models' checkpoints trail the
// live ones, summed over every partition the live projections (those
// rebuilt) have reached.
func (r rb) lagBehind(ctx context.Context, live, next querier) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	lc, err := readCheckpoints(lctx, live)
	if err != nil {
		return 0, err
	}
	nc, err := readCheckpoints(lctx, next)
	if err != nil {
		return 0, err
	}
	var behind int64
	for k, off := range lc {
		if slices.ContainsFunc(r.Projections, func(p Projection) bool { return p.Name == k.projection }) {
			behind += max(0, off-nc[k])
		}
	}
	return behind, nil
}

// switchOver holds the live projection (an EXCLUSIVE lock on its
// checkpoints: the projectors' next transaction waits at its first
// statement, queries go on), waits until the new read models have every
// record the live ones have, stops the fill, and moves the tables: live →
// PreviousSchema, RebuildSchema → live. Queries wait only for the renames.
func (r rb) switchOver(ctx context.Context, live string, pool *pgxpool.Pool, stopFill func(), accessFrom int64) (hold, renames time.Duration, err error) {
	conn, err := r.Live.Acquire(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '10s'`); err != nil {
		return 0, 0, err
	}
	if _, err := tx.Exec(ctx, `SET LOCAL statement_timeout = 0`); err != nil {
		return 0, 0, err
	}
	liveT := func(t string) string { return pgx.Identifier{live, t}.Sanitize() }
	held := time.Now()
	if _, err := tx.Exec(ctx, `LOCK TABLE `+liveT("projection_checkpoints")+` IN EXCLUSIVE MODE`); err != nil {
		return 0, 0, fmt.Errorf("rebuild: hold the live projection: %w", err)
	}
	deadline := time.Now().Add(r.HoldLimit)
	for {
		behind, err := r.lagBehind(ctx, tx, pool)
		if err != nil {
			return time.Since(held), 0, err
		}
		if behind == 0 {
			break
		}
		if time.Now().After(deadline) {
			return time.Since(held), 0, fmt.Errorf("rebuild: the new read models were still %d records behind after holding the live projection for %s",
				behind, r.HoldLimit)
		}
		select {
		case <-ctx.Done():
			return time.Since(held), 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	stopFill()
	if err := checkVersions(ctx, tx, live); err != nil {
		return time.Since(held), 0, err
	}
	if _, err := renumberAccess(ctx, tx, live, accessFrom); err != nil {
		return time.Since(held), 0, fmt.Errorf("rebuild: access audit cursors: %w", err)
	}

	rows, err := tx.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename`, RebuildSchema)
	if err != nil {
		return time.Since(held), 0, err
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return time.Since(held), 0, err
	}
	prev := pgx.Identifier{PreviousSchema}.Sanitize()
	for _, sql := range []string{`DROP SCHEMA IF EXISTS ` + prev + ` CASCADE`, `CREATE SCHEMA ` + prev} {
		if _, err := tx.Exec(ctx, sql); err != nil {
			return time.Since(held), 0, err
		}
	}
	// Queries queue behind a rename waiting for its lock: wait briefly and
	// try again rather than stall them.
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '2s'`); err != nil {
		return time.Since(held), 0, err
	}
	moved := time.Now()
	for _, t := range tables {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = $1 AND tablename = $2)`,
			live, t).Scan(&exists); err != nil {
			return time.Since(held), 0, err
		}
		if exists {
			if _, err := tx.Exec(ctx, `ALTER TABLE `+liveT(t)+` SET SCHEMA `+prev); err != nil {
				return time.Since(held), 0, fmt.Errorf("rebuild: move %s aside: %w", t, err)
			}
		}
		if _, err := tx.Exec(ctx, `ALTER TABLE `+pgx.Identifier{RebuildSchema, t}.Sanitize()+` SET SCHEMA `+pgx.Identifier{live}.Sanitize()); err != nil {
			return time.Since(held), 0, fmt.Errorf("rebuild: move %s in: %w", t, err)
		}
	}
	// Functions (the event trail's immutability trigger) move too: dropping
	// the emptied rebuild schema would otherwise take the triggers with them.
	rows, err = tx.Query(ctx, `SELECT proname, pg_get_function_identity_arguments(p.oid) FROM pg_proc p
		JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1 ORDER BY 1, 2`, RebuildSchema)
	if err != nil {
		return time.Since(held), 0, err
	}
	type function struct{ name, args string }
	funcs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (function, error) {
		var f function
		return f, r.Scan(&f.name, &f.args)
	})
	if err != nil {
		return time.Since(held), 0, err
	}
	for _, f := range funcs {
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
			WHERE n.nspname = $1 AND proname = $2 AND pg_get_function_identity_arguments(p.oid) = $3)`,
			live, f.name, f.args).Scan(&exists); err != nil {
			return time.Since(held), 0, err
		}
		// The arguments come from the catalog, not from input.
		if exists {
			if _, err := tx.Exec(ctx, `ALTER FUNCTION `+liveT(f.name)+`(`+f.args+`) SET SCHEMA `+prev); err != nil {
				return time.Since(held), 0, fmt.Errorf("rebuild: move function %s aside: %w", f.name, err)
			}
		}
		if _, err := tx.Exec(ctx, `ALTER FUNCTION `+pgx.Identifier{RebuildSchema, f.name}.Sanitize()+`(`+f.args+`) SET SCHEMA `+
			pgx.Identifier{live}.Sanitize()); err != nil {
			return time.Since(held), 0, fmt.Errorf("rebuild: move function %s in: %w", f.name, err)
		}
	}
	for _, t := range carried {
		if err := carry(ctx, tx, t, live); err != nil {
			return time.Since(held), 0, fmt.Errorf("rebuild: carry %s across: %w", t, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return time.Since(held), time.Since(moved), err
	}
	return time.Since(held), time.Since(moved), nil
}

// carry copies a table's rows from PreviousSchema into the live schema,
// over the columns both versions have.
func carry(ctx context.Context, tx pgx.Tx, table, live string) error {
	return copyRows(ctx, tx, table, PreviousSchema, live)
}

type execQuerier interface {
	querier
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// copyRows copies a table's rows from one schema's copy to another's, over
// the columns both have, keeping the rows the target already holds.
func copyRows(ctx context.Context, q execQuerier, table, from, to string) error {
	rows, err := q.Query(ctx, `SELECT n.column_name FROM information_schema.columns n
		JOIN information_schema.columns o ON o.table_schema = $3 AND o.table_name = n.table_name AND o.column_name = n.column_name
		WHERE n.table_schema = $1 AND n.table_name = $2 ORDER BY n.ordinal_position`, to, table, from)
	if err != nil {
		return err
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(cols) == 0 {
		return err
	}
	list := ""
	for i, c := range cols {
		if i > 0 {
			list += ", "
		}
		list += pgx.Identifier{c}.Sanitize()
	}
	_, err = q.Exec(ctx, `INSERT INTO `+pgx.Identifier{to, table}.Sanitize()+` (`+list+`) SELECT `+list+
		` FROM `+pgx.Identifier{from, table}.Sanitize()+` ON CONFLICT DO NOTHING`)
	return err
}

// carryPast brings into the new read models what the live ones hold and
// the log no longer does, once the fill has the log: command outcomes
// whose results the results topic's retention let go. It also gives the
// access audit's rows the numbers auditors' cursors know (renumberAccess),
// and returns the highest live number, from which the switch finishes it.
func carryPast(ctx context.Context, pool *pgxpool.Pool, live string) (int64, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET statement_timeout = 0`); err != nil {
		return 0, err
	}
	defer conn.Exec(context.WithoutCancel(ctx), `RESET statement_timeout`) //nolint:errcheck // best effort
	if err := copyRows(ctx, conn, "commands", live, RebuildSchema); err != nil {
		return 0, fmt.Errorf("rebuild: carry command outcomes: %w", err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	top, err := renumberAccess(ctx, tx, live, 0)
	if err != nil {
		return 0, fmt.Errorf("rebuild: access audit cursors: %w", err)
	}
	return top, tx.Commit(ctx)
}

// renumberAccess gives the new access audit's rows numbered above from the
// numbers the live rows of the same id have (auditors page by them), and
// the rows the live audit lacks numbers above all of the live ones. It
// returns the highest live number. Numbers are set negative first, so no
// two rows ever share one on the way.
func renumberAccess(ctx context.Context, tx pgx.Tx, live string, from int64) (int64, error) {
	nt, lt := pgx.Identifier{RebuildSchema, "access_log"}.Sanitize(), pgx.Identifier{live, "access_log"}.Sanitize()
	var top int64
	if err := tx.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM `+lt).Scan(&top); err != nil {
		return 0, err
	}
	for _, st := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE ` + nt + ` n SET seq = -o.seq FROM ` + lt + ` o WHERE n.id = o.id AND n.seq > $1 AND o.seq > $1`, []any{from}},
		{`UPDATE ` + nt + ` n SET seq = -($2 + r.rn) FROM (SELECT id, row_number() OVER (ORDER BY log_offset) AS rn
			FROM ` + nt + ` WHERE seq > $1) r WHERE n.id = r.id`, []any{from, top}},
		{`UPDATE ` + nt + ` SET seq = -seq WHERE seq < 0`, nil},
		{`SELECT setval(pg_get_serial_sequence($1, 'seq'), greatest((SELECT coalesce(max(seq), 0) FROM ` + nt + `), $2, 1))`,
			[]any{nt, top}},
	} {
		if _, err := tx.Exec(ctx, st.sql, st.args...); err != nil {
			return 0, err
		}
	}
	return top, nil
}

// versionError is a switch refused because the live read models are of a
// later schema version than this logbook builds.
type versionError struct{ live, next int64 }

func (e *versionError) Error() string {
	return fmt.Sprintf("rebuild: the live read models are at schema version %d, this logbook builds version %d: rebuild with the logbook the fleet runs", e.live, e.next)
}

// checkVersions refuses to put read models of an earlier schema version
// under a fleet whose queries expect a later one.
func checkVersions(ctx context.Context, tx pgx.Tx, live string) error {
	var lv, nv int64
	if err := tx.QueryRow(ctx, `SELECT coalesce((SELECT max(version) FROM `+pgx.Identifier{live, "projections_schema_version"}.Sanitize()+`), 0),
		coalesce((SELECT max(version) FROM `+pgx.Identifier{RebuildSchema, "projections_schema_version"}.Sanitize()+`), 0)`).Scan(&lv, &nv); err != nil {
		return err
	}
	if lv > nv {
		return &versionError{lv, nv}
	}
	return nil
}
