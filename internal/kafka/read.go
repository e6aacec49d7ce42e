package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ReadError is a partition that could not be read to its end.
type ReadError struct {
	Topic     string
	Partition int32
	Position  int64 // the offset of the record fn refused, else the next offset to fetch
	End       int64 // the end offset the read was heading for
	Err       error // fn's error, the broker's or the context's
}

func (e *ReadError) Error() string {
	return fmt.Sprintf("kafka: read %s/%d stopped at offset %d of %d: %v", e.Topic, e.Partition, e.Position, e.End, e.Err)
}

func (e *ReadError) Unwrap() error { return e.Err }

// ErrNoProgress is a partition whose position stopped advancing before its
// end: see ReadError for where.
var ErrNoProgress = errors.New("no progress")

// Read tuning. A partition that makes no progress for stallLimit fails the
// read even when the caller's context has no deadline.
const (
	readCallTimeout    = 30 * time.Second
	readMaxWait        = 500 * time.Millisecond
	readMaxBytes       = 32 << 20
	readPartitionBytes = 8 << 20
	stallLimit         = 30 * time.Second
	backoffMin         = 50 * time.Millisecond
	backoffMax         = time.Second
)

// ReadToEnd calls fn with every committed data record of the partitions of
// topic named in from, starting at the offset given for each (below the log
// start it reads from the log start), up to the last stable offset each
// partition had when ReadToEnd began; records written later are not read.
// Records come in offset order per partition, partitions interleaved, from
// the calling goroutine. Control records and records of aborted
// transactions never reach fn.
//
// The end is judged by the fetch position, not by the last record seen, so
// the read finishes whatever the tail holds: transaction markers, aborted
// transactions with or without a marker (a broker recovering from a crash
// may abort without writing one), compacted gaps and empty partitions.
//
// The caller bounds the read with ctx; a partition that stops advancing
// fails on its own after 30 seconds. A partition that cannot be read to its
// end, fn's refusal included, fails with a *ReadError saying where it
// stopped; it wraps the cause, so errors.Is and errors.As reach fn's error.
func ReadToEnd(ctx context.Context, cl *kgo.Client, topic string, from map[int32]int64, fn func(*kgo.Record) error) error {
	return readToEnd(ctx, cl, topic, from, nil, true, fn)
}

// ReadRange is ReadToEnd stopping each partition named in to at that
// offset, when it comes before the partition's end.
func ReadRange(ctx context.Context, cl *kgo.Client, topic string, from, to map[int32]int64, fn func(*kgo.Record) error) error {
	return readToEnd(ctx, cl, topic, from, to, true, fn)
}

// ReadToEndUncommitted is ReadToEnd reading every data record up to the high
// watermark, those of open and aborted transactions included: for tools
// that repair transactions, never for building state.
func ReadToEndUncommitted(ctx context.Context, cl *kgo.Client, topic string, from map[int32]int64, fn func(*kgo.Record) error) error {
	return readToEnd(ctx, cl, topic, from, nil, false, fn)
}

func readToEnd(ctx context.Context, cl *kgo.Client, topic string, from, to map[int32]int64, committed bool, fn func(*kgo.Record) error) error {
	if len(from) == 0 {
		return nil
	}
	r := &reader{cl: cl, adm: kadm.NewClient(cl), topic: topic, committed: committed, fn: fn, parts: map[int32]*cursor{}}
	ends, err := r.listEnds(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	for p, off := range from {
		end, ok := ends[p]
		if !ok {
			return &ReadError{Topic: topic, Partition: p, Position: off, End: -1, Err: kerr.UnknownTopicOrPartition}
		}
		if limit, ok := to[p]; ok && limit >= 0 && limit < end {
			end = limit
		}
		if off < end {
			r.parts[p] = &cursor{pos: max(off, 0), end: end, movedAt: now}
		}
	}
	return r.run(ctx)
}

// cursor is one partition's progress.
type cursor struct {
	pos, end int64
	movedAt  time.Time // last time pos advanced
	lastErr  error     // the last retriable error, for the no-progress report
}

type reader struct {
	cl        *kgo.Client
	adm       *kadm.Client
	topic     string
	committed bool // read_committed up to the last stable offset, else everything up to the high watermark
	fn        func(*kgo.Record) error
	parts     map[int32]*cursor // partitions still short of their end
}

// isolation is the fetch isolation of the read.
func (r *reader) isolation() kgo.IsolationLevel {
	if r.committed {
		return kgo.ReadCommitted()
	}
	return kgo.ReadUncommitted()
}

// listEnds lists the end of every partition of the topic: the last stable
// offset, or the high watermark for an uncommitted read. Retriable errors
// (a topic just created, not yet on every broker; a leader moving) are
// retried with backoff for up to stallLimit.
func (r *reader) listEnds(ctx context.Context) (map[int32]int64, error) {
	deadline := time.Now().Add(stallLimit)
	backoff := backoffMin
	for {
		ends, err := r.listEndsOnce(ctx)
		if err == nil || !kerr.IsRetriable(err) || time.Now().After(deadline) {
			return ends, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, backoffMax)
	}
}

func (r *reader) listEndsOnce(ctx context.Context) (map[int32]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, readCallTimeout)
	defer cancel()
	list := r.adm.ListCommittedOffsets
	if !r.committed {
		list = r.adm.ListEndOffsets
	}
	listed, err := list(ctx, r.topic)
	if err != nil {
		return nil, fmt.Errorf("kafka: end offsets of %s: %w", r.topic, err)
	}
	ends := map[int32]int64{}
	for p, o := range listed[r.topic] {
		if o.Err != nil {
			return nil, fmt.Errorf("kafka: end offset of %s/%d: %w", r.topic, p, o.Err)
		}
		ends[p] = o.Offset
	}
	return ends, nil
}

