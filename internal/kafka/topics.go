// Package kafka holds the Kafka plumbing shared by producers, consumers and
// projections: topic names, client options and topic creation.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Config says where the log lives and how its topics are shaped.
type Config struct {
	Brokers    []string
	Prefix     string // topic name prefix, default "logbook."
	Partitions int32  // shared by every topic, default 12
	ClientID   string // default "logbook"
	// KeysCompactionLag bounds how long a replaced or erased record stays
	// in the workspace-keys topic (max.compaction.lag.ms; its segments roll
	// at the same interval), default 24h. Tests shorten it.
	KeysCompactionLag time.Duration
	// SASL authenticates to the brokers with SCRAM-SHA-512 when its User
	// is set; otherwise the connection is unauthenticated.
	SASL SASL
	// Hooks, when set, gives each new client its hooks (metrics: each
	// client needs its own, since kprom registers per client).
	Hooks func() []kgo.Hook
}

// SASL holds the SCRAM-SHA-512 credentials of one principal.
type SASL struct {
	User     string
	Password string
}

// String never shows the password.
func (s SASL) String() string { return "kafka.SASL{user: " + s.User + "}" }

// LogValue never shows the password.
func (s SASL) LogValue() slog.Value { return slog.StringValue(s.String()) }

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = "logbook."
	}
	if c.Partitions <= 0 {
		c.Partitions = 12
	}
	if c.ClientID == "" {
		c.ClientID = "logbook"
	}
	if c.KeysCompactionLag <= 0 {
		c.KeysCompactionLag = 24 * time.Hour
	}
	return c
}

// Validate rejects an unusable config; it changes nothing (WithDefaults
// fills the defaults).
func (c Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka: no brokers")
	}
	if c.Partitions < 0 || c.KeysCompactionLag < 0 {
		return errors.New("kafka: negative partitions or compaction lag")
	}
	return nil
}

// Topics are the full names of logbook's topics.
type Topics struct {
	Commands, Events, Results, DeciderState, DLQ, Access, Keys string
}

// Topics returns the topic names under the configured prefix.
func (c Config) Topics() Topics {
	return Topics{
		Commands:     c.Prefix + "commands",
		Events:       c.Prefix + "events",
		Results:      c.Prefix + "results",
		DeciderState: c.Prefix + "decider-state",
		DLQ:          c.Prefix + "dlq",
		Access:       c.Prefix + "access",
		Keys:         c.Prefix + "workspace-keys",
	}
}

// Opts are the client options every logbook client starts from.
func (c Config) Opts() []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.Brokers...),
		kgo.ClientID(c.ClientID),
		kgo.RequestTimeoutOverhead(10 * time.Second),
		kgo.RetryTimeout(30 * time.Second),
		kgo.DialTimeout(5 * time.Second),
	}
	if c.SASL.User != "" {
		opts = append(opts, kgo.SASL(scram.Auth{User: c.SASL.User, Pass: c.SASL.Password}.AsSha512Mechanism()))
	}
	if c.Hooks != nil {
		opts = append(opts, kgo.WithHooks(c.Hooks()...))
	}
	return opts
}

type topicSpec struct {
	name       string
	partitions int32
	configs    map[string]*string
}

func ptr(s string) *string { return &s }

