package watermillkafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Subscriber is a message.Subscriber consuming from Kafka. Each Subscribe
// runs its own franz-go client, so in a consumer group each subscription is
// one member.
type Subscriber struct {
	cfg SubscriberConfig
	log *slog.Logger

	mu     sync.Mutex
	closed bool
	paused bool
	subs   map[*subscription]struct{}
}

var (
	_ message.Subscriber           = (*Subscriber)(nil)
	_ message.SubscribeInitializer = (*Subscriber)(nil)
)

// initializeTimeout bounds SubscribeInitialize: the topic creation and the
// wait for every partition to have a leader.
const initializeTimeout = 30 * time.Second

// NewSubscriber returns a Subscriber; log may be nil. It connects to
// nothing until Subscribe.
func NewSubscriber(cfg SubscriberConfig, log *slog.Logger) (*Subscriber, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Subscriber{cfg: cfg, log: orDiscard(log), subs: map[*subscription]struct{}{}}, nil
}

// Subscribe starts consuming topic. The channel is closed when ctx ends or
// the Subscriber closes. Each message's context derives from ctx and is
// canceled when the message is acked or nacked, or the subscription ends.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrSubscriberClosed
	}
	sub, err := newSubscription(ctx, &s.cfg, topic, s.log, s.paused)
	if err != nil {
		return nil, err
	}
	s.subs[sub] = struct{}{}
	go func() {
		<-sub.finished
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
	}()
	return sub.out, nil
}

// SubscribeInitialize creates topic with InitializePartitions partitions
// and InitializeReplicationFactor replicas if it does not exist, and waits
// until every partition has a leader.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	cl, err := kgo.NewClient(append(s.cfg.Kafka.Opts(), s.cfg.ExtraOpts...)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), initializeTimeout)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, s.cfg.InitializePartitions, s.cfg.InitializeReplicationFactor, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("watermillkafka: create topic %s: %w", topic, err)
	}
	for {
		err := topicReady(ctx, adm, topic)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("watermillkafka: topic %s not ready: %w", topic, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func topicReady(ctx context.Context, adm *kadm.Client, topic string) error {
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return err
	}
	d, ok := details[topic]
	switch {
	case !ok:
		return errors.New("not in metadata yet")
	case d.Err != nil:
		return d.Err
	case len(d.Partitions) == 0:
		return errors.New("no partitions in metadata yet")
	}
	for _, p := range d.Partitions {
		if p.Err != nil || p.Leader < 0 {
			return fmt.Errorf("partition %d has no leader yet", p.Partition)
		}
	}
	return nil
}

// Pause stops fetching and delivering on every subscription, present and
// future, until Resume: for a downstream that cannot take more (an open
// circuit breaker). Messages already delivered can still be acked or
// nacked; nacked ones wait for Resume.
func (s *Subscriber) Pause() { s.setPaused(true) }

// Resume undoes Pause.
func (s *Subscriber) Resume() { s.setPaused(false) }

func (s *Subscriber) setPaused(p bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.paused = p
	for sub := range s.subs {
		sub.setPaused(p)
	}
}

// Stats is a snapshot of a Subscriber's subscriptions.
type Stats struct {
	Subscriptions int
	// AssignedPartitions is the number of partitions the subscriptions
	// own: assigned by the group, or, without a group, read from so far;
	// Partitions are their numbers.
	AssignedPartitions int
	Partitions         []int32
	// PausedPartitions is the number of those not being fetched: full
	// windows, or all of them while the Subscriber is paused.
	PausedPartitions int
	// InFlight is the number of messages delivered (or on their way to
	// the channel) and not yet acked; nacked ones waiting to be resent
	// count too.
	InFlight int
	// Buffered is the number of records polled and not yet delivered.
	Buffered int
	// Paused reports whether Pause is in effect.
	Paused bool
}

// Stats returns the current counts.
func (s *Subscriber) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{Subscriptions: len(s.subs), Paused: s.paused}
	for sub := range s.subs {
		sub.addStats(&st)
	}
	return st
}

// Close ends every subscription: deliveries stop, acked offsets are
// committed, the output channels close and the clients leave their group.
// Each subscription takes at most about twice CloseTimeout. Subscribe
// after Close fails with ErrSubscriberClosed; closing twice is harmless.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	subs := make([]*subscription, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()

	for _, sub := range subs {
		sub.stop()
	}
	deadline := time.NewTimer(2*s.cfg.CloseTimeout + time.Second)
	defer deadline.Stop()
	var errs []error
	for _, sub := range subs {
		select {
		case <-sub.finished:
			errs = append(errs, sub.err)
		case <-deadline.C:
			return &CloseError{Step: "subscriptions", Err: context.DeadlineExceeded}
		}
	}
	return errors.Join(errs...)
}

func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
