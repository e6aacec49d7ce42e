package watermillkafka

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// subscription is one Subscribe: a franz-go client, a poll loop that fills
// the partition windows, a dispatch loop that hands their messages out, and
// one goroutine per message out waiting for its ack or nack.
type subscription struct {
	cfg   *SubscriberConfig
	topic string
	group bool
	log   *slog.Logger
	cl    *kgo.Client
	out   chan *message.Message

	// ctx ends the subscription; every message's context derives from it,
	// so ending it cancels them all.
	ctx    context.Context
	cancel context.CancelFunc
	wake   chan struct{} // tells the dispatcher the windows changed

	mu      sync.Mutex
	windows map[int32]*window
	order   []int32 // partitions of windows, sorted, for round robin
	rr      int
	paused  bool // Subscriber.Pause

	loops    sync.WaitGroup // poll and dispatch
	awaits   sync.WaitGroup // one per message out
	stopOnce sync.Once
	finished chan struct{} // closed once torn down; err is then set
	err      error
}

func newSubscription(ctx context.Context, cfg *SubscriberConfig, topic string, log *slog.Logger, paused bool) (*subscription, error) {
	s := &subscription{
		cfg:      cfg,
		topic:    topic,
		group:    cfg.ConsumerGroup != "",
		log:      log.With("topic", topic, "group", cfg.ConsumerGroup),
		out:      make(chan *message.Message),
		wake:     make(chan struct{}, 1),
		windows:  map[int32]*window{},
		paused:   paused,
		finished: make(chan struct{}),
	}
	cl, err := kgo.NewClient(s.opts()...)
	if err != nil {
		return nil, err
	}
	s.cl = cl
	if paused {
		cl.PauseFetchTopics(topic)
	}
	s.ctx, s.cancel = context.WithCancel(ctx)
	s.loops.Add(2)
	go s.poll()
	go s.dispatch()
	go func() {
		<-s.ctx.Done() // the Subscribe context ended, or stop was called
		s.stop()
	}()
	return s, nil
}

func (s *subscription) opts() []kgo.Opt {
	c := s.cfg
	start := kgo.NewOffset().AtStart()
	if c.InitialOffset == OffsetEnd {
		start = kgo.NewOffset().AtEnd()
	}
	opts := append(c.Kafka.Opts(),
		kgo.ConsumeTopics(s.topic),
		kgo.ConsumeResetOffset(start),
		kgo.FetchMaxWait(c.FetchMaxWait),
	)
	if c.FetchMaxPartitionBytes > 0 {
		opts = append(opts, kgo.FetchMaxPartitionBytes(c.FetchMaxPartitionBytes))
	}
	if c.ReadCommitted {
		opts = append(opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	}
	if s.group {
		opts = append(opts,
			kgo.ConsumerGroup(c.ConsumerGroup),
			// Only offsets of acked messages are marked; franz-go commits
			// the marks every CommitInterval.
			kgo.AutoCommitMarks(),
			kgo.AutoCommitInterval(c.CommitInterval),
			kgo.AutoCommitCallback(s.committed),
			// Callbacks never run between a poll and the windows taking
			// its records, so no record of a revoked partition lands in
			// a window after the revoke dropped it.
			kgo.BlockRebalanceOnPoll(),
			kgo.OnPartitionsAssigned(s.assigned),
			kgo.OnPartitionsRevoked(s.revoked),
			kgo.OnPartitionsLost(s.lost),
		)
		if c.SessionTimeout > 0 {
			opts = append(opts, kgo.SessionTimeout(c.SessionTimeout))
		}
		if c.HeartbeatInterval > 0 {
			opts = append(opts, kgo.HeartbeatInterval(c.HeartbeatInterval))
		}
		if c.RebalanceTimeout > 0 {
			opts = append(opts, kgo.RebalanceTimeout(c.RebalanceTimeout))
		}
	}
	return append(opts, c.ExtraOpts...)
}

// stop starts the teardown once; finished closes when it is done.
func (s *subscription) stop() {
	s.stopOnce.Do(func() { go s.teardown() })
}

// teardown stops the loops, closes the channel, commits what is acked and
// closes the client, each wait bounded.
func (s *subscription) teardown() {
	defer close(s.finished)
	s.cancel()
	s.loops.Wait() // both loops return on ctx: the poll is canceled, every send selects on it
	close(s.out)
	s.awaits.Wait() // they return on ctx too
	if s.group {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CloseTimeout)
		// A commit that fails only means redelivery, so it is logged,
		// not returned.
		if err := s.cl.CommitMarkedOffsets(ctx); err != nil {
			s.log.Warn("watermillkafka: final commit failed; acked messages since the last commit will be redelivered", "err", err)
		}
		cancel()
	}
	closed := make(chan struct{})
	go func() {
		// Leaving the group revokes everything: revoked commits again
		// if anything was acked since.
		s.cl.CloseAllowingRebalance()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(s.cfg.CloseTimeout):
		s.err = &CloseError{Step: "client close", Err: context.DeadlineExceeded}
	}
}

// notify wakes the dispatcher; a wake already pending is enough.
func (s *subscription) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// windowLocked returns the window of partition p, creating it.
func (s *subscription) windowLocked(p int32) *window {
	if w, ok := s.windows[p]; ok {
		return w
	}
	w := newWindow(p, s.cfg.MaxInFlightPerPartition, s.cfg.MaxUncommittedPerPartition)
	s.windows[p] = w
	i, _ := slices.BinarySearch(s.order, p)
	s.order = slices.Insert(s.order, i, p)
	return w
}

// current reports whether w is still the window of its partition: false
// once the partition was revoked or lost, even if it came back since.
func (s *subscription) current(w *window) bool {
	return s.windows[w.partition] == w
}

// syncPauseLocked pauses or resumes w's partition in franz-go to match
// whether its window has room. Called under mu so pauses and resumes of
// one partition reach franz-go in the order they were decided.
func (s *subscription) syncPauseLocked(w *window) {
	want := !w.wantsFetch()
	if want == w.paused {
		return
	}
	w.paused = want
	tp := map[string][]int32{s.topic: {w.partition}}
	if want {
		s.cl.PauseFetchPartitions(tp)
	} else {
		s.cl.ResumeFetchPartitions(tp)
	}
}

// setPaused applies Subscriber.Pause or Resume. Pausing the topic is
// independent of the partition pauses of full windows in franz-go, so
// Resume does not resume a partition whose window is still full.
func (s *subscription) setPaused(p bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused == p {
		return
	}
	s.paused = p
	if p {
		s.cl.PauseFetchTopics(s.topic)
	} else {
		s.cl.ResumeFetchTopics(s.topic)
	}
	s.notify() // a send under way gives its message back
}

func (s *subscription) addStats(st *Stats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.AssignedPartitions += len(s.windows)
	for p, w := range s.windows {
		st.Partitions = append(st.Partitions, p)
		st.InFlight += w.inFlight()
		st.Buffered += w.pending
		if s.paused || w.paused {
			st.PausedPartitions++
		}
	}
}

// committed logs autocommits that failed: the offsets stay marked and the
// next commit carries them.
func (s *subscription) committed(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Warn("watermillkafka: commit failed", "err", err)
		return
	}
	if resp == nil {
		return
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				s.log.Warn("watermillkafka: commit failed", "partition", p.Partition, "err", err)
			}
		}
	}
}
