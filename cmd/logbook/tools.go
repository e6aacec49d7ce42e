package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/logbook-dev/logbook/consumers/replay"
	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/fieldcrypt"
	"github.com/logbook-dev/logbook/internal/keyring"
	"github.com/logbook-dev/logbook/internal/signing"
	"github.com/logbook-dev/logbook/schemas"
)

// toolKafka is the Kafka config of the operator tools: LOGBOOK_KAFKA_BROKERS,
// else the broker of a `logbook dev` data directory.
func toolKafka(cfg *Config, dataDir string) error {
	if len(cfg.Kafka.Brokers) > 0 {
		cfg.Kafka = cfg.Kafka.WithDefaults()
		return cfg.Kafka.Validate()
	}
	b, err := os.ReadFile(filepath.Join(dataDir, "kafka.port"))
	if err != nil {
		return errors.New("no broker: set LOGBOOK_KAFKA_BROKERS (or run `logbook dev` with --data " + dataDir + ")")
	}
	cfg.Kafka.Brokers = []string{"127.0.0.1:" + strings.TrimSpace(string(b))}
	if _, err := os.Stat(filepath.Join(dataDir, devKafkaPasswordFile)); err == nil {
		if cfg.Kafka.SASL, err = devKafkaCredentials(dataDir); err != nil {
			return err
		}
	}
	cfg.Kafka = cfg.Kafka.WithDefaults()
	return cfg.Kafka.Validate()
}

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) (err error) {
	cfg, err := baseConfig()
	if err != nil {
		return err
	}
	fs := newFlags("replay", stderr)
	since := fs.String("since", "", "start at the first event at or after this RFC3339 time")
	until := fs.String("until", "", "end at the last event at or before this RFC3339 time (default: the end of the log when the replay starts)")
	fromBeginning := fs.Bool("from-beginning", false, "start at the first event (the default)")
	ws := fs.String("workspace", "", "only this workspace")
	types := fs.String("type", "", "only these event types, comma-separated (task.completed,task.result_recorded)")
	format := fs.String("format", "json", "json (one event per line) or csv (a header row, then one row per event, the payload as JSON)")
	raw := fs.Bool("raw", false, "payloads as written, in their own schema version; by default each is upcast to its type's current version")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	dir := fs.String("data", settingValue("LOGBOOK_DATA"), "a `logbook dev` data directory to find the broker")
	decrypt := fs.Bool("decrypt", false, "show sensitive fields in plaintext, opened with the master key (LOGBOOK_MASTER_KEY_FILE or LOGBOOK_MASTER_KEY, else the data directory's master.key); hashes cover the sealed values")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *since != "" && *fromBeginning {
		return errors.New("choose --since or --from-beginning, not both")
	}
	opts := replay.Options{WorkspaceID: *ws, Upcast: !*raw}
	if *since != "" {
		if opts.Since, err = time.Parse(time.RFC3339, *since); err != nil {
			return fmt.Errorf("--since: %w", err)
		}
	}
	if *until != "" {
		if opts.Until, err = time.Parse(time.RFC3339, *until); err != nil {
			return fmt.Errorf("--until: %w", err)
		}
		if !opts.Since.IsZero() && opts.Until.Before(opts.Since) {
			return errors.New("--until is before --since")
		}
	}
	if *types != "" {
		known := map[string]bool{}
		for _, t := range domain.EventTypes {
			known[t] = true
		}
		for _, t := range strings.Split(*types, ",") {
			if t = strings.TrimSpace(t); !known[t] {
				return fmt.Errorf("--type: unknown event type %q (one of %s)", t, strings.Join(domain.EventTypes, ", "))
			}
			opts.Types = append(opts.Types, t)
		}
	}
	var write func(schemas.EventEnvelope) error
	switch *format {
	case "json":
		enc := json.NewEncoder(stdout)
		write = func(e schemas.EventEnvelope) error { return enc.Encode(e) }
	case "csv":
		w := csv.NewWriter(stdout)
		if err := w.Write(replayCSVHeader); err != nil {
			return err
		}
		write = func(e schemas.EventEnvelope) error { return w.Write(replayCSVRow(e)) }
		defer func() {
			// A failed last write (a full disk, a closed pipe) is an error, not a short file.
			if w.Flush(); err == nil {
				err = w.Error()
			}
		}()
	default:
		return fmt.Errorf("--format: %q is not json or csv", *format)
	}
	if !*quiet {
		opts.Progress = func(p replay.Progress) { replayProgress(stderr, p) }
	}
	if err := toolKafka(&cfg, *dir); err != nil {
		return err
	}
	if !*decrypt {
		return replay.Read(ctx, cfg.Kafka, opts, write)
	}
	ring, _, err := toolRing(ctx, cfg, *dir)
	if err != nil {
		return err
	}
	defer ring.Close()
	return replay.Read(ctx, cfg.Kafka, opts, func(e schemas.EventEnvelope) error {
		opened, err := ring.OpenEvent(ctx, e)
		if err != nil {
			return err
		}
		return write(opened)
	})
}

// replayCSVHeader names the columns of replay --format csv.
var replayCSVHeader = []string{"occurred_at", "workspace_id", "seq", "type", "version", "aggregate_type", "aggregate_id",
	"actor_id", "actor_role", "command_id", "event_id", "payload"}

