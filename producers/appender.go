// Package producers is the HTTP command API: it authenticates, validates and
// appends commands to the commands topic, and answers with their outcome
// when the client asks to wait.
package producers

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/schemas"
)

// Appender writes commands to the commands topic with an idempotent, acks=all
// producer keyed by workspace id, so one workspace's commands keep their order
// on one partition.
type Appender struct {
	cl    *kgo.Client
	topic string
}

// NewAppender connects a producer.
func NewAppender(cfg kafka.Config) (*Appender, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(cfg.Opts(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.RecordDeliveryTimeout(15*time.Second),
		kgo.ProducerBatchCompression(kgo.ZstdCompression(), kgo.NoCompression()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("producers: %w", err)
	}
	return &Appender{cl: cl, topic: cfg.Topics().Commands}, nil
}

// Append writes one command and returns once the log has acknowledged it.
func (a *Appender) Append(ctx context.Context, env schemas.CommandEnvelope) error {
	val, err := json.Marshal(env)
	if err != nil {
		return err
	}
	r := &kgo.Record{Topic: a.topic, Key: []byte(env.WorkspaceID), Value: val, Headers: schemas.CommandHeaders(env)}
	return a.cl.ProduceSync(ctx, r).FirstErr()
}

// Close flushes and closes the producer.
func (a *Appender) Close() { a.cl.Close() }
