package signing

import (
	"context"
	"errors"
	"sync"

	"github.com/logbook-dev/logbook/schemas"
)

// ErrClosed means the batcher was closed.
var ErrClosed = errors.New("signing: batcher closed")

// Batcher signs the commands of many concurrent writers with one signature
// per batch. A command waits for the batch being signed, never for a
// timer: alone it is signed at once, and under load the commands that
// arrived meanwhile share the next signature (group commit).
type Batcher struct {
	s    *Signer
	max  int
	reqs chan batchReq
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

type batchReq struct {
	env  *schemas.CommandEnvelope
	done chan error
}

// NewBatcher starts a batcher of at most max commands per signature
// (default 256); Close stops it.
func NewBatcher(s *Signer, max int) *Batcher {
	if max <= 0 {
		max = 256
	}
	b := &Batcher{s: s, max: max, reqs: make(chan batchReq, max), stop: make(chan struct{}), done: make(chan struct{})}
	go b.run()
	return b
}

// KeyID names the key the batcher signs with.
func (b *Batcher) KeyID() string { return b.s.KeyID }

// Sign signs env in place, with the commands signed alongside it.
func (b *Batcher) Sign(ctx context.Context, env *schemas.CommandEnvelope) error {
	r := batchReq{env: env, done: make(chan error, 1)}
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
	more:
		for len(batch) < b.max {
			select {
			case r := <-b.reqs:
				batch = append(batch, r)
			default:
				break more
			}
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
