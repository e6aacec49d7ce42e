// Package pgtest gives tests fresh, empty PostgreSQL databases.
//
// Use it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
//	func TestX(t *testing.T) {
//		url := pgtest.URL(t) // empty database, dropped when t finishes
//		...
//	}
//
// The first URL call of a test binary starts one embedded cluster (internal/pgembed,
// fsync off) in a temporary directory; Main stops it and removes the directory.
// If LOGBOOK_TEST_DATABASE_URL is set, that server is used instead: its user
// must be allowed to CREATE and DROP databases, and PostgreSQL must be 13+.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/logbook-dev/logbook/internal/pgembed"
)

// EnvURL names the environment variable with the URL of an external server
// to create test databases in instead of starting an embedded one.
const EnvURL = "LOGBOOK_TEST_DATABASE_URL"

const (
	startTimeout = 2 * time.Minute
	opTimeout    = 30 * time.Second
)

var (
	once    sync.Once
	baseURL string // admin connection URL
	baseErr error

	mu     sync.Mutex
	srv    *pgembed.Server
	srvDir string

	seq atomic.Int64
)

// Main runs the tests, stops the embedded cluster if one was started, and
// exits with the tests' exit code.
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main without the exit, for a TestMain with cleanup of its own.
func Run(m *testing.M) int {
	code := m.Run()
	if err := shutdown(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
	}
	return code
}

func shutdown() error {
	mu.Lock()
	defer mu.Unlock()
	var err error
	if srv != nil {
		err = srv.Stop()
		srv = nil
	}
	if srvDir != "" {
		if rmErr := os.RemoveAll(srvDir); rmErr != nil && err == nil {
			err = rmErr
		}
		srvDir = ""
	}
	return err
}

// URL returns the URL of a new, empty database created for this test and
// dropped (WITH (FORCE)) when the test finishes. It fails the test with the
// reason if no PostgreSQL server is available.
func URL(t testing.TB) string {
	t.Helper()
	once.Do(setup)
	if baseErr != nil {
		t.Fatalf("pgtest: no PostgreSQL server: %v", baseErr)
	}
	name := dbName(t.Name())
	dbURL, err := withDatabase(baseURL, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if err := adminExec("CREATE DATABASE " + pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := adminExec("DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return dbURL
}

func setup() {
	if u := os.Getenv(EnvURL); u != "" {
		if _, err := withDatabase(u, "x"); err != nil {
			baseErr = fmt.Errorf("%s: %w", EnvURL, err)
			return
		}
		baseURL = u
		return
	}
	dir, err := os.MkdirTemp("", "logbook-pgtest-")
	if err != nil {
		baseErr = err
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	s, err := pgembed.Start(ctx, pgembed.Config{Dir: filepath.Join(dir, "data")})
	if err != nil {
		_ = os.RemoveAll(dir)
		baseErr = fmt.Errorf("start embedded PostgreSQL (set %s to use an existing server): %w", EnvURL, err)
		return
	}
	mu.Lock()
	srv, srvDir = s, dir
	mu.Unlock()
	baseURL = s.URL()
}

func adminExec(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// dbName builds a unique database name (at most 63 bytes) from the test
// name, a per-process counter and random bits (servers may be shared by
// concurrently running test binaries).
func dbName(testName string) string {
	base := unsafeChars.ReplaceAllString(strings.ToLower(testName), "_")
	if len(base) > 32 {
		base = base[:32]
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	return fmt.Sprintf("t_%s_%d_%s", base, seq.Add(1), hex.EncodeToString(rnd[:]))
}

// withDatabase returns base with its database replaced by name.
func withDatabase(base, name string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", errors.New("want a postgres:// or postgresql:// URL") // value not echoed: may hold a password
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}
