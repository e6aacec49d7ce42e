package signing

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/logbook-dev/logbook/schemas"
)

// ErrClosed means the batcher was closed.
var ErrClosed = errors.New("signing: batcher closed")

// Batcher signs the commands of many concurrent writers with one signature
// per batch: a batch is the commands that arrive within linger of its first
// one, or max of them. The verifier pays one Ed25519 verify per batch (64
// to 95 µs on a 2-core machine), so batches matter more than the linger: a
// signature takes about 30 µs, far less than the gap between commands even
// at thousands per second, so without a linger nearly every batch is one
// command. The appender lingers 2 ms as well; 1 ms more is lost in it.
type Batcher struct {
	s      *Signer
	max    int
	linger time.Duration
	reqs   chan batchReq
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

type batchReq struct {
	env  *schemas.CommandEnvelope
	done chan error
}

// NewBatcher starts a batcher of at most max commands per signature
// (default 256) that waits up to linger for them (0: none, a batch is what
// is already queued); Close stops it.
func NewBatcher(s *Signer, max int, linger time.Duration) *Batcher {
	if max <= 0 {
		max = 256
	}
	b := &Batcher{s: s, max: max, linger: linger, reqs: make(chan batchReq, max), stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

// KeyID names the key the batcher signs with.
func (b *Batcher) KeyID() string { return b.s.KeyID }

// Sign signs env in place, with the commands signed alongside it.
func (b *Batcher) Sign(ctx context.Context, env *schemas.CommandEnvelope) error {
	r := batchReq{env: env, done: make(chan error, 1)}
	select {
	case <-b.stop:
		return ErrClosed
	default:
	}
	select {
	case b.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.stop:
		return ErrClosed
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-b.done: // stopped before it saw this one
		select {
		case err := <-r.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// Close stops the batcher; commands waiting get ErrClosed.
func (b *Batcher) Close() {
	b.once.Do(func() { close(b.stop) })
	<-b.done
}

func (b *Batcher) run() {
	defer close(b.done)
	batch := make([]batchReq, 0, b.max)
	envs := make([]*schemas.CommandEnvelope, 0, b.max)
	for {
		batch = batch[:0]
		select {
		case r := <-b.reqs:
			batch = append(batch, r)
		case <-b.stop:
			b.drain()
			return
		}
		var deadline <-chan time.Time
		var timer *time.Timer
		if b.linger > 0 {
			timer = time.NewTimer(b.linger)
			deadline = timer.C
		}
	more:
		for len(batch) < b.max {
			if deadline == nil {
				select {
				case r := <-b.reqs:
					batch = append(batch, r)
				default:
					break more
				}
				continue
			}
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			case <-deadline:
				break more
			case <-b.stop:
				break more
			}
		}
		if timer != nil {
			timer.Stop()
		}
		envs = envs[:0]
		for _, r := range batch {
			envs = append(envs, r.env)
		}
		err := b.s.SignCommands(envs)
		for _, r := range batch {
			r.done <- err
		}
	}
}

// drain answers the commands queued when the batcher stopped.
func (b *Batcher) drain() {
	for {
		select {
		case r := <-b.reqs:
			r.done <- ErrClosed
		default:
			return
		}
	}
}
