// Package decider is the single writer of the events topic: per partition it
// judges commands against the state of their workspace and, in one Kafka
// transaction per poll batch, writes the events, the results, the changed
// state records and the consumed offsets.
package decider

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/signing"
	"github.com/logbook-dev/logbook/schemas"
)

// DefaultGroup is the decider's consumer group; admission control watches
// its lag.
const DefaultGroup = "logbook-decider"

// Config configures a decider.
type Config struct {
	Kafka kafka.Config
	// Group is the consumer group of the commands topic, default DefaultGroup.
	Group string
	// MaxPollRecords bounds one transaction, default 2000.
	MaxPollRecords int
	// DedupWindow is how many recent command outcomes each workspace keeps
	// for idempotency, default 256.
	DedupWindow int
	// SessionTimeout of the group member, default 10s: a paused decider is
	// fenced once it passes.
	SessionTimeout time.Duration
	Logger         *slog.Logger
	// Now is the clock, default time.Now.
	Now func() time.Time
	// Verifier checks every command's signature against the writers'
	// public keys: a command that does not verify is rejected, never an
	// event, so write access to the broker is not enough to act as
	// someone. nil accepts unsigned commands (tests of other concerns
	// only: logbook always verifies).
	Verifier *signing.Verifier
	// Observe, when set, is told what each committed transaction did
	// (metrics). It runs on the decider's loop: it must be quick.
	Observe func(Transaction)
	// Trace, when set, starts the span of deciding one command record and
	// returns its context, which the events and result continue, and the
	// func that ends it (tracing).
	Trace func(*kgo.Record) (context.Context, func())
}

// Transaction is what one committed transaction did.
type Transaction struct {
	Duration time.Duration // from Begin to the commit's answer
	Commands int
	Outcomes map[Outcome]int // commands answered from the window count too
}

// Outcome classes a decided command. Type is "other" for a type the
// decider does not know, so a hostile writer cannot grow a metric's labels.
type Outcome struct {
	Type   string
	Status string
	Code   domain.Code
}

func (c *Config) validate() error {
	c.Kafka = c.Kafka.WithDefaults()
	if err := c.Kafka.Validate(); err != nil {
		return err
	}
	if c.Group == "" {
		c.Group = DefaultGroup
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 2000
	}
	if c.DedupWindow <= 0 {
		c.DedupWindow = 256
	}
	if c.SessionTimeout <= 0 {
		c.SessionTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Decider consumes commands and writes events transactionally.
type Decider struct {
	cfg    Config
	topics kafka.Topics
	sess   *kgo.GroupTransactSession

	mu    sync.Mutex // guards parts against the rebalance callbacks
	parts map[int32]*partitionState

	restoreMu sync.Mutex
	restores  map[int32]RestoreStatus // by partition, see Restores

	stats counters
}

// Stats are the decider's counters, for metrics and tests. Only work of
// committed transactions counts, except Aborts.
type Stats struct {
	Commands, Accepted, Rejected     int64
	Duplicates, Events, Transactions int64
	Aborts                           int64
}

// counters are the running Stats.
type counters struct {
	commands, accepted, rejected     atomic.Int64
	duplicates, events, transactions atomic.Int64
	aborts                           atomic.Int64
}

// add counts the work of one committed transaction.
func (c *counters) add(st Stats) {
	c.commands.Add(st.Commands)
	c.accepted.Add(st.Accepted)
	c.rejected.Add(st.Rejected)
	c.duplicates.Add(st.Duplicates)
	c.events.Add(st.Events)
	c.transactions.Add(1)
}

// New builds a decider; Run starts it.
func New(cfg Config) (*Decider, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d := &Decider{cfg: cfg, topics: cfg.Kafka.Topics(), parts: map[int32]*partitionState{}}
	drop := func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, p := range m[d.topics.Commands] {
			delete(d.parts, p)
		}
		d.forgetRestores(m[d.topics.Commands])
	}
	opts := append(cfg.Kafka.Opts(),
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(d.topics.Commands),
		kgo.TransactionalID("logbook-decider-"+uuid.NewString()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.TransactionTimeout(cfg.SessionTimeout),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.OnPartitionsRevoked(drop),
		kgo.OnPartitionsLost(drop),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, fmt.Errorf("decider: %w", err)
	}
	d.sess = sess
	return d, nil
}

// Close leaves the group; in-flight work is aborted and redone elsewhere.
func (d *Decider) Close() { d.sess.Close() }

// Snapshot returns a copy of the counters.
func (d *Decider) Snapshot() Stats {
	c := &d.stats
	return Stats{Commands: c.commands.Load(), Accepted: c.accepted.Load(), Rejected: c.rejected.Load(),
		Duplicates: c.duplicates.Load(), Events: c.events.Load(), Transactions: c.transactions.Load(), Aborts: c.aborts.Load()}
}

// Run processes commands until ctx ends.
func (d *Decider) Run(ctx context.Context) error {
	log := d.cfg.Logger.With("component", "decider")
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		fetches := d.sess.PollRecords(ctx, d.cfg.MaxPollRecords)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			log.Warn("fetch error", "topic", t, "partition", p, "err", err)
		})
		if fetches.NumRecords() == 0 {
			continue
		}
		// A polled batch is finished even when shutdown begins: an
		// abandoned transaction would hold back read_committed readers
		// until it times out.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		committed, err := d.process(wctx, fetches)
		cancel()
		if err != nil {
			log.Warn("transaction failed; retrying from the last committed offsets", "err", err)
			d.resetState()
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if !committed {
			// A rebalance aborted the transaction: the session rewound to
			// the committed offsets, so state built since then is void.
			log.Warn("transaction aborted by a rebalance or fencing; state reset")
			d.resetState()
		}
	}
	return nil
}

