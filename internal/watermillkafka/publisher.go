package watermillkafka

import (
	"context"
	"errors"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Publisher is a message.Publisher producing to Kafka. It is safe for
// concurrent use.
type Publisher struct {
	cfg PublisherConfig
	cl  *kgo.Client

	mu     sync.Mutex
	closed bool
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher starts a Publisher.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts := append(cfg.Kafka.Opts(),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent writes are franz-go's default and need all acks
		kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout),
	)
	cl, err := kgo.NewClient(append(opts, cfg.ExtraOpts...)...)
	if err != nil {
		return nil, err
	}
	return &Publisher{cfg: cfg, cl: cl}, nil
}

// Publish produces the messages to topic and returns once Kafka has
// acknowledged all of them, or with a *PublishError for each one that
// failed (joined). Messages of one key keep their order.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return ErrPublisherClosed
	}
	recs := make([]*kgo.Record, 0, len(msgs))
	ids := make(map[*kgo.Record]string, len(msgs))
	for _, msg := range msgs {
		rec, err := p.cfg.Marshaler.Marshal(topic, msg)
		if err != nil {
			return &PublishError{Topic: topic, UUID: msg.UUID, Err: err}
		}
		rec.Topic = topic
		recs = append(recs, rec)
		ids[rec] = msg.UUID
	}
	// No context: a record already sent cannot be taken back without
	// risking its idempotent sequence. DeliveryTimeout bounds the wait,
	// and Close fails what is left with kgo.ErrClientClosed.
	var errs []error
	for _, res := range p.cl.ProduceSync(context.Background(), recs...) {
		if res.Err != nil {
			errs = append(errs, &PublishError{Topic: topic, UUID: ids[res.Record], Err: res.Err})
		}
	}
	return errors.Join(errs...)
}

// Close flushes what is buffered (so the Publish calls under way get their
// answer) and closes the client, within CloseTimeout. A Publish still under
// way when the time runs out fails with kgo.ErrClientClosed. Publish after
// Close fails with ErrPublisherClosed; closing twice is harmless.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.CloseTimeout)
	defer cancel()
	err := p.cl.Flush(ctx)
	p.cl.Close() // a producer-only client has no group to leave: this does not wait on the network
	if err != nil {
		return &CloseError{Step: "flush", Err: err}
	}
	return nil
}
