package pgembed

// Running the server as the postgres user when logbook runs as root.

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

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
