package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/logbook-dev/logbook/consumers/decider"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/keyring"
	"github.com/logbook-dev/logbook/internal/pg"
	"github.com/logbook-dev/logbook/projections"
)

func runProjections(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "rebuild" && args[0] != "checksum") {
		return errors.New("usage: logbook projections rebuild [--keep-previous] | checksum [--portable] [--json]")
	}
	cfg, err := baseConfig()
	if err != nil {
		return err
	}
	fs := newFlags("projections "+args[0], stderr)
	dir := fs.String("data", settingValue("LOGBOOK_DATA"), "a `logbook dev` data directory to find the database and broker")
	keep := fs.Bool("keep-previous", false, "rebuild: keep the replaced read models in schema "+projections.PreviousSchema)
	quiet := fs.Bool("quiet", false, "rebuild: no progress on stderr")
	asJSON := fs.Bool("json", false, "checksum: JSON lines instead of a table")
	portable := fs.Bool("portable", false, "checksum: leave out log offsets and checkpoints, to compare with read models built in another cluster")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	url, err := toolDatabaseURL(cfg, *dir)
	if err != nil {
		return err
	}
	pool, err := toolDatabase(ctx, cfg, *dir)
	if err != nil {
		return err
	}
	defer pool.Close()
	if args[0] == "checksum" {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		defer conn.Release()
		// Whole-table scans outlast the pool's statement timeout.
		if _, err := conn.Exec(ctx, `SET statement_timeout = 0`); err != nil {
			return err
		}
		sums, err := projections.Checksums(ctx, conn, *portable)
		if err != nil {
			return err
		}
		for _, c := range sums {
			if *asJSON {
				if err := json.NewEncoder(stdout).Encode(c); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(stdout, "%-24s %10d  %s\n", c.Table, c.Rows, c.Digest)
		}
		return nil
	}
	// Applying an erasure destroys the workspace's data key (again, which
	// does nothing): a rebuild needs the log's key topic as well.
	if err := toolKafka(&cfg, *dir); err != nil {
		return err
	}
	ring, err := keyring.New(cfg.Kafka, nil)
	if err != nil {
		return err
	}
	defer ring.Close()
	rc := projections.RebuildConfig{
		Kafka: cfg.Kafka,
		Live:  pool,
		Connect: func(ctx context.Context, schema string) (*pgxpool.Pool, error) {
			return pg.ConnectIn(ctx, url, schema, 8)
		},
		Projections:  projections.Projections(cfg.Kafka.Topics(), ring),
		KeepPrevious: *keep,
		Logger:       cfg.logger(stderr),
	}
	if !*quiet {
		rc.Progress = func(p projections.RebuildProgress) {
			eta := "unknown"
			if p.ETA > 0 {
				eta = p.ETA.Round(time.Second).String()
			}
			fmt.Fprintf(stderr, "rebuild: %d records applied, %d to go, %.0f records/s, ETA %s\n", p.Applied, p.Remaining, p.PerSecond, eta)
		}
	}
	rep, err := projections.Rebuild(ctx, rc)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "rebuilt the read models in schema %s from %d records: filled in %s (%.0f records/s), live projection held %s, queries waited at most %s",
		rep.Schema, rep.Records, rep.Fill.Round(time.Millisecond), float64(rep.Records)/rep.Fill.Seconds(),
		rep.Hold.Round(time.Millisecond), rep.Switch.Round(time.Millisecond))
	if rep.Kept {
		fmt.Fprintf(stdout, "; the replaced read models are in schema %s", projections.PreviousSchema)
	}
	fmt.Fprintln(stdout)
	return nil
}

func runDeciderRebuildState(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := baseConfig()
	if err != nil {
		return err
	}
	fs := newFlags("decider rebuild-state", stderr)
	dir := fs.String("data", settingValue("LOGBOOK_DATA"), "a `logbook dev` data directory to find the broker")
	asJSON := fs.Bool("json", false, "a JSON line per partition")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := toolKafka(&cfg, *dir); err != nil {
		return err
	}
	// The topic may be gone altogether: make it again, empty.
	if err := kafka.EnsureTopics(ctx, cfg.Kafka); err != nil {
		return err
	}
	start := time.Now()
	parts, err := decider.RebuildState(ctx, decider.Config{Kafka: cfg.Kafka, Logger: cfg.logger(stderr)}, func(p decider.RebuiltPartition) {
		if *asJSON {
			_ = json.NewEncoder(stdout).Encode(p)
			return
		}
		fmt.Fprintf(stdout, "partition %d: %d events, %d results → %d workspaces, %d tasks, %d keys, %d remembered outcomes; commands resume at offset %d\n",
			p.Partition, p.Events, p.Results, p.Workspaces, p.Tasks, p.Keys, p.Remembered, p.Next)
	})
	if err != nil {
		return err
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "rebuilt the decider state of %d partitions in %s\n", len(parts), time.Since(start).Round(time.Millisecond))
	}
	return nil
}
