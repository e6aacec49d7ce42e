package watermillkafka

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
)

// InitialOffset is where a partition without a committed offset starts.
type InitialOffset string

const (
	// OffsetStart reads from the oldest record kept.
	OffsetStart InitialOffset = "start"
	// OffsetEnd reads only what is produced after the subscription starts.
	OffsetEnd InitialOffset = "end"
)

// SubscriberConfig configures a Subscriber. Zero fields take the default
// each one documents; WithDefaults fills them in.
type SubscriberConfig struct {
	// Kafka names the brokers; its Opts start every client. Required.
	Kafka kafka.Config

	// ConsumerGroup is the group the subscriptions join and commit in.
	// Empty means no group: each subscription reads the whole topic from
	// InitialOffset and commits nothing.
	ConsumerGroup string

	// InitialOffset is where a partition without a committed offset
	// starts, overriding the default OffsetStart.
	InitialOffset InitialOffset

	// ReadCommitted skips records of open and aborted transactions; off by
	// default (read_uncommitted).
	ReadCommitted bool

	// MaxInFlightPerPartition is how many delivered, unacked messages one
	// partition may have at once, overriding the default 1 (strict order
	// per partition). Above 1, messages of a partition are still handed
	// out in offset order, but one with the same OrderingKey as a message
	// in flight waits for it.
	MaxInFlightPerPartition int

	// OrderingKey is the key whose messages are handled one at a time,
	// overriding the default: the record key. An empty key orders nothing:
	// such a message runs beside any other. It is called once per record
	// with the subscription locked: keep it cheap.
	OrderingKey func(*kgo.Record) string

	// MaxUncommittedPerPartition bounds how far a partition may run ahead
	// of its oldest unacked message, counted in messages, overriding the
	// default 1024 (raised to MaxInFlightPerPartition if lower). The
	// committed offset stops at that message, so this caps what a crash
	// redelivers and the bookkeeping kept for acks out of order.
	MaxUncommittedPerPartition int

	// NackResendSleep is how long a nacked message waits before it is
	// delivered again, overriding the default 100ms.
	NackResendSleep time.Duration

	// CommitInterval is how often acked offsets are committed, overriding
	// the default 1s; franz-go allows no less than 100ms. They are also
	// committed when partitions are revoked and on Close.
	CommitInterval time.Duration

	// FetchMaxWait is how long a fetch waits on the broker for records,
	// overriding the default 500ms (franz-go's is 5s). A partition resumed
	// after a pause joins the next fetch to its broker, so this bounds how
	// long a resume can wait behind a fetch of idle partitions.
	FetchMaxWait time.Duration

	// FetchMaxPartitionBytes is the most one fetch returns per partition
	// (at least one batch), overriding franz-go's default 1MiB; with the
	// window it bounds the memory a paused partition holds.
	FetchMaxPartitionBytes int32

	// SessionTimeout, HeartbeatInterval and RebalanceTimeout tune the
	// group membership; zero keeps franz-go's defaults (45s, 3s, 60s).
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
	RebalanceTimeout  time.Duration

	// CloseTimeout bounds each step of closing a subscription (the final
	// commit, leaving the group), overriding the default 10s.
	CloseTimeout time.Duration

	// Unmarshaler turns records into messages, overriding the default
	// DefaultMarshaler{}.
	Unmarshaler Unmarshaler

	// InitializePartitions is the partition count of a topic that
	// SubscribeInitialize creates, overriding the default Kafka.Partitions.
	InitializePartitions int32
	// InitializeReplicationFactor is its replication factor, overriding
	// the default -1 (the broker's default).
	InitializeReplicationFactor int16

	// ExtraOpts are appended to the client options (TLS, SASL, a logger).
	// Options that change committing or the group callbacks break the
	// at-least-once promise: do not pass them.
	ExtraOpts []kgo.Opt
}

const (
	defaultMaxUncommitted = 1024
	minCommitInterval     = 100 * time.Millisecond // franz-go's floor for autocommits
)

// WithDefaults returns c with every unset field at its default.
func (c SubscriberConfig) WithDefaults() SubscriberConfig {
	c.Kafka = kafkaDefaults(c.Kafka)
	if c.InitialOffset == "" {
		c.InitialOffset = OffsetStart
	}
	if c.MaxInFlightPerPartition == 0 {
		c.MaxInFlightPerPartition = 1
	}
	if c.OrderingKey == nil {
		c.OrderingKey = RecordKey
	}
	if c.MaxUncommittedPerPartition == 0 {
		c.MaxUncommittedPerPartition = max(defaultMaxUncommitted, c.MaxInFlightPerPartition)
	}
	if c.NackResendSleep == 0 {
		c.NackResendSleep = 100 * time.Millisecond
	}
	if c.CommitInterval == 0 {
		c.CommitInterval = time.Second
	}
	if c.FetchMaxWait == 0 {
		c.FetchMaxWait = 500 * time.Millisecond
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 10 * time.Second
	}
	if c.Unmarshaler == nil {
		c.Unmarshaler = DefaultMarshaler{}
	}
	if c.InitializePartitions == 0 {
		c.InitializePartitions = c.Kafka.Partitions
	}
	if c.InitializeReplicationFactor == 0 {
		c.InitializeReplicationFactor = -1
	}
	return c
}

// RecordKey is the default OrderingKey: the record key.
func RecordKey(r *kgo.Record) string { return string(r.Key) }

// Validate reports the first field that cannot work. It changes nothing:
// call it on WithDefaults() to check what NewSubscriber would run with.
func (c SubscriberConfig) Validate() error {
	switch {
	case len(c.Kafka.Brokers) == 0:
		return &ConfigError{"Kafka.Brokers", "no brokers"}
	case c.InitialOffset != OffsetStart && c.InitialOffset != OffsetEnd:
		return &ConfigError{"InitialOffset", `must be "start" or "end"`}
	case c.MaxInFlightPerPartition < 1:
		return &ConfigError{"MaxInFlightPerPartition", "must be at least 1"}
	case c.MaxUncommittedPerPartition < c.MaxInFlightPerPartition:
		return &ConfigError{"MaxUncommittedPerPartition", "must be at least MaxInFlightPerPartition"}
	case c.OrderingKey == nil:
		return &ConfigError{"OrderingKey", "missing"}
	case c.Unmarshaler == nil:
		return &ConfigError{"Unmarshaler", "missing"}
	case c.NackResendSleep < 0:
		return &ConfigError{"NackResendSleep", "must not be negative"}
	case c.CommitInterval < minCommitInterval:
		return &ConfigError{"CommitInterval", "must be at least 100ms"}
	case c.FetchMaxWait <= 0:
		return &ConfigError{"FetchMaxWait", "must be positive"}
	case c.FetchMaxPartitionBytes < 0:
		return &ConfigError{"FetchMaxPartitionBytes", "must not be negative"}
	case c.SessionTimeout < 0 || c.HeartbeatInterval < 0 || c.RebalanceTimeout < 0:
		return &ConfigError{"SessionTimeout/HeartbeatInterval/RebalanceTimeout", "must not be negative"}
	case c.CloseTimeout <= 0:
		return &ConfigError{"CloseTimeout", "must be positive"}
	case c.InitializePartitions < 1 && c.InitializePartitions != -1:
		return &ConfigError{"InitializePartitions", "must be at least 1, or -1 for the broker's default"}
	case c.InitializeReplicationFactor < 1 && c.InitializeReplicationFactor != -1:
		return &ConfigError{"InitializeReplicationFactor", "must be at least 1, or -1 for the broker's default"}
	}
	return nil
}
