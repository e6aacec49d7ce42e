package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/signing"
	"github.com/logbook-dev/logbook/internal/watermillkafka"
	"github.com/logbook-dev/logbook/schemas"
)

// keyMetadata is the metadata the publisher keys records by.
const keyMetadata = watermillkafka.PartitionKeyMetadata

// Deps are the worker's collaborators.
type Deps struct {
	Kafka kafka.Config
	Store Store
	// Primary answers tasks; nil runs every workspace on Local.
	Primary Provider
	// Local is the built-in responder: the fallback where a workspace's
	// policy allows it.
	Local    Provider
	Logger   *slog.Logger
	Instance string // names this process in reports, default the host name
	// Fields opens the sensitive fields the worker reads (task input,
	// agent instructions) and seals those it writes (output, failure
	// reasons); nil leaves them as they are (tests of other concerns only).
	Fields Fields
	// Signer signs every command the worker sends; nil sends them unsigned
	// (tests of other concerns only: logbook always signs).
	Signer *signing.Signer
}

// Fields seals and opens sensitive fields under their workspace's data
// key; *keyring.Ring satisfies it.
type Fields interface {
	Seal(ctx context.Context, cmd domain.Command) (domain.Command, error)
	Open(ctx context.Context, workspace, slot, v string) (string, error)
}

// Worker is the AI agent worker.
type Worker struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	store   Store
	primary Provider
	local   Provider
	gate    *gate // nil when the primary is the local responder
	limiter *limiter

	sub    *watermillkafka.Subscriber
	pub    *watermillkafka.Publisher
	router *message.Router

	started    time.Time
	calls      atomic.Int64
	overBudget atomic.Int64
	overRate   atomic.Int64
	rates      *rates

	turns       *turns
	leftForTurn atomic.Int64
}

// New builds a worker; Run starts it.
func New(cfg Config, d Deps) (*Worker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Store == nil || d.Local == nil || d.Logger == nil {
		return nil, errors.New("agent: a store, the local responder and a logger are required")
	}
	w := &Worker{cfg: cfg, deps: d, log: d.Logger, store: d.Store, primary: d.Primary, local: d.Local,
		limiter: newLimiter(cfg.Concurrency, cfg.PerWorkspace, cfg.Ramp), rates: newRates(), turns: newTurns(cfg.HandlerTimeout + cfg.SweepEvery + time.Minute), started: time.Now().UTC()}
	if w.primary == nil {
		w.primary = d.Local
	} else {
		w.gate = newGate(w.primary.Name(), cfg, d.Logger, w.limiter.startRamp)
	}
	var err error
	w.sub, err = watermillkafka.NewSubscriber(watermillkafka.SubscriberConfig{
		Kafka: d.Kafka, ConsumerGroup: cfg.Group, ReadCommitted: true,
		MaxInFlightPerPartition: cfg.Window,
		// One task's events in order; tasks side by side.
		OrderingKey: func(r *kgo.Record) string { return schemas.Header(r, schemas.HeaderSubject) },
	}, d.Logger)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if w.pub, err = watermillkafka.NewPublisher(watermillkafka.PublisherConfig{Kafka: d.Kafka}); err != nil {
		w.sub.Close()
		return nil, fmt.Errorf("agent: %w", err)
	}
	if w.router, err = w.newRouter(); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// newRouter assembles the handler and its middleware, outermost first:
// correlation id, dead-lettering of what can never succeed (tagged with
// where it came from), the event's
// time bound, shelving past a workspace's share, bounded retries, the fair
// call limiter, panic recovery.
func (w *Worker) newRouter() (*message.Router, error) {
	topics := w.deps.Kafka.Topics()
	r, err := message.NewRouter(message.RouterConfig{CloseTimeout: 15 * time.Second}, watermill.NewSlogLogger(w.log))
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	poison, err := middleware.PoisonQueueWithFilter(w.pub, topics.DLQ, poisonous)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	r.AddMiddleware(
		middleware.CorrelationID,
		poison,
		deadLetterTags,
		middleware.Timeout(w.cfg.HandlerTimeout),
		shelving(w.shelveIfBehind),
		retry(w.cfg.Retries, w.cfg.RetryBackoff, w.cfg.MaxBackoff, w.log),
		fair(w.limiter),
		middleware.Recoverer,
	)
	r.AddHandler("agent", topics.Events, w.sub, topics.Commands, w.pub, w.handle)
	return r, nil
}

// deadLetterTags keys a dead-lettered event by its workspace and says where
// it came from, as the projector's dead letters do.
func deadLetterTags(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		out, err := h(msg)
		if err != nil && poisonous(err) {
			msg.Metadata.Set(keyMetadata, workspaceOf(msg))
			msg.Metadata.Set("logbook_consumer", "agent")
			msg.Metadata.Set("logbook_error", err.Error())
		}
		return out, err
	}
}

