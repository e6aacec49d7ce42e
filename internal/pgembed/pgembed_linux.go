package pgembed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	readyTimeout     = 60 * time.Second // postgres accepting connections
	initdbTimeout    = 2 * time.Minute  // initdb run
	fastStopTimeout  = 30 * time.Second // SIGINT (fast shutdown) -> SIGQUIT
	quitStopTimeout  = 10 * time.Second // SIGQUIT (immediate shutdown) -> SIGKILL
	killStopTimeout  = 10 * time.Second // SIGKILL -> give up
	orphanWait       = 5 * time.Second  // leftover backends of a dead postmaster
	pipeWaitDelay    = 5 * time.Second  // exec.Cmd.WaitDelay for log pipes
	pollInterval     = 50 * time.Millisecond
	logFileName      = "postgres.log"
	logRotateSize    = 16 << 20
	maxSocketPathLen = 107 // sizeof(sockaddr_un.sun_path) - 1
	portAttempts     = 5
	tailBytes        = 16 << 10
	tailLines        = 25
)

// serverSys is the Linux state of a Server.
type serverSys struct {
	dir      string // absolute, symlinks resolved
	bin      string
	sockDir  string
	password string   // the superuser's; "" only until a cluster made before passwords is secured
	sockTemp bool     // sockDir is ours to remove
	logFile  *os.File // opened by us (cfg.Log == nil)
	sink     *logSink

	mu      sync.Mutex
	lock    *os.File // flock(LOCK_EX) on dir while the server is alive
	p       *proc
	ready   bool
	stopMu  sync.Mutex
	stopped bool
	stopErr error
}

// proc is one postmaster process.
type proc struct {
	cmd    *exec.Cmd
	done   chan struct{} // closed once the postmaster has exited and been reaped
	err    error         // cmd.Wait result, valid after done
	exited bool          // guarded by serverSys.mu
}

// runAs describes the OS user postgres runs as; nil credential means the
// current user.
type runAs struct {
	cred     *syscall.Credential
	uid, gid int
	home     string
	name     string
}

// Start starts (initializing if needed) a PostgreSQL cluster in cfg.Dir and
// waits until it accepts connections and the "logbook" database exists.
// ctx bounds only the startup; the server runs until Stop. If the calling
// process dies without Stop, the postmaster receives SIGQUIT (parent-death
// signal) and shuts down immediately.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("pgembed: Config.Dir is required")
	}
	if cfg.Port < 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("pgembed: invalid port %d", cfg.Port)
	}
	bin, err := findBinDir(cfg.BinDir)
	if err != nil {
		return nil, err
	}
	ra, err := lookupRunAs()
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("pgembed: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pgembed: create data directory: %w", err)
	}
	if dir, err = filepath.EvalSymlinks(dir); err != nil {
		return nil, fmt.Errorf("pgembed: %w", err)
	}

	s := &Server{sys: serverSys{dir: dir, bin: bin}}
	sys := &s.sys
	if err := sys.lockDir(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			sys.cleanup()
		}
	}()

	_, statErr := os.Stat(filepath.Join(dir, "PG_VERSION"))
	needInit := errors.Is(statErr, fs.ErrNotExist)
	if statErr != nil && !needInit {
		return nil, fmt.Errorf("pgembed: %w", statErr)
	}
	if needInit {
		if ents, err := os.ReadDir(dir); err != nil {
			return nil, fmt.Errorf("pgembed: %w", err)
		} else if len(ents) > 0 {
			return nil, fmt.Errorf("pgembed: %s is not empty and holds no PostgreSQL cluster (no PG_VERSION); refusing to initdb there", dir)
		}
	}

	if ra.cred != nil {
		private := ""
		if cfg.Private != "" {
			if private, err = filepath.Abs(cfg.Private); err != nil {
				return nil, fmt.Errorf("pgembed: %w", err)
			}
			if private, err = filepath.EvalSymlinks(private); err != nil {
				return nil, fmt.Errorf("pgembed: %w", err)
			}
		}
		if err := makeTraversable(dir, private, ra); err != nil {
			return nil, err
		}
		if err := chownTree(dir, ra); err != nil {
			return nil, err
		}
	}
	if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o027 != 0 {
		// postgres requires 0700 or 0750 on the data directory.
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("pgembed: %w", err)
		}
	}

	if err := stopStalePostmaster(dir); err != nil {
		return nil, err
	}

	var initOut []byte
	if needInit {
		if sys.password, err = newPassword(); err != nil {
			return nil, err
		}
		if initOut, err = initdb(ctx, bin, dir, cfg.Fsync, ra, sys.password); err != nil {
			return nil, err
		}
		if err := writeFileAs(filepath.Join(dir, passwordFileName), []byte(sys.password+"\n"), ra); err != nil {
			clearDir(dir)
			return nil, err
		}
	} else if sys.password, err = readPassword(dir); err != nil {
		return nil, err
	}
	trust, err := trusts(dir)
	if err != nil {
		return nil, err
	}
	if !trust && sys.password == "" {
		return nil, fmt.Errorf("pgembed: %s has no %s and does not trust local connections: restore the file, or start from an empty directory", dir, passwordFileName)
	}

	// Log sink (only now: initdb needs an empty directory).
	logW := cfg.Log
	if logW == nil {
		f, err := openLogFile(filepath.Join(dir, logFileName), ra)
		if err != nil {
			return nil, err
		}
		sys.logFile = f
		logW = f
	}
	sys.sink = &logSink{w: logW}
	_, _ = sys.sink.Write(initOut)

	// Unix socket directory: the data directory if the socket path fits,
	// else a private directory under /tmp.
	if len(dir)+len("/.s.PGSQL.65535") <= maxSocketPathLen && !strings.ContainsAny(dir, ",\"' \t\n\\") {
		sys.sockDir = dir
	} else {
		d, err := os.MkdirTemp("/tmp", "lbpg")
		if err != nil {
			return nil, fmt.Errorf("pgembed: socket directory: %w", err)
		}
		sys.sockDir, sys.sockTemp = d, true
		if ra.cred != nil {
			if err := os.Chown(d, ra.uid, ra.gid); err != nil {
				return nil, fmt.Errorf("pgembed: %w", err)
			}
		}
	}

	attempts := 1
	if cfg.Port == 0 {
		attempts = portAttempts
	}
	for i := 0; ; i++ {
		port := cfg.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, err
			}
		}
		err = sys.launch(ctx, cfg, port, ra)
		if err == nil {
			s.port = port
			if trust {
				if sys.password, err = sys.secure(ctx, port, ra); err != nil {
					_ = terminate(sys.p) // never leave a trusting server behind
					return nil, err
				}
			}
			s.url = buildURL(port, "logbook", sys.password)
			break
		}
		if i+1 < attempts && errors.Is(err, errPortInUse) && ctx.Err() == nil {
			continue
		}
		return nil, err
	}

	sys.mu.Lock()
	sys.ready = true
	if sys.p.exited {
		sys.unlockDir()
	}
	sys.mu.Unlock()
	return s, nil
}

