package watermillkafka

import (
	"context"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/trace"
)

// unmarshalRetry is the least a record the Unmarshaler refused waits
// before it is tried again. It is never skipped: it holds its partition
// (or its key) until a fixed Unmarshaler takes it.
const unmarshalRetry = time.Second

// delivery is one handing out of an entry.
type delivery struct {
	w   *window
	e   *entry
	rec *kgo.Record
}

// dispatch hands messages out one at a time, so the channel sees each
// partition's messages in the order the windows release them.
func (s *subscription) dispatch() {
	defer s.loops.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		d, wake := s.pick()
		if d != nil {
			s.deliver(d)
			continue
		}
		var due <-chan time.Time
		if !wake.IsZero() {
			timer.Reset(time.Until(wake))
			due = timer.C
		}
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
		case <-due:
		}
		timer.Stop()
	}
}

// pick takes the next entry to hand out, going round the partitions so a
// busy one cannot starve the others. wake is the earliest time a nacked
// message becomes due, zero if none.
func (s *subscription) pick() (d *delivery, wake time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused {
		return nil, time.Time{}
	}
	now := time.Now()
	n := len(s.order)
	for i := range n {
		w := s.windows[s.order[(s.rr+i)%n]]
		e, at := w.next(now)
		if !at.IsZero() && (wake.IsZero() || at.Before(wake)) {
			wake = at
		}
		if e != nil {
			s.rr = (s.rr + i + 1) % n
			s.syncPauseLocked(w) // taking a pending record may make room
			return &delivery{w: w, e: e, rec: e.rec}, wake
		}
	}
	return nil, wake
}

// deliver sends d's message and starts waiting for its ack, unless the
// subscription ends, is paused or loses the partition first.
func (s *subscription) deliver(d *delivery) {
	msg, err := s.cfg.Unmarshaler.Unmarshal(d.rec)
	if err != nil {
		s.log.Error("watermillkafka: cannot unmarshal record; retrying", "partition", d.rec.Partition, "offset", d.rec.Offset, "err", err)
		s.mu.Lock()
		if s.current(d.w) {
			d.w.nack(d.e, time.Now().Add(max(s.cfg.NackResendSleep, unmarshalRetry)))
		}
		s.mu.Unlock()
		return
	}
	if msg.Metadata == nil {
		msg.Metadata = message.Metadata{}
	}
	setPosition(msg.Metadata, d.rec)
	ctx, cancel := context.WithCancel(s.ctx)
	if d.rec.Context != nil {
		// The trace the record's producer wrote in its headers (tracing).
		ctx = trace.ContextWithRemoteSpanContext(ctx, trace.SpanContextFromContext(d.rec.Context))
	}
	msg.SetContext(ctx)
	for {
		select {
		case s.out <- msg:
			s.mu.Lock()
			d.w.handed(d.e)
			s.mu.Unlock()
			s.awaits.Add(1)
			go s.await(d, msg, cancel)
			return
		case <-s.ctx.Done():
			cancel()
			return
		case <-s.wake:
			if s.withdraw(d) {
				cancel()
				return
			}
		}
	}
}

// withdraw gives d back when it should no longer be sent: the subscription
// was paused, or the partition revoked, while the send waited.
func (s *subscription) withdraw(d *delivery) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.current(d.w) {
		return true
	}
	if !s.paused {
		return false
	}
	d.w.giveBack(d.e, time.Now())
	s.syncPauseLocked(d.w)
	return true
}

// await waits for the handler's verdict on one message.
func (s *subscription) await(d *delivery, msg *message.Message, cancel context.CancelFunc) {
	defer s.awaits.Done()
	defer cancel()
	select {
	case <-msg.Acked():
		s.settle(d, true)
	case <-msg.Nacked():
		s.settle(d, false)
	case <-s.ctx.Done():
	}
}

// settle records an ack (marking the new commit offset when the acked run
// at the head of the window grew) or a nack (resend after
// NackResendSleep). A verdict for a partition no longer ours is dropped.
func (s *subscription) settle(d *delivery, acked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.current(d.w) {
		return
	}
	if acked {
		if commit, moved := d.w.ack(d.e); moved && s.group {
			s.cl.MarkCommitOffsets(map[string]map[int32]kgo.EpochOffset{s.topic: {d.w.partition: commit}})
		}
	} else {
		d.w.nack(d.e, time.Now().Add(s.cfg.NackResendSleep))
	}
	s.syncPauseLocked(d.w)
	s.notify()
}
