package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	_ "net/http/pprof" // served only on LOGBOOK_DEBUG_ADDR
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/logbook-dev/logbook/internal/auth"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/keyring"
	"github.com/logbook-dev/logbook/internal/pg"
	"github.com/logbook-dev/logbook/internal/tracing"
	"github.com/logbook-dev/logbook/projections"
)

// Main wires the roles of one process together.
type Main struct {
	Config Config
	Log    *slog.Logger
	Stdout io.Writer

	pool     *pgxpool.Pool
	keys     *auth.Keys
	listener net.Listener
	opsLn    net.Listener // LOGBOOK_METRICS_ADDR
	health   *health
	reg      *prometheus.Registry
	ring     *keyring.Ring // the workspaces' data keys
	draining atomic.Bool
	tracing  *tracing.Tracing
	self     projections.Instance
}

// Open connects to Postgres, migrates, bootstraps the admin key, creates the
// topics and binds the HTTP listener.
func (m *Main) Open(ctx context.Context) error {
	m.self = newInstance(m.Config.Roles)
	var err error
	if m.tracing, err = tracing.New(ctx, tracing.Config{Endpoint: m.Config.OTLPEndpoint, SampleRatio: m.Config.TraceSampleRatio,
		Version: m.self.Version, Instance: m.self.ID}); err != nil {
		return err
	}
	m.openMetrics()
	// Group members are matched to registry rows by their client id.
	m.Config.Kafka.ClientID = m.self.KafkaClientID
	c := m.Config
	if err := c.validateRoles(); err != nil {
		return err
	}
	m.Config.Kafka = m.Config.Kafka.WithDefaults()
	c.Kafka = m.Config.Kafka
	if err := c.Kafka.Validate(); err != nil {
		return fmt.Errorf("%w (set LOGBOOK_KAFKA_BROKERS)", err)
	}
	if c.DatabaseURL == "" {
		return errors.New("no database: set LOGBOOK_DATABASE_URL")
	}
	if m.pool, err = pg.Connect(ctx, c.DatabaseURL, 20); err != nil {
		return err
	}
	if err := projections.Migrate(ctx, m.pool); err != nil {
		return err
	}
	if m.keys, err = auth.Open(ctx, m.pool, projections.NewKeyRegistry(m.pool), m.Log); err != nil {
		return err
	}
	if err := kafka.EnsureTopics(ctx, c.Kafka); err != nil {
		return err
	}
	ks := c.MasterKeys
	if ks == nil && c.needsMasterKeys() {
		l, err := loadMasterKeys()
		if err != nil {
			return err
		}
		ks = l
	}
	// The api and agent roles seal and open fields; the projector erases
	// keys and needs no master key; the decider never touches them.
	if c.needsMasterKeys() || c.hasRole("projector") {
		if m.ring, err = keyring.New(c.Kafka, ks); err != nil {
			return err
		}
	}
	if c.Signer == nil && c.Verifier == nil {
		if m.Config.Signer, m.Config.Verifier, err = signingKeys(); err != nil {
			return err
		}
		c = m.Config
	}
	if (c.hasRole("api") || c.hasRole("agent")) && c.Signer == nil {
		return errors.New("the api and agent roles sign every command: set LOGBOOK_SIGNING_KEY_FILE or LOGBOOK_SIGNING_KEY (`logbook keys signing` makes a pair)")
	}
	if c.hasRole("decider") && c.Verifier == nil {
		return errors.New("the decider verifies every command: set LOGBOOK_SIGNING_PUBLIC_KEYS_FILE or LOGBOOK_SIGNING_PUBLIC_KEYS (or the signing key)")
	}
	if c.hasRole("api") {
		generated, err := m.keys.Bootstrap(ctx, c.AdminKey)
		if err != nil {
			return err
		}
		if generated != "" {
			// Shown once, on stdout, never through the logger.
			fmt.Fprintf(m.Stdout, "admin key (shown once, keep it): %s\n", generated.Reveal())
		}
		if m.listener, err = net.Listen("tcp", c.HTTPAddr); err != nil {
			return fmt.Errorf("http: %w", err)
		}
	}
	if c.MetricsAddr != "" {
		if m.opsLn, err = net.Listen("tcp", c.MetricsAddr); err != nil {
			return fmt.Errorf("LOGBOOK_METRICS_ADDR: %w", err)
		}
	}
	m.health = newHealth(c.Kafka, m.pool, m.Log)
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "logbook_degradation_level",
		Help: "0 full, 1 ai_degraded, 2 read_only, 3 queries_degraded, 4 emergency, 5 decisions_delayed.",
	}, func() float64 { return float64(m.health.level().rank()) }))
	stalls := func(of func(projections.StallSummary) float64) func() float64 {
		return func() float64 {
			if st := m.health.stalls.Load(); st != nil {
				return of(*st)
			}
			return 0
		}
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "logbook_projection_stalled_workspaces",
		Help: "Workspaces whose read models wait behind a quarantined record (logbook dlq list).",
	}, stalls(func(s projections.StallSummary) float64 { return float64(s.Workspaces) })))
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "logbook_projection_quarantined_records",
		Help: "Records the projections could not apply, and the events held behind them.",
	}, stalls(func(s projections.StallSummary) float64 { return float64(s.Records) })))
	return nil
}

// drain keeps a stopping API instance serving for the drain delay while
// /readyz answers 503 draining: load balancers take it out of rotation
// before its listener closes, so clients see no refused connection. The
// HTTP server's shutdown then waits for the requests in flight.
func (m *Main) drain(ctx context.Context) {
	d := m.Config.DrainDelay
	if d <= 0 || m.listener == nil {
		return
	}
	m.draining.Store(true)
	m.Log.Info("draining: /readyz answers 503 until the listener closes", "for", d)
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// URL is the base URL of the HTTP API.
func (m *Main) URL() string {
	if m.listener == nil {
		return ""
	}
	return "http://" + m.listener.Addr().String()
}

// MetricsURL is the base URL of the LOGBOOK_METRICS_ADDR listener.
func (m *Main) MetricsURL() string {
	if m.opsLn == nil {
		return ""
	}
	return "http://" + m.opsLn.Addr().String()
}

// Run runs the chosen roles until ctx ends or one fails. When ctx ends, a
// process serving the API first drains (see drain), then stops.
func (m *Main) Run(parent context.Context) error {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	defer cancel()
	go func() {
		select {
		case <-parent.Done():
			m.drain(ctx)
			cancel()
		case <-ctx.Done():
		}
	}()
	r := &runner{ctx: ctx, cancel: cancel}
	starts := []struct {
		role  string
		start func(*runner) error
	}{
		{"decider", m.startDecider},
		{"agent", m.startAgent},
		{"", m.startCommon},
		{"projector", m.startProjectors},
		{"api", m.startAPI},
	}
	for _, s := range starts {
		if s.role != "" && !m.Config.hasRole(s.role) {
			continue
		}
		if err := s.start(r); err != nil {
			r.fail(err)
			break
		}
	}
	if ctx.Err() == nil {
		m.startOps(r)
	}
	return r.wait()
}

// Close releases what Open acquired.
func (m *Main) Close() {
	if m.listener != nil {
		m.listener.Close()
	}
	if m.opsLn != nil {
		m.opsLn.Close()
	}
	if m.pool != nil {
		m.pool.Close()
	}
	if m.ring != nil {
		m.ring.Close()
	}
	if m.tracing != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = m.tracing.Shutdown(ctx) // what is buffered goes out
		cancel()
	}
}