var errPortInUse = errors.New("port in use")

// launch starts one postmaster on port and waits for readiness. On failure
// the postmaster is stopped and s.p describes the dead process.
func (sys *serverSys) launch(ctx context.Context, cfg Config, port int, ra runAs) error {
	onOff := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	args := []string{
		"-D", sys.dir,
		"-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=" + sys.sockDir,
		"-c", "unix_socket_permissions=0700",
		"-c", "max_connections=200",
		"-c", "shared_buffers=128MB",
		"-c", "logging_collector=off",
		"-c", "fsync=" + onOff(cfg.Fsync),
		"-c", "synchronous_commit=" + onOff(cfg.Fsync),
		"-c", "full_page_writes=" + onOff(cfg.Fsync),
	}
	cmd := exec.Command(filepath.Join(sys.bin, "postgres"), args...)
	cmd.Dir = sys.dir
	cmd.Env = childEnv(ra)
	cmd.Stdout = sys.sink
	cmd.Stderr = sys.sink
	cmd.WaitDelay = pipeWaitDelay
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:    true, // terminal ^C reaches us, not postgres; we stop it
		Pdeathsig:  syscall.SIGQUIT,
		Credential: ra.cred,
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}

	// The parent-death signal fires when the *thread* that forked exits, so
	// start and wait on a goroutine locked to its thread for the lifetime of
	// the postmaster.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		sys.procExited(p) // before close(done): done implies the lock is released
		close(p.done)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgembed: start postgres: %w", err)
	}
	sys.mu.Lock()
	sys.p = p
	sys.mu.Unlock()

	err := sys.waitReady(ctx, port)
	if err == nil {
		return nil
	}
	_ = terminate(p) // bounded
	tail := sys.sink.tail(tailLines)
	if tail == "" {
		tail = "(empty)"
	}
	if strings.Contains(tail, "could not bind IPv4 address") || strings.Contains(tail, "Address already in use") {
		return fmt.Errorf("pgembed: postgres cannot listen on 127.0.0.1:%d: %w; server log tail:\n%s", port, errPortInUse, tail)
	}
	return fmt.Errorf("pgembed: %w; server log tail:\n%s", err, tail)
}