func (d *Decider) resetState() {
	d.mu.Lock()
	d.parts = map[int32]*partitionState{}
	d.mu.Unlock()
	d.stats.aborts.Add(1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// process runs one transaction over one poll batch: it loads the state of
// the batch's partitions, decides every command, writes the events, results
// and changed state records, and commits them with the consumed offsets.
// Only then does the decided state become the partitions' state.
func (d *Decider) process(ctx context.Context, fetches kgo.Fetches) (bool, error) {
	// Begin first: any failure before End must end in TryAbort, the only
	// call that rewinds the session to the committed offsets. Returning
	// without it would let the next poll skip these records.
	began := time.Now()
	if err := d.sess.Begin(); err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	parts, err := d.load(ctx, fetches)
	if err != nil {
		return d.abort(ctx, err)
	}
	b := newBatch()
	records, st, err := d.decideAll(fetches, parts, b)
	if err == nil {
		var state []*kgo.Record
		state, err = d.stateRecords(fetches, parts, b)
		records = append(records, state...)
	}
	if err != nil {
		return d.abort(ctx, err)
	}
	committed, err := d.write(ctx, records)
	if err != nil || !committed {
		return false, err
	}
	d.adopt(fetches, parts, b)
	d.stats.add(st)
	if d.cfg.Observe != nil {
		d.cfg.Observe(Transaction{Duration: time.Since(began), Commands: int(st.Commands), Outcomes: b.outcomes})
	}
	return true, nil
}

// abort ends the transaction without committing and returns cause. It has
// a context of its own: the cause may be that ctx ran out (a slow restore),
// and an abort that cannot run leaves the session inside the transaction,
// so every later Begin fails.
func (d *Decider) abort(ctx context.Context, cause error) (bool, error) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := d.sess.End(actx, kgo.TryAbort); err != nil {
		return false, errors.Join(cause, fmt.Errorf("abort: %w", err))
	}
	return false, cause
}

// load returns the state of every partition in the batch, restoring those
// seen for the first time since their assignment.
func (d *Decider) load(ctx context.Context, fetches kgo.Fetches) (map[int32]*partitionState, error) {
	parts := map[int32]*partitionState{}
	var err error
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if err != nil || len(fp.Records) == 0 {
			return
		}
		var p *partitionState
		if p, err = d.partition(ctx, fp.Partition, fp.Records[0].Offset); err == nil {
			parts[fp.Partition] = p
		}
	})
	return parts, err
}

