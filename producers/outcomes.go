package producers

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/schemas"
)

// Outcomes follows the results topic from its end and hands each result to
// the requests waiting for it (Prefer: wait): the requests it answers, that
// is, since one command id can get two results when its Idempotency-Key
// came with two different requests (schemas.Result.SameRequest).
type Outcomes struct {
	cl  *kgo.Client
	log *slog.Logger

	mu      sync.Mutex
	waiters map[string][]waiter // by command id
}

// waiter is one waiting request.
type waiter struct {
	digest string
	ch     chan schemas.Result // buffered, sent to once
}

// NewOutcomes connects a results reader.
func NewOutcomes(cfg kafka.Config, log *slog.Logger) (*Outcomes, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(cfg.Opts(),
		kgo.ConsumeTopics(cfg.Topics().Results),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return nil, fmt.Errorf("producers: %w", err)
	}
	return &Outcomes{cl: cl, log: log, waiters: map[string][]waiter{}}, nil
}

// Close stops reading.
func (o *Outcomes) Close() { o.cl.Close() }

// Run reads results until ctx ends.
func (o *Outcomes) Run(ctx context.Context) {
	for ctx.Err() == nil {
		fetches := o.cl.PollFetches(ctx)
		if fetches.IsClientClosed() {
			return
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if id := schemas.Header(r, schemas.HeaderCommandID); id != "" && !o.waiting(id) {
				return
			}
			res, err := schemas.DecodeResult(r.Value)
			if err != nil {
				o.log.Warn("undecodable result", "partition", r.Partition, "offset", r.Offset)
				return
			}
			o.deliver(res)
		})
	}
}

// deliver hands res to the waiters of its command whose request it answers;
// the others keep waiting for theirs.
func (o *Outcomes) deliver(res schemas.Result) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var rest []waiter
	for _, w := range o.waiters[res.CommandID] {
		if res.SameRequest(w.digest) {
			w.ch <- res // buffered, and the waiter leaves the list: one send each
		} else {
			rest = append(rest, w)
		}
	}
	if len(rest) == 0 {
		delete(o.waiters, res.CommandID)
	} else {
		o.waiters[res.CommandID] = rest
	}
}

func (o *Outcomes) waiting(commandID string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.waiters[commandID]) > 0
}

// Watch registers interest in the outcome of a command sent by the request
// with digest ("" for a command without an Idempotency-Key); call cancel
// when done.
func (o *Outcomes) Watch(commandID, digest string) (ch <-chan schemas.Result, cancel func()) {
	c := make(chan schemas.Result, 1)
	o.mu.Lock()
	o.waiters[commandID] = append(o.waiters[commandID], waiter{digest: digest, ch: c})
	o.mu.Unlock()
	return c, func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		list := o.waiters[commandID]
		for i, x := range list {
			if x.ch == c {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(o.waiters, commandID)
		} else {
			o.waiters[commandID] = list
		}
	}
}
