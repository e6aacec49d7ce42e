package pgembed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgembed: pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
