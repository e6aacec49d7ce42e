package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/logbook-dev/logbook/internal/auth"
	"github.com/logbook-dev/logbook/internal/fieldcrypt"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/keylist"
	"github.com/logbook-dev/logbook/internal/logging"
	"github.com/logbook-dev/logbook/internal/signing"
	"github.com/logbook-dev/logbook/internal/tracing"
)

// Config is everything a logbook process reads from env and flags. Only
// this package reads them.
type Config struct {
	Kafka       kafka.Config
	DatabaseURL string
	HTTPAddr    string
	// MetricsAddr, when set, serves /metrics, /healthz, /readyz and
	// /v1/status on a listener of its own, whatever the roles: the way to
	// watch a process without the api role.
	MetricsAddr string
	// DrainDelay is how long a stopping API instance keeps serving with
	// /readyz at 503 (Main.drain).
	DrainDelay time.Duration
	// The HTTP server's timeouts, and how long its shutdown waits for the
	// requests in flight.
	HTTPReadTimeout, HTTPWriteTimeout, HTTPIdleTimeout, ShutdownTimeout time.Duration
	// Tracing: off without an OTLP endpoint.
	OTLPEndpoint     string
	TraceSampleRatio float64
	AdminKey         auth.Secret
	Roles            []string
	LogLevel         slog.Level
	// MaxCommandLag is the decider backlog above which commands get 429.
	MaxCommandLag int64
	// RatePerKey limits each API key's commands per second (-1: off).
	RatePerKey float64
	// MaxInFlightCommands bounds the commands each API process takes in
	// at once (0: 64 per CPU, -1: off).
	MaxInFlightCommands int
	// AuthFailuresPerMinute is how many failed authentications a source
	// address may have in a minute before its requests get 429 (0 or
	// less: off).
	AuthFailuresPerMinute int
	// AI configures the agent role.
	AI AIConfig
	// MasterKeys wrap the workspaces' data keys. The api and agent roles
	// need them (they seal and open sensitive fields); when nil, Open reads
	// LOGBOOK_MASTER_KEY_FILE or LOGBOOK_MASTER_KEY.
	MasterKeys fieldcrypt.KeyService
	// Signer signs the commands of the api and agent roles; Verifier
	// holds the public keys the decider accepts. When nil, Open reads
	// them from the environment (signingKeys).
	Signer   *signing.Signer
	Verifier *signing.Verifier
}

// kafkaCredentials reads the process's Kafka principal:
// LOGBOOK_KAFKA_USER with LOGBOOK_KAFKA_PASSWORD_FILE (0600) or
// LOGBOOK_KAFKA_PASSWORD, SCRAM-SHA-512.
func kafkaCredentials() (kafka.SASL, error) {
	user := env("LOGBOOK_KAFKA_USER", "")
	pass := os.Getenv("LOGBOOK_KAFKA_PASSWORD")
	if path := os.Getenv("LOGBOOK_KAFKA_PASSWORD_FILE"); path != "" {
		text, err := keylist.ReadPrivate(path)
		if err != nil {
			return kafka.SASL{}, fmt.Errorf("LOGBOOK_KAFKA_PASSWORD_FILE: %w", err)
		}
		pass = strings.TrimSpace(text)
	}
	switch {
	case user == "" && pass != "":
		return kafka.SASL{}, errors.New("a Kafka password without LOGBOOK_KAFKA_USER")
	case user != "" && pass == "":
		return kafka.SASL{}, errors.New("LOGBOOK_KAFKA_USER without LOGBOOK_KAFKA_PASSWORD_FILE or LOGBOOK_KAFKA_PASSWORD")
	}
	return kafka.SASL{User: user, Password: pass}, nil
}

// signingKeys reads the signing key (LOGBOOK_SIGNING_KEY_FILE, else
// LOGBOOK_SIGNING_KEY) and the accepted public keys
// (LOGBOOK_SIGNING_PUBLIC_KEYS_FILE, else LOGBOOK_SIGNING_PUBLIC_KEYS, else
// the signing key's own). Either may be nil when not configured.
func signingKeys() (*signing.Signer, *signing.Verifier, error) {
	var s *signing.Signer
	priv := os.Getenv("LOGBOOK_SIGNING_KEY")
	if path := os.Getenv("LOGBOOK_SIGNING_KEY_FILE"); path != "" {
		text, err := keylist.ReadPrivate(path)
		if err != nil {
			return nil, nil, fmt.Errorf("LOGBOOK_SIGNING_KEY_FILE: %w", err)
		}
		priv = text
	}
	if priv != "" {
		var err error
		if s, err = signing.ParseSigner(priv); err != nil {
			return nil, nil, fmt.Errorf("signing key: %w", err)
		}
	}
	pub := os.Getenv("LOGBOOK_SIGNING_PUBLIC_KEYS")
	if path := os.Getenv("LOGBOOK_SIGNING_PUBLIC_KEYS_FILE"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, nil, fmt.Errorf("LOGBOOK_SIGNING_PUBLIC_KEYS_FILE: %w", err)
		}
		pub = string(b)
	}
	if pub == "" && s != nil {
		pub = s.Public()
	}
	if pub == "" {
		return s, nil, nil
	}
	v, err := signing.ParseVerifier(pub)
	if err != nil {
		return nil, nil, err
	}
	return s, v, nil
}

// needsMasterKeys reports whether the chosen roles seal or open fields.
func (c Config) needsMasterKeys() bool { return c.hasRole("api") || c.hasRole("agent") }

