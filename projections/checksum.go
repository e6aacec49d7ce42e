package projections

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
)

// checksummed are the tables built from the log: two read models built
// from the same log to the same checkpoints have equal checksums.
var checksummed = []string{
	"access_log", "agents", "ai_usage", "commands", "events", "keys", "members",
	"projection_checkpoints", "projection_quarantine", "tasks", "workspaces",
}

// volatile are columns that record when or in what order a row was
// written, not what the log says.
var volatile = map[string][]string{
	"access_log":             {"seq"},
	"projection_checkpoints": {"updated_at"},
	"projection_quarantine":  {"quarantined_at"},
}

// TableChecksum is one table's row count and an order-independent digest
// of its rows (two sums of 64-bit halves of each row's MD5).
type TableChecksum struct {
	Table  string `json:"table"`
	Rows   int64  `json:"rows"`
	Digest string `json:"digest"`
}

// positional are the columns that say where in the log a row came from:
// after an import into another cluster the offsets differ, the facts not.
var positional = []string{"log_offset"}

// Checksums digests every table of checksummed in q's current schema.
// Portable ones leave out log offsets and the checkpoints, so read models
// built from an export imported into another cluster compare equal.
func Checksums(ctx context.Context, q querier, portable bool) ([]TableChecksum, error) {
	out := make([]TableChecksum, 0, len(checksummed))
	for _, t := range checksummed {
		if portable && t == "projection_checkpoints" {
			continue
		}
		rows, err := q.Query(ctx, `SELECT column_name FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = $1 ORDER BY column_name`, t)
		if err != nil {
			return nil, err
		}
		cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, err
		}
		if len(cols) == 0 {
			return nil, fmt.Errorf("checksum: no table %s", t)
		}
		var list []string
		for _, c := range cols {
			if !slices.Contains(volatile[t], c) && !(portable && slices.Contains(positional, c)) {
				list = append(list, pgx.Identifier{c}.Sanitize())
			}
		}
		c := TableChecksum{Table: t}
		var a, b string
		err = func() error {
			rows, err := q.Query(ctx, `SELECT count(*), coalesce(sum(('x' || substr(h, 1, 16))::bit(64)::bigint), 0)::text,
				coalesce(sum(('x' || substr(h, 17, 16))::bit(64)::bigint), 0)::text
				FROM (SELECT md5(ROW(`+strings.Join(list, ", ")+`)::text) AS h FROM `+pgx.Identifier{t}.Sanitize()+`) s`)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				if err := rows.Scan(&c.Rows, &a, &b); err != nil {
					return err
				}
			}
			return rows.Err()
		}()
		if err != nil {
			return nil, fmt.Errorf("checksum %s: %w", t, err)
		}
		c.Digest = a + "/" + b
		out = append(out, c)
	}
	return out, nil
}
