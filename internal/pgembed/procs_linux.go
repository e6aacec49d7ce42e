package pgembed

// Finding and stopping a postmaster a crashed run left behind.

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

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