// decideAll decides every command of the batch in log order, the changes
// going to b, and returns the event and result records to write and what
// the transaction counts.
func (d *Decider) decideAll(fetches kgo.Fetches, parts map[int32]*partitionState, b *batch) ([]*kgo.Record, Stats, error) {
	var (
		out []*kgo.Record
		st  Stats
		err error
	)
	now := d.cfg.Now
	fetches.EachRecord(func(r *kgo.Record) {
		if err != nil {
			return
		}
		st.Commands++
		var rctx context.Context // nil: the producer's own
		if d.cfg.Trace != nil {
			var end func()
			rctx, end = d.cfg.Trace(r)
			defer end()
		}
		// At the events' precision: the state then holds what the events
		// say, and a state rebuilt from them is the same (RebuildState).
		res, events := d.decide(parts[r.Partition], b, r, schemas.Timestamp(now()), &st)
		for _, e := range events {
			val, merr := json.Marshal(e)
			if merr != nil {
				err = fmt.Errorf("event %s: %w", e.ID, merr)
				return
			}
			out = append(out, &kgo.Record{Topic: d.topics.Events, Partition: r.Partition, Key: []byte(e.WorkspaceID),
				Value: val, Headers: schemas.EventHeaders(e), Timestamp: e.OccurredAt, Context: rctx})
		}
		st.Events += int64(len(events))
		if res == nil {
			return
		}
		if res.Status == schemas.ResultAccepted {
			st.Accepted++
		} else {
			st.Rejected++
		}
		if d.cfg.Observe != nil {
			b.count(res)
		}
		val, merr := json.Marshal(res)
		if merr != nil {
			err = fmt.Errorf("result of %s: %w", res.CommandID, merr)
			return
		}
		out = append(out, &kgo.Record{Topic: d.topics.Results, Partition: r.Partition, Key: []byte(res.WorkspaceID), Value: val,
			Headers: []kgo.RecordHeader{{Key: schemas.HeaderCommandID, Value: []byte(res.CommandID)}}, Context: rctx})
	})
	return out, st, err
}

// stateRecords are the decider-state records of the transaction: each
// partition's next command offset, every changed aggregate, and the
// outcomes each workspace's window took in (a record each) and let go (a
// tombstone each).
func (d *Decider) stateRecords(fetches kgo.Fetches, parts map[int32]*partitionState, b *batch) ([]*kgo.Record, error) {
	var out []*kgo.Record
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if len(fp.Records) > 0 {
			next := encodeOffset(fp.Records[len(fp.Records)-1].Offset + 1)
			out = append(out, &kgo.Record{Topic: d.topics.DeciderState, Partition: fp.Partition, Key: []byte(keyOffset), Value: next})
		}
	})
	var errs []error
	state := func(key string, val []byte, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("state record %q: %w", key, err))
			return
		}
		out = append(out, &kgo.Record{Topic: d.topics.DeciderState, Partition: b.partOf[key], Key: []byte(key), Value: val})
	}
	for id, w := range b.workspaces {
		val, err := encodeWorkspace(*w)
		state(keyWorkspace+id, val, err)
		p := b.partOf[keyWorkspace+id]
		added := w.Recent.added()
		if w.legacy {
			added = w.Recent.all() // the whole window, out of the record that held it
		}
		// Tombstones first: a command let go and decided again in this
		// batch keeps the record written after its tombstone.
		for _, c := range b.evicted[id] {
			out = append(out, &kgo.Record{Topic: d.topics.DeciderState, Partition: p, Key: []byte(commandKey(id, c))})
		}
		for _, o := range added {
			val, err := encodeCommand(o)
			if err != nil {
				errs = append(errs, fmt.Errorf("command record %s: %w", o.CommandID, err))
				continue
			}
			out = append(out, &kgo.Record{Topic: d.topics.DeciderState, Partition: p, Key: []byte(commandKey(id, o.CommandID)), Value: val})
		}
	}
	for ref, t := range b.tasks {
		val, err := encodeTask(t)
		state(keyTask+taskKey(ref.ws, ref.id), val, err)
	}
	for id, k := range b.keys {
		val, err := encodeKey(k)
		state(keyKey+id, val, err)
	}
	return out, errors.Join(errs...)
}

// write produces the transaction's records and commits it; the first
// failed record aborts the rest and the transaction.
func (d *Decider) write(ctx context.Context, records []*kgo.Record) (bool, error) {
	cl := d.sess.Client()
	written := kgo.AbortingFirstErrPromise(cl)
	for _, r := range records {
		d.sess.Produce(ctx, r, written.Promise())
	}
	if err := cl.Flush(ctx); err != nil {
		return d.abort(ctx, err)
	}
	if err := written.Err(); err != nil {
		return d.abort(ctx, fmt.Errorf("produce: %w", err))
	}
	return d.sess.End(ctx, kgo.TryCommit)
}

