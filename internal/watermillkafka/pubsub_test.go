package watermillkafka_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"

	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/internal/watermillkafka"
)

// Watermill's contract suite, on kfake or on the broker named by
// LOGBOOK_TEST_KAFKA_BROKERS. Topics are created by SubscribeInitialize,
// which every suite test calls before publishing, with suitePartitions
// partitions, as watermill-kafka's own suite does with its
// InitializeTopicDetails.
//
// The suite's order tests (TestPublishSubscribeInOrder, TestNoAck) publish
// unkeyed messages and check one order over the whole subscription, while
// Kafka orders per partition. So the ordered run keys every message alike,
// putting them all on one partition, as watermill-kafka's ordered run does
// with its partitioning marshaler; the other run leaves them unkeyed, spread
// over the partitions.
const suitePartitions = 8

// suite returns the constructors for one run. Every subscriber a suite test
// builds joins the same group (named after the test), so the suite's
// multiplied subscribers share the partitions and a reopened subscriber
// resumes from what its predecessor committed.
func suite(k kafka.Config, maxInFlight int, key watermillkafka.KeyFunc) (tests.PubSubConstructor, tests.ConsumerGroupPubSubConstructor) {
	withGroup := func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
		t.Helper()
		pub, err := watermillkafka.NewPublisher(watermillkafka.PublisherConfig{
			Kafka:     k,
			Marshaler: watermillkafka.DefaultMarshaler{Key: key},
		})
		if err != nil {
			t.Fatal(err)
		}
		sub, err := watermillkafka.NewSubscriber(watermillkafka.SubscriberConfig{
			Kafka:                   k,
			ConsumerGroup:           group,
			MaxInFlightPerPartition: maxInFlight,
			// TestContinueAfterErrors nacks 300 times in a row: at the
			// default 100ms that alone is 30s.
			NackResendSleep:      5 * time.Millisecond,
			CommitInterval:       100 * time.Millisecond,
			HeartbeatInterval:    100 * time.Millisecond,
			SessionTimeout:       6 * time.Second, // a real broker's minimum
			RebalanceTimeout:     10 * time.Second,
			InitializePartitions: suitePartitions,
		}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return pub, sub
	}
	perTest := func(t *testing.T) (message.Publisher, message.Subscriber) {
		t.Helper()
		return withGroup(t, k.Prefix+"g-"+strings.ReplaceAll(t.Name(), "/", "."))
	}
	return perTest, withGroup
}

// restartCommand kills one broker of the cluster `make test-kafka` runs
// (named by LOGBOOK_TEST_KAFKA_CLUSTER_DIR) and starts it again, for the
// suite's TestReconnect; without one the test is skipped (kfake lives
// inside the test process and cannot be restarted by a command).
//
// The suite runs the command in a goroutine it never waits for, twice per
// test, so the command returns at once: it kills the broker and leaves the
// restart to a detached start.sh that holds restart.lock until the node is
// back. A restart asked for while one is under way is skipped. A command
// that outlived its test would hold the test binary's output open and
// could kill the broker under the next package's tests; test-kafka.sh
// waits on the lock before it goes on.
func restartCommand() []string {
	dir := os.Getenv("LOGBOOK_TEST_KAFKA_CLUSTER_DIR")
	if dir == "" || !kafkatest.Real() {
		return nil
	}
	node := filepath.Join(dir, "node2")
	// Only the broker's own process is killed (its pid file may be stale).
	script := `exec 9>"$1/restart.lock" && flock -n 9 || exit 0
pid=$(cat "$1/pid" 2>/dev/null) || pid=0
if [ "$pid" -gt 1 ] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$1/server.properties"; then
  kill -9 "$pid"
fi
setsid bash "$1/start.sh" </dev/null >>"$1/restart.log" 2>&1 &`
	return []string{"bash", "-c", script, "restart", node}
}

func features(k kafka.Config, ordered bool) tests.Features {
	return tests.Features{
		RestartServiceCommand: restartCommand(),
		ConsumerGroups:        true,
		ExactlyOnceDelivery:   false,
		GuaranteedOrder:       ordered,
		Persistent:            true,
		GenerateTopicFunc: func(tc tests.TestContext) string {
			return k.Prefix + "topic-" + tc.TestID.String()
		},
	}
}

// TestPubSubOrdered is the suite with strict per-partition order
// (MaxInFlightPerPartition 1).
func TestPubSubOrdered(t *testing.T) {
	t.Parallel()
	k := kafkatest.Config(t, suitePartitions)
	oneKey := func(string, *message.Message) ([]byte, error) { return []byte("all"), nil }
	perTest, withGroup := suite(k, 1, oneKey)
	tests.TestPubSub(t, features(k, true), perTest, withGroup)
}

// TestPubSubParallel is the suite with several messages of a partition in
// flight at once: order is not claimed (unkeyed messages have no ordering
// key), everything else is.
func TestPubSubParallel(t *testing.T) {
	t.Parallel()
	k := kafkatest.Config(t, suitePartitions)
	perTest, withGroup := suite(k, 8, nil)
	tests.TestPubSub(t, features(k, false), perTest, withGroup)
}

// TestPubSubNoGroup is the suite without a consumer group: every
// subscriber reads the whole topic from the start, so a new one receives
// old messages.
func TestPubSubNoGroup(t *testing.T) {
	t.Parallel()
	k := kafkatest.Config(t, suitePartitions)
	oneKey := func(string, *message.Message) ([]byte, error) { return []byte("all"), nil }
	_, withGroup := suite(k, 1, oneKey)
	noGroup := func(t *testing.T) (message.Publisher, message.Subscriber) { return withGroup(t, "") }
	f := features(k, true)
	f.ConsumerGroups = false
	f.NewSubscriberReceivesOldMessages = true
	tests.TestPubSub(t, f, noGroup, nil)
}