// waitReady connects with pgx until the server answers (bounded by
// readyTimeout and ctx), then creates the logbook database if missing.
func (sys *serverSys) waitReady(ctx context.Context, port int) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	adminURL := buildURL(port, "postgres", sys.password)
	var lastErr error
	for {
		select {
		case <-sys.p.done:
			return fmt.Errorf("postgres exited during startup (%v)", sys.p.err)
		default:
		}
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		conn, err := pgx.Connect(cctx, adminURL)
		ccancel()
		if err == nil {
			err = ensureDatabase(ctx, conn, "logbook")
			_ = conn.Close(context.WithoutCancel(ctx))
			if err != nil {
				return fmt.Errorf("create database logbook: %w", err)
			}
			return nil
		}
		lastErr = err
		t := time.NewTimer(pollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("postgres not ready: %w (last error: %v)", ctx.Err(), lastErr)
		case <-sys.p.done:
			t.Stop()
		case <-t.C:
		}
	}
}

func ensureDatabase(ctx context.Context, conn *pgx.Conn, name string) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return err
	}
	if exists {
		return nil
	}
	_, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}

// procExited runs on the wait goroutine after the postmaster was reaped.
// Once the server has started, a dead postmaster no longer owns the data
// directory, so the lock is released (e.g. after a crash) and a new Start
// may recover the cluster.
func (sys *serverSys) procExited(p *proc) {
	sys.mu.Lock()
	defer sys.mu.Unlock()
	p.exited = true
	if sys.p == p && sys.ready {
		sys.unlockDir()
	}
}

// Stop shuts the server down: SIGINT (fast shutdown), escalating to SIGQUIT
// and SIGKILL if it does not exit in time; every wait is bounded. It returns
// an error if the server had already exited on its own or had to be forced.
// Repeated calls return the first result.
func (s *Server) Stop() error {
	sys := &s.sys
	sys.stopMu.Lock()
	defer sys.stopMu.Unlock()
	if sys.stopped {
		return sys.stopErr
	}
	sys.stopped = true
	p := sys.p
	select {
	case <-p.done:
		sys.stopErr = fmt.Errorf("pgembed: server had already exited (%v); log tail:\n%s", p.err, sys.sink.tail(tailLines))
	default:
		sys.stopErr = terminate(p)
	}
	sys.cleanup()
	return sys.stopErr
}

// terminate stops a running postmaster with bounded escalation.
func terminate(p *proc) error {
	steps := []struct {
		sig     syscall.Signal
		timeout time.Duration
	}{
		{syscall.SIGINT, fastStopTimeout},
		{syscall.SIGQUIT, quitStopTimeout},
		{syscall.SIGKILL, killStopTimeout},
	}
	for i, st := range steps {
		if err := p.cmd.Process.Signal(st.sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("pgembed: signal postgres: %w", err)
		}
		t := time.NewTimer(st.timeout)
		select {
		case <-p.done:
			t.Stop()
			if i > 0 {
				return fmt.Errorf("pgembed: postgres did not shut down within %v; sent %v", fastStopTimeout, st.sig)
			}
			var ee *exec.ExitError
			if p.err != nil && !errors.As(p.err, &ee) {
				return fmt.Errorf("pgembed: postgres: %w", p.err)
			}
			return nil
		case <-t.C:
		}
	}
	return fmt.Errorf("pgembed: postgres (pid %d) did not exit after SIGKILL", p.cmd.Process.Pid)
}

// cleanup releases everything Start acquired except a running process.
func (sys *serverSys) cleanup() {
	sys.mu.Lock()
	sys.unlockDir()
	sys.mu.Unlock()
	if sys.sockTemp {
		_ = os.RemoveAll(sys.sockDir)
		sys.sockTemp = false
	}
	if sys.logFile != nil {
		_ = sys.logFile.Close()
		sys.logFile = nil
	}
}

// lockDir takes an exclusive flock on the data directory; it is released
// when the postmaster exits or on Stop. The descriptor is close-on-exec, so
// postgres does not inherit it and the lock dies with this process.
func (sys *serverSys) lockDir() error {
	f, err := os.Open(sys.dir)
	if err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("%w: %s", ErrDirInUse, sys.dir)
		}
		return fmt.Errorf("pgembed: lock %s: %w", sys.dir, err)
	}
	sys.lock = f
	return nil
}

// unlockDir releases the directory lock; sys.mu must be held.
func (sys *serverSys) unlockDir() {
	if sys.lock != nil {
		_ = syscall.Flock(int(sys.lock.Fd()), syscall.LOCK_UN)
		_ = sys.lock.Close()
		sys.lock = nil
	}
}