// adopt makes a committed batch's changes the state of the partitions it
// touched. Partitions revoked meanwhile are absent from d.parts: their
// state is reloaded by whoever owns them next.
func (d *Decider) adopt(fetches kgo.Fetches, parts map[int32]*partitionState, b *batch) {
	d.mu.Lock()
	defer d.mu.Unlock()
	live := map[int32]*partitionState{}
	for p, ps := range parts {
		if d.parts[p] == ps {
			live[p] = ps
		}
	}
	b.commit(live)
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if ps := live[fp.Partition]; ps != nil && len(fp.Records) > 0 {
			ps.next = fp.Records[len(fp.Records)-1].Offset + 1
		}
	})
}

// decide judges one command record. It returns the result to publish (nil
// when the record cannot be answered at all) and the sealed events.
func (d *Decider) decide(p *partitionState, b *batch, r *kgo.Record, now time.Time, st *Stats) (*schemas.Result, []schemas.EventEnvelope) {
	log := d.cfg.Logger
	var env schemas.CommandEnvelope
	if err := json.Unmarshal(r.Value, &env); err != nil || env.ID == "" || env.WorkspaceID == "" {
		// Not ours to answer: no id to answer to. Logged without the value.
		log.Error("decider: undecodable command record skipped", "partition", r.Partition, "offset", r.Offset, "err", err)
		return nil, nil
	}
	res := &schemas.Result{CommandID: env.ID, CommandType: env.Type, WorkspaceID: env.WorkspaceID, DecidedAt: schemas.Timestamp(now),
		RequestDigest: env.RequestDigest, ActorID: env.Actor.ID}
	reject := func(err error) *schemas.Result {
		res.Status = schemas.ResultRejected
		var de *domain.Error
		if errors.As(err, &de) {
			res.Code, res.Reason, res.Field = de.Code, de.Message, de.Field
		} else {
			res.Code, res.Reason = domain.CodeInvalid, err.Error()
		}
		return res
	}

	if d.cfg.Verifier != nil {
		if err := d.cfg.Verifier.VerifyCommand(env); err != nil {
			// Not remembered: a forgery must not take the place of the
			// command whose id it names.
			log.Warn("decider: command refused: its signature does not verify", "partition", r.Partition,
				"offset", r.Offset, "command_type", env.Type, "err", err)
			return reject(domain.ForbiddenField("signature", "the command's signature does not verify: %v", err)), nil
		}
	}
	ws := b.workspace(p, env.WorkspaceID)
	if ws != nil {
		if prev, ok := ws.recent(env.ID); ok {
			// The first outcome again, or the refusal of a key reused for
			// another request: no events, and the window keeps the first.
			st.Duplicates++
			dup := prev.answer(env, res.DecidedAt)
			dup.ActorID = env.Actor.ID
			return &dup, nil
		}
	}
	cmd, err := env.Command()
	if err != nil {
		return d.rememberOutcome(p, b, ws, reject(err), r.Partition), nil
	}
	var state domain.State
	if ws != nil {
		state.Workspace = ws.Workspace
	}
	taskID, keyID := "", ""
	if tt, ok := cmd.Payload.(domain.TaskTarget); ok {
		taskID = tt.TargetTask()
		if taskID != "" {
			state.Task = b.task(p, env.WorkspaceID, taskID)
		}
	}
	if kt, ok := cmd.Payload.(domain.KeyTarget); ok && env.WorkspaceID == domain.KeyRegistry {
		keyID = kt.TargetKey()
		if keyID != "" {
			state.Key = b.key(p, keyID)
		}
	}
	events, err := domain.Decide(state, cmd, now)
	if err != nil {
		return d.rememberOutcome(p, b, ws, reject(err), r.Partition), nil
	}
	var next workspaceState
	if ws != nil {
		next = *ws
	}
	sealed, chain, err := schemas.Seal(next.Chain, schemas.EventMeta{
		WorkspaceID: env.WorkspaceID, CommandID: env.ID, CorrelationID: env.CorrelationID, Actor: env.Actor,
		Signed: env.Signed(),
	}, events)
	if err != nil {
		return d.rememberOutcome(p, b, ws, reject(err), r.Partition), nil
	}
	for _, e := range events {
		state = domain.Evolve(state, e)
	}
	next.Workspace, next.Chain = state.Workspace, chain
	if grows(cmd.Type) {
		// A state record must fit in one Kafka record; refuse the command
		// that would outgrow it rather than wedge every transaction.
		if val, err := encodeWorkspace(next); err != nil || len(val) > maxStateRecord {
			return d.rememberOutcome(p, b, ws, reject(domain.Invalid("payload",
				"the workspace has reached its size limit (%d bytes of agents and members)", maxStateRecord)), r.Partition), nil
		}
	}
	if taskID != "" && state.Task != nil {
		b.tasks[taskRef{ws: env.WorkspaceID, id: taskID}] = state.Task
		b.partOf[keyTask+taskKey(env.WorkspaceID, taskID)] = r.Partition
	}
	if keyID != "" && state.Key != nil {
		b.keys[keyID] = state.Key
		b.partOf[keyKey+keyID] = r.Partition
	}
	res.Status = schemas.ResultAccepted
	if len(events) > 0 {
		res.AggregateID = events[0].Aggregate.ID
	}
	for _, e := range sealed {
		res.Events = append(res.Events, schemas.EventRef{ID: e.ID, Seq: e.Seq, Type: e.Type})
	}
	b.remember(next, *res, d.cfg.DedupWindow, r.Partition)
	return res, sealed
}

