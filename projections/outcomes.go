package projections

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logbook-dev/logbook/schemas"
)

// batcher answers point lookups that arrive within a linger with one query:
// on the API tier's hot path a round trip to Postgres costs far more than
// the index probe it carries.
type batcher[K comparable, V any] struct {
	fetch  func(context.Context, []K) (map[K]V, error)
	linger time.Duration
	max    int
	in     chan lookup[K, V]
	slots  chan struct{} // bounds the queries in flight
	done   chan struct{}
	once   sync.Once

	queries, lookups atomic.Int64
}

type lookup[K comparable, V any] struct {
	key   K
	reply chan lookupReply[V] // buffered: a batch never waits on a caller
}

type lookupReply[V any] struct {
	val   V
	found bool
	err   error
}

// newBatcher batches lookups for up to linger (default 1ms) or max keys
// (default 256), with at most parallel queries at once (default 4).
func newBatcher[K comparable, V any](fetch func(context.Context, []K) (map[K]V, error), linger time.Duration, max, parallel int) *batcher[K, V] {
	if linger <= 0 {
		linger = time.Millisecond
	}
	if max <= 0 {
		max = 256
	}
	if parallel <= 0 {
		parallel = 4
	}
	b := &batcher[K, V]{fetch: fetch, linger: linger, max: max, in: make(chan lookup[K, V], max),
		slots: make(chan struct{}, parallel), done: make(chan struct{})}
	go b.run()
	return b
}

func (b *batcher[K, V]) close() { b.once.Do(func() { close(b.done) }) }

// get looks one key up with whatever else arrives meanwhile.
func (b *batcher[K, V]) get(ctx context.Context, key K) (V, bool, error) {
	var zero V
	reply := make(chan lookupReply[V], 1)
	select {
	case b.in <- lookup[K, V]{key: key, reply: reply}:
	case <-ctx.Done():
		return zero, false, ctx.Err()
	case <-b.done:
		return zero, false, context.Canceled
	}
	select {
	case r := <-reply:
		return r.val, r.found, r.err
	case <-ctx.Done():
		return zero, false, ctx.Err()
	}
}

func (b *batcher[K, V]) run() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var batch []lookup[K, V]
		select {
		case l := <-b.in:
			batch = append(batch, l)
		case <-b.done:
			return
		}
		timer.Reset(b.linger)
	collect:
		for len(batch) < b.max {
			select {
			case l := <-b.in:
				batch = append(batch, l)
			case <-timer.C:
				break collect
			case <-b.done:
				break collect
			}
		}
		timer.Stop()
		select {
		case b.slots <- struct{}{}:
		case <-b.done:
			for _, l := range batch {
				l.reply <- lookupReply[V]{err: context.Canceled}
			}
			return
		}
		go func() {
			defer func() { <-b.slots }()
			b.flush(batch)
		}()
	}
}

// flush looks up one batch and answers each caller.
func (b *batcher[K, V]) flush(batch []lookup[K, V]) {
	keys := make([]K, 0, len(batch))
	seen := make(map[K]bool, len(batch))
	for _, l := range batch {
		if !seen[l.key] {
			seen[l.key] = true
			keys = append(keys, l.key)
		}
	}
	b.queries.Add(1)
	b.lookups.Add(int64(len(batch)))
	found, err := b.fetch(context.Background(), keys)
	for _, l := range batch {
		v, ok := found[l.key]
		l.reply <- lookupReply[V]{val: v, found: ok, err: err}
	}
}

// OutcomeBatcher answers Outcome like Queries, the lookups that arrive
// within a millisecond sharing one query: the API tier looks up every keyed
// command before appending it.
type OutcomeBatcher struct {
	b *batcher[string, schemas.Result]
}

// NewOutcomeBatcher batches lookups for up to linger (default 1ms) or max
// ids (default 256), with at most parallel queries at once (default 4).
func NewOutcomeBatcher(q *Queries, linger time.Duration, max, parallel int) *OutcomeBatcher {
	fetch := func(ctx context.Context, ids []string) (map[string]schemas.Result, error) {
		found, err := q.outcomes(ctx, ids)
		out := make(map[string]schemas.Result, len(found))
		for id, r := range found {
			out[id] = *r
		}
		return out, err
	}
	return &OutcomeBatcher{b: newBatcher(fetch, linger, max, parallel)}
}

// Close stops the batcher; lookups after it fail with context.Canceled.
func (o *OutcomeBatcher) Close() { o.b.close() }

// Outcome is the first outcome of a command id, nil when none is recorded.
func (o *OutcomeBatcher) Outcome(ctx context.Context, id string) (*schemas.Result, error) {
	r, found, err := o.b.get(ctx, id)
	if err != nil || !found {
		return nil, err
	}
	return &r, nil
}

// Stats returns how many lookups were answered by how many queries.
func (o *OutcomeBatcher) Stats() (lookups, queries int64) { return o.b.lookups.Load(), o.b.queries.Load() }
