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

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/signing"
	"github.com/logbook-dev/logbook/schemas"
)

// Options choose what to read.
type Options struct {
	// Since starts at the first event at or after this time; zero means
	// from the beginning.
	Since time.Time
	// Until ends the replay at the last event at or before this time; zero
	// means up to the end of the log as it was when the read began.
	Until time.Time
	// WorkspaceID limits the read to one workspace (and its partition).
	WorkspaceID string
	// Types limits the read to these event types; empty means all.
	Types []string
	// Upcast hands every payload over as its type's current schema version
	// (schemas.Upcast), as analytics want it; false hands it over as
	// written, as the hash chain covers it.
	Upcast bool
	// Progress, when set, is called about once a second and at the end.
	Progress func(Progress)
	// Timeout bounds the whole read, default 10 minutes.
	Timeout time.Duration
}

// Progress is how far a read has come: records read of those between the
// start offsets and the end offsets seen when it began.
type Progress struct {
	Read, Total, Matched int64
	Elapsed              time.Duration
	Done                 bool
}

// PerSecond is the read rate so far.
func (p Progress) PerSecond() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Read) / p.Elapsed.Seconds()
}

// ETA is how long the rest would take at the rate so far.
func (p Progress) ETA() time.Duration {
	rate := p.PerSecond()
	if rate <= 0 || p.Read >= p.Total {
		return 0
	}
	return time.Duration(float64(p.Total-p.Read) / rate * float64(time.Second))
}

// Read calls fn for every committed event in order per partition, from the
// chosen start up to the end offsets seen when it began, then returns.
func Read(ctx context.Context, cfg kafka.Config, opts Options, fn func(schemas.EventEnvelope) error) error {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	topic := cfg.Topics().Events

	cl, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	from, err := startOffsets(ctx, adm, topic, opts)
	if err != nil {
		return err
	}
	to, err := endOffsets(ctx, adm, topic, opts.Until)
	if err != nil {
		return err
	}
	var prog Progress
	if opts.Progress != nil {
		if prog.Total, err = remaining(ctx, adm, topic, from, to); err != nil {
			return err
		}
	}
	types := map[string]bool{}
	for _, t := range opts.Types {
		types[t] = true
	}
	start, last := time.Now(), time.Now()
	report := func(done bool) {
		if opts.Progress != nil {
			prog.Elapsed, prog.Done = time.Since(start), done
			opts.Progress(prog)
		}
	}
	err = kafka.ReadRange(ctx, cl, topic, from, to, func(r *kgo.Record) error {
		prog.Read++
		if opts.Progress != nil && time.Since(last) >= time.Second {
			last = time.Now()
			report(false)
		}
		var e schemas.EventEnvelope
		if err := json.Unmarshal(r.Value, &e); err != nil {
			return fmt.Errorf("undecodable event at partition %d offset %d: %w", r.Partition, r.Offset, err)
		}
		if opts.WorkspaceID != "" && e.WorkspaceID != opts.WorkspaceID ||
			len(types) > 0 && !types[e.Type] || !opts.Until.IsZero() && e.OccurredAt.After(opts.Until) {
			return nil
		}
		if opts.Upcast {
			payload, err := schemas.Upcast(e.Type, e.Version, e.Payload)
			if err != nil {
				return fmt.Errorf("event %s: %w", e.ID, err)
			}
			e.Payload, e.Version = payload, domain.EventVersion(e.Type)
		}
		prog.Matched++
		return fn(e)
	})
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	report(true)
	return nil
}

// untilMargin is how far past --until a partition is read: record
// timestamps are the deciders' clocks, which may step back a little when a
// partition moves to another decider; events are filtered on their own time.
const untilMargin = time.Minute

// endOffsets stops each partition at its first record stamped later than
// until (plus untilMargin), so a replay of last quarter does not read this
// one; none when until is zero.
func endOffsets(ctx context.Context, adm *kadm.Client, topic string, until time.Time) (map[int32]int64, error) {
	if until.IsZero() {
		return nil, nil
	}
	listed, err := adm.ListOffsetsAfterMilli(ctx, until.Add(untilMargin).UnixMilli()+1, topic)
	if err != nil {
		return nil, fmt.Errorf("replay: offsets after %s: %w", until.Format(time.RFC3339), err)
	}
	if err := listed.Error(); err != nil {
		return nil, fmt.Errorf("replay: offsets after %s: %w", until.Format(time.RFC3339), err)
	}
	to := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) {
		if o.Offset >= 0 {
			to[o.Partition] = o.Offset
		}
	})
	return to, nil
}