func (c Config) specs(brokers int) []topicSpec {
	t := c.Topics()
	day := int64(24 * time.Hour / time.Millisecond)
	common := func(extra map[string]*string) map[string]*string {
		m := map[string]*string{"unclean.leader.election.enable": ptr("false")}
		if brokers >= 3 {
			m["min.insync.replicas"] = ptr("2")
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	return []topicSpec{
		{t.Commands, c.Partitions, common(map[string]*string{"retention.ms": ptr(strconv.FormatInt(7*day, 10))})},
		{t.Events, c.Partitions, common(map[string]*string{"retention.ms": ptr("-1"), "retention.bytes": ptr("-1")})},
		{t.Results, c.Partitions, common(map[string]*string{"retention.ms": ptr(strconv.FormatInt(day, 10))})},
		{t.DeciderState, c.Partitions, common(map[string]*string{"cleanup.policy": ptr("compact")})},
		{t.DLQ, 1, common(map[string]*string{"retention.ms": ptr(strconv.FormatInt(30*day, 10))})},
		// The access audit is kept like the events: auditors read it back.
		{t.Access, 1, common(map[string]*string{"retention.ms": ptr("-1"), "retention.bytes": ptr("-1")})},
		// Wrapped data keys, one record per workspace: compacted, so an
		// erased workspace's key (replaced by a tombstone) is gone from the
		// log within KeysCompactionLag plus a segment roll of the same
		// length, and the tombstone itself a delete.retention.ms later.
		{t.Keys, 1, common(keysConfigs(c.KeysCompactionLag))},
	}
}

func keysConfigs(lag time.Duration) map[string]*string {
	if lag <= 0 {
		lag = 24 * time.Hour
	}
	ms := strconv.FormatInt(int64(lag/time.Millisecond), 10)
	return map[string]*string{
		"cleanup.policy":            ptr("compact"),
		"max.compaction.lag.ms":     ptr(ms),
		"segment.ms":                ptr(ms),
		"min.cleanable.dirty.ratio": ptr("0.01"),
		"delete.retention.ms":       ptr(ms),
		"retention.ms":              ptr("-1"),
	}
}

// EnsureTopics creates logbook's topics if they are missing (idempotent) and
// checks that existing ones have the shared partition count: co-partitioning
// is what keeps one workspace on one partition of every topic.
func EnsureTopics(ctx context.Context, cfg Config) error {
	cl, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	meta, err := adm.BrokerMetadata(ctx)
	if err != nil {
		return fmt.Errorf("kafka: broker metadata: %w", err)
	}
	brokers := len(meta.Brokers)
	rf := int16(1)
	if brokers >= 3 {
		rf = 3
	}
	for _, s := range cfg.specs(brokers) {
		resp, err := adm.CreateTopic(ctx, s.partitions, rf, s.configs, s.name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("kafka: create topic %s: %w", s.name, err)
		}
	}
	// A new topic takes a moment to reach every broker's metadata; wait
	// until each partition has a leader so the roles do not start on a
	// half-created topic.
	for {
		err := topicsReady(ctx, adm, cfg)
		if err == nil {
			break
		}
		var shape *shapeError
		if errors.As(err, &shape) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka: topics not ready: %w", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// shapeError is a topic whose partition count differs from the config.
type shapeError struct {
	topic      string
	have, want int32
}

func (e *shapeError) Error() string {
	return fmt.Sprintf("kafka: topic %s has %d partitions, logbook is configured for %d: every topic must share one partition count", e.topic, e.have, e.want)
}

func topicsReady(ctx context.Context, adm *kadm.Client, cfg Config) error {
	t := cfg.Topics()
	names := []string{t.Commands, t.Events, t.Results, t.DeciderState, t.DLQ, t.Access, t.Keys}
	details, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return err
	}
	for _, name := range names {
		d, ok := details[name]
		if !ok {
			return fmt.Errorf("topic %s not in metadata yet", name)
		}
		if d.Err != nil {
			return fmt.Errorf("topic %s: %w", name, d.Err)
		}
		for _, p := range d.Partitions {
			if p.Err != nil || p.Leader < 0 {
				return fmt.Errorf("topic %s partition %d has no leader yet", name, p.Partition)
			}
		}
		if name == t.DLQ || name == t.Access || name == t.Keys {
			continue // not co-partitioned: keyed by the original key or the principal; every reader reads all keys
		}
		if n := int32(len(d.Partitions)); n != cfg.Partitions {
			return &shapeError{name, n, cfg.Partitions}
		}
	}
	return nil
}

// PartitionOf is the partition a workspace's records land on: the same
// murmur2 key hash Kafka's and franz-go's default partitioners use.
func PartitionOf(workspaceID string, partitions int32) int32 {
	p := kgo.StickyKeyPartitioner(nil).ForTopic("")
	return int32(p.Partition(&kgo.Record{Key: []byte(workspaceID)}, int(partitions)))
}
