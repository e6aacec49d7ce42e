package projections_test

import (
	"context"
	"encoding/json"
	"os"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
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

// BenchmarkRebuild measures `logbook projections rebuild`: BENCH_REBUILD_WORKSPACES
// workspace creates and BENCH_REBUILD_TASKS task creates decided into a log,
// then new read models filled from offset 0 (events, results and the access
// topic side by side) and switched in. Beside it, the ceiling: raw COPY of
// as many event-trail rows into a copy of the events table in the same
// Postgres.
func BenchmarkRebuild(b *testing.B) {
	spaces := kafkatest.EnvInt("BENCH_REBUILD_WORKSPACES", 1000)
	tasks := kafkatest.EnvInt("BENCH_REBUILD_TASKS", 20000)
	for range b.N {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		cfg := kafkatest.Config(b, 6)
		if err := kafka.EnsureTopics(ctx, cfg); err != nil {
			b.Fatal(err)
		}
		url := pgtest.URL(b)
		pool, err := pg.Connect(ctx, url, 4)
		if err != nil {
			b.Fatal(err)
		}
		if err := projections.Migrate(ctx, pool); err != nil {
			b.Fatal(err)
		}
		prefillDecided(ctx, b, cfg, spaces, tasks)
		events := spaces + tasks

		if f := os.Getenv("BENCH_REBUILD_CPUPROFILE"); f != "" {
			out, err := os.Create(f)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.StartCPUProfile(out); err != nil {
				b.Fatal(err)
			}
			defer pprof.StopCPUProfile()
		}
		b.ResetTimer()
		rep, err := projections.Rebuild(ctx, projections.RebuildConfig{
			Kafka: cfg, Live: pool, Projections: projections.Projections(cfg.Topics(), nil), Logger: quiet,
			Connect: func(ctx context.Context, schema string) (*pgxpool.Pool, error) {
				return pg.ConnectIn(ctx, url, schema, 8)
			},
		})
		b.StopTimer()
		pprof.StopCPUProfile()
		if err != nil {
			b.Fatal(err)
		}
		var got int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&got); err != nil || got != events {
			b.Fatalf("%d events in the rebuilt trail, want %d (%v)", got, events, err)
		}
		copyRate := rawCopy(ctx, b, pool, events)
		rate := float64(events) / rep.Fill.Seconds()
		b.ReportMetric(rate, "events/s")
		b.ReportMetric(float64(rep.Records)/rep.Fill.Seconds(), "records/s")
		b.ReportMetric(copyRate, "copy_rows/s")
		b.ReportMetric(rate/copyRate, "ratio_to_copy")
		b.ReportMetric(float64(rep.Hold.Milliseconds()), "hold_ms")
		pool.Close()
		cancel()
	}
}

// rawCopy copies n rows shaped like the event trail's (taken from it) into
// a copy of the events table and returns rows/s.
func rawCopy(ctx context.Context, b *testing.B, pool *pgxpool.Pool, n int) float64 {
	cols := []string{"workspace_id", "seq", "id", "type", "version", "aggregate_type", "aggregate_id",
		"aggregate_version", "command_id", "correlation_id", "actor_id", "actor_role", "occurred_at", "payload",
		"signed", "prev_hash", "hash", "log_partition", "log_offset"}
	rows, err := pool.Query(ctx, `SELECT `+strings.Join(cols, ", ")+` FROM events`)
	if err != nil {
		b.Fatal(err)
	}
	var data [][]any
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			b.Fatal(err)
		}
		data = append(data, v)
	}
	if rows.Err() != nil || len(data) != n {
		b.Fatalf("read %d event rows of %d: %v", len(data), n, rows.Err())
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE copy_ceiling (LIKE events INCLUDING ALL)`); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := pool.CopyFrom(ctx, pgx.Identifier{"copy_ceiling"}, cols, pgx.CopyFromRows(data)); err != nil {
		b.Fatal(err)
	}
	return float64(n) / time.Since(start).Seconds()
}
