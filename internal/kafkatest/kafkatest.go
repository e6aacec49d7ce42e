// Package kafkatest gives tests a Kafka to talk to: an in-process kfake
// cluster by default, or the real broker named by LOGBOOK_TEST_KAFKA_BROKERS
// (the same tests run on both; topics get a unique prefix per test).
package kafkatest

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/logbook-dev/logbook/internal/kafka"
)

var seq atomic.Int64

// Config returns a Kafka config with its own topic prefix on the test broker.
func Config(t testing.TB, partitions int32) kafka.Config {
	t.Helper()
	prefix := fmt.Sprintf("t%d-%d-%d.", os.Getpid(), time.Now().UnixNano()%1e6, seq.Add(1))
	cfg := kafka.Config{Brokers: Brokers(t), Prefix: prefix, Partitions: partitions, SASL: SASL()}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// SASL is the principal tests use on the real broker:
// LOGBOOK_TEST_KAFKA_SASL, "user:password" (a secure cluster's admin);
// none on kfake or an open broker.
func SASL() kafka.SASL {
	user, pass, _ := strings.Cut(os.Getenv("LOGBOOK_TEST_KAFKA_SASL"), ":")
	return kafka.SASL{User: user, Password: pass}
}

// Real reports whether tests run against a real broker.
func Real() bool { return os.Getenv("LOGBOOK_TEST_KAFKA_BROKERS") != "" }

// Brokers returns the seed brokers of the test broker, starting a kfake
// cluster for this test when no real broker is configured.
func Brokers(t testing.TB) []string {
	t.Helper()
	if b := os.Getenv("LOGBOOK_TEST_KAFKA_BROKERS"); b != "" {
		return strings.Split(b, ",")
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}
