package decider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/schemas"
)

// RebuiltPartition is what RebuildState wrote for one partition.
type RebuiltPartition struct {
	Partition  int32 `json:"partition"`
	Events     int   `json:"events"`
	Results    int   `json:"results"`
	Workspaces int   `json:"workspaces"`
	Tasks      int   `json:"tasks"`
	Keys       int   `json:"keys"`
	Remembered int   `json:"remembered"` // outcomes in the idempotency windows
	Next       int64 `json:"next"`       // the next command offset
	Records    int   `json:"records"`    // state records written
}

// RebuildState writes the decider-state topic again from the log, for when
// it is lost: per partition it folds the events into what the decider
// holds (workspaces, tasks, keys, each workspace's chain head), takes each
// workspace's last DedupWindow outcomes from the results, and the next
// command offset from the decider group's committed offsets. The decider
// must be stopped: RebuildState refuses while its group has members, and
// refuses a state partition that still holds records. Each partition's
// records are written in one transaction, the offset record last.
func RebuildState(ctx context.Context, cfg Config, progress func(RebuiltPartition)) ([]RebuiltPartition, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	topics := cfg.Kafka.Topics()
	cl, err := kgo.NewClient(append(cfg.Kafka.Opts(),
		kgo.TransactionalID(cfg.Group+"-rebuild-state"),
		kgo.TransactionTimeout(5*time.Minute),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))...)
	if err != nil {
		return nil, fmt.Errorf("decider: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	if err := noDeciders(ctx, adm, cfg.Group); err != nil {
		return nil, err
	}
	committed, err := adm.FetchOffsetsForTopics(ctx, cfg.Group, topics.Commands)
	if errors.Is(err, kerr.GroupIDNotFound) {
		committed, err = kadm.OffsetResponses{}, nil // nothing decided here yet: an imported log
	}
	if err != nil {
		return nil, fmt.Errorf("decider: committed offsets of group %s: %w", cfg.Group, err)
	}
	starts, err := adm.ListStartOffsets(ctx, topics.DeciderState)
	if err != nil {
		return nil, fmt.Errorf("decider: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics.DeciderState, topics.Commands)
	if err != nil {
		return nil, fmt.Errorf("decider: %w", err)
	}
	var parts []int32
	var problems []error
	ends.Each(func(o kadm.ListedOffset) {
		switch o.Topic {
		case topics.Commands:
			parts = append(parts, o.Partition)
		case topics.DeciderState:
			if s, ok := starts.Lookup(o.Topic, o.Partition); ok && o.Offset > s.Offset {
				problems = append(problems, fmt.Errorf("decider-state partition %d holds records (offsets %d to %d): "+
					"delete and recreate the topic before rebuilding it", o.Partition, s.Offset, o.Offset))
			}
		}
	})
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	slices.Sort(parts)
	var out []RebuiltPartition
	for _, p := range parts {
		next := int64(0)
		if o, ok := committed.Lookup(topics.Commands, p); ok && o.Err == nil && o.At >= 0 {
			next = o.At
		} else if e, _ := ends.Lookup(topics.Commands, p); e.Offset > 0 {
			return out, fmt.Errorf("decider: group %s has no committed offset for commands partition %d, which holds %d offsets: "+
				"which commands were decided cannot be told", cfg.Group, p, e.Offset)
		}
		rp, err := rebuildPartition(ctx, cl, cfg, p, next)
		if err != nil {
			return out, err
		}
		out = append(out, rp)
		if progress != nil {
			progress(rp)
		}
	}
	return out, nil
}

// noDeciders refuses while the decider group has members.
func noDeciders(ctx context.Context, adm *kadm.Client, group string) error {
	groups, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return fmt.Errorf("decider: describe group %s: %w", group, err)
	}
	if g, ok := groups[group]; ok && len(g.Members) > 0 {
		return fmt.Errorf("decider: group %s has %d members: stop every decider before rebuilding its state", group, len(g.Members))
	}
	return nil
}

// rebuildPartition folds one partition's events and results and writes its
// state in one transaction.
func rebuildPartition(ctx context.Context, cl *kgo.Client, cfg Config, p int32, next int64) (RebuiltPartition, error) {
	topics := cfg.Kafka.Topics()
	rp := RebuiltPartition{Partition: p, Next: next}
	ps := newPartitionState()
	// When each workspace came to be, in the results' order: the decider
	// remembers no outcome of a command decided before (rememberOutcome).
	created := map[string]string{}      // workspace → the command that created it
	createdAt := map[string]time.Time{} // and when
	err := kafka.ReadToEnd(ctx, cl, topics.Events, map[int32]int64{p: 0}, func(r *kgo.Record) error {
		var env schemas.EventEnvelope
		if err := json.Unmarshal(r.Value, &env); err != nil || env.WorkspaceID == "" {
			cfg.Logger.Warn("decider: rebuild: not an event; skipped", "partition", p, "offset", r.Offset)
			return nil
		}
		w := ps.workspaces[env.WorkspaceID]
		if w == nil {
			w = &workspaceState{Recent: &window{}}
		}
		// As the projector: a record that does not extend its chain (forged,
		// or a replay of an earlier one) is no fact of the log; a hole
		// before it is a log that lost events, and nothing is written.
		if env.Seq > w.Chain.Seq+1 {
			return fmt.Errorf("event %d/%d: workspace %s seq %d follows %d: the log lacks events", p, r.Offset,
				env.WorkspaceID, env.Seq, w.Chain.Seq)
		}
		chain, err := schemas.Verify(w.Chain, env)
		if err != nil {
			cfg.Logger.Warn("decider: rebuild: an event that does not extend its chain; skipped", "partition", p,
				"offset", r.Offset, "err", err)
			return nil
		}
		ev, err := env.Event()
		if err != nil {
			return fmt.Errorf("event %d/%d: %w", p, r.Offset, err)
		}
		rp.Events++
		if ps.workspaces[env.WorkspaceID] == nil {
			ps.workspaces[env.WorkspaceID] = w
			created[env.WorkspaceID], createdAt[env.WorkspaceID] = env.CommandID, env.OccurredAt
		}
		w.Chain = chain
		state := domain.State{Workspace: w.Workspace}
		ref := taskRef{ws: env.WorkspaceID, id: ev.Aggregate.ID}
		switch ev.Aggregate.Type {
		case domain.AggregateTask:
			if h, ok := ps.tasks[ref]; ok {
				state.Task = h.task(ref)
			}
		case domain.AggregateKey:
			state.Key = ps.keys[ev.Aggregate.ID]
		}
		state = domain.Evolve(state, ev)
		w.Workspace = state.Workspace
		switch {
		case ev.Aggregate.Type == domain.AggregateTask && state.Task != nil:
			ps.tasks[ref] = hold(state.Task) // what decisions read, as the decider holds it
		case ev.Aggregate.Type == domain.AggregateKey && state.Key != nil:
			ps.keys[ev.Aggregate.ID] = state.Key
		}
		return nil
	})
	if err != nil {
		return rp, fmt.Errorf("decider: rebuild partition %d: events: %w", p, err)
	}
	// The outcomes the decider remembered, as it remembered them: in log
	// order, each workspace's last DedupWindow, a command once, none from
	// before its workspace was. Refusals of forged commands were never
	// remembered. The results topic keeps a day (retention.ms): outcomes
	// older than that are not in it, and not in the rebuilt windows.
	exists := map[string]bool{}
	err = kafka.ReadToEnd(ctx, cl, topics.Results, map[int32]int64{p: 0}, func(r *kgo.Record) error {
		res, err := schemas.DecodeResult(r.Value)
		if err != nil {
			return fmt.Errorf("result %d/%d: %w", p, r.Offset, err)
		}
		if res.CommandID == "" {
			return nil
		}
		rp.Results++
		w := ps.workspaces[res.WorkspaceID]
		if w == nil {
			return nil
		}
		if !exists[res.WorkspaceID] {
			// Its creation, any accepted command or a decision after its
			// creation's time says the workspace was there when this was
			// decided (the creation's result may have expired).
			if res.CommandID != created[res.WorkspaceID] && res.Status != schemas.ResultAccepted &&
				!res.DecidedAt.After(createdAt[res.WorkspaceID]) {
				return nil
			}
			exists[res.WorkspaceID] = true
		}
		if res.Status == schemas.ResultRejected && res.Code == domain.CodeForbidden && res.Field == "signature" {
			return nil
		}
		if _, dup := w.recent(res.CommandID); dup {
			return nil
		}
		w.Recent.trim(cfg.DedupWindow-1, func(string) {})
		w.Recent.add(outcomeOf(res), false, cfg.DedupWindow)
		return nil
	})
	if err != nil {
		return rp, fmt.Errorf("decider: rebuild partition %d: results: %w", p, err)
	}

	var recs []*kgo.Record
	add := func(key string, val []byte) {
		recs = append(recs, &kgo.Record{Topic: topics.DeciderState, Partition: p, Key: []byte(key), Value: val})
	}
	for id, w := range ps.workspaces {
		val, err := encodeWorkspace(*w)
		if err != nil {
			return rp, fmt.Errorf("decider: workspace %s: %w", id, err)
		}
		add(keyWorkspace+id, val)
		for _, o := range w.Recent.all() {
			val, err := encodeCommand(o)
			if err != nil {
				return rp, fmt.Errorf("decider: command %s: %w", o.CommandID, err)
			}
			add(commandKey(id, o.CommandID), val)
			rp.Remembered++
		}
	}
	for ref, h := range ps.tasks {
		val, err := encodeTask(h.task(ref))
		if err != nil {
			return rp, fmt.Errorf("decider: task %s: %w", ref.id, err)
		}
		add(keyTask+taskKey(ref.ws, ref.id), val)
	}
	for id, k := range ps.keys {
		val, err := encodeKey(k)
		if err != nil {
			return rp, fmt.Errorf("decider: key %s: %w", id, err)
		}
		add(keyKey+id, val)
	}
	if next > 0 { // a partition nothing was decided on has no offset record
		add(keyOffset, encodeOffset(next))
	}
	rp.Workspaces, rp.Tasks, rp.Keys, rp.Records = len(ps.workspaces), len(ps.tasks), len(ps.keys), len(recs)

	// A decider started meanwhile would restore this partition half
	// written: check again, right before the state becomes visible.
	if err := noDeciders(ctx, kadm.NewClient(cl), cfg.Group); err != nil {
		return rp, err
	}
	if err := cl.BeginTransaction(); err != nil {
		return rp, fmt.Errorf("decider: %w", err)
	}
	written := kgo.AbortingFirstErrPromise(cl)
	for _, r := range recs {
		cl.Produce(ctx, r, written.Promise())
	}
	err = cl.Flush(ctx)
	if err == nil {
		err = written.Err()
	}
	commit := kgo.TryCommit
	if err != nil {
		commit = kgo.TryAbort
	}
	if eerr := cl.EndTransaction(ctx, commit); err == nil && eerr != nil {
		err = eerr
	}
	if err != nil {
		return rp, fmt.Errorf("decider: write the state of partition %d: %w", p, err)
	}
	cfg.Logger.Info("decider: state rebuilt", "partition", p, "events", rp.Events, "workspaces", rp.Workspaces,
		"tasks", rp.Tasks, "remembered", rp.Remembered, "next", next)
	return rp, nil
}