// maxStateRecord bounds a workspace's decider-state record, well under
// Kafka's default 1 MiB record limit.
const maxStateRecord = 768 << 10

// grows reports whether a command type can enlarge the workspace aggregate.
func grows(typ string) bool {
	return typ == domain.CmdWorkspaceRegisterAgent || typ == domain.CmdWorkspaceAddMember
}

// rememberOutcome records a rejection in the workspace's window, when the
// workspace exists, so a retry gets the same answer.
func (d *Decider) rememberOutcome(_ *partitionState, b *batch, ws *workspaceState, res *schemas.Result, partition int32) *schemas.Result {
	if ws == nil {
		return res
	}
	b.remember(*ws, *res, d.cfg.DedupWindow, partition)
	return res
}

// partition returns the state of a partition, restoring it from the
// decider-state topic on first use after assignment. first is the offset of
// the first command about to be decided: the restored state must have been
// written by the transaction that committed up to it. The commit markers of
// the state partition and of the group offsets are written separately, so a
// new owner can see the offsets before the state; it then reads again.
func (d *Decider) partition(ctx context.Context, p int32, first int64) (*partitionState, error) {
	d.mu.Lock()
	ps := d.parts[p]
	d.mu.Unlock()
	if ps != nil {
		return ps, nil
	}
	for attempt := 0; ; attempt++ {
		var err error
		if ps, err = d.restore(ctx, p); err != nil {
			return nil, err
		}
		fresh, err := d.caughtUp(ctx, ps, p, first)
		if err != nil {
			return nil, err
		}
		if fresh {
			break
		}
		if attempt == 20 {
			return nil, fmt.Errorf("decider: state of partition %d ends at command offset %d, commands resume at %d", p, ps.next, first)
		}
		if !sleep(ctx, 250*time.Millisecond) {
			return nil, ctx.Err()
		}
	}
	d.mu.Lock()
	d.parts[p] = ps
	d.mu.Unlock()
	return ps, nil
}

// caughtUp reports whether restored state matches the command offset the
// group resumes from.
func (d *Decider) caughtUp(ctx context.Context, ps *partitionState, p int32, first int64) (bool, error) {
	if ps.next == first {
		return true, nil
	}
	if ps.next > first {
		// Offsets behind the state: commands decided again are answered
		// from the idempotency window, never decided twice.
		d.cfg.Logger.Warn("decider: committed offsets behind the restored state", "partition", p, "state_next", ps.next, "first", first)
		return true, nil
	}
	if ps.next > 0 {
		return false, nil
	}
	// No transaction recorded yet: fine only if nothing before first was
	// ever decided, i.e. first is the log start.
	cl := d.sess.Client()
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, d.topics.Commands)
	if err != nil {
		return false, fmt.Errorf("decider: start offsets: %w", err)
	}
	o, ok := starts.Lookup(d.topics.Commands, p)
	return ok && o.Err == nil && first <= o.Offset, nil
}

