package projections

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logbook-dev/logbook/schemas"
)

// OutcomeBatcher answers Outcome like Queries, but the lookups that arrive
// within a linger share one query: the API tier looks up every keyed
// command before appending it, and a round trip to Postgres costs far more
// than the index probe it carries.
type OutcomeBatcher struct {
	q      *Queries
	linger time.Duration
	max    int
	in     chan lookup
	slots  chan struct{} // bounds the queries in flight
	done   chan struct{}
	once   sync.Once

	queries, lookups atomic.Int64
}

type lookup struct {
	id    string
	reply chan lookupReply // buffered: the batch never waits on a caller
}

type lookupReply struct {
	res *schemas.Result
	err error
}

// NewOutcomeBatcher batches lookups for up to linger (default 1ms) or max
// ids (default 256), with at most parallel queries at once (default 4).
func NewOutcomeBatcher(q *Queries, linger time.Duration, max, parallel int) *OutcomeBatcher {
	if linger <= 0 {
		linger = time.Millisecond
	}
	if max <= 0 {
		max = 256
	}
	if parallel <= 0 {
		parallel = 4
	}
	b := &OutcomeBatcher{q: q, linger: linger, max: max, in: make(chan lookup, max),
		slots: make(chan struct{}, parallel), done: make(chan struct{})}
	go b.run()
	return b
}

// Close stops the batcher; lookups after it fail with context.Canceled.
func (b *OutcomeBatcher) Close() { b.once.Do(func() { close(b.done) }) }

// Outcome is the first outcome of a command id, nil when none is recorded.
func (b *OutcomeBatcher) Outcome(ctx context.Context, id string) (*schemas.Result, error) {
	reply := make(chan lookupReply, 1)
	select {
	case b.in <- lookup{id: id, reply: reply}:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.done:
		return nil, context.Canceled
	}
	select {
	case r := <-reply:
		return r.res, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Stats returns how many lookups were answered by how many queries.
func (b *OutcomeBatcher) Stats() (lookups, queries int64) { return b.lookups.Load(), b.queries.Load() }

func (b *OutcomeBatcher) run() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var batch []lookup
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
			answer(batch, nil, context.Canceled)
			return
		}
		go func() {
			defer func() { <-b.slots }()
			b.flush(batch)
		}()
	}
}

// flush looks up one batch and answers each caller.
func (b *OutcomeBatcher) flush(batch []lookup) {
	ids := make([]string, 0, len(batch))
	seen := make(map[string]bool, len(batch))
	for _, l := range batch {
		if !seen[l.id] {
			seen[l.id] = true
			ids = append(ids, l.id)
		}
	}
	b.queries.Add(1)
	b.lookups.Add(int64(len(batch)))
	found, err := b.q.outcomes(context.Background(), ids)
	answer(batch, found, err)
}

func answer(batch []lookup, found map[string]*schemas.Result, err error) {
	for _, l := range batch {
		if err != nil {
			l.reply <- lookupReply{err: err}
			continue
		}
		var res *schemas.Result
		if r := found[l.id]; r != nil {
			c := *r // each caller owns its result
			res = &c
		}
		l.reply <- lookupReply{res: res}
	}
}
