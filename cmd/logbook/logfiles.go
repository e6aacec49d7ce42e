package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/logbook-dev/logbook/consumers/decider"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/logexport"
)

func runLog(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "export" && args[0] != "import") {
		return errors.New("usage: logbook log export|import --dir DIR")
	}
	cfg, err := baseConfig()
	if err != nil {
		return err
	}
	fs := newFlags("log "+args[0], stderr)
	dir := fs.String("dir", "", "the export directory (export: must not exist or be empty)")
	data := fs.String("data", settingValue("LOGBOOK_DATA"), "a `logbook dev` data directory to find the broker")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--dir: required")
	}
	if err := toolKafka(&cfg, *data); err != nil {
		return err
	}
	progress := func(role string, n int64) {
		if !*quiet {
			fmt.Fprintf(stderr, "%s: %s %d records\n", args[0], role, n)
		}
	}
	start := time.Now()
	if args[0] == "export" {
		m, err := logexport.Export(ctx, cfg.Kafka, *dir, progress)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "exported %s to %s in %s: %d workspaces' chains verified\n", counts(m), *dir,
			time.Since(start).Round(time.Millisecond), len(m.Heads))
		return nil
	}
	if err := kafka.EnsureTopics(ctx, cfg.Kafka); err != nil {
		return err
	}
	m, err := logexport.Import(ctx, cfg.Kafka, *dir, progress)
	if err != nil {
		return err
	}
	imported := time.Since(start)
	// The decider's state is the events' and results' fold.
	parts, err := decider.RebuildState(ctx, decider.Config{Kafka: cfg.Kafka, Logger: cfg.logger(stderr)}, nil)
	if err != nil {
		return fmt.Errorf("imported the log, but the decider state: %w (run `logbook decider rebuild-state`)", err)
	}
	fmt.Fprintf(stdout, "imported %s from %s in %s; decider state of %d partitions rebuilt in %s\n", counts(m), *dir,
		imported.Round(time.Millisecond), len(parts), (time.Since(start) - imported).Round(time.Millisecond))
	return nil
}

func counts(m logexport.Manifest) string {
	n := map[string]int64{}
	for role, tf := range m.Topics {
		for _, f := range tf.Files {
			n[role] += f.Records
		}
	}
	return fmt.Sprintf("%d events, %d results, %d access records, %d key records",
		n[logexport.TopicEvents], n[logexport.TopicResults], n[logexport.TopicAccess], n[logexport.TopicKeys])
}
