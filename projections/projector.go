// Package projections builds the Postgres read models from the log and
// serves the query API from them.
package projections

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/pg"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate brings the read-model schema up to date.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	return pg.Migrate(ctx, pool, sub, "projections_schema_version")
}

// Applier writes one partition's batch of records into read models inside
// the given transaction. Records are in offset order and never seen before.
type Applier interface {
	Apply(ctx context.Context, tx pgx.Tx, partition int32, records []*kgo.Record) error
}

// ProjectorConfig configures one projection of one topic.
type ProjectorConfig struct {
	Kafka kafka.Config
	// Name of the projection, its checkpoint key and its consumer group
	// (ConsumerGroup(Name)).
	Name  string
	Topic string
	Pool  *pgxpool.Pool
	Apply Applier
	// MaxPollRecords bounds one poll, default 5000.
	MaxPollRecords int
	// Standalone consumes every partition of Topic without a consumer
	// group, from the checkpoints in Pool: a rebuild fills its own copy of
	// the read models beside the live projection without taking its
	// partitions. It dead-letters nothing: the live projection has.
	Standalone bool
	Logger     *slog.Logger
}

// GroupPrefix starts the consumer group of every projection.
const GroupPrefix = "logbook-projection-"

// ConsumerGroup is the consumer group of the projection name.
func ConsumerGroup(name string) string { return GroupPrefix + name }

// Projector consumes a topic in a group and applies it to Postgres. Its
// offsets live in projection_checkpoints, written in the same transaction
// as the rows, so every record is applied exactly once.
type Projector struct {
	cfg ProjectorConfig
	cl  *kgo.Client
	dlq *kgo.Client

	mu       sync.Mutex
	applied  int64
	setAside int64 // records dead-lettered or quarantined
	lastErr  error
}