// findBinDir resolves the PostgreSQL binary directory.
func findBinDir(dir string) (string, error) {
	check := func(d, src string) (string, error) {
		for _, b := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(d, b)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				return "", fmt.Errorf("pgembed: %s (from %s) has no executable %s", d, src, b)
			}
		}
		return d, nil
	}
	if dir != "" {
		return check(dir, "Config.BinDir")
	}
	if d := os.Getenv("LOGBOOK_PG_BIN"); d != "" {
		return check(d, "$LOGBOOK_PG_BIN")
	}
	if dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(dirs) > 0 {
		sort.Slice(dirs, func(i, j int) bool {
			return versionLess(filepath.Base(filepath.Dir(dirs[i])), filepath.Base(filepath.Dir(dirs[j])))
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if d, err := check(dirs[i], "/usr/lib/postgresql"); err == nil {
				return d, nil
			}
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return check(filepath.Dir(p), "pg_ctl on PATH")
	}
	return "", errors.New("pgembed: PostgreSQL binaries not found: set LOGBOOK_PG_BIN or install PostgreSQL (/usr/lib/postgresql/*/bin or pg_ctl on PATH)")
}

// versionLess compares dotted numeric versions ("9.6" < "15").
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return a < b
}

func lookupRunAs() (runAs, error) {
	if os.Geteuid() != 0 {
		return runAs{uid: os.Getuid(), gid: os.Getgid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return runAs{}, fmt.Errorf("pgembed: running as root requires a \"postgres\" OS user to run PostgreSQL as: %w", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil || uid == 0 {
		return runAs{}, fmt.Errorf("pgembed: unusable \"postgres\" user (uid %q gid %q)", u.Uid, u.Gid)
	}
	return runAs{
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)},
		uid:  uid, gid: gid, home: u.HomeDir, name: u.Username,
	}, nil
}

// childEnv is the environment for initdb/postgres: ours without PG* and
// locale variables (which could redirect or localize the server), C locale.
func childEnv(ra runAs) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "LC_") || k == "LANG" || k == "LANGUAGE" {
			continue
		}
		if ra.cred != nil && (k == "HOME" || k == "USER" || k == "LOGNAME") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C")
	if ra.cred != nil {
		env = append(env, "HOME="+ra.home, "USER="+ra.name, "LOGNAME="+ra.name)
	}
	return env
}

// makeTraversable lets the run-as user through every ancestor of dir it
// could not otherwise traverse (e.g. a 0700 t.TempDir() parent): ancestors
// at or below private are given to its group with search only (0710);
// others get the search bit for "others". Read is never granted.
func makeTraversable(dir, private string, ra runAs) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("pgembed: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		mode := fi.Mode().Perm()
		can := false
		switch {
		case ok && int(st.Uid) == ra.uid:
			can = mode&0o100 != 0
		case ok && int(st.Gid) == ra.gid:
			can = mode&0o010 != 0
		default:
			can = mode&0o001 != 0
		}
		if !can && private != "" && (d == private || strings.HasPrefix(d, private+"/")) {
			if err := os.Chown(d, -1, ra.gid); err != nil {
				return fmt.Errorf("pgembed: give %s to group of user %s: %w", d, ra.name, err)
			}
			if err := os.Chmod(d, 0o710); err != nil {
				return fmt.Errorf("pgembed: make %s traversable for user %s: %w", d, ra.name, err)
			}
		} else if !can {
			if err := os.Chmod(d, fi.Mode()&fs.ModePerm|fi.Mode()&(fs.ModeSticky|fs.ModeSetuid|fs.ModeSetgid)|0o001); err != nil {
				return fmt.Errorf("pgembed: make %s traversable for user %s: %w", d, ra.name, err)
			}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// chownTree gives the data directory and everything in it to the run-as
// user (a no-op walk when ownership is already right).
func chownTree(dir string, ra runAs) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == ra.uid && int(st.Gid) == ra.gid {
			return nil
		}
		if err := os.Lchown(path, ra.uid, ra.gid); err != nil {
			return fmt.Errorf("pgembed: chown data directory: %w", err)
		}
		return nil
	})
}