// run fetches round after round, one request per leader, until every
// partition reached its end.
func (r *reader) run(ctx context.Context) error {
	backoff := backoffMin
	fresh := false
	for len(r.parts) > 0 {
		if err := ctx.Err(); err != nil {
			return r.fail(r.first(), err)
		}
		byLeader, id, err := r.leaders(ctx, fresh)
		fresh = false
		progressed := false
		if err == nil {
			for _, leader := range slices.Sorted(maps.Keys(byLeader)) {
				moved, stale, err := r.fetch(ctx, leader, id, byLeader[leader])
				if err != nil {
					return err
				}
				progressed = progressed || moved
				fresh = fresh || stale
			}
		}
		if err := r.checkStalls(err); err != nil {
			return err
		}
		if progressed {
			backoff = backoffMin
			continue
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, backoffMax)
	}
	return nil
}

// leaders groups the partitions still to read by leader and returns the
// topic ID (zero where the broker has none). fresh bypasses the client's
// metadata cache, after a leadership error. Partitions without a leader are
// left out: they stall until one is elected.
func (r *reader) leaders(ctx context.Context, fresh bool) (map[int32][]int32, [16]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, readCallTimeout)
	defer cancel()
	if fresh {
		// A direct metadata request refreshes the cache kadm reads from.
		req := kmsg.NewPtrMetadataRequest()
		t := kmsg.NewMetadataRequestTopic()
		t.Topic = kmsg.StringPtr(r.topic)
		req.Topics = append(req.Topics, t)
		if _, err := req.RequestWith(ctx, r.cl); err != nil {
			return nil, [16]byte{}, fmt.Errorf("metadata: %w", err)
		}
	}
	meta, err := r.adm.Metadata(ctx, r.topic)
	if err != nil {
		return nil, [16]byte{}, fmt.Errorf("metadata: %w", err)
	}
	td, ok := meta.Topics[r.topic]
	if !ok {
		return nil, [16]byte{}, fmt.Errorf("metadata: %w", kerr.UnknownTopicOrPartition)
	}
	if td.Err != nil {
		return nil, [16]byte{}, fmt.Errorf("metadata: %w", td.Err)
	}
	byLeader := map[int32][]int32{}
	for p, c := range r.parts {
		d, ok := td.Partitions[p]
		switch {
		case !ok:
			c.lastErr = kerr.UnknownTopicOrPartition
		case d.Err != nil:
			c.lastErr = d.Err
		case d.Leader < 0:
			c.lastErr = kerr.LeaderNotAvailable
		default:
			byLeader[d.Leader] = append(byLeader[d.Leader], p)
		}
	}
	return byLeader, td.ID, nil
}

