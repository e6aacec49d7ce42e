package watermillkafka_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/internal/watermillkafka"
)

// env is one test's broker, topic and group.
type env struct {
	t     *testing.T
	k     kafka.Config
	topic string
	group string
	pub   *watermillkafka.Publisher
}

func newEnv(t *testing.T, partitions int32) *env {
	t.Helper()
	k := kafkatest.Config(t, partitions)
	e := &env{t: t, k: k, topic: k.Prefix + "topic", group: k.Prefix + "group"}
	pub, err := watermillkafka.NewPublisher(watermillkafka.PublisherConfig{Kafka: k})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pub.Close() })
	e.pub = pub
	sub := e.subscriber(watermillkafka.SubscriberConfig{})
	if err := sub.SubscribeInitialize(e.topic); err != nil {
		t.Fatal(err)
	}
	return e
}

// subscriber starts a Subscriber on the env's broker with quick group
// heartbeats; cfg's zero fields take the package defaults.
func (e *env) subscriber(cfg watermillkafka.SubscriberConfig) *watermillkafka.Subscriber {
	e.t.Helper()
	cfg.Kafka = e.k
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 100 * time.Millisecond
	}
	if cfg.SessionTimeout == 0 {
		cfg.SessionTimeout = 6 * time.Second
	}
	sub, err := watermillkafka.NewSubscriber(cfg, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = sub.Close() })
	return sub
}

func (e *env) subscribe(sub *watermillkafka.Subscriber) <-chan *message.Message {
	e.t.Helper()
	ch, err := sub.Subscribe(context.Background(), e.topic)
	if err != nil {
		e.t.Fatal(err)
	}
	return ch
}

// publish publishes n messages, one Publish each so each is its own batch,
// keyed by key(i) (no key when it returns ""); it returns their UUIDs.
func (e *env) publish(n int, key func(i int) string) []string {
	e.t.Helper()
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("m%04d", i)
		msg := message.NewMessage(ids[i], []byte(strconv.Itoa(i)))
		if k := key(i); k != "" {
			msg.Metadata.Set(watermillkafka.PartitionKeyMetadata, k)
		}
		if err := e.pub.Publish(e.topic, msg); err != nil {
			e.t.Fatal(err)
		}
	}
	return ids
}

func noKey(int) string { return "" }

// committed returns the group's committed offset per partition (absent when
// none).
func (e *env) committed() map[int32]int64 {
	e.t.Helper()
	cl, err := kgo.NewClient(e.k.Opts()...)
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := kadm.NewClient(cl).FetchOffsets(ctx, e.group)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == e.topic && o.Err == nil && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// receive returns the next message, failing the test after timeout.
func receive(t *testing.T, ch <-chan *message.Message, timeout time.Duration) *message.Message {
	t.Helper()
	select {
	case msg, ok := <-ch:
		if !ok {
			t.Fatal("channel closed")
		}
		return msg
	case <-time.After(timeout):
		t.Fatalf("no message in %v", timeout)
		return nil
	}
}

// nothing fails the test if a message arrives within d.
func nothing(t *testing.T, ch <-chan *message.Message, d time.Duration) {
	t.Helper()
	select {
	case msg, ok := <-ch:
		if ok {
			t.Fatalf("got %s (offset %s), want nothing", msg.UUID, msg.Metadata.Get(watermillkafka.OffsetMetadata))
		}
	case <-time.After(d):
	}
}

func offsetOf(t *testing.T, msg *message.Message) int64 {
	t.Helper()
	pos, ok := watermillkafka.PositionOf(msg)
	if !ok {
		t.Fatalf("message %s has no position", msg.UUID)
	}
	return pos.Offset
}

// eventually polls cond until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
