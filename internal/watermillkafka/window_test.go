package watermillkafka

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// records builds records at offsets from, from+1, … with the given keys.
func records(from int64, keys ...string) []*kgo.Record {
	recs := make([]*kgo.Record, len(keys))
	for i, k := range keys {
		recs[i] = &kgo.Record{Offset: from + int64(i), Key: []byte(k)}
	}
	return recs
}

// takeAll hands out everything next gives at now and returns the offsets.
func takeAll(w *window, now time.Time) []*entry {
	var out []*entry
	for {
		e, _ := w.next(now)
		if e == nil {
			return out
		}
		w.handed(e)
		out = append(out, e)
	}
}

func offsets(es []*entry) []int64 {
	out := make([]int64, len(es))
	for i, e := range es {
		out[i] = e.offset
	}
	return out
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestWindowKeyOrder(t *testing.T) {
	now := time.Now()
	w := newWindow(0, 3, 100)
	w.add(records(0, "a", "a", "b", "c", "b", "d"), RecordKey)

	// a1 waits for a0 and b4 for b2; the third slot goes to c3, and d5
	// waits for a slot although its key is free.
	first := takeAll(w, now)
	if got := offsets(first); !equal(got, []int64{0, 2, 3}) {
		t.Fatalf("first hand out = %v, want [0 2 3]", got)
	}
	if _, ok := w.ack(first[1]); ok { // b2 acked, a0 still out: no commit
		t.Fatal("commit moved past unacked offset 0")
	}
	// b's turn again (b4) comes before d5: offset order among free keys.
	if got := offsets(takeAll(w, now)); !equal(got, []int64{4}) {
		t.Fatalf("after acking b2 = %v, want [4]", got)
	}
	commit, ok := w.ack(first[0])
	if !ok || commit.Offset != 1 {
		t.Fatalf("after acking a0 commit = %v %v, want offset 1", commit, ok)
	}
	if got := offsets(takeAll(w, now)); !equal(got, []int64{1}) {
		t.Fatalf("after acking a0 = %v, want [1] (a1 before d5, slots full)", got)
	}
}

func TestWindowEmptyKeyOrdersNothing(t *testing.T) {
	w := newWindow(0, 4, 100)
	w.add(records(0, "", "", "", "", ""), RecordKey)
	if got := offsets(takeAll(w, time.Now())); !equal(got, []int64{0, 1, 2, 3}) {
		t.Fatalf("unkeyed hand out = %v, want [0 1 2 3]", got)
	}
}

func TestWindowCommitsContiguousAcksOnly(t *testing.T) {
	w := newWindow(0, 3, 100)
	w.add(records(10, "x", "y", "z"), RecordKey)
	es := takeAll(w, time.Now())
	for _, e := range es[1:] {
		if c, ok := w.ack(e); ok {
			t.Fatalf("ack of %d committed %v with 10 unacked", e.offset, c)
		}
	}
	c, ok := w.ack(es[0])
	if !ok || c.Offset != 13 {
		t.Fatalf("ack of 10 commit = %v %v, want 13", c, ok)
	}
	if len(w.ents) != 0 || w.firstPending != 0 {
		t.Fatalf("window not empty: %d entries, firstPending %d", len(w.ents), w.firstPending)
	}
}

func TestWindowNackResendsSameEntryFirst(t *testing.T) {
	now := time.Now()
	w := newWindow(0, 2, 100)
	w.add(records(0, "a", "a", "b"), RecordKey)
	es := takeAll(w, now) // a0, b2
	w.nack(es[0], now.Add(time.Second))
	if e, wake := w.next(now); e != nil || !wake.Equal(now.Add(time.Second)) {
		t.Fatalf("before resend time: next = %v, wake %v", e, wake)
	}
	w.ack(es[1])
	// a slot is free but a1 must not overtake the nacked a0.
	if e, _ := w.next(now); e != nil {
		t.Fatalf("handed out %d while a0 waits for its resend", e.offset)
	}
	e, _ := w.next(now.Add(time.Second))
	if e != es[0] {
		t.Fatalf("resend = %v, want offset 0", e)
	}
}

func TestWindowWantsFetch(t *testing.T) {
	w := newWindow(0, 2, 6)
	if !w.wantsFetch() {
		t.Fatal("empty window refuses records")
	}
	w.add(records(0, "a", "b"), RecordKey)
	if !w.wantsFetch() {
		t.Fatal("window with a window's worth waiting (2) stops fetching")
	}
	w.add(records(2, "c"), RecordKey)
	if w.wantsFetch() {
		t.Fatal("window with 3 records waiting (max in flight 2) still fetches")
	}
	w.paused = true
	takeAll(w, time.Now()) // 0 and 1 out, 1 waiting
	if !w.wantsFetch() {
		t.Fatal("paused window with half a window waiting does not resume")
	}
	w.add(records(3, "d"), RecordKey)
	if w.wantsFetch() {
		t.Fatal("paused window with 2 waiting resumes before half a window")
	}

	span := newWindow(0, 2, 3)
	span.add(records(0, "a", "b"), RecordKey)
	out := takeAll(span, time.Now())
	span.add(records(2, "c"), RecordKey)
	span.ack(out[1]) // 0 out, 1 acked, 2 waiting: span of 3 full
	if span.wantsFetch() {
		t.Fatal("window with a full span still fetches")
	}
	span.ack(out[0])
	if !span.wantsFetch() {
		t.Fatal("span freed by the head's ack, window still refuses records")
	}
}

func TestWindowSpanBoundsHandOut(t *testing.T) {
	w := newWindow(0, 2, 2)
	w.add(records(0, "a", "b", "c"), RecordKey)
	es := takeAll(w, time.Now())
	w.ack(es[1])
	// 0 is out, 1 acked: c2 is past the span and waits for 0.
	if e, _ := w.next(time.Now()); e != nil {
		t.Fatalf("handed out %d beyond the span", e.offset)
	}
	w.ack(es[0])
	if e, _ := w.next(time.Now()); e == nil || e.offset != 2 {
		t.Fatalf("after the head acked next = %v, want 2", e)
	}
}

func TestWindowGiveBack(t *testing.T) {
	now := time.Now()
	w := newWindow(0, 1, 10)
	w.add(records(0, "a", "b"), RecordKey)
	e, _ := w.next(now)
	w.giveBack(e, now) // never handed: back to pending, first in line
	if e2, _ := w.next(now); e2 != e {
		t.Fatalf("after give back next = %v, want offset 0 again", e2)
	}
	w.handed(e)
	w.nack(e, now)
	e3, _ := w.next(now)
	w.giveBack(e3, now) // a resend given back stays out, due at once
	if e4, _ := w.next(now); e4 != e {
		t.Fatalf("resend given back: next = %v, want offset 0", e4)
	}
	if w.inFlight() != 1 || w.pending != 1 {
		t.Fatalf("in flight %d pending %d, want 1 and 1", w.inFlight(), w.pending)
	}
}