// Run handles events until ctx ends.
func (w *Worker) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go w.tick(ctx)
	go w.report(ctx)
	go w.sweep(ctx)
	go w.drain(ctx)
	go w.takeTurns(ctx)
	return w.router.Run(ctx)
}

// tick lets the limiter admit what its ramp now allows.
func (w *Worker) tick(ctx context.Context) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.limiter.tick()
		}
	}
}

// report tells the store this instance's provider states, for the API
// tier's status, every StatusEvery.
func (w *Worker) report(ctx context.Context) {
	t := time.NewTicker(w.cfg.StatusEvery)
	defer t.Stop()
	for {
		if err := w.store.Report(ctx, w.instance(), w.Status().Providers); err != nil && ctx.Err() == nil {
			w.log.Debug("agent status report failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sweep works, every SweepEvery, the tasks left assigned while their
// workspace was over its daily token budget and that it can now pay for
// (a new day, a raised budget), and those its request rate or its turn
// left waiting when no drain knows of them (after a restart): as if their
// assignment were delivered again, through the same limiter, with the same
// command ids, so a task reached both ways runs once. Their workspaces then
// take turns (turns.go) for the rest of their waiting tasks.
func (w *Worker) sweep(ctx context.Context) {
	t := time.NewTicker(w.cfg.SweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.gate != nil && !w.gate.available() {
			continue
		}
		// A started attempt idle past the handler's bound has no handler
		// left working it: its event was acknowledged (a drain's task) or
		// its handler gave up.
		parked, err := w.store.Unparked(ctx, time.Now().UTC(), w.cfg.SweepEvery, w.cfg.HandlerTimeout, w.cfg.PerWorkspace, 100)
		if err != nil {
			w.log.Debug("agent sweep failed", "err", err)
			continue
		}
		// Only this process's workspaces: another instance's event path may
		// be working the rest, and the provider would be asked twice.
		mine := w.owner()
		parked = slices.DeleteFunc(parked, func(p Parked) bool { return !mine(p.WorkspaceID) })
		for _, p := range parked {
			w.turns.shelve(p.WorkspaceID)
		}
		w.unparkAll(ctx, parked)
		if len(parked) > 0 {
			w.log.Info("agent sweep worked tasks left waiting", "tasks", len(parked))
		}
	}
}

// drain works, every second, the oldest tasks left waiting by workspaces at
// their requests per minute, as many as each may now make. After a restart
// the sweep finds them first.
func (w *Worker) drain(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		w.rates.forget(now)
		if w.gate != nil && !w.gate.available() {
			continue
		}
		var waiting []Parked
		for ws, n := range w.rates.due(now) {
			// Younger tasks may be the event path's still.
			tasks, err := w.store.Waiting(ctx, ws, time.Second, n)
			if err != nil {
				w.log.Debug("agent drain failed", "workspace", ws, "err", err)
				continue
			}
			if len(tasks) == 0 {
				w.rates.drained(ws)
			}
			waiting = append(waiting, tasks...)
		}
		w.unparkAll(ctx, waiting)
	}
}

// unparkAll works tasks left waiting, at once, and returns when all are done.
func (w *Worker) unparkAll(ctx context.Context, tasks []Parked) {
	var wg sync.WaitGroup
	for _, p := range tasks {
		wg.Go(func() { _, _ = w.unpark(ctx, p) })
	}
	wg.Wait()
}

// unpark works one waiting task: worked when it got an outcome,
// errLeftWaiting when it was left waiting again, neither when it had moved
// on or is worked another way.
// A transient provider error is retried as on the event path (a started
// attempt left failed would wait for the sweep), the call slot given back
// while it waits.
func (w *Worker) unpark(ctx context.Context, p Parked) (worked bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.HandlerTimeout)
	defer cancel()
	env := schemas.EventEnvelope{WorkspaceID: p.WorkspaceID,
		Aggregate: domain.AggregateRef{Type: domain.AggregateTask, ID: p.TaskID, Version: p.Version}}
	out, err := retrying(ctx, w.cfg.Retries, w.cfg.RetryBackoff, w.cfg.MaxBackoff, w.log.With("task", p.TaskID),
		func() ([]*message.Message, error) {
			release, err := w.limiter.acquire(ctx, p.WorkspaceID)
			if err != nil {
				return nil, &waitError{reason: "no call slot free", err: err}
			}
			defer release()
			return w.work(ctx, env, p.TaskID, p.Assignee)
		})
	if errors.Is(err, errLeftWaiting) {
		return false, err
	}
	if err == nil && len(out) > 0 {
		err = w.pub.Publish(w.deps.Kafka.Topics().Commands, out...)
	}
	if err != nil {
		w.log.Debug("agent: waiting task not finished, the next sweep or drain tries again", "workspace", p.WorkspaceID, "task", p.TaskID, "err", err)
	}
	return err == nil && len(out) > 0, err
}

func (w *Worker) instance() string { return w.deps.Instance }

// owner reports, for the events partitions this process holds now, whether
// a workspace is one of its: the drains and the sweep work no other.
func (w *Worker) owner() func(ws string) bool {
	owned := map[int32]bool{}
	for _, p := range w.sub.Stats().Partitions {
		owned[p] = true
	}
	n := w.deps.Kafka.Partitions
	return func(ws string) bool { return n <= 0 || owned[kafka.PartitionOf(ws, n)] }
}

// Status is what the worker shows of itself.
type Status struct {
	Providers []ProviderStatus `json:"providers"`
	Calls     LimiterStatus    `json:"calls"`
	// CallsMade counts provider calls since start, local ones included.
	CallsMade int64 `json:"calls_made"`
	// LeftOverRate counts assignments left waiting because the workspace
	// had made the requests per minute its AI policy allows.
	LeftOverRate int64 `json:"left_over_rate"`
	// LeftOverBudget counts assignments left waiting because the workspace
	// had spent its daily token budget.
	LeftOverBudget int64 `json:"left_over_budget"`
	// LeftForTurn counts assignments left waiting because their workspace
	// had a full share of calls waiting already; WaitingTurn is how many
	// workspaces have such tasks now.
	LeftForTurn int64       `json:"left_for_turn"`
	WaitingTurn int         `json:"workspaces_waiting_turn"`
	Fetch       FetchStatus `json:"fetch"`
}

// FetchStatus is what the worker holds of the events topic: its windows
// bound the events held (memory stays flat in an outage), and a partition
// whose window is full is not fetched, its backlog left in Kafka.
type FetchStatus struct {
	Partitions       int `json:"partitions"`
	PausedPartitions int `json:"paused_partitions"`
	HeldEvents       int `json:"held_events"`
}

// Status returns the worker's current state.
func (w *Worker) Status() Status {
	s := Status{Calls: w.limiter.snapshot(), CallsMade: w.calls.Load(), LeftOverBudget: w.overBudget.Load(),
		LeftOverRate: w.overRate.Load(), LeftForTurn: w.leftForTurn.Load(), WaitingTurn: w.turns.count()}
	if w.sub != nil {
		st := w.sub.Stats()
		s.Fetch = FetchStatus{Partitions: st.AssignedPartitions, PausedPartitions: st.PausedPartitions,
			HeldEvents: st.InFlight + st.Buffered}
	}
	if w.gate != nil {
		s.Providers = append(s.Providers, w.gate.snapshot())
	} else {
		s.Providers = append(s.Providers, ProviderStatus{Provider: w.local.Name(), State: StateClosed, Since: w.started})
	}
	return s
}

// Close stops the router and closes the clients.
func (w *Worker) Close() {
	if w.router != nil {
		_ = w.router.Close()
	}
	if w.sub != nil {
		_ = w.sub.Close()
	}
	if w.pub != nil {
		_ = w.pub.Close()
	}
}
