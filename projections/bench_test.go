package projections_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/consumers/decider"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/internal/pg"
	"github.com/logbook-dev/logbook/internal/pgtest"
	"github.com/logbook-dev/logbook/projections"
)

// BenchmarkProjectorsOnAPrefilledLog measures the projections alone: a
// decider first turns BENCH_PROJECTOR_WORKSPACES workspace creates and
// BENCH_PROJECTOR_TASKS task creates into events and results, then the two
// projectors logbook runs (read_models over events, command_results over
// results) build Postgres from that log side by side. Reported: commands/s
// from their start until both hold everything.
func BenchmarkProjectorsOnAPrefilledLog(b *testing.B) {
	spaces := kafkatest.EnvInt("BENCH_PROJECTOR_WORKSPACES", 10000)
	tasks := kafkatest.EnvInt("BENCH_PROJECTOR_TASKS", 50000)
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
		cfg := kafkatest.Config(b, 6)
		if err := kafka.EnsureTopics(ctx, cfg); err != nil {
			b.Fatal(err)
		}
		pool, err := pg.Connect(ctx, pgtest.URL(b), 10)
		if err != nil {
			b.Fatal(err)
		}
		if err := projections.Migrate(ctx, pool); err != nil {
			b.Fatal(err)
		}
		total := spaces + tasks
		prefillDecided(ctx, b, cfg, spaces, tasks)

		var stops []func()
		b.ResetTimer()
		start := time.Now()
		for _, name := range []string{"read_models", "command_results"} {
			topic, apply := cfg.Topics().Events, projections.Applier(projections.ReadModels{})
			if name == "command_results" {
				topic, apply = cfg.Topics().Results, projections.Results{}
			}
			p, err := projections.NewProjector(projections.ProjectorConfig{Kafka: cfg, Name: name, Topic: topic,
				Pool: pool, Apply: apply, Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			pctx, pcancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() { defer close(done); _ = p.Run(pctx) }()
			stops = append(stops, func() { pcancel(); p.Close(); <-done })
		}
		for {
			var got, results int
			if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM commands)`).Scan(&got, &results); err != nil {
				b.Fatal(err)
			}
			if got == tasks && results == total {
				break
			}
			if ctx.Err() != nil {
				b.Fatalf("projected %d of %d tasks and %d of %d results in time", got, tasks, results, total)
			}
			time.Sleep(50 * time.Millisecond)
		}
		took := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(total)/took.Seconds(), "commands/s")
		for _, stop := range stops {
			stop()
		}
		pool.Close()
		cancel()
	}
}

// prefillDecided writes the commands and lets a decider decide them all.
func prefillDecided(ctx context.Context, b *testing.B, cfg kafka.Config, spaces, tasks int) {
	cl, err := kgo.NewClient(append(cfg.Opts(), kgo.ProducerLinger(5*time.Millisecond))...)
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	cmds, err := kafkatest.CreateCommands(spaces, tasks)
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]*kgo.Record, len(cmds))
	for i, env := range cmds {
		val, _ := json.Marshal(env)
		recs[i] = &kgo.Record{Topic: cfg.Topics().Commands, Key: []byte(env.WorkspaceID), Value: val}
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	d, err := decider.New(decider.Config{Kafka: cfg, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	dctx, dcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(dctx) }()
	for d.Snapshot().Commands < int64(spaces+tasks) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	dcancel()
	d.Close()
	<-done
	if st := d.Snapshot(); st.Accepted != int64(spaces+tasks) {
		b.Fatalf("the decider accepted %d of %d commands", st.Accepted, spaces+tasks)
	}
}
