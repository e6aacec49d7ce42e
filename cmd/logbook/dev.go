package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/logbook-dev/logbook/internal/devbroker"
	"github.com/logbook-dev/logbook/internal/fieldcrypt"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/keylist"
	"github.com/logbook-dev/logbook/internal/pgembed"
	"github.com/logbook-dev/logbook/internal/signing"
)

// runDev runs every role in one process on an embedded Kafka-protocol broker
// (kfake, persisted under DIR/kafka; or LOGBOOK_KAFKA_BROKERS when set) and
// an embedded Postgres (DIR/postgres, or LOGBOOK_DATABASE_URL when set).
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := baseConfig()
	if err != nil {
		return err
	}
	fs := newFlags("dev", stderr)
	dir := fs.String("data", settingValue("LOGBOOK_DATA"), "data directory; survives restarts")
	fs.StringVar(&cfg.HTTPAddr, "http", cfg.HTTPAddr, "HTTP listen address")
	roles := fs.String("roles", "api,decider,projector,agent", "roles to run; leave out agent to run AI agents in another process")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.Kafka.Partitions == 0 {
		cfg.Kafka.Partitions = 6 // one process: fewer partitions, same guarantees
	}
	cfg.Roles = splitList(*roles)
	log := cfg.logger(stderr)
	restrictUmask()
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if err := lockDown(abs); err != nil {
		return fmt.Errorf("data directory %s: %w", abs, err)
	}

	if len(cfg.Kafka.Brokers) == 0 {
		sync, err := devSyncWrites()
		if err != nil {
			return err
		}
		sasl, err := devKafkaCredentials(abs)
		if err != nil {
			return err
		}
		broker, err := startBroker(ctx, abs, sync, sasl, log)
		if err != nil {
			return err
		}
		defer broker.Close()
		cfg.Kafka.Brokers, cfg.Kafka.SASL = broker.ListenAddrs(), sasl
	}

	if cfg.DatabaseURL == "" {
		pgLog, err := os.OpenFile(filepath.Join(abs, "postgres.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		defer pgLog.Close()
		srv, err := pgembed.Start(ctx, pgembed.Config{Dir: filepath.Join(abs, devPostgresDir), Private: abs, Fsync: true, Log: pgLog})
		if err != nil {
			return fmt.Errorf("embedded postgres: %w", err)
		}
		defer srv.Stop()
		cfg.DatabaseURL = srv.URL()
		// The operator tools (dlq, keys) find the embedded database here.
		if err := os.WriteFile(filepath.Join(abs, devDatabaseURLFile), []byte(cfg.DatabaseURL+"\n"), 0o600); err != nil {
			return err
		}
	}

	if os.Getenv("LOGBOOK_MASTER_KEY_FILE") == "" && os.Getenv("LOGBOOK_MASTER_KEY") == "" {
		if cfg.MasterKeys, err = devMasterKeys(abs); err != nil {
			return err
		}
	}
	if os.Getenv("LOGBOOK_SIGNING_KEY_FILE") == "" && os.Getenv("LOGBOOK_SIGNING_KEY") == "" {
		if cfg.Signer, cfg.Verifier, err = devSigningKeys(abs); err != nil {
			return err
		}
	}

	m := &Main{Config: cfg, Log: log, Stdout: stdout}
	defer m.Close()
	if err := m.Open(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "kafka: %s\n", strings.Join(cfg.Kafka.Brokers, ","))
	fmt.Fprintf(stdout, "http: %s\n", m.URL())
	if u := m.MetricsURL(); u != "" {
		fmt.Fprintf(stdout, "metrics: %s\n", u)
	}
	fmt.Fprintf(stdout, "data: %s\n", abs)
	fmt.Fprintln(stdout, "ready")
	err = m.Run(ctx)
	log.Info("stopping")
	return err
}

// devMasterKeyFile, under the data directory, holds the master key of a
// dev instance that was given none: made on first start, 0600. Without it
// the sensitive fields in the log and the database cannot be read.
const devMasterKeyFile = "master.key"

// devMasterKeys reads the data directory's master key, making it first.
func devMasterKeys(dir string) (*fieldcrypt.Local, error) {
	path := filepath.Join(dir, devMasterKeyFile)
	if err := devSecret(path, func() (string, error) {
		return fieldcrypt.NewMasterKey("dev-" + time.Now().UTC().Format("20060102"))
	}); err != nil {
		return nil, err
	}
	return fieldcrypt.LoadMasterKeyFile(path)
}

// devKafkaPasswordFile, under the data directory, holds the password of
// the embedded broker's one principal, devKafkaUser: made on first start,
// 0600.
const devKafkaPasswordFile = "kafka.password"

const devKafkaUser = "logbook"

// devKafkaCredentials reads the embedded broker's credentials, making the
// password first.
func devKafkaCredentials(dir string) (kafka.SASL, error) {
	path := filepath.Join(dir, devKafkaPasswordFile)
	if err := devSecret(path, func() (string, error) {
		b := make([]byte, 24)
		_, err := rand.Read(b)
		return hex.EncodeToString(b), err
	}); err != nil {
		return kafka.SASL{}, err
	}
	text, err := keylist.ReadPrivate(path)
	if err != nil {
		return kafka.SASL{}, err
	}
	return kafka.SASL{User: devKafkaUser, Password: strings.TrimSpace(text)}, nil
}

// devSigningKeyFile, under the data directory, holds the command signing
// key of a dev instance that was given none: made on first start, 0600.
const devSigningKeyFile = "signing.key"

// devSigningKeys reads the data directory's signing key, making it first;
// the decider accepts its public key.
func devSigningKeys(dir string) (*signing.Signer, *signing.Verifier, error) {
	path := filepath.Join(dir, devSigningKeyFile)
	if err := devSecret(path, func() (string, error) {
		priv, _, err := signing.NewKey("dev-" + time.Now().UTC().Format("20060102"))
		return priv, err
	}); err != nil {
		return nil, nil, err
	}
	text, err := keylist.ReadPrivate(path)
	if err != nil {
		return nil, nil, err
	}
	s, err := signing.ParseSigner(text)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	v, err := signing.ParseVerifier(s.Public())
	return s, v, err
}

// devSecret writes a new secret line, made by newLine, to path (0600) unless
// the file exists.
func devSecret(path string, newLine func() (string, error)) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return nil
	case err != nil:
		return err
	}
	line, werr := newLine()
	if werr == nil {
		_, werr = f.WriteString(line + "\n")
	}
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		os.Remove(path)
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// devDatabaseURLFile, under the data directory, holds the embedded
// database's URL, password included, while `logbook dev` runs.
const devDatabaseURLFile = "postgres.url"

