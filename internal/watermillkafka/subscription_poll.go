package watermillkafka

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// pollErrorBackoff is how long the poll loop waits after a poll that
// returned errors and no records, so a persistent error cannot spin it.
const pollErrorBackoff = 100 * time.Millisecond

// poll moves polled records into the partition windows until the
// subscription ends.
//
// franz-go strips from a poll the records it had buffered for a partition
// paused since, without advancing that partition's fetch position: they are
// fetched again after the resume. So whatever a poll returns for a
// partition follows what the previous polls returned, paused or not, and is
// appended to its window as is.
func (s *subscription) poll() {
	defer s.loops.Done()
	for {
		fetches := s.cl.PollFetches(s.ctx)
		if s.ctx.Err() != nil {
			s.cl.AllowRebalance()
			return
		}
		took := s.take(fetches)
		// Rebalance callbacks wait for this (BlockRebalanceOnPoll).
		s.cl.AllowRebalance()
		failed := false
		fetches.EachError(func(topic string, p int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, kgo.ErrClientClosed) {
				return
			}
			failed = true
			s.log.Warn("watermillkafka: fetch failed; franz-go retries", "partition", p, "err", err)
		})
		if failed && !took {
			select {
			case <-s.ctx.Done():
			case <-time.After(pollErrorBackoff):
			}
		}
	}
}

// take appends the fetched records to their windows and reports whether
// there were any.
func (s *subscription) take(fetches kgo.Fetches) bool {
	took := false
	s.mu.Lock()
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if p.Topic != s.topic || len(p.Records) == 0 {
			return
		}
		took = true
		w := s.windowLocked(p.Partition)
		w.add(p.Records, s.cfg.OrderingKey)
		s.syncPauseLocked(w)
	})
	s.mu.Unlock()
	if took {
		s.notify()
	}
	return took
}

// assigned opens a window for each partition the group assigned.
func (s *subscription) assigned(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range m[s.topic] {
		s.windowLocked(p)
	}
}

// revoked drops the windows of revoked partitions, then commits what was
// acked so their next owner does not redeliver it. Acks that arrive later
// for those partitions are ignored: the next owner redelivers them.
func (s *subscription) revoked(ctx context.Context, cl *kgo.Client, m map[string][]int32) {
	if len(m[s.topic]) == 0 {
		return // a session ended without taking anything from us
	}
	s.drop(cl, m[s.topic])
	ctx, cancel := context.WithTimeout(ctx, s.cfg.CloseTimeout)
	defer cancel()
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		s.log.Warn("watermillkafka: commit on revoke failed; the next owner redelivers from the last commit", "err", err)
	}
}

// lost drops the windows of partitions lost with the group session; a
// commit would be refused, so none is tried.
func (s *subscription) lost(_ context.Context, cl *kgo.Client, m map[string][]int32) {
	s.drop(cl, m[s.topic])
}

// drop forgets the windows of parts. It takes the client from the callback:
// s.cl is set only once kgo.NewClient returns.
func (s *subscription) drop(cl *kgo.Client, parts []int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var dropped []int32
	for _, p := range parts {
		if _, ok := s.windows[p]; ok {
			delete(s.windows, p)
			dropped = append(dropped, p)
		}
	}
	if len(dropped) == 0 {
		return
	}
	s.order = s.order[:0]
	for p := range s.windows {
		s.order = append(s.order, p)
	}
	slices.Sort(s.order)
	// franz-go keeps a partition pause across assignments: clear it, or
	// the partition would come back paused.
	cl.ResumeFetchPartitions(map[string][]int32{s.topic: dropped})
	s.notify() // a send under way for a dropped window is abandoned
}
