package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/logbook-dev/logbook/internal/keyring"
	"github.com/logbook-dev/logbook/internal/pg"
	"github.com/logbook-dev/logbook/projections"
)

// toolDatabase connects an operator tool to Postgres: LOGBOOK_DATABASE_URL,
// else the embedded database of a `logbook dev` data directory.
func toolDatabase(ctx context.Context, cfg Config, dataDir string) (*pgxpool.Pool, error) {
	url, err := toolDatabaseURL(cfg, dataDir)
	if err != nil {
		return nil, err
	}
	pool, err := pg.Connect(ctx, url, 2)
	if err != nil {
		return nil, err
	}
	if err := projections.Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

func toolDatabaseURL(cfg Config, dataDir string) (string, error) {
	if cfg.DatabaseURL != "" {
		return cfg.DatabaseURL, nil
	}
	b, err := os.ReadFile(filepath.Join(dataDir, devDatabaseURLFile))
	if err != nil {
		return "", errors.New("no database: set LOGBOOK_DATABASE_URL (or run `logbook dev` with --data " + dataDir + ")")
	}
	return strings.TrimSpace(string(b)), nil
}

func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "replay") {
		return errors.New("usage: logbook dlq list|replay [--workspace ID]")
	}
	cfg, err := baseConfig()
	if err != nil {
		return err
	}
	fs := newFlags("dlq "+args[0], stderr)
	ws := fs.String("workspace", "", "only this workspace")
	dir := fs.String("data", settingValue("LOGBOOK_DATA"), "a `logbook dev` data directory to find the database")
	asJSON := fs.Bool("json", false, "JSON lines instead of a table")
	limit := fs.Int("limit", 1000, "list at most this many records")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	pool, err := toolDatabase(ctx, cfg, *dir)
	if err != nil {
		return err
	}
	defer pool.Close()
	if args[0] == "list" {
		recs, err := projections.ListQuarantine(ctx, pool, *ws, *limit)
		if err != nil {
			return err
		}
		return printQuarantine(stdout, recs, *asJSON)
	}
	// An erasure waiting in the quarantine destroys its workspace's data
	// key when it applies: replay needs the log as well as the database.
	if err := toolKafka(&cfg, *dir); err != nil {
		return fmt.Errorf("dlq replay destroys the data keys of erased workspaces: %w", err)
	}
	ring, err := keyring.New(cfg.Kafka, nil)
	if err != nil {
		return err
	}
	defer ring.Close()
	reports, err := projections.NewReplayer(pool, ring).Replay(ctx, *ws)
	if err != nil {
		return err
	}
	remaining := 0
	for _, r := range reports {
		remaining += r.Remaining
		if *asJSON {
			_ = json.NewEncoder(stdout).Encode(r)
			continue
		}
		fmt.Fprintf(stdout, "%s %s: applied %d, remaining %d", r.Projection, r.WorkspaceID, r.Applied, r.Remaining)
		if r.Error != "" {
			fmt.Fprintf(stdout, " (still failing: %s)", r.Error)
		}
		fmt.Fprintln(stdout)
	}
	if !*asJSON {
		fmt.Fprintf(stdout, "replayed %d workspaces; %d records remain quarantined\n", len(reports), remaining)
	}
	if remaining > 0 {
		return fmt.Errorf("%d records still cannot be applied", remaining)
	}
	return nil
}

func printQuarantine(w io.Writer, recs []projections.Quarantined, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		for _, r := range recs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTION\tWORKSPACE\tPARTITION\tOFFSET\tSEQ\tSTATE\tQUARANTINED\tERROR")
	for _, r := range recs {
		seq, state := "-", "failed"
		if r.Seq != nil {
			seq = fmt.Sprint(*r.Seq)
		}
		if r.Held {
			state = "held"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", r.Projection, shown(r.WorkspaceID), r.Partition, r.Offset, seq, state,
			r.QuarantinedAt.UTC().Format("2006-01-02T15:04:05Z"), shown(r.Error))
	}
	fmt.Fprintf(tw, "%d records\n", len(recs))
	return tw.Flush()
}

// shown is s for a terminal line: quoted when it holds control characters
// (an old event may carry any), so a value cannot break the table or the
// terminal.
func shown(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	return strconv.QuoteToGraphic(s)
}
