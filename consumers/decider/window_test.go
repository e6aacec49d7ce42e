package decider

import (
	"fmt"
	"runtime"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

// Every outcome comes back as it went in, packed or not.
func TestWindowEntriesKeepEveryOutcome(t *testing.T) {
	id := "0190d6a4-0000-7000-8000-00000000c001"
	d := schemas.RequestDigest("POST", "/p", nil)
	for _, o := range []outcome{
		{CommandID: id},
		{CommandID: id, AggregateID: "0190d6a4-0000-7000-8000-00000000b001", Digest: d[:digestLen]},
		{CommandID: id, Rejected: true, Code: domain.CodeConflict, Reason: "no", Field: "status"},
		{CommandID: "c-1", AggregateID: "0190d6a4-0000-7000-8000-00000000b001"},
		{CommandID: "0190D6A4-0000-7000-8000-00000000C001"},
		{CommandID: "{0190d6a4-0000-7000-8000-00000000c001}"},
		{CommandID: uuid.Nil.String()},
		{CommandID: id, AggregateID: "key_0190d6a4-0000-7000-8000-00000000b001"},
		{CommandID: id, Digest: "0123"},
		{CommandID: id, Digest: "0123456789ABCDEF0123456789ABCDEF"},
		{CommandID: id, Digest: "00000000000000000000000000000000"},
	} {
		e := pack(o)
		if got := e.outcome(); got != o {
			t.Errorf("packed %+v, unpacked %+v", o, got)
		}
		var w window
		w.add(o, false, 0)
		if got, ok := w.find(o.CommandID); !ok || got != o {
			t.Errorf("find %q: %+v %v", o.CommandID, got, ok)
		}
	}
	if e := pack(outcome{CommandID: id, AggregateID: id, Digest: d[:digestLen]}); e.wide != nil {
		t.Error("an accepted outcome of UUIDs and a hex digest is kept wide")
	}
}

func TestWindowWrapsAroundAndRemoves(t *testing.T) {
	var w window
	gone := []string{}
	for i := range 20 {
		w.trim(4, func(id string) { gone = append(gone, id) })
		w.add(outcome{CommandID: fmt.Sprint("c", i)}, false, 5)
	}
	want := []string{"c15", "c16", "c17", "c18", "c19"}
	var got []string
	for _, o := range w.all() {
		got = append(got, o.CommandID)
	}
	if !slices.Equal(got, want) || len(gone) != 15 || gone[0] != "c0" || gone[14] != "c14" {
		t.Fatalf("window %v, let go %v", got, gone)
	}
	if _, ok := w.find("c14"); ok {
		t.Fatal("c14 was let go")
	}
	w.remove("c17")
	w.remove("c15")
	w.remove("absent")
	got = got[:0]
	for _, o := range w.all() {
		got = append(got, o.CommandID)
	}
	if !slices.Equal(got, []string{"c16", "c18", "c19"}) {
		t.Fatalf("after removals: %v", got)
	}
	if len(w.buf) != 5 {
		t.Fatalf("a window of 5 has %d slots", len(w.buf))
	}
}

// BenchmarkRemember is one command's cost in a full window of 256.
func BenchmarkRemember(b *testing.B) {
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	d := schemas.RequestDigest("POST", "/x", []byte("{}"))
	bt := newBatch()
	w := workspaceState{}
	b.ReportAllocs()
	for i := range b.N {
		bt.remember(w, schemas.Result{CommandID: ids[i%1024], WorkspaceID: "w", AggregateID: ids[(i+1)%1024], RequestDigest: d, Status: schemas.ResultAccepted}, 256, 0)
		w = *bt.workspaces["w"]
		if i%64 == 63 {
			bt.commit(map[int32]*partitionState{0: newPartitionState()})
			bt = newBatch()
		}
	}
}

// BenchmarkWindowMemory reports the heap a remembered command takes: 2,000
// full windows of 256 accepted commands, ids as a restore decodes them.
func BenchmarkWindowMemory(b *testing.B) {
	const spaces, per = 2000, 256
	d := schemas.RequestDigest("POST", "/x", []byte("{}"))
	for range b.N {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ws := make([]window, spaces)
		for i := range ws {
			for range per {
				ws[i].trim(per-1, func(string) {})
				ws[i].add(outcomeOf(schemas.Result{CommandID: uuid.NewString(), AggregateID: uuid.NewString(),
					RequestDigest: d, Status: schemas.ResultAccepted}), false, per)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(spaces*per), "B/command")
		runtime.KeepAlive(ws)
	}
}
