package watermillkafka

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// window is one partition's bookkeeping: the records polled and not yet
// acked, in offset order, and which of them are out with a handler. It is
// not safe for concurrent use; the subscription's mutex guards it.
//
// ents starts at the oldest record not acked: everything before it is acked
// and marked for commit. An entry is pending (polled, not handed out),
// flying (handed out, or nacked and waiting to be handed out again) or acked
// (behind a flying one, so not committable yet).
type window struct {
	partition   int32
	maxInFlight int
	maxSpan     int // handed-out entries stay within ents[:maxSpan]

	ents         []*entry
	firstPending int // index in ents of the first pending entry, len(ents) if none
	pending      int
	flying       []*entry
	busy         map[string]struct{} // ordering keys of flying entries

	paused bool // the fetch pause this window asked franz-go for
}

type entryState uint8

const (
	statePending entryState = iota
	stateFlying
	stateAcked
)

type entry struct {
	rec      *kgo.Record // nil once acked: the payload is not kept for the commit
	offset   int64
	epoch    int32
	key      string
	state    entryState
	resendAt time.Time // set while a nacked entry waits to be handed out again
	handed   int       // times handed out
}

func newWindow(partition int32, maxInFlight, maxSpan int) *window {
	return &window{partition: partition, maxInFlight: maxInFlight, maxSpan: maxSpan, busy: map[string]struct{}{}}
}

// add appends polled records. franz-go returns a partition's records in
// offset order and each once per assignment, so they always go at the end.
func (w *window) add(recs []*kgo.Record, keyOf func(*kgo.Record) string) {
	for _, r := range recs {
		w.ents = append(w.ents, &entry{rec: r, offset: r.Offset, epoch: r.LeaderEpoch, key: keyOf(r)})
		w.pending++
	}
}

// wantsFetch reports whether the partition should be fetched: not while
// more than a window's worth of records wait to be handed out, nor while
// the span is full; otherwise franz-go should stop buffering it. Once
// paused it is resumed only when half a window or less waits, so a
// partition draining a backlog is not paused and resumed for every
// message, and one whose handler keeps up is never paused.
func (w *window) wantsFetch() bool {
	if len(w.ents) >= w.maxSpan {
		return false
	}
	if w.paused {
		return w.pending <= w.maxInFlight/2
	}
	return w.pending <= w.maxInFlight
}

// next marks the entry to hand out now as flying and returns it: a nacked
// one whose resend time has come (oldest first), else the oldest pending
// one whose key is free, within the span, while fewer than maxInFlight
// are flying. It also returns the earliest resend time still ahead (zero if
// none), for the dispatcher to wake up at.
func (w *window) next(now time.Time) (e *entry, wake time.Time) {
	for _, f := range w.flying {
		switch {
		case f.resendAt.IsZero():
		case !f.resendAt.After(now):
			if e == nil || f.offset < e.offset {
				e = f
			}
		case wake.IsZero() || f.resendAt.Before(wake):
			wake = f.resendAt
		}
	}
	if e != nil {
		e.resendAt = time.Time{}
		return e, wake
	}
	if len(w.flying) >= w.maxInFlight || w.pending == 0 {
		return nil, wake
	}
	for i := w.firstPending; i < min(len(w.ents), w.maxSpan); i++ {
		c := w.ents[i]
		if c.state != statePending {
			continue
		}
		if _, taken := w.busy[c.key]; taken && c.key != "" {
			continue // an earlier message of this key is out: order holds
		}
		w.fly(c)
		if i == w.firstPending {
			w.skipToPending(i + 1)
		}
		return c, wake
	}
	return nil, wake
}

func (w *window) fly(e *entry) {
	e.state = stateFlying
	w.pending--
	w.flying = append(w.flying, e)
	if e.key != "" {
		w.busy[e.key] = struct{}{}
	}
}

// land takes e out of the flying set.
func (w *window) land(e *entry) {
	if i := slices.Index(w.flying, e); i >= 0 {
		w.flying = slices.Delete(w.flying, i, i+1)
	}
	if e.key != "" {
		delete(w.busy, e.key)
	}
}

func (w *window) skipToPending(from int) {
	w.firstPending = from
	for w.firstPending < len(w.ents) && w.ents[w.firstPending].state != statePending {
		w.firstPending++
	}
}

// handed records that e reached its handler.
func (w *window) handed(e *entry) { e.handed++ }

// giveBack undoes next for an entry the dispatcher could not hand out (the
// subscription was paused meanwhile): a first delivery goes back to
// pending, a resend waits to be resent at once.
func (w *window) giveBack(e *entry, now time.Time) {
	if e.state != stateFlying {
		return
	}
	if e.handed > 0 {
		e.resendAt = now
		return
	}
	w.land(e)
	e.state = statePending
	w.pending++
	if i, ok := w.index(e.offset); ok && i < w.firstPending {
		w.firstPending = i
	}
}

// nack schedules e to be handed out again at resendAt; it keeps its slot
// and its key meanwhile, so nothing of its key overtakes it.
func (w *window) nack(e *entry, resendAt time.Time) {
	if e.state == stateFlying {
		e.resendAt = resendAt
	}
}

// ack records e as acked and drops the acked entries at the head. When the
// head moved, commit is the offset to commit (one past the last record of
// the contiguous acked run) and ok is true.
func (w *window) ack(e *entry) (commit kgo.EpochOffset, ok bool) {
	if e.state != stateFlying {
		return commit, false
	}
	w.land(e)
	e.state = stateAcked
	e.rec = nil
	n := 0
	for n < len(w.ents) && w.ents[n].state == stateAcked {
		n++
	}
	if n == 0 {
		return commit, false
	}
	last := w.ents[n-1]
	clear(w.ents[:n]) // let the collector have them before the slice is reallocated
	w.ents = w.ents[n:]
	w.firstPending -= n
	return kgo.EpochOffset{Epoch: last.epoch, Offset: last.offset + 1}, true
}

func (w *window) index(offset int64) (int, bool) {
	return slices.BinarySearchFunc(w.ents, offset, func(e *entry, o int64) int {
		switch {
		case e.offset < o:
			return -1
		case e.offset > o:
			return 1
		}
		return 0
	})
}

// inFlight is the number of messages handed out and not acked.
func (w *window) inFlight() int { return len(w.flying) }