// devPostgresDir is the embedded database's cluster, under the data
// directory; it belongs to the server's user, which keeps it private.
const devPostgresDir = "postgres"

// devOwnFiles are the entries of the data directory that logbook dev
// writes besides the database's own directory.
var devOwnFiles = []string{"kafka", "kafka.port", devbroker.JournalFile, "postgres.log", devDatabaseURLFile, devMasterKeyFile, devSigningKeyFile, devKafkaPasswordFile}

// lockDown makes the data directory its owner's alone: the directory 0700
// and what logbook keeps in it readable by its owner only, also what
// versions before this one left open (kafka/ 0755, partition files 0644).
// Entries it does not know are left as they are (--data may name a
// directory that holds other things). When the embedded database runs as
// another user, pgembed then lets that user through by group, search only.
func lockDown(dir string) error {
	if err := os.Chmod(dir, 0o700); err != nil {
		return err
	}
	for _, name := range devOwnFiles {
		err := filepath.WalkDir(filepath.Join(dir, name), func(path string, d fs.DirEntry, err error) error {
			switch {
			case err != nil:
				return err
			case d.Type()&fs.ModeSymlink != 0:
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if perm := fi.Mode().Perm(); perm&0o077 != 0 {
				return os.Chmod(path, perm&^0o077)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// devSyncWrites reads LOGBOOK_DEV_SYNC_WRITES: whether the embedded broker
// fsyncs every batch before it acknowledges it.
func devSyncWrites() (bool, error) {
	v := settingValue("LOGBOOK_DEV_SYNC_WRITES")
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("LOGBOOK_DEV_SYNC_WRITES must be true or false, got %q", v)
	}
	return b, nil
}

// startBroker starts the embedded broker on the port it used last time (so
// kcat and Kafka's CLI keep one address), or a free one. With sync, every
// batch is fsynced before it is acknowledged; without, a process crash loses
// nothing (the page cache keeps it) but a power loss can lose what the OS
// had not written.
func startBroker(ctx context.Context, dir string, sync bool, sasl kafka.SASL, log *slog.Logger) (*devbroker.Broker, error) {
	portFile := filepath.Join(dir, "kafka.port")
	port := 0
	if b, err := os.ReadFile(portFile); err == nil {
		port, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if port == 0 || !portFree(port) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, "127.0.0.1:"+strconv.Itoa(port))
		}),
		kfake.GroupMinSessionTimeout(time.Second),
	}
	c, err := devbroker.Start(ctx, devbroker.Config{Dir: dir, Sync: sync, Logger: log, Opts: opts, SASL: sasl})
	if err != nil {
		return nil, err
	}
	_ = os.WriteFile(portFile, []byte(strconv.Itoa(port)), 0o600)
	return c, nil
}

func portFree(port int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
