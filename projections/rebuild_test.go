package projections_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/internal/pg"
	"github.com/logbook-dev/logbook/internal/pgtest"
	"github.com/logbook-dev/logbook/projections"
)

// A rebuild keeps what the live read models hold and the log no longer
// does (command outcomes whose results the topic's retention let go), and
// the access audit keeps the numbers auditors page by: a row the live audit
// has keeps its number, a row it lacks comes after all of them.
func TestRebuildKeepsWhatTheLogLetGoAndAuditCursors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := kafkatest.Config(t, 2)
	if err := kafka.EnsureTopics(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	url := pgtest.URL(t)
	pool, err := pg.Connect(ctx, url, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := projections.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	access := func(id string) []byte {
		return []byte(`{"v":1,"id":"` + id + `","at":"2026-11-24T10:00:00.123Z","outcome":"hidden","status":404,"code":"not_found",` +
			`"method":"GET","route":"/v1/workspaces/{ws}","source":"192.0.2.7","request_id":"r"}`)
	}
	cl, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, id := range []string{"a1", "a2", "a3"} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: cfg.Topics().Access, Value: access(id)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// The live read models: an outcome whose result is gone from the log,
	// and an access audit that numbered a1 and a2 with gaps.
	for _, sql := range []string{
		`INSERT INTO commands (id, workspace_id, type, status, decided_at) VALUES ('old-command', 'ws', 'task.create', 'accepted', now())`,
		`INSERT INTO access_log (seq, id, at, outcome, status, method, route, source, log_partition, log_offset)
			VALUES (10, 'a1', now(), 'hidden', 404, 'GET', '/', 's', 0, 0), (20, 'a2', now(), 'hidden', 404, 'GET', '/', 's', 0, 1)`,
		`INSERT INTO projection_checkpoints (projection, partition, next_offset) VALUES ('access_log', 0, 2)`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := projections.Rebuild(ctx, projections.RebuildConfig{Kafka: cfg, Live: pool, Logger: quiet,
		Projections: projections.Projections(cfg.Topics(), nil),
		Connect: func(ctx context.Context, schema string) (*pgxpool.Pool, error) {
			return pg.ConnectIn(ctx, url, schema, 4)
		},
	}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM commands WHERE id = 'old-command'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the outcome the log let go: %d rows (%v)", n, err)
	}
	rows, err := pool.Query(ctx, `SELECT id || ':' || seq FROM access_log ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if strings.Join(got, " ") != "a1:10 a2:20 a3:21" {
		t.Fatalf("access audit numbers after the rebuild: %v, want a1:10 a2:20 a3:21", got)
	}
	var next int64
	if err := pool.QueryRow(ctx, `SELECT nextval(pg_get_serial_sequence('access_log', 'seq'))`).Scan(&next); err != nil || next != 22 {
		t.Fatalf("the next number: %d (%v), want 22", next, err)
	}
	// Read models of an earlier version never go under a fleet that reads
	// a later one: a logbook older than the live schema refuses to switch.
	if _, err := pool.Exec(ctx, `UPDATE projections_schema_version SET version = 999`); err != nil {
		t.Fatal(err)
	}
	_, err = projections.Rebuild(ctx, projections.RebuildConfig{Kafka: cfg, Live: pool, Logger: quiet,
		Projections: projections.Projections(cfg.Topics(), nil),
		Connect: func(ctx context.Context, schema string) (*pgxpool.Pool, error) {
			return pg.ConnectIn(ctx, url, schema, 4)
		},
	})
	if err == nil || !strings.Contains(err.Error(), "schema version 999") {
		t.Fatalf("a rebuild by an older logbook: %v", err)
	}
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM commands WHERE id = 'old-command'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the refused switch changed the live read models: %d (%v)", n, err)
	}
}
