package decider

import (
	"encoding/hex"

	"github.com/google/uuid"
)

// window is a workspace's idempotency window: its last outcomes, oldest
// first, in a ring. A transaction changes the window in place rather than
// a copy (a copy of 256 entries per command cost more than the decision);
// that is sound because a transaction that does not commit resets the
// decider's whole state (Decider.resetState), and fresh says which entries
// the open transaction added, so their command records get written.
type window struct {
	buf   []entry
	head  int // index in buf of the oldest entry
	n     int
	fresh int // the newest entries added by the open transaction
}

// entry is one remembered outcome in 56 bytes: the ids and the digest
// prefix packed, since a decider holds millions of them. An outcome that
// does not pack (a rejection, an id that is not a lowercase UUID, a digest
// that is not hex) is kept whole in wide.
type entry struct {
	id, aggregate [16]byte
	digest        [digestLen / 2]byte
	wide          *outcome
}

func pack(o outcome) entry {
	if o.Rejected {
		return entry{wide: &o}
	}
	var e entry
	ok := packID(o.CommandID, &e.id) && (o.AggregateID == "" || packID(o.AggregateID, &e.aggregate)) &&
		(o.Digest == "" || packDigest(o.Digest, &e.digest))
	if !ok {
		return entry{wide: &o}
	}
	return e
}

func (e *entry) commandID() string {
	if e.wide != nil {
		return e.wide.CommandID
	}
	return uuid.UUID(e.id).String()
}

func (e *entry) outcome() outcome {
	if e.wide != nil {
		return *e.wide
	}
	o := outcome{CommandID: uuid.UUID(e.id).String()}
	if e.aggregate != ([16]byte{}) {
		o.AggregateID = uuid.UUID(e.aggregate).String()
	}
	if e.digest != ([digestLen / 2]byte{}) {
		o.Digest = hex.EncodeToString(e.digest[:])
	}
	return o
}

// packID packs a UUID in the canonical lowercase form, the only form that
// unpacks to the same string; the nil UUID stands for "none" and does not
// pack.
func packID(s string, into *[16]byte) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return false
		}
	}
	u, err := uuid.Parse(s)
	if err != nil || u == uuid.Nil {
		return false
	}
	*into = u
	return true
}

func packDigest(s string, into *[digestLen / 2]byte) bool {
	if len(s) != digestLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	if _, err := hex.Decode(into[:], []byte(s)); err != nil || *into == ([digestLen / 2]byte{}) {
		return false
	}
	return true
}

// matches reports whether e remembers the command id (packed in id when
// packed is true).
func (e *entry) matches(commandID string, id [16]byte, packed bool) bool {
	if e.wide != nil {
		return e.wide.CommandID == commandID
	}
	return packed && e.id == id
}

func (w *window) len() int {
	if w == nil {
		return 0
	}
	return w.n
}

// at is the i-th entry, oldest first.
func (w *window) at(i int) *entry { return &w.buf[(w.head+i)%len(w.buf)] }

// find returns a command's outcome, newest first.
func (w *window) find(commandID string) (outcome, bool) {
	if w == nil {
		return outcome{}, false
	}
	var id [16]byte
	packed := packID(commandID, &id)
	for i := w.n - 1; i >= 0; i-- {
		if e := w.at(i); e.matches(commandID, id, packed) {
			return e.outcome(), true
		}
	}
	return outcome{}, false
}

// add appends o as the newest entry; fresh when the open transaction
// decided it, rather than a restore reading it back. The ring grows to
// size at most (0: no bound), the window's size, so a full window wastes no
// slots.
func (w *window) add(o outcome, fresh bool, size int) {
	if w.n == len(w.buf) {
		n := len(w.buf) + len(w.buf)/2 + 4
		if size > w.n {
			n = min(n, size)
		}
		grown := make([]entry, n)
		for i := range w.n {
			grown[i] = *w.at(i)
		}
		w.buf, w.head = grown, 0
	}
	*w.at(w.n) = pack(o)
	w.n++
	if fresh {
		w.fresh++
	}
}

// trim drops the oldest entries until at most max remain, calling gone
// with the command id of each whose record the log holds (one the open
// transaction added is dropped silently: its record was never written).
func (w *window) trim(max int, gone func(commandID string)) {
	for w.n > max {
		if w.n > w.fresh {
			gone(w.at(0).commandID())
		} else {
			w.fresh--
		}
		*w.at(0) = entry{}
		w.head = (w.head + 1) % len(w.buf)
		w.n--
	}
}

// remove drops a command's entry, as a restore reads its tombstone.
// Tombstones come in eviction order, so the oldest entry is the usual one.
func (w *window) remove(commandID string) {
	var id [16]byte
	packed := packID(commandID, &id)
	for i := range w.n {
		if !w.at(i).matches(commandID, id, packed) {
			continue
		}
		for j := i; j > 0; j-- {
			*w.at(j) = *w.at(j - 1)
		}
		*w.at(0) = entry{}
		w.head = (w.head + 1) % len(w.buf)
		w.n--
		w.fresh = min(w.fresh, w.n)
		return
	}
}

// added are the entries the open transaction added and kept, oldest first.
func (w *window) added() []outcome {
	if w == nil {
		return nil
	}
	return w.slice(w.n - w.fresh)
}

// all are the entries, oldest first.
func (w *window) all() []outcome {
	if w == nil {
		return nil
	}
	return w.slice(0)
}

func (w *window) slice(from int) []outcome {
	out := make([]outcome, 0, w.n-from)
	for i := from; i < w.n; i++ {
		out = append(out, w.at(i).outcome())
	}
	return out
}
