package watermillkafka_test

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/watermillkafka"
)

func TestSubscriberConfigDefaults(t *testing.T) {
	c := watermillkafka.SubscriberConfig{Kafka: kafka.Config{Brokers: []string{"b:9092"}}}.WithDefaults()
	switch {
	case c.InitialOffset != watermillkafka.OffsetStart,
		c.MaxInFlightPerPartition != 1,
		c.MaxUncommittedPerPartition != 1024,
		c.NackResendSleep != 100*time.Millisecond,
		c.CommitInterval != time.Second,
		c.FetchMaxWait != 500*time.Millisecond,
		c.CloseTimeout != 10*time.Second,
		c.InitializePartitions != 12, // kafka.Config's default
		c.InitializeReplicationFactor != -1,
		c.Kafka.ClientID != "logbook",
		c.OrderingKey == nil || c.OrderingKey(&kgo.Record{Key: []byte("k")}) != "k",
		c.Unmarshaler == nil:
		t.Fatalf("defaults: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	wide := watermillkafka.SubscriberConfig{Kafka: c.Kafka, MaxInFlightPerPartition: 2000}.WithDefaults()
	if wide.MaxUncommittedPerPartition != 2000 {
		t.Fatalf("span %d below a window of 2000", wide.MaxUncommittedPerPartition)
	}
}

func TestSubscriberConfigValidate(t *testing.T) {
	base := watermillkafka.SubscriberConfig{Kafka: kafka.Config{Brokers: []string{"b:9092"}}}
	for _, tc := range []struct {
		field string
		edit  func(*watermillkafka.SubscriberConfig)
	}{
		{"Kafka.Brokers", func(c *watermillkafka.SubscriberConfig) { c.Kafka.Brokers = nil }},
		{"InitialOffset", func(c *watermillkafka.SubscriberConfig) { c.InitialOffset = "middle" }},
		{"MaxInFlightPerPartition", func(c *watermillkafka.SubscriberConfig) { c.MaxInFlightPerPartition = -1 }},
		{"MaxUncommittedPerPartition", func(c *watermillkafka.SubscriberConfig) {
			c.MaxInFlightPerPartition, c.MaxUncommittedPerPartition = 8, 4
		}},
		{"CommitInterval", func(c *watermillkafka.SubscriberConfig) { c.CommitInterval = 10 * time.Millisecond }},
		{"NackResendSleep", func(c *watermillkafka.SubscriberConfig) { c.NackResendSleep = -time.Second }},
		{"InitializePartitions", func(c *watermillkafka.SubscriberConfig) { c.InitializePartitions = -5 }},
	} {
		c := base
		tc.edit(&c)
		err := c.WithDefaults().Validate()
		var ce *watermillkafka.ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("%s: got %v", tc.field, err)
		}
		if _, err := watermillkafka.NewSubscriber(c, nil); !errors.As(err, &ce) {
			t.Errorf("%s: NewSubscriber accepted it: %v", tc.field, err)
		}
	}
}

// Validate reports and changes nothing: defaults come from WithDefaults.
func TestValidateHasNoSideEffects(t *testing.T) {
	c := watermillkafka.SubscriberConfig{Kafka: kafka.Config{Brokers: []string{"b:9092"}}}
	if err := c.Validate(); err == nil {
		t.Fatal("a config without defaults validated: MaxInFlightPerPartition 0 cannot work")
	}
	if c.MaxInFlightPerPartition != 0 || c.InitialOffset != "" || c.Kafka.ClientID != "" {
		t.Fatalf("Validate changed the config: %+v", c)
	}
	p := watermillkafka.PublisherConfig{Kafka: kafka.Config{Brokers: []string{"b:9092"}}}
	if err := p.WithDefaults().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := p.Validate(); err == nil || p.DeliveryTimeout != 0 {
		t.Fatalf("publisher Validate: %v, %+v", err, p)
	}
}
