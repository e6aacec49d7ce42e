package watermillkafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The subscriber's pause relies on this franz-go behaviour (v1.22): records
// buffered for a partition paused before they were polled are dropped from
// the poll, and the partition's fetch position stays after the last record
// polled, so on resume they are fetched again, none skipped, none repeated.
// If an upgrade changes it, this fails before the subscriber does.
func TestFranzGoPauseDropsBufferedAndKeepsPosition(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	e.publish(10, noKey)
	cl, err := kgo.NewClient(append(e.k.Opts(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{e.topic: {0: kgo.NewOffset().AtStart()}}))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	poll := func(max int, wait time.Duration) []int64 {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		var offs []int64
		for len(offs) < max && ctx.Err() == nil {
			cl.PollRecords(ctx, max-len(offs)).EachRecord(func(r *kgo.Record) { offs = append(offs, r.Offset) })
		}
		return offs
	}
	if got := poll(3, 10*time.Second); len(got) != 3 || got[0] != 0 || got[2] != 2 {
		t.Fatalf("first poll %v, want [0 1 2]", got)
	}
	if n := cl.BufferedFetchRecords(); n == 0 {
		t.Fatal("nothing left buffered: the test needs a fetch larger than the first poll")
	}
	tp := map[string][]int32{e.topic: {0}}
	cl.PauseFetchPartitions(tp)
	if got := poll(10, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("paused partition polled %v", got)
	}
	cl.ResumeFetchPartitions(tp)
	got := poll(7, 10*time.Second)
	for i, off := range got {
		if off != int64(3+i) {
			t.Fatalf("after resume %v, want 3 to 9", got)
		}
	}
	if len(got) != 7 {
		t.Fatalf("after resume %v, want 3 to 9", got)
	}
}
