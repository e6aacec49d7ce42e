package kafkatest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
)

// LoseTopic deletes one of cfg's topics, waits until the cluster no longer
// has it (a real broker deletes in the background), and makes it again,
// empty, waiting until every partition answers: a lost topic, for recovery
// drills.
func LoseTopic(t testing.TB, cfg kafka.Config, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.DeleteTopics(ctx, topic); err != nil {
		t.Fatalf("delete %s: %v", topic, err)
	}
	until := func(what string, cond func() bool) {
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("%s: timed out", what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	until(topic+" gone", func() bool {
		md, err := adm.ListTopics(ctx, topic)
		return err == nil && !md.Has(topic)
	})
	until(topic+" made again", func() bool {
		if kafka.EnsureTopics(ctx, cfg) != nil {
			return false
		}
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil || ends.Error() != nil {
			return false
		}
		n := 0
		ends.Each(func(o kadm.ListedOffset) { n++ })
		return n > 0
	})
}
