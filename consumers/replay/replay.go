// Package replay reads the events topic from any point up to its current end:
// analytics replays and the auditors' hash-chain verification use it.
package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/schemas"
)

// Options choose what to read.
type Options struct {
	// Since starts at the first event at or after this time; zero means
	// from the beginning.
	Since time.Time
	// WorkspaceID limits the read to one workspace (and its partition).
	WorkspaceID string
	// Timeout bounds the whole read, default 10 minutes.
	Timeout time.Duration
}

// Read calls fn for every committed event in order per partition, from the
// chosen start up to the end offsets seen when it began, then returns.
func Read(ctx context.Context, cfg kafka.Config, opts Options, fn func(schemas.EventEnvelope) error) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	topic := cfg.Topics().Events

	admCl, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		return err
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return fmt.Errorf("replay: end offsets: %w", err)
	}
	var starts kadm.ListedOffsets
	if opts.Since.IsZero() {
		starts, err = adm.ListStartOffsets(ctx, topic)
	} else {
		starts, err = adm.ListOffsetsAfterMilli(ctx, opts.Since.UnixMilli(), topic)
	}
	if err != nil {
		return fmt.Errorf("replay: start offsets: %w", err)
	}
	only := int32(-1)
	if opts.WorkspaceID != "" {
		only = PartitionOf(opts.WorkspaceID, int32(len(ends[topic])))
	}

	from := map[int32]kgo.Offset{}
	remaining := map[int32]int64{} // partition → end offset still to reach
	for p, end := range ends[topic] {
		if end.Err != nil {
			return fmt.Errorf("replay: partition %d: %w", p, end.Err)
		}
		if only >= 0 && p != only {
			continue
		}
		start := starts[topic][p].Offset
		if start < end.Offset {
			from[p] = kgo.NewOffset().At(start)
			remaining[p] = end.Offset
		}
	}
	if len(from) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(cfg.Opts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	for len(remaining) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("replay: stopped before the end: %w", err)
		}
		var ferr error
		fetches.EachError(func(_ string, p int32, err error) { ferr = errors.Join(ferr, fmt.Errorf("partition %d: %w", p, err)) })
		if ferr != nil {
			return fmt.Errorf("replay: %w", ferr)
		}
		for _, r := range fetches.Records() {
			end, ok := remaining[r.Partition]
			if !ok || r.Offset >= end {
				continue
			}
			if r.Offset+1 >= end {
				delete(remaining, r.Partition)
			}
			if r.Attrs.IsControl() {
				continue
			}
			var e schemas.EventEnvelope
			if err := json.Unmarshal(r.Value, &e); err != nil {
				return fmt.Errorf("replay: event at %d/%d: %w", r.Partition, r.Offset, err)
			}
			if opts.WorkspaceID != "" && e.WorkspaceID != opts.WorkspaceID {
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// PartitionOf is the partition a workspace's records land on: the same
// murmur2 key hash Kafka's and franz-go's default partitioners use.
func PartitionOf(workspaceID string, partitions int32) int32 {
	p := kgo.StickyKeyPartitioner(nil).ForTopic("")
	return int32(p.Partition(&kgo.Record{Key: []byte(workspaceID)}, int(partitions)))
}

// Report is the outcome of a verification.
type Report struct {
	Events     int64
	Workspaces int
	Breaks     []*schemas.ChainError
}

// Verify checks every workspace's hash chain in the log: gapless seq from 1,
// prev_hash links and recomputed hashes. Events of one workspace are on one
// partition, so per-partition order is per-workspace order.
func Verify(ctx context.Context, cfg kafka.Config, workspaceID string) (Report, error) {
	chains := map[string]schemas.Chain{}
	broken := map[string]bool{}
	var rep Report
	err := Read(ctx, cfg, Options{WorkspaceID: workspaceID}, func(e schemas.EventEnvelope) error {
		rep.Events++
		if broken[e.WorkspaceID] {
			return nil
		}
		next, err := schemas.Verify(chains[e.WorkspaceID], e)
		var ce *schemas.ChainError
		switch {
		case errors.As(err, &ce):
			broken[e.WorkspaceID] = true
			rep.Breaks = append(rep.Breaks, ce)
		case err != nil:
			return err
		}
		chains[e.WorkspaceID] = next
		return nil
	})
	rep.Workspaces = len(chains)
	return rep, err
}
