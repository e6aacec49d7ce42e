package projections

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// batchTimeout bounds one batch's query: callers wait on it whatever their
// own deadlines.
const batchTimeout = 5 * time.Second

// batcher answers point lookups that arrive together with one query: on
// the API tier's hot path a round trip to Postgres costs far more than the
// index probe it carries.
type batcher[K comparable, V any] struct {
	fetch func(context.Context, []K) (map[K]V, error)
	max   int
	in    chan lookup[K, V]
	slots chan struct{} // bounds the queries in flight
	done  chan struct{}
	once  sync.Once

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

// newBatcher batches up to max keys (default 256) a query, with at most
// parallel queries at once (default 4).
func newBatcher[K comparable, V any](fetch func(context.Context, []K) (map[K]V, error), max, parallel int) *batcher[K, V] {
	if max <= 0 {
		max = 256
	}
	if parallel <= 0 {
		parallel = 4
	}
	b := &batcher[K, V]{fetch: fetch, max: max, in: make(chan lookup[K, V], max),
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
	case <-b.done: // a lookup queued as the batcher closed has no one to answer it
		return zero, false, context.Canceled
	}
}

// run cuts a batch when a query slot is free: while every slot is busy the
// next batch grows, so batches follow the load with no linger to wait out
// when there is none.
func (b *batcher[K, V]) run() {
	for {
		var batch []lookup[K, V]
		select {
		case l := <-b.in:
			batch = append(batch, l)
		case <-b.done:
			return
		}
	wait:
		for {
			if len(batch) >= b.max {
				select {
				case b.slots <- struct{}{}:
					break wait
				case <-b.done:
					b.refuse(batch)
					return
				}
			}
			select {
			case b.slots <- struct{}{}:
				break wait
			case l := <-b.in:
				batch = append(batch, l)
			case <-b.done:
				b.refuse(batch)
				return
			}
		}
	drain:
		for len(batch) < b.max {
			select {
			case l := <-b.in:
				batch = append(batch, l)
			default:
				break drain
			}
		}
		go func() {
			defer func() { <-b.slots }()
			b.flush(batch)
		}()
	}
}

func (b *batcher[K, V]) refuse(batch []lookup[K, V]) {
	for _, l := range batch {
		l.reply <- lookupReply[V]{err: context.Canceled}
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
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	found, err := b.fetch(ctx, keys)
	for _, l := range batch {
		v, ok := found[l.key]
		l.reply <- lookupReply[V]{val: v, found: ok, err: err}
	}
}
