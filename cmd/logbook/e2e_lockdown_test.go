package main_test

import (
	"context"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
)

// logbook dev keeps its data its user's alone: the data directory and
// everything in it closed to other users (also what an older version left
// open), and the embedded Postgres asks every connection for a password
// that only the data directory holds.
func TestDevDataIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	// What versions before the lock-down left: world-readable entries.
	if err := os.MkdirAll(filepath.Join(dir, "kafka"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "postgres.log"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Not logbook's: left as it is.
	notes := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notes, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startDev(t, dir)
	c := newClient(t, p.URL, p.Key)
	ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "w"}, wait, "wait=10").str("workspace_id")
	c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "t", "input": "secret plans"}, wait, "wait=10")

	pgDir := filepath.Join(dir, "postgres")
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		perm := fi.Mode().Perm()
		switch {
		case path == notes:
			if perm != 0o644 {
				t.Errorf("a file logbook does not own became %v", perm)
			}
		case perm&0o007 != 0:
			t.Errorf("%s is %v: open to every user", path, perm)
		case path == dir:
			// 0700, or 0710 when the database's user must be let through.
			if perm != 0o700 && perm != 0o710 {
				t.Errorf("data directory is %v", perm)
			}
		case path != pgDir && !strings.HasPrefix(path, pgDir+"/") && perm&0o077 != 0:
			t.Errorf("%s is %v: open to its group", path, perm)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	b, err := os.ReadFile(filepath.Join(dir, "postgres.url"))
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal("postgres.url does not parse")
	}
	if _, ok := u.User.Password(); !ok {
		t.Fatal("the embedded database takes connections without a password")
	}
	u.User = url.User(u.User.Username())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, u.String()); err == nil {
		conn.Close(ctx)
		t.Error("connected to the embedded database without its password")
	}

	t.Run("another local user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("needs root to act as another user")
		}
		nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
		for _, args := range [][]string{
			{"ls", dir},
			{"cat", filepath.Join(dir, "postgres.url")},
			{"cat", filepath.Join(pgDir, "logbook.password")},
			{"ls", filepath.Join(dir, "kafka")},
		} {
			cmd := exec.Command(args[0], args[1:]...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
			if out, err := cmd.CombinedOutput(); err == nil {
				t.Errorf("%v as nobody succeeded: %.200s", args, out)
			}
		}
	})
}

// TestDevBrokerAnswersItsPrincipalOnly: the embedded broker listens on
// loopback, where any local user can reach it; without the password in
// the private data directory it serves nothing.
func TestDevBrokerAnswersItsPrincipalOnly(t *testing.T) {
	dir := t.TempDir()
	p := startDev(t, dir)
	if !strings.HasPrefix(p.Kafka, "127.0.0.1:") {
		t.Fatalf("the embedded broker listens on %s, want loopback", p.Kafka)
	}
	try := func(opts ...kgo.Opt) error {
		cl, err := kgo.NewClient(append(opts, kgo.RetryTimeout(2*time.Second), kgo.DialTimeout(2*time.Second))...)
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = kadm.NewClient(cl).ListTopics(ctx)
		return err
	}
	if err := try(devKafka(t, p, dir)...); err != nil {
		t.Fatalf("with the data directory's password: %v", err)
	}
	if err := try(kgo.SeedBrokers(p.Kafka)); err == nil {
		t.Fatal("a client without credentials listed the topics")
	}
	wrong := kafka.Config{Brokers: []string{p.Kafka}, SASL: kafka.SASL{User: "logbook", Password: "guess"}}
	// kfake drops the connection rather than answering the failure.
	if err := try(wrong.Opts()...); err == nil {
		t.Fatal("a wrong password listed the topics")
	}
}