func replayCSVRow(e schemas.EventEnvelope) []string {
	return []string{e.OccurredAt.UTC().Format(time.RFC3339Nano), e.WorkspaceID, strconv.FormatInt(e.Seq, 10), e.Type,
		strconv.Itoa(e.Version), e.Aggregate.Type, e.Aggregate.ID, e.Actor.ID, e.Actor.Role, e.CommandID, e.ID, string(e.Payload)}
}

// replayProgress writes a progress line: events read of the log's range,
// the rate and the time left; the last line says what was written.
func replayProgress(w io.Writer, p replay.Progress) {
	if p.Done {
		fmt.Fprintf(w, "replay: done: %d events read, %d written, in %s (%.0f events/s)\n", p.Read, p.Matched,
			p.Elapsed.Round(time.Millisecond), p.PerSecond())
		return
	}
	pct := 100.0
	if p.Total > 0 {
		pct = 100 * float64(p.Read) / float64(p.Total)
	}
	fmt.Fprintf(w, "replay: %d of %d events (%.0f%%), %.0f events/s, %s left\n", p.Read, p.Total, pct, p.PerSecond(),
		p.ETA().Round(time.Second))
}

// toolRing reads the workspace keys with the tools' master keys.
func toolRing(ctx context.Context, cfg Config, dataDir string) (*keyring.Ring, *fieldcrypt.Local, error) {
	ks, err := toolMasterKeys(dataDir)
	if err != nil {
		return nil, nil, err
	}
	ring, err := keyring.Open(ctx, cfg.Kafka, ks)
	return ring, ks, err
}

// toolMasterKeys reads the master keys from the environment, else from a
// `logbook dev` data directory.
func toolMasterKeys(dataDir string) (*fieldcrypt.Local, error) {
	if os.Getenv("LOGBOOK_MASTER_KEY_FILE") != "" || os.Getenv("LOGBOOK_MASTER_KEY") != "" {
		return loadMasterKeys()
	}
	path := filepath.Join(dataDir, devMasterKeyFile)
	if _, err := os.Stat(path); err != nil {
		return nil, errors.New("no master key: set LOGBOOK_MASTER_KEY_FILE or LOGBOOK_MASTER_KEY (or name a `logbook dev` data directory with --data)")
	}
	return fieldcrypt.LoadMasterKeyFile(path)
}

// runAuditVerify checks the hash chains in the log, or with --file an
// export offline (verifyExportFile).
func runAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("audit verify", stderr)
	ws := fs.String("workspace", "", "only this workspace")
	dir := fs.String("data", settingValue("LOGBOOK_DATA"), "a `logbook dev` data directory to find the broker")
	file := fs.String("file", "", "verify this export file offline (no broker, no database) instead of the log")
	pubFile := fs.String("public-keys", "", "check every event's command signature with these public keys (default: LOGBOOK_SIGNING_PUBLIC_KEYS_FILE or LOGBOOK_SIGNING_PUBLIC_KEYS, the signing key's own, or the data directory's)")
	err := fs.Parse(args)
	if err == nil && *file != "" {
		if *ws != "" {
			fmt.Fprintln(stderr, "logbook: audit verify: --file checks the workspace the export names; leave out --workspace")
			return 2
		}
		return verifyExportFile(*file, stdout, stderr)
	}
	var cfg Config
	if err == nil {
		if cfg, err = baseConfig(); err == nil {
			var keys *signing.Verifier
			if keys, err = toolPublicKeys(*pubFile, *dir); err == nil {
				err = toolKafka(&cfg, *dir)
			}
			if err == nil {
				var rep replay.Report
				rep, err = replay.Verify(ctx, cfg.Kafka, *ws, keys)
				if err == nil {
					for _, b := range rep.Breaks {
						fmt.Fprintf(stdout, "BROKEN %s\n", b)
					}
					for _, b := range rep.BadSignatures {
						fmt.Fprintf(stdout, "BAD SIGNATURE %s\n", b)
					}
					fmt.Fprintf(stdout, "verified %d events in %d workspaces: %d broken chains", rep.Events, rep.Workspaces, len(rep.Breaks))
					if keys != nil {
						fmt.Fprintf(stdout, "; signatures: %d verified, %d unsigned (before signing), %d bad\n", rep.Signed, rep.Unsigned, len(rep.BadSignatures))
					} else {
						fmt.Fprintln(stdout, "; signatures not checked (no public keys)")
					}
					if len(rep.Breaks) > 0 || len(rep.BadSignatures) > 0 {
						return 1
					}
					return 0
				}
			}
		}
	}
	fmt.Fprintf(stderr, "logbook: audit verify: %v\n", err)
	return 2
}

// toolPublicKeys reads the public keys an auditor checks signatures with:
// the file given, the environment, or a `logbook dev` data directory's
// signing key; nil when there are none.
func toolPublicKeys(file, dataDir string) (*signing.Verifier, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		return signing.ParseVerifier(string(b))
	}
	_, v, err := signingKeys()
	if err != nil || v != nil {
		return v, err
	}
	path := filepath.Join(dataDir, devSigningKeyFile)
	if _, err := os.Stat(path); err != nil {
		return nil, nil
	}
	_, v, err = devSigningKeys(dataDir)
	return v, err
}
