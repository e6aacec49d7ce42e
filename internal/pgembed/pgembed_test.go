//go:build linux

package pgembed

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	s, err := Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("Start(%s) took %v", filepath.Base(cfg.Dir), time.Since(t0).Round(time.Millisecond))
	t.Cleanup(func() { _ = s.Stop() })
	return s
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func mustExec(t *testing.T, c *pgx.Conn, sql string, args ...any) {
	t.Helper()
	if _, err := c.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, c *pgx.Conn, sql string) int {
	t.Helper()
	var n int
	if err := c.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func waitExited(t *testing.T, s *Server) {
	t.Helper()
	select {
	case <-s.sys.p.done:
	case <-time.After(30 * time.Second):
		t.Fatal("postmaster did not exit")
	}
}

func TestRestartKeepsData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pg") // t.TempDir's parent is 0700: exercises makeTraversable as root
	s := start(t, Config{Dir: dir})
	if ok, _ := regexp.MatchString(`^postgres://logbook:[0-9a-f]{64}@127\.0\.0\.1:\d+/logbook\?sslmode=disable$`, s.URL()); !ok {
		t.Fatalf("URL = %q", redact(s.URL()))
	}
	c := connect(t, s.URL())
	mustExec(t, c, "CREATE TABLE notes (id int PRIMARY KEY, body text)")
	mustExec(t, c, "INSERT INTO notes VALUES (1, 'hello')")
	var fsync, listen, maxConn string
	if err := c.QueryRow(context.Background(),
		"SELECT current_setting('fsync'), current_setting('listen_addresses'), current_setting('max_connections')").
		Scan(&fsync, &listen, &maxConn); err != nil {
		t.Fatal(err)
	}
	if fsync != "off" || listen != "127.0.0.1" || maxConn != "200" {
		t.Errorf("settings fsync=%s listen_addresses=%s max_connections=%s", fsync, listen, maxConn)
	}
	if os.Geteuid() == 0 {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.sys.p.cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		if m := regexp.MustCompile(`(?m)^Uid:\s+(\d+)`).FindSubmatch(st); m == nil || string(m[1]) == "0" {
			t.Errorf("postgres runs as uid %s, want non-root", m[1])
		}
	}
	_ = c.Close(context.Background())
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("postmaster.pid after Stop: %v", err)
	}

	s2 := start(t, Config{Dir: dir, Fsync: true})
	c2 := connect(t, s2.URL())
	if n := count(t, c2, "SELECT count(*) FROM notes WHERE body = 'hello'"); n != 1 {
		t.Fatalf("rows after restart = %d, want 1", n)
	}
	if err := s2.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, logFileName)); err != nil || !strings.Contains(string(b), "database system is ready") {
		t.Errorf("server log file: err=%v, %d bytes", err, len(b))
	}
}

func TestSecondStartSameDirFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pg")
	s := start(t, Config{Dir: dir})
	_, err := startOrStop(Start(context.Background(), Config{Dir: dir}))
	if !errors.Is(err, ErrDirInUse) {
		t.Fatalf("second Start: err = %v, want ErrDirInUse", err)
	}
	// The first server is unaffected.
	c := connect(t, s.URL())
	if n := count(t, c, "SELECT 1"); n != 1 {
		t.Fatal(n)
	}
}

func TestStartAfterPostmasterKilled(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pg")
	s := start(t, Config{Dir: dir})
	c := connect(t, s.URL())
	mustExec(t, c, "SET synchronous_commit = on") // WAL reaches the kernel before COMMIT returns
	mustExec(t, c, "CREATE TABLE t (x int)")
	mustExec(t, c, "INSERT INTO t VALUES (42)")

	if err := syscall.Kill(s.sys.p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitExited(t, s)

	s2 := start(t, Config{Dir: dir})
	c2 := connect(t, s2.URL())
	if n := count(t, c2, "SELECT count(*) FROM t WHERE x = 42"); n != 1 {
		t.Fatalf("rows after crash = %d, want 1", n)
	}
	if err := s.Stop(); err == nil {
		t.Error("Stop of the killed server: want error")
	}
	if err := s2.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
}

// A postmaster orphaned by a crashed owner process (simulated by dropping
// the directory lock) is stopped by the next Start.
func TestStartStopsOrphanedPostmaster(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pg")
	s := start(t, Config{Dir: dir})
	s.sys.mu.Lock()
	s.sys.unlockDir()
	s.sys.mu.Unlock()

	s2 := start(t, Config{Dir: dir})
	waitExited(t, s)
	connect(t, s2.URL())
}

func TestLongDirUsesTempSocketDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60), "pg")
	s := start(t, Config{Dir: dir})
	if !s.sys.sockTemp || len(s.sys.sockDir) > 40 {
		t.Fatalf("socket dir %q (temp=%v)", s.sys.sockDir, s.sys.sockTemp)
	}
	sock := s.sys.sockDir
	if _, err := os.Stat(filepath.Join(sock, fmt.Sprintf(".s.PGSQL.%d", s.Port()))); err != nil {
		t.Errorf("unix socket: %v", err)
	}
	connect(t, s.URL())
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket dir not removed: %v", err)
	}
}

func TestStartErrorIncludesLog(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	dir := filepath.Join(t.TempDir(), "pg")
	var logBuf strings.Builder
	_, err = startOrStop(Start(context.Background(), Config{Dir: dir, Port: l.Addr().(*net.TCPAddr).Port, Log: &logBuf}))
	if err == nil || !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("err = %v", err)
	}
	t.Logf("error: %v", err)
	if !strings.Contains(logBuf.String(), "could not bind") {
		t.Errorf("Config.Log did not receive the server log: %q", logBuf.String())
	}
	// The directory is usable afterwards.
	start(t, Config{Dir: dir})
}

func TestStartRejectsForeignDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := startOrStop(Start(context.Background(), Config{Dir: dir}))
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious.txt")); err != nil {
		t.Fatalf("existing file touched: %v", err)
	}
}

func TestVersionLess(t *testing.T) {
	if !versionLess("9.6", "15") || versionLess("16", "15") || !versionLess("15", "16") {
		t.Fatal("versionLess")
	}
}

func TestStartCanceled(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pg")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := startOrStop(Start(ctx, Config{Dir: dir})); err == nil {
		t.Fatal("Start with canceled ctx: want error")
	}
	// A canceled initdb leaves an empty, reusable directory.
	s := start(t, Config{Dir: dir})
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	// Cancel while waiting for readiness of an existing cluster.
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if _, err := startOrStop(Start(ctx, Config{Dir: dir})); err == nil {
		t.Fatal("Start with a 5ms timeout: want error")
	}
	if _, err := os.Stat(filepath.Join(dir, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("postmaster still running after failed Start: %v", err)
	}
	start(t, Config{Dir: dir})
}

// startOrStop stops a server that a test expected Start to refuse, so an
// unexpected success fails the test without leaking a postmaster.
func startOrStop(s *Server, err error) (*Server, error) {
	if err == nil && s != nil {
		_ = s.Stop()
	}
	return s, err
}

// redact hides a URL's password in test output.
func redact(u string) string {
	return regexp.MustCompile(`:[^:@/]*@`).ReplaceAllString(u, ":xxx@")
}

// refused reports whether connecting with url fails for a password reason.
func refused(t *testing.T, url string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err == nil {
		_ = c.Close(ctx)
		return false
	}
	return strings.Contains(err.Error(), "password")
}

// Nobody gets in without the password: not over loopback, not over the
// socket, not with a wrong one; the password file is the owner's alone and
// no line of pg_hba.conf trusts.
func TestConnectionsNeedThePassword(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pg")
	s := start(t, Config{Dir: dir})
	port := strconv.Itoa(s.Port())
	for name, url := range map[string]string{
		"no password":    "postgres://logbook@127.0.0.1:" + port + "/logbook?sslmode=disable",
		"wrong password": "postgres://logbook:guess@127.0.0.1:" + port + "/logbook?sslmode=disable",
		"socket":         "postgres://logbook@/logbook?host=" + s.sys.sockDir + "&port=" + port,
	} {
		if !refused(t, url) {
			t.Errorf("%s: let in", name)
		}
	}
	connect(t, s.URL()).Close(context.Background())
	fi, err := os.Stat(filepath.Join(dir, passwordFileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("password file: %v, mode %v", err, fi.Mode())
	}
	if trust, err := trusts(dir); err != nil || trust {
		t.Errorf("pg_hba.conf trusts: %v %v", trust, err)
	}
}

// A cluster made when pgembed trusted local connections is given a
// password at its next start, keeps its data, and stops trusting; so is
// one whose securing stopped after its password file was written.
func TestTrustedClusterIsSecuredOnStart(t *testing.T) {
	t.Run("no password file", func(t *testing.T) { testSecured(t, false) })
	t.Run("password file kept", func(t *testing.T) { testSecured(t, true) })
}

func testSecured(t *testing.T, keepFile bool) {
	dir := filepath.Join(t.TempDir(), "pg")
	s := start(t, Config{Dir: dir})
	c := connect(t, s.URL())
	mustExec(t, c, "CREATE TABLE notes (id int PRIMARY KEY)")
	mustExec(t, c, "INSERT INTO notes VALUES (1)")
	_ = c.Close(context.Background())
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	// What pgembed left before passwords: initdb --auth=trust, no password file.
	trusting := "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
	if err := os.WriteFile(filepath.Join(dir, "pg_hba.conf"), []byte(trusting), 0o600); err != nil {
		t.Fatal(err)
	}
	if !keepFile {
		if err := os.Remove(filepath.Join(dir, passwordFileName)); err != nil {
			t.Fatal(err)
		}
	}
	password := func(s *Server) string {
		u, err := url.Parse(s.URL())
		if err != nil {
			t.Fatal("URL does not parse")
		}
		pw, _ := u.User.Password()
		return pw
	}
	old := password(s)

	s2 := start(t, Config{Dir: dir})
	if kept := password(s2) == old; kept != keepFile || password(s2) == "" {
		t.Fatalf("password kept: %v, want %v", kept, keepFile)
	}
	c2 := connect(t, s2.URL())
	if n := count(t, c2, "SELECT count(*) FROM notes"); n != 1 {
		t.Errorf("rows = %d, want 1", n)
	}
	_ = c2.Close(context.Background())
	if !refused(t, "postgres://logbook@127.0.0.1:"+strconv.Itoa(s2.Port())+"/logbook?sslmode=disable") {
		t.Error("still trusts loopback")
	}
	if trust, err := trusts(dir); err != nil || trust {
		t.Errorf("pg_hba.conf trusts: %v %v", trust, err)
	}
	if pw, err := readPassword(dir); err != nil || pw == "" {
		t.Errorf("password file: %q %v", pw, err)
	}
}

// A cluster that needs a password whose file is gone is refused with a
// message that says so, not after a minute of failed logins.
func TestMissingPasswordFileIsNamed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pg")
	s := start(t, Config{Dir: dir})
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, passwordFileName)); err != nil {
		t.Fatal(err)
	}
	_, err := startOrStop(Start(context.Background(), Config{Dir: dir}))
	if err == nil || !strings.Contains(err.Error(), passwordFileName) {
		t.Fatalf("got %v", err)
	}
}
