package watermillkafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
)

// PublisherConfig configures a Publisher. Zero fields take the default each
// one documents; WithDefaults fills them in.
type PublisherConfig struct {
	// Kafka names the brokers; its Opts start every client. Required.
	Kafka kafka.Config

	// Marshaler turns messages into records, overriding the default
	// DefaultMarshaler{} (key from the "partition_key" metadata).
	Marshaler Marshaler

	// DeliveryTimeout bounds how long a record may wait to be
	// acknowledged before Publish fails, overriding the default 30s. With
	// idempotent writes franz-go enforces it only where that cannot break
	// sequence numbers, so a request already sent waits for its answer
	// (which the request timeouts of Kafka.Opts bound).
	DeliveryTimeout time.Duration

	// CloseTimeout bounds Close: the flush of what is still buffered and
	// the client shutdown, overriding the default 10s.
	CloseTimeout time.Duration

	// ExtraOpts are appended to the client options (TLS, SASL, a logger).
	// Options that change acks or idempotence are refused by franz-go or
	// break the at-least-once promise: do not pass them.
	ExtraOpts []kgo.Opt
}

// WithDefaults returns c with every unset field at its default.
func (c PublisherConfig) WithDefaults() PublisherConfig {
	c.Kafka = kafkaDefaults(c.Kafka)
	if c.Marshaler == nil {
		c.Marshaler = DefaultMarshaler{}
	}
	if c.DeliveryTimeout == 0 {
		c.DeliveryTimeout = 30 * time.Second
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 10 * time.Second
	}
	return c
}

// Validate reports the first field that cannot work. It changes nothing:
// call it on WithDefaults() to check what NewPublisher would run with.
func (c PublisherConfig) Validate() error {
	if len(c.Kafka.Brokers) == 0 {
		return &ConfigError{"Kafka.Brokers", "no brokers"}
	}
	if c.Marshaler == nil {
		return &ConfigError{"Marshaler", "missing"}
	}
	// franz-go refuses a record timeout under a second.
	if c.DeliveryTimeout < time.Second {
		return &ConfigError{"DeliveryTimeout", "must be at least 1s"}
	}
	if c.CloseTimeout <= 0 {
		return &ConfigError{"CloseTimeout", "must be positive"}
	}
	return nil
}

// kafkaDefaults fills the shared Kafka defaults (client id, prefix,
// partitions); an unusable config is left for Validate to report.
func kafkaDefaults(k kafka.Config) kafka.Config {
	filled := k.WithDefaults()
	filled.Brokers = append([]string(nil), k.Brokers...)
	return filled
}