// fetch issues one fetch to a leader for some partitions and
// hands their records to fn. It reports whether any position advanced and
// whether the metadata looked stale. Only a failure that retrying cannot
// cure is returned as an error.
func (r *reader) fetch(ctx context.Context, leader int32, id [16]byte, parts []int32) (moved, stale bool, err error) {
	req := kmsg.NewPtrFetchRequest()
	req.MaxWaitMillis = int32(readMaxWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = readMaxBytes
	req.IsolationLevel = 0 // read_uncommitted
	if r.committed {
		req.IsolationLevel = 1
	}
	req.SessionID, req.SessionEpoch = 0, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic, rt.TopicID = r.topic, id // v13+ fetches by ID, older by name
	for _, p := range parts {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = p
		rp.FetchOffset = r.parts[p].pos
		rp.PartitionMaxBytes = readPartitionBytes
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)

	rctx, cancel := context.WithTimeout(ctx, readCallTimeout)
	kresp, err := r.cl.Broker(int(leader)).RetriableRequest(rctx, req)
	cancel()
	if err == nil {
		err = kerr.ErrorForCode(kresp.(*kmsg.FetchResponse).ErrorCode)
	}
	if err != nil {
		for _, p := range parts {
			r.parts[p].lastErr = fmt.Errorf("fetch from broker %d: %w", leader, err)
		}
		return false, true, nil
	}
	for _, t := range kresp.(*kmsg.FetchResponse).Topics {
		for i := range t.Partitions {
			rp := &t.Partitions[i]
			c, ok := r.parts[rp.Partition]
			if !ok || !slices.Contains(parts, rp.Partition) {
				continue
			}
			adv, st, err := r.apply(ctx, c, rp)
			if err != nil {
				return moved, stale, err
			}
			moved, stale = moved || adv, stale || st
		}
	}
	return moved, stale, nil
}

// apply processes one partition of a fetch response.
func (r *reader) apply(ctx context.Context, c *cursor, rp *kmsg.FetchResponseTopicPartition) (moved, stale bool, err error) {
	p := rp.Partition
	fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		Offset:         c.pos,
		IsolationLevel: r.isolation(),
		Topic:          r.topic,
		Partition:      p,
	}, rp, kgo.DefaultDecompressor(), nil)
	switch {
	case fp.Err == nil:
	case errors.Is(fp.Err, kerr.OffsetOutOfRange):
		return r.skipToLogStart(ctx, c, p)
	case kerr.IsRetriable(fp.Err):
		c.lastErr = fp.Err
		return false, true, nil
	default:
		return false, false, r.fail(p, fp.Err)
	}
	for _, rec := range fp.Records {
		if rec.Offset >= c.end {
			break
		}
		if err := r.fn(rec); err != nil {
			return false, false, &ReadError{Topic: r.topic, Partition: p, Position: rec.Offset, End: c.end, Err: err}
		}
	}
	if next > c.pos {
		r.advance(p, c, next)
		return true, false, nil
	}
	c.lastErr = fmt.Errorf("nothing returned at %d (high watermark %d, last stable offset %d, log start %d)",
		c.pos, rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset)
	return false, false, nil
}

// skipToLogStart moves a position that fell below the log start (records
// deleted or expired) up to it; any other out-of-range position is an error.
func (r *reader) skipToLogStart(ctx context.Context, c *cursor, p int32) (bool, bool, error) {
	lctx, cancel := context.WithTimeout(ctx, readCallTimeout)
	defer cancel()
	starts, err := r.adm.ListStartOffsets(lctx, r.topic)
	if err != nil {
		c.lastErr = fmt.Errorf("start offsets: %w", err)
		return false, false, nil
	}
	start, ok := starts.Lookup(r.topic, p)
	if !ok || start.Err != nil {
		c.lastErr = fmt.Errorf("start offset: %w", errors.Join(kerr.OffsetOutOfRange, start.Err))
		return false, false, nil
	}
	if start.Offset <= c.pos {
		return false, false, r.fail(p, fmt.Errorf("%w: log start is %d", kerr.OffsetOutOfRange, start.Offset))
	}
	r.advance(p, c, start.Offset)
	return true, false, nil
}

func (r *reader) advance(p int32, c *cursor, to int64) {
	c.pos, c.movedAt, c.lastErr = to, time.Now(), nil
	if c.pos >= c.end {
		delete(r.parts, p)
	}
}

// checkStalls fails the read on a partition that has not advanced for
// stallLimit; roundErr is what kept the whole round from fetching.
func (r *reader) checkStalls(roundErr error) error {
	for _, p := range slices.Sorted(maps.Keys(r.parts)) {
		c := r.parts[p]
		if time.Since(c.movedAt) < stallLimit {
			continue
		}
		cause := errors.Join(c.lastErr, roundErr)
		if cause == nil {
			cause = errors.New("no answer from the broker")
		}
		return r.fail(p, fmt.Errorf("%w for %s: %w", ErrNoProgress, stallLimit, cause))
	}
	return nil
}

// first is the lowest partition still short of its end.
func (r *reader) first() int32 { return slices.Min(slices.Collect(maps.Keys(r.parts))) }

func (r *reader) fail(p int32, err error) error {
	c := r.parts[p]
	return &ReadError{Topic: r.topic, Partition: p, Position: c.pos, End: c.end, Err: err}
}