// initdb creates a cluster in the (empty) dir and returns its output.
func initdb(ctx context.Context, bin, dir string, fsync bool, ra runAs, password string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, initdbTimeout)
	defer cancel()
	pw, err := pwFile(password, ra)
	if err != nil {
		return nil, err
	}
	defer os.Remove(pw)
	args := []string{"-D", dir, "-U", "logbook", "--auth=scram-sha-256", "--pwfile=" + pw, "-E", "UTF8", "--locale=C"}
	if !fsync {
		args = append(args, "--no-sync")
	}
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), args...)
	cmd.Dir = "/"
	cmd.Env = childEnv(ra)
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = pipeWaitDelay
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: ra.cred}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Run(); err != nil {
		// initdb only runs on an empty directory (checked by Start), so
		// whatever is there now is its partial output.
		clearDir(dir)
		return nil, fmt.Errorf("pgembed: initdb %s: %w\n%s", dir, err, lastLines(out.String(), tailLines))
	}
	return out.Bytes(), nil
}

func clearDir(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

func openLogFile(path string, ra runAs) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil && fi.Size() > logRotateSize {
		_ = os.Rename(path, path+".1")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pgembed: open server log: %w", err)
	}
	if ra.cred != nil {
		_ = f.Chown(ra.uid, ra.gid)
	}
	return f, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgembed: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stopStalePostmaster handles a postmaster.pid left by a previous run of the
// same data directory. The caller holds the directory lock, so no live
// Server owns the directory. A still-running postmaster of this directory
// (orphaned by a crashed logbook process) is stopped with SIGQUIT; leftover
// backends of a killed postmaster are waited for (they exit on postmaster
// death) so the new postmaster does not find its shared memory in use.
func stopStalePostmaster(dir string) error {
	pidFile := filepath.Join(dir, "postmaster.pid")
	data, err := os.ReadFile(pidFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err == nil && pid > 0 && pid != os.Getpid() {
		switch state := procState(pid); {
		case state == 0:
			// Gone: postgres handles the stale file itself.
		case state == 'Z':
			// A zombie still answers kill(pid, 0), which would make
			// postgres believe the postmaster is alive.
			_ = os.Remove(pidFile)
		case isPostgresIn(pid, dir):
			if err := quitAndWait(pid); err != nil {
				return err
			}
		default:
			// The pid was reused by an unrelated process.
			_ = os.Remove(pidFile)
		}
	}
	// Leftover children of a dead postmaster (same cwd, still running).
	deadline := time.Now().Add(orphanWait)
	for {
		pids := postgresProcsIn(dir)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, p := range pids {
				_ = syscall.Kill(p, syscall.SIGKILL)
			}
			if !waitGone(pids, killStopTimeout) {
				return fmt.Errorf("pgembed: leftover postgres processes %v of %s do not exit", pids, dir)
			}
			return nil
		}
		time.Sleep(pollInterval)
	}
}

func quitAndWait(pid int) error {
	_ = syscall.Kill(pid, syscall.SIGQUIT)
	if waitGone([]int{pid}, fastStopTimeout) {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	if waitGone([]int{pid}, killStopTimeout) {
		return nil
	}
	return fmt.Errorf("pgembed: stale postmaster (pid %d) does not exit", pid)
}

func waitGone(pids []int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		alive := false
		for _, p := range pids {
			if s := procState(p); s != 0 && s != 'Z' {
				alive = true
			}
		}
		if !alive {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollInterval)
	}
}

// procState returns the state letter of pid from /proc, 0 if it is gone.
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// isPostgresIn reports whether pid runs a postgres binary with dir as its
// working directory (postgres chdirs into its data directory).
func isPostgresIn(pid int, dir string) bool {
	base := "/proc/" + strconv.Itoa(pid)
	cmdline, err := os.ReadFile(base + "/cmdline")
	if err != nil {
		return false
	}
	argv0, _, _ := bytes.Cut(cmdline, []byte{0})
	fields := bytes.Fields(argv0) // children rewrite it: "postgres: checkpointer"
	if len(fields) == 0 {
		return false
	}
	name := filepath.Base(string(fields[0]))
	if !strings.HasPrefix(name, "postgres") && !strings.HasPrefix(name, "postmaster") {
		return false
	}
	cwd, err := os.Readlink(base + "/cwd")
	return err == nil && cwd == dir
}

// postgresProcsIn lists live postgres processes working in dir.
func postgresProcsIn(dir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if s := procState(pid); s == 0 || s == 'Z' {
			continue
		}
		if isPostgresIn(pid, dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// logSink forwards the server log to w and keeps its tail for error
// messages. It never fails, so the pipe from postgres is always drained.
type logSink struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > 2*tailBytes {
		n := copy(l.buf, l.buf[len(l.buf)-tailBytes:])
		l.buf = l.buf[:n]
	}
	if l.w != nil && len(p) > 0 {
		_, _ = l.w.Write(p)
	}
	return len(p), nil
}

func (l *logSink) tail(n int) string {
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return lastLines(string(l.buf), n)
}

func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