// NewProjector builds a projector; Run starts it.
func NewProjector(cfg ProjectorConfig) (*Projector, error) {
	cfg.Kafka = cfg.Kafka.WithDefaults()
	if err := cfg.Kafka.Validate(); err != nil {
		return nil, err
	}
	if cfg.Name == "" || cfg.Topic == "" || cfg.Pool == nil || cfg.Apply == nil {
		return nil, errors.New("projections: projector needs a name, topic, pool and applier")
	}
	if cfg.MaxPollRecords <= 0 {
		cfg.MaxPollRecords = 5000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Projector{cfg: cfg}
	opts := append(cfg.Kafka.Opts(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if !cfg.Standalone {
		opts = append(opts,
			kgo.ConsumerGroup(ConsumerGroup(cfg.Name)),
			// A dead member's partitions move after 10s, not kgo's default
			// 45s: the read models must not stall that long behind a
			// crashed process.
			kgo.SessionTimeout(10*time.Second),
			kgo.RebalanceTimeout(30*time.Second),
			kgo.ConsumeTopics(cfg.Topic),
			kgo.DisableAutoCommit(),
			kgo.AdjustFetchOffsetsFn(p.seekToCheckpoints))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("projections: %w", err)
	}
	p.cl = cl
	if cfg.Standalone {
		return p, nil
	}
	if p.dlq, err = kgo.NewClient(cfg.Kafka.Opts()...); err != nil {
		cl.Close()
		return nil, fmt.Errorf("projections: %w", err)
	}
	return p, nil
}

// Close leaves the group.
func (p *Projector) Close() {
	p.cl.Close()
	if p.dlq != nil {
		p.dlq.Close()
	}
}

// SetAside is the number of records this process could not apply and
// dead-lettered or quarantined.
func (p *Projector) SetAside() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.setAside
}

// Applied is the number of records applied by this process.
func (p *Projector) Applied() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.applied
}

// seekToCheckpoints starts every assigned partition at its checkpoint. It
// retries while Postgres is unreachable: starting anywhere else would skip or
// repeat records.
func (p *Projector) seekToCheckpoints(ctx context.Context, assigned map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	parts := assigned[p.cfg.Topic]
	ids := make([]int32, 0, len(parts))
	for id := range parts {
		ids = append(ids, id)
	}
	backoff := 200 * time.Millisecond
	for {
		cps, err := p.checkpoints(ctx, ids)
		if err == nil {
			for id := range parts {
				parts[id] = kgo.NewOffset().At(cps[id]) // 0 when new: the log start
			}
			return assigned, nil
		}
		p.cfg.Logger.Warn("projector: cannot read checkpoints; retrying", "projection", p.cfg.Name, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (p *Projector) checkpoints(ctx context.Context, ids []int32) (map[int32]int64, error) {
	return projectionCheckpoints(ctx, p.cfg.Pool, p.cfg.Name, ids)
}

// Checkpoints are the next offsets of the projection, per partition it has
// applied records of: its position, for lag.
func Checkpoints(ctx context.Context, pool *pgxpool.Pool, projection string) (map[int32]int64, error) {
	return projectionCheckpoints(ctx, pool, projection, nil)
}

// projectionCheckpoints reads the projection's checkpoints of the partitions ids,
// or of every partition when ids is nil.
func projectionCheckpoints(ctx context.Context, pool *pgxpool.Pool, projection string, ids []int32) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rows, err := pool.Query(ctx,
		`SELECT partition, next_offset FROM projection_checkpoints WHERE projection = $1 AND ($2::int[] IS NULL OR partition = ANY($2))`,
		projection, ids)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for rows.Next() {
		var part int32
		var off int64
		if err := rows.Scan(&part, &off); err != nil {
			return nil, err
		}
		out[part] = off
	}
	return out, rows.Err()
}

// startStandalone assigns every partition of the topic, each at its
// checkpoint, retrying while the broker or Postgres cannot answer.
func (p *Projector) startStandalone(ctx context.Context) error {
	adm := kadm.NewClient(p.cl)
	backoff := 200 * time.Millisecond
	for {
		err := func() error {
			lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			ends, err := adm.ListEndOffsets(lctx, p.cfg.Topic)
			if err != nil {
				return err
			}
			if err := ends.Error(); err != nil {
				return err
			}
			parts := map[int32]kgo.Offset{}
			ends.Each(func(o kadm.ListedOffset) { parts[o.Partition] = kgo.NewOffset().AtStart() })
			if len(parts) == 0 {
				return fmt.Errorf("topic %s has no partitions", p.cfg.Topic)
			}
			if _, err := p.seekToCheckpoints(lctx, map[string]map[int32]kgo.Offset{p.cfg.Topic: parts}); err != nil {
				return err
			}
			p.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{p.cfg.Topic: parts})
			return nil
		}()
		if err == nil || ctx.Err() != nil {
			return ctx.Err()
		}
		p.cfg.Logger.Warn("projector: cannot assign the topic's partitions; retrying", "projection", p.cfg.Name, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// CatchUp applies, from the checkpoints, every record the topic holds when
// it is called, in batches of up to MaxPollRecords per partition, and
// returns once all are applied: a rebuild's fill knows it has the whole log
// as it stood, whatever transaction markers end each partition.
func (p *Projector) CatchUp(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	ends, err := kadm.NewClient(p.cl).ListEndOffsets(lctx, p.cfg.Topic)
	cancel()
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("projections: %s: %w", p.cfg.Name, err)
	}
	var ids []int32
	ends.Each(func(o kadm.ListedOffset) { ids = append(ids, o.Partition) })
	cps, err := p.checkpoints(ctx, ids)
	if err != nil {
		return fmt.Errorf("projections: %s checkpoints: %w", p.cfg.Name, err)
	}
	from := make(map[int32]int64, len(ids))
	for _, id := range ids {
		from[id] = cps[id]
	}
	bufs := map[int32][]*kgo.Record{}
	flush := func(part int32) error {
		recs := bufs[part]
		if len(recs) == 0 {
			return nil
		}
		bufs[part] = nil
		if err := p.applyWithRetry(ctx, part, recs); err != nil {
			return err
		}
		return ctx.Err() // applyWithRetry gives up only when ctx ends
	}
	err = kafka.ReadToEnd(ctx, p.cl, p.cfg.Topic, from, func(r *kgo.Record) error {
		bufs[r.Partition] = append(bufs[r.Partition], r)
		if len(bufs[r.Partition]) < p.cfg.MaxPollRecords {
			return nil
		}
		return flush(r.Partition)
	})
	if err != nil {
		return fmt.Errorf("projections: %s: %w", p.cfg.Name, err)
	}
	for _, id := range ids {
		if err := flush(id); err != nil {
			return err
		}
	}
	return nil
}

// Run applies records until ctx ends.
func (p *Projector) Run(ctx context.Context) error {
	if p.cfg.Standalone {
		if err := p.startStandalone(ctx); err != nil {
			return nil // ctx ended
		}
	}
	for ctx.Err() == nil {
		fetches := p.cl.PollRecords(ctx, p.cfg.MaxPollRecords)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(t string, part int32, err error) {
			p.cfg.Logger.Warn("projector: fetch error", "projection", p.cfg.Name, "topic", t, "partition", part, "err", err)
		})
		var runErr error
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if runErr != nil || len(fp.Records) == 0 {
				return
			}
			runErr = p.applyWithRetry(ctx, fp.Partition, fp.Records)
		})
		if runErr != nil {
			return runErr
		}
	}
	return nil
}

// applyWithRetry keeps trying one partition batch while Postgres is down:
// the batch stays in memory and the checkpoint makes a retry harmless. A
// batch that fails for a reason retrying cannot fix (a record that does not
// decode, breaks a constraint or is forged) is applied record by record, and
// the records that still fail are set aside (see isolate), so one bad record
// never stalls a projection.
func (p *Projector) applyWithRetry(ctx context.Context, part int32, recs []*kgo.Record) error {
	backoff := 100 * time.Millisecond
	for {
		n, err := p.apply(ctx, part, recs, nil)
		if err != nil && permanent(err) {
			n, err = p.isolate(ctx, part, recs)
		}
		p.mu.Lock()
		p.lastErr = err
		if err == nil {
			p.applied += int64(n)
		}
		p.mu.Unlock()
		if err == nil || ctx.Err() != nil {
			return nil
		}
		p.cfg.Logger.Warn("projector: apply failed; retrying", "projection", p.cfg.Name, "partition", part,
			"first_offset", recs[0].Offset, "records", len(recs), "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// isolate applies records one transaction each. A record that fails
// permanently is copied to the dead-letter topic and the checkpoint moves
// past it in the transaction that sets it aside. A record that is no fact
// of this log (not an envelope, or forged: it does not extend its chain) is
// dropped; an event of the chain that cannot be applied is quarantined,
// which stalls its workspace until `logbook dlq replay` applies it.
func (p *Projector) isolate(ctx context.Context, part int32, recs []*kgo.Record) (int, error) {
	total := 0
	for _, r := range recs {
		n, err := p.apply(ctx, part, []*kgo.Record{r}, nil)
		if err != nil && permanent(err) {
			drop := notAFact(err)
			p.cfg.Logger.Error("projector: record cannot be applied", "projection", p.cfg.Name,
				"partition", part, "offset", r.Offset, "quarantined", !drop, "err", err)
			if !p.cfg.Standalone {
				if derr := p.deadLetter(ctx, r, err); derr != nil {
					return total, derr
				}
			}
			p.mu.Lock()
			p.setAside++
			p.mu.Unlock()
			n, err = p.apply(ctx, part, []*kgo.Record{r}, &setAside{cause: err, drop: drop})
		}
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// setAside tells apply to move the checkpoint past a record instead of
// applying it, quarantining it unless it is dropped.
type setAside struct {
	cause error
	drop  bool
}

// notAFact reports records that are not facts of this log: they are
// dropped, not quarantined.
func notAFact(err error) bool {
	var de *decodeError
	var fe *forgedError
	return errors.As(err, &de) || errors.As(err, &fe)
}

// permanent reports errors that retrying the same records cannot fix.
func permanent(err error) bool {
	var pe *payloadError
	var ge *gapError
	if notAFact(err) || errors.As(err, &pe) || errors.As(err, &ge) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		c := pgErr.Code[:2]
		return c == "22" || c == "23" // data exception, integrity constraint
	}
	return false
}

// decodeError wraps a record that is not a valid envelope.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }

func (p *Projector) deadLetter(ctx context.Context, r *kgo.Record, cause error) error {
	if p.dlq == nil {
		return fmt.Errorf("projections: no dead-letter topic for a poisoned record: %w", cause)
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	headers := append([]kgo.RecordHeader{}, r.Headers...)
	headers = append(headers,
		kgo.RecordHeader{Key: "logbook_projection", Value: []byte(p.cfg.Name)},
		kgo.RecordHeader{Key: "logbook_source", Value: []byte(fmt.Sprintf("%s/%d@%d", r.Topic, r.Partition, r.Offset))},
		kgo.RecordHeader{Key: "logbook_error", Value: []byte(cause.Error())},
	)
	return p.dlq.ProduceSync(ctx, &kgo.Record{Topic: p.cfg.Kafka.Topics().DLQ, Key: r.Key, Value: r.Value, Headers: headers}).FirstErr()
}

// apply writes one batch and its checkpoint in one transaction. The
// checkpoint row is locked first; records below it were applied by another
// member (a rebalance in flight) and are skipped.
func (p *Projector) apply(ctx context.Context, part int32, recs []*kgo.Record, aside *setAside) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	tx, err := p.cfg.Pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // no-op after commit
	if _, err := tx.Exec(ctx, `INSERT INTO projection_checkpoints (projection, partition, next_offset)
		VALUES ($1, $2, 0) ON CONFLICT DO NOTHING`, p.cfg.Name, part); err != nil {
		return 0, err
	}
	var next int64
	if err := tx.QueryRow(ctx, `SELECT next_offset FROM projection_checkpoints
		WHERE projection = $1 AND partition = $2 FOR UPDATE`, p.cfg.Name, part).Scan(&next); err != nil {
		return 0, err
	}
	i := 0
	for i < len(recs) && recs[i].Offset < next {
		i++
	}
	fresh := recs[i:]
	if len(fresh) == 0 {
		return 0, nil
	}
	switch {
	case aside == nil:
		if err := p.cfg.Apply.Apply(ctx, tx, part, fresh); err != nil {
			return 0, err
		}
	case !aside.drop:
		for _, r := range fresh {
			if err := quarantine(ctx, tx, p.cfg.Name, r, false, aside.cause.Error()); err != nil {
				return 0, err
			}
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET next_offset = $3, updated_at = now()
		WHERE projection = $1 AND partition = $2`, p.cfg.Name, part, fresh[len(fresh)-1].Offset+1); err != nil {
		return 0, err
	}
	return len(fresh), tx.Commit(ctx)
}