// restore reads the compacted decider-state partition up to the last stable
// offset it has when the read begins. Its progress is kept for Restores.
func (d *Decider) restore(ctx context.Context, p int32) (*partitionState, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	topic := d.topics.DeciderState
	start := time.Now()
	d.setRestore(RestoreStatus{Partition: p, State: RestoreRunning, Since: start, Offset: -1, End: -1})
	ps, n, err := d.readState(ctx, topic, p)
	if err != nil {
		failed := RestoreStatus{Partition: p, State: RestoreFailed, Since: time.Now(), Offset: -1, End: -1, Error: err.Error()}
		var re *kafka.ReadError
		if errors.As(err, &re) {
			failed.Offset, failed.End = re.Position, re.End
		}
		d.setRestore(failed)
		return nil, err
	}
	d.setRestore(RestoreStatus{Partition: p, State: RestoreDone, Since: time.Now(), Offset: -1, End: -1})
	d.cfg.Logger.Info("decider state restored", "partition", p, "records", n,
		"workspaces", len(ps.workspaces), "tasks", len(ps.tasks), "took", time.Since(start).Round(time.Millisecond))
	return ps, nil
}

// readState applies every committed record of one decider-state partition.
// A client of its own: the session's connections are busy long-polling.
func (d *Decider) readState(ctx context.Context, topic string, p int32) (*partitionState, int, error) {
	cl, err := kgo.NewClient(d.cfg.Kafka.Opts()...)
	if err != nil {
		return nil, 0, fmt.Errorf("decider: restore client: %w", err)
	}
	defer cl.Close()
	ps := newPartitionState()
	n := 0
	err = kafka.ReadToEnd(ctx, cl, topic, map[int32]int64{p: 0}, func(r *kgo.Record) error {
		if err := ps.apply(string(r.Key), r.Value); err != nil {
			return fmt.Errorf("undecodable state record: %w", err)
		}
		n++
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("decider: restore: %w", err)
	}
	return ps, n, nil
}

// RestoreState is where the restore of a partition's state stands.
type RestoreState string

const (
	RestoreRunning RestoreState = "restoring"
	RestoreFailed  RestoreState = "failed"
	RestoreDone    RestoreState = "restored"
)

// RestoreStatus is the last restore of one assigned partition's state, so a
// restore that hangs or fails is visible rather than silent.
type RestoreStatus struct {
	Partition int32        `json:"partition"`
	State     RestoreState `json:"state"`
	// Since is when the partition entered State.
	Since time.Time `json:"since"`
	// Offset and End say, for a failed restore, how far into the
	// decider-state partition it got and the end it was heading for; -1
	// when unknown or not failed.
	Offset int64 `json:"offset"`
	End    int64 `json:"end"`
	// Error is the failure, empty unless State is RestoreFailed.
	Error string `json:"error,omitempty"`
}

// Stuck reports a restore that failed, or has run for longer than limit:
// commands of that partition's workspaces wait undecided.
func (s RestoreStatus) Stuck(now time.Time, limit time.Duration) bool {
	return s.State == RestoreFailed || (s.State == RestoreRunning && now.Sub(s.Since) > limit)
}

// Restores returns the restore status of every partition restored, being
// restored or failing to restore since it was assigned, by partition.
func (d *Decider) Restores() []RestoreStatus {
	d.restoreMu.Lock()
	defer d.restoreMu.Unlock()
	out := make([]RestoreStatus, 0, len(d.restores))
	for _, s := range d.restores {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b RestoreStatus) int { return cmp.Compare(a.Partition, b.Partition) })
	return out
}

func (d *Decider) setRestore(s RestoreStatus) {
	d.restoreMu.Lock()
	defer d.restoreMu.Unlock()
	if d.restores == nil {
		d.restores = map[int32]RestoreStatus{}
	}
	d.restores[s.Partition] = s
}

// forgetRestores drops the status of partitions no longer assigned.
func (d *Decider) forgetRestores(ps []int32) {
	d.restoreMu.Lock()
	defer d.restoreMu.Unlock()
	for _, p := range ps {
		delete(d.restores, p)
	}
}
