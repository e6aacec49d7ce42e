package devbroker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
)

// recoveryTxnID starts the transactional id that re-writes a torn commit.
// Each recovery takes an id of its own: kfake aborts a transaction a crash
// cut short without writing its abort marker, and readers would then skip the
// later records of the same producer id in that partition.
const recoveryTxnID = "logbook-dev-txn-recovery-"

// recoveryTimeout bounds the whole repair at start.
const recoveryTimeout = 2 * time.Minute

// complete finishes the journaled commit e if a crash tore it: when some of
// its partitions hold it committed, its records in the partitions the crash
// aborted are written again, once, in a transaction of their own, and its
// group offsets are committed. When none holds it committed, the commit
// never began and the transaction stays aborted, as its producer was told
// nothing.
func complete(ctx context.Context, conn []kgo.Opt, e commitEntry, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, recoveryTimeout)
	defer cancel()
	cl, err := kgo.NewClient(conn...)
	if err != nil {
		return err
	}
	defer cl.Close()

	var (
		committed bool
		redo      []*kgo.Record
	)
	for _, p := range e.Parts {
		st, err := partStatus(ctx, cl, e, p)
		if err != nil {
			return fmt.Errorf("transaction recovery: %s/%d: %w", p.Topic, p.Partition, err)
		}
		committed = committed || st.committed
		redo = append(redo, st.redo...)
	}
	if !committed {
		// Without a committed partition nothing proves the commit began,
		// so the offsets stay uncommitted too.
		return nil
	}
	if len(redo) > 0 {
		if err := rewrite(ctx, conn, redo); err != nil {
			return fmt.Errorf("transaction recovery: %w", err)
		}
		log.Warn("embedded kafka: completed a transaction a crash had left half-committed",
			"transactional_id", e.TxnID, "partitions", len(e.Parts), "records_rewritten", len(redo))
	}
	if err := commitOffsets(ctx, cl, e.Offsets); err != nil {
		// The decider copes with offsets behind its state: it answers those
		// commands again from its idempotency window.
		log.Warn("embedded kafka: the group offsets of a torn transaction were not committed", "err", err)
	}
	return nil
}

// status is where one partition of a journaled transaction stands.
type status struct {
	committed bool          // the transaction's records are committed here
	redo      []*kgo.Record // aborted by the crash and not yet written again
}

// partStatus reads a partition from the transaction's start twice, committed
// and uncommitted, to see which of its records the crash aborted.
func partStatus(ctx context.Context, cl *kgo.Client, e commitEntry, p txnPart) (status, error) {
	from := map[int32]int64{p.Partition: p.From}
	var visible []*kgo.Record
	if err := kafka.ReadToEnd(ctx, cl, p.Topic, from, func(r *kgo.Record) error {
		visible = append(visible, r)
		return nil
	}); err != nil {
		return status{}, err
	}
	var ours []*kgo.Record
	if err := kafka.ReadToEndUncommitted(ctx, cl, p.Topic, from, func(r *kgo.Record) error {
		if r.ProducerID == e.PID && r.ProducerEpoch == e.Epoch {
			ours = append(ours, r)
		}
		return nil
	}); err != nil {
		return status{}, err
	}
	if len(ours) == 0 {
		return status{}, nil
	}
	if slices.ContainsFunc(visible, func(r *kgo.Record) bool { return r.Offset == ours[0].Offset }) {
		return status{committed: true}, nil
	}
	after := slices.DeleteFunc(visible, func(r *kgo.Record) bool { return r.Offset <= ours[len(ours)-1].Offset })
	if rewritten(after, ours) {
		return status{}, nil
	}
	return status{redo: ours}, nil
}

// rewritten reports whether a recovery cut short after its commit already
// wrote ours again: the same records, in order, among the committed ones
// after them.
func rewritten(after, ours []*kgo.Record) bool {
	for i := range after {
		if len(after)-i < len(ours) {
			return false
		}
		if !sameRecord(after[i], ours[0]) {
			continue
		}
		all := true
		for k := range ours {
			if !sameRecord(after[i+k], ours[k]) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func sameRecord(a, b *kgo.Record) bool {
	return bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value) &&
		slices.EqualFunc(a.Headers, b.Headers, func(x, y kgo.RecordHeader) bool {
			return x.Key == y.Key && bytes.Equal(x.Value, y.Value)
		})
}

// rewrite writes records again, to the partitions they came from, in one
// transaction.
func rewrite(ctx context.Context, conn []kgo.Opt, records []*kgo.Record) error {
	cl, err := kgo.NewClient(append(conn, kgo.TransactionalID(recoveryTxnID+strconv.FormatInt(time.Now().UnixNano(), 36)),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	again := make([]*kgo.Record, len(records))
	for i, r := range records {
		again[i] = &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value,
			Headers: r.Headers, Timestamp: r.Timestamp}
	}
	if err := cl.ProduceSync(ctx, again...).FirstErr(); err != nil {
		_ = cl.EndTransaction(context.WithoutCancel(ctx), kgo.TryAbort)
		return err
	}
	return cl.EndTransaction(ctx, kgo.TryCommit)
}

// commitOffsets commits the offsets the torn transaction carried, where the
// group is not already past them.
func commitOffsets(ctx context.Context, cl *kgo.Client, offsets []groupOffset) error {
	adm := kadm.NewClient(cl)
	byGroup := map[string]kadm.Offsets{}
	for _, o := range offsets {
		want := byGroup[o.Group]
		if want == nil {
			want = kadm.Offsets{}
			byGroup[o.Group] = want
		}
		want.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset,
			LeaderEpoch: o.LeaderEpoch, Metadata: o.Metadata})
	}
	for group, want := range byGroup {
		have, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			return err
		}
		ahead := kadm.Offsets{}
		want.Each(func(o kadm.Offset) {
			if cur, ok := have.Lookup(o.Topic, o.Partition); !ok || cur.At < o.At {
				ahead.Add(o)
			}
		})
		if len(ahead) == 0 {
			continue
		}
		resp, err := adm.CommitOffsets(ctx, group, ahead)
		if err == nil {
			err = resp.Error()
		}
		if err != nil {
			return fmt.Errorf("group %s: %w", group, err)
		}
	}
	return nil
}