// loadMasterKeys reads the master keys from the environment.
func loadMasterKeys() (*fieldcrypt.Local, error) {
	ks, err := fieldcrypt.LoadMasterKeys(os.Getenv)
	if err != nil {
		return nil, fmt.Errorf("%w (the api and agent roles encrypt sensitive fields with it; `logbook keys master` prints a new key line for the file)", err)
	}
	return ks, nil
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

// baseConfig reads the environment; flags bound by bindFlags override it.
func baseConfig() (Config, error) {
	c := Config{
		DatabaseURL: env("LOGBOOK_DATABASE_URL", ""),
		HTTPAddr:    settingValue("LOGBOOK_HTTP_ADDR"),
		MetricsAddr: env("LOGBOOK_METRICS_ADDR", ""),
		AdminKey:    auth.Secret(env("LOGBOOK_ADMIN_KEY", "")),
		Roles:       splitList(settingValue("LOGBOOK_ROLES")),

		AuthFailuresPerMinute: auth.DefaultFailuresPerMinute,
	}
	if err := auth.CheckAdminKey(c.AdminKey); err != nil {
		return c, err
	}
	c.Kafka.Brokers = splitList(env("LOGBOOK_KAFKA_BROKERS", ""))
	var err error
	if c.Kafka.SASL, err = kafkaCredentials(); err != nil {
		return c, err
	}
	c.Kafka.Prefix = settingValue("LOGBOOK_TOPIC_PREFIX")
	if p := env("LOGBOOK_PARTITIONS", ""); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 1000 {
			return c, fmt.Errorf("LOGBOOK_PARTITIONS must be 1..1000, got %q", p)
		}
		c.Kafka.Partitions = int32(n)
	}
	if v := env("LOGBOOK_MAX_COMMAND_LAG", ""); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return c, fmt.Errorf("LOGBOOK_MAX_COMMAND_LAG must be a positive integer, got %q", v)
		}
		c.MaxCommandLag = n
	}
	if v := env("LOGBOOK_MAX_INFLIGHT_COMMANDS", ""); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n == 0 || n < -1 || n > 1_000_000 {
			return c, fmt.Errorf("LOGBOOK_MAX_INFLIGHT_COMMANDS must be 1..1000000 (-1 disables), got %q", v)
		}
		c.MaxInFlightCommands = n
	}
	if v := env("LOGBOOK_RATE_PER_KEY", ""); v != "" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil || n == 0 {
			return c, fmt.Errorf("LOGBOOK_RATE_PER_KEY must be a non-zero number (-1 disables), got %q", v)
		}
		c.RatePerKey = n
	}
	if v := env("LOGBOOK_AUTH_FAILURES_PER_MINUTE", ""); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return c, fmt.Errorf("LOGBOOK_AUTH_FAILURES_PER_MINUTE must be an integer (0 or less disables), got %q", v)
		}
		c.AuthFailuresPerMinute = n
	}
	for _, d := range []struct {
		name     string
		to       *time.Duration
		min, max time.Duration
	}{
		{"LOGBOOK_DRAIN_DELAY", &c.DrainDelay, 0, 10 * time.Minute},
		{"LOGBOOK_HTTP_READ_TIMEOUT", &c.HTTPReadTimeout, time.Second, time.Hour},
		{"LOGBOOK_HTTP_WRITE_TIMEOUT", &c.HTTPWriteTimeout, time.Second, time.Hour},
		{"LOGBOOK_HTTP_IDLE_TIMEOUT", &c.HTTPIdleTimeout, time.Second, time.Hour},
		{"LOGBOOK_SHUTDOWN_TIMEOUT", &c.ShutdownTimeout, 0, 10 * time.Minute},
	} {
		v := settingValue(d.name)
		n, err := time.ParseDuration(v)
		if err != nil || n < d.min || n > d.max {
			return c, fmt.Errorf("%s must be a duration from %s to %s, got %q", d.name, d.min, d.max, v)
		}
		*d.to = n
	}
	c.OTLPEndpoint = settingValue("LOGBOOK_OTLP_ENDPOINT")
	if v := settingValue("LOGBOOK_TRACE_SAMPLE_RATIO"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 0 || r > 1 {
			return c, fmt.Errorf("LOGBOOK_TRACE_SAMPLE_RATIO must be a number from 0 to 1, got %q", v)
		}
		c.TraceSampleRatio = r
	}
	if c.AI, err = aiConfig(); err != nil {
		return c, err
	}
	if err := c.LogLevel.UnmarshalText([]byte(settingValue("LOGBOOK_LOG_LEVEL"))); err != nil {
		return c, fmt.Errorf("LOGBOOK_LOG_LEVEL: %w", err)
	}
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// logger writes JSON lines, sensitive attributes redacted, each with the
// trace and span ids of the context it is logged with.
func (c Config) logger(w io.Writer) *slog.Logger {
	return slog.New(tracing.LogHandler(logging.New(w, c.LogLevel).Handler()))
}

func (c Config) hasRole(r string) bool {
	for _, x := range c.Roles {
		if x == r {
			return true
		}
	}
	return false
}

var knownRoles = map[string]bool{"api": true, "decider": true, "projector": true, "agent": true}

func (c Config) validateRoles() error {
	if len(c.Roles) == 0 {
		return errors.New("no roles: choose from api, decider, projector, agent")
	}
	for _, r := range c.Roles {
		if !knownRoles[r] {
			return fmt.Errorf("unknown role %q: choose from api, decider, projector, agent", r)
		}
	}
	return nil
}

func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
