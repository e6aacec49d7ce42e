package decider_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/consumers/decider"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/internal/signing"
)

// BenchmarkDeciderOnAPrefilledLog measures the decider alone: a log of
// signed commands (BENCH_DECIDER_WORKSPACES workspace creates, then
// BENCH_DECIDER_TASKS task creates spread over them) is written first, then
// one decider, verifying every signature, decides it all. Reported:
// commands/s from its start to its last transaction.
func BenchmarkDeciderOnAPrefilledLog(b *testing.B) {
	spaces := kafkatest.EnvInt("BENCH_DECIDER_WORKSPACES", 10000)
	tasks := kafkatest.EnvInt("BENCH_DECIDER_TASKS", 50000)
	priv, pub, err := signing.NewKey("api-1")
	if err != nil {
		b.Fatal(err)
	}
	signer, _ := signing.ParseSigner(priv)
	verifier, _ := signing.ParseVerifier(pub)
	for range b.N {
		cfg := kafkatest.Config(b, 6)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		if err := kafka.EnsureTopics(ctx, cfg); err != nil {
			b.Fatal(err)
		}
		total := prefill(ctx, b, cfg, signer, spaces, tasks)

		d, err := decider.New(decider.Config{Kafka: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Verifier: verifier})
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		start := time.Now()
		done := make(chan error, 1)
		go func() { done <- d.Run(ctx) }()
		for d.Snapshot().Commands < int64(total) {
			select {
			case err := <-done:
				b.Fatalf("decider stopped: %v", err)
			case <-ctx.Done():
				b.Fatalf("decided %d of %d commands in time", d.Snapshot().Commands, total)
			case <-time.After(20 * time.Millisecond):
			}
		}
		took := time.Since(start)
		b.StopTimer()
		st := d.Snapshot()
		if st.Accepted != int64(total) {
			b.Fatalf("accepted %d of %d (rejected %d)", st.Accepted, total, st.Rejected)
		}
		b.ReportMetric(float64(total)/took.Seconds(), "commands/s")
		b.ReportMetric(float64(st.Transactions), "transactions")
		cancel()
		d.Close()
		<-done
	}
}

// prefill writes the signed commands, each workspace's create first.
func prefill(ctx context.Context, b *testing.B, cfg kafka.Config, signer *signing.Signer, spaces, tasks int) int {
	cl, err := kgo.NewClient(append(cfg.Opts(), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond))...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	cmds, err := kafkatest.CreateCommands(spaces, tasks)
	if err != nil {
		b.Fatal(err)
	}
	for batch := range slices.Chunk(cmds, 512) {
		if err := signer.SignCommands(batch); err != nil {
			b.Fatal(err)
		}
		recs := make([]*kgo.Record, len(batch))
		for i, env := range batch {
			val, _ := json.Marshal(env)
			recs[i] = &kgo.Record{Topic: cfg.Topics().Commands, Key: []byte(env.WorkspaceID), Value: val}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	return len(cmds)
}

// BenchmarkRebuildState measures `logbook decider rebuild-state`: a decider
// decides BENCH_REBUILD_STATE_WORKSPACES workspace creates and
// BENCH_REBUILD_STATE_TASKS task creates, stops; the decider-state topic is
// deleted and made again; then the state is rebuilt from the events and
// results. Reported: events/s and the seconds it took.
func BenchmarkRebuildState(b *testing.B) {
	spaces := kafkatest.EnvInt("BENCH_REBUILD_STATE_WORKSPACES", 10000)
	tasks := kafkatest.EnvInt("BENCH_REBUILD_STATE_TASKS", 90000)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for range b.N {
		cfg := kafkatest.Config(b, 6)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		if err := kafka.EnsureTopics(ctx, cfg); err != nil {
			b.Fatal(err)
		}
		priv, _, _ := signing.NewKey("api-1")
		signer, _ := signing.ParseSigner(priv)
		total := prefill(ctx, b, cfg, signer, spaces, tasks)
		d, err := decider.New(decider.Config{Kafka: cfg, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		dctx, dcancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- d.Run(dctx) }()
		for d.Snapshot().Commands < int64(total) && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		dcancel()
		d.Close()
		<-done
		kafkatest.LoseTopic(b, cfg, cfg.Topics().DeciderState)

		b.ResetTimer()
		start := time.Now()
		parts, err := decider.RebuildState(ctx, decider.Config{Kafka: cfg, Logger: quiet}, nil)
		took := time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		events := 0
		for _, p := range parts {
			events += p.Events
		}
		if events != total {
			b.Fatalf("rebuilt from %d events, want %d", events, total)
		}
		b.ReportMetric(float64(events)/took.Seconds(), "events/s")
		b.ReportMetric(took.Seconds(), "seconds")
		cancel()
	}
}
