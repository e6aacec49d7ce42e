// Package pg is the Postgres plumbing: the pgx pool and embedded migrations.
package pg

import (
	"context"
	"fmt"
	"io/fs"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
)

// Connect opens a pool with bounded connection and statement times.
func Connect(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	return ConnectIn(ctx, url, "", maxConns)
}

// ConnectIn is Connect with every connection's search_path set to schema
// (none: the database's default): unqualified names then resolve there, so
// the same SQL fills a second copy of the read models beside the live one.
func ConnectIn(ctx context.Context, url, schema string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("pg: parse database url: %w", redact(err))
	}
	if schema != "" {
		cfg.ConnConfig.RuntimeParams["search_path"] = schema
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	if _, ok := cfg.ConnConfig.RuntimeParams["statement_timeout"]; !ok {
		cfg.ConnConfig.RuntimeParams["statement_timeout"] = "30000"
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "logbook"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pg: %w", redact(err))
	}
	return pool, nil
}

// redact drops the error text that may echo a connection string's password.
func redact(err error) error {
	return fmt.Errorf("%s", scrub(err.Error()))
}

// Migrate applies the SQL files of fsys (NNN_name.sql) in order, tracking
// them in versionTable. An advisory lock makes concurrent starts safe.
func Migrate(ctx context.Context, pool interface {
	Acquire(ctx context.Context) (*pgxpool.Conn, error)
}, fsys fs.FS, versionTable string) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("pg: migrate: %w", err)
	}
	defer conn.Release()
	m, err := migrate.NewMigrator(ctx, conn.Conn(), versionTable)
	if err != nil {
		return fmt.Errorf("pg: migrator: %w", err)
	}
	if err := m.LoadMigrations(fsys); err != nil {
		return fmt.Errorf("pg: load migrations: %w", err)
	}
	if err := m.Migrate(ctx); err != nil {
		return fmt.Errorf("pg: migrate %s: %w", versionTable, err)
	}
	return nil
}
