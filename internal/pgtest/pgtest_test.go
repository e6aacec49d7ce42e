package pgtest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func conn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func scan[T any](t *testing.T, c *pgx.Conn, sql string, args ...any) T {
	t.Helper()
	var v T
	if err := c.QueryRow(context.Background(), sql, args...).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

const userTables = "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')"

func TestURLGivesDistinctEmptyDatabases(t *testing.T) {
	t0 := time.Now()
	a := URL(t)
	t.Logf("first URL (cluster start + CREATE DATABASE) took %v", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	b := URL(t)
	t.Logf("second URL took %v", time.Since(t0).Round(time.Millisecond))
	if a == b {
		t.Fatalf("same URL twice: %s", a)
	}
	ca, cb := conn(t, a), conn(t, b)
	dbA := scan[string](t, ca, "SELECT current_database()")
	dbB := scan[string](t, cb, "SELECT current_database()")
	if dbA == dbB {
		t.Fatalf("same database %s", dbA)
	}
	for _, c := range []*pgx.Conn{ca, cb} {
		if n := scan[int](t, c, userTables); n != 0 {
			t.Fatalf("new database has %d relations", n)
		}
	}
	if _, err := ca.Exec(context.Background(), "CREATE TABLE only_in_a (x int)"); err != nil {
		t.Fatal(err)
	}
	if n := scan[int](t, cb, userTables); n != 0 {
		t.Fatalf("table leaked into the other database")
	}
}

func TestDatabaseDroppedAfterTest(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		c := conn(t, URL(t)) // left open on purpose: DROP ... WITH (FORCE)
		name = scan[string](t, c, "SELECT current_database()")
	})
	c := conn(t, URL(t))
	if n := scan[int](t, c, "SELECT count(*) FROM pg_database WHERE datname = $1", name); n != 0 {
		t.Fatalf("database %s still exists after its test", name)
	}
}

func TestParallelURLs(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			u := URL(t)
			c := conn(t, u)
			if _, err := c.Exec(context.Background(), "CREATE TABLE x (id int)"); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if seen[u] {
				t.Errorf("duplicate URL %s", u)
			}
			seen[u] = true
		})
	}
}

func TestDBName(t *testing.T) {
	n := dbName("TestSomething/with spaces & Ünïcode/" + strings.Repeat("x", 100))
	if len(n) > 63 || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz0123456789_") != "" {
		t.Fatalf("bad name %q", n)
	}
}