// remaining counts the records between from and the end offsets now.
func remaining(ctx context.Context, adm *kadm.Client, topic string, from, to map[int32]int64) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ends, err := adm.ListEndOffsets(lctx, topic)
	if err != nil {
		return 0, fmt.Errorf("replay: end offsets: %w", err)
	}
	var n int64
	for p, o := range from {
		end, ok := ends.Lookup(topic, p)
		if !ok || end.Err != nil {
			continue
		}
		if limit, ok := to[p]; ok && limit < end.Offset {
			end.Offset = limit
		}
		if end.Offset > o {
			n += end.Offset - o
		}
	}
	return n, nil
}

// startOffsets is where each partition to read begins: the log start, or
// the first event at or after opts.Since; one partition for one workspace.
func startOffsets(ctx context.Context, adm *kadm.Client, topic string, opts Options) (map[int32]int64, error) {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var (
		starts kadm.ListedOffsets
		err    error
	)
	if opts.Since.IsZero() {
		starts, err = adm.ListStartOffsets(lctx, topic)
	} else {
		starts, err = adm.ListOffsetsAfterMilli(lctx, opts.Since.UnixMilli(), topic)
	}
	if err != nil {
		return nil, fmt.Errorf("replay: start offsets: %w", err)
	}
	only := int32(-1)
	if opts.WorkspaceID != "" {
		only = PartitionOf(opts.WorkspaceID, int32(len(starts[topic])))
	}
	from := map[int32]int64{}
	for p, o := range starts[topic] {
		if o.Err != nil {
			return nil, fmt.Errorf("replay: partition %d: %w", p, o.Err)
		}
		// -1: no event at or after Since.
		if (only < 0 || p == only) && o.Offset >= 0 {
			from[p] = o.Offset
		}
	}
	return from, nil
}

// PartitionOf is the partition a workspace's records land on: the same
// murmur2 key hash Kafka's and franz-go's default partitioners use.
func PartitionOf(workspaceID string, partitions int32) int32 {
	return kafka.PartitionOf(workspaceID, partitions)
}

// Report is the outcome of a verification.
type Report struct {
	Events     int64
	Workspaces int
	Breaks     []*schemas.ChainError
	// Signed and Unsigned count the events checked against the public
	// keys and those without a signature (written before signing);
	// BadSignatures lists the events whose signature does not verify, or
	// that have none after their workspace's first signed event.
	Signed, Unsigned int64
	BadSignatures    []*SignatureError
}

// SignatureError names an event whose command cannot be proved.
type SignatureError struct {
	WorkspaceID string
	Seq         int64
	EventID     string
	Err         error
}

func (e *SignatureError) Error() string {
	return fmt.Sprintf("workspace %s seq %d (event %s): %v", e.WorkspaceID, e.Seq, e.EventID, e.Err)
}

// Verify checks every workspace's hash chain in the log: gapless seq from 1,
// prev_hash links and recomputed hashes. Events of one workspace are on one
// partition, so per-partition order is per-workspace order. With keys, it
// also checks that each event's command was signed, by an accepted key,
// for the actor the event names; once a workspace has a signed event, an
// unsigned one after it is a forgery.
func Verify(ctx context.Context, cfg kafka.Config, workspaceID string, keys *signing.Verifier) (Report, error) {
	chains := map[string]schemas.Chain{}
	broken := map[string]bool{}
	signedSeen := map[string]bool{}
	var rep Report
	err := Read(ctx, cfg, Options{WorkspaceID: workspaceID}, func(e schemas.EventEnvelope) error {
		rep.Events++
		if keys != nil {
			switch err := keys.VerifyEvent(e); {
			case errors.Is(err, signing.ErrUnsigned) && !signedSeen[e.WorkspaceID]:
				rep.Unsigned++
			case errors.Is(err, signing.ErrUnsigned):
				rep.BadSignatures = append(rep.BadSignatures, &SignatureError{e.WorkspaceID, e.Seq, e.ID,
					errors.New("unsigned, after signed events of its workspace")})
			case err != nil:
				rep.BadSignatures = append(rep.BadSignatures, &SignatureError{e.WorkspaceID, e.Seq, e.ID, err})
			default:
				rep.Signed++
				signedSeen[e.WorkspaceID] = true
			}
		}
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
