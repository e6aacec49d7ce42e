package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // served only on LOGBOOK_DEBUG_ADDR
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/consumers/decider"
	"github.com/logbook-dev/logbook/internal/auth"
	"github.com/logbook-dev/logbook/internal/httpapi"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/keyring"
	"github.com/logbook-dev/logbook/internal/metrics"
	"github.com/logbook-dev/logbook/internal/pg"
	"github.com/logbook-dev/logbook/internal/signing"
	"github.com/logbook-dev/logbook/internal/tracing"
	"github.com/logbook-dev/logbook/producers"
	"github.com/logbook-dev/logbook/projections"
	"github.com/logbook-dev/logbook/schemas"
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
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	goRun := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil && ctx.Err() == nil {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	c := m.Config

	if c.hasRole("decider") {
		dm := newDeciderMetrics(m.reg)
		dc := decider.Config{Kafka: c.Kafka, Logger: m.Log, Verifier: c.Verifier, Observe: dm.observe}
		if m.tracing.Enabled() {
			dc.Trace = func(r *kgo.Record) (context.Context, func()) { return m.tracing.Record(r, "decide") }
		}
		d, err := decider.New(dc)
		if err != nil {
			return err
		}
		defer d.Close()
		dm.d = d
		m.health.restores = d.Restores
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "logbook_decider_restores_stuck",
			Help: "Decider partitions whose state restore failed or runs too long: their commands wait undecided (see /v1/status).",
		}, func() float64 { return float64(len(m.health.stuckRestores())) }))
		goRun("decider", d.Run)
	}
	if c.hasRole("agent") {
		w, err := m.newAgent()
		if err != nil {
			return err
		}
		defer w.Close()
		m.reg.MustRegister(agentCollector{w})
		goRun("agent", w.Run)
	}
	goRun("health", func(ctx context.Context) error { m.health.run(ctx); return nil })
	lag, adm, closeLag, err := m.newLag()
	if err != nil {
		return err
	}
	defer closeLag()
	goRun("lag metrics", func(ctx context.Context) error { lag.Run(ctx, 10*time.Second); return nil })
	reg := &registry{self: m.self, table: projections.NewRegistry(m.pool), adm: adm, lag: lag, log: m.Log,
		groups: m.groups(), level: func() string { return string(m.health.level()) }}
	reg.self.HTTPAddr = m.URL()
	if reg.self.HTTPAddr == "" {
		reg.self.HTTPAddr = m.MetricsURL()
	}
	m.health.instances = reg.instances
	goRun("registry", func(ctx context.Context) error { reg.run(ctx); return nil })
	if m.ring != nil {
		goRun("keyring", func(ctx context.Context) error {
			rctx, rcancel := context.WithTimeout(ctx, 30*time.Second)
			if err := m.ring.Refresh(rctx); err != nil {
				m.Log.Warn("keyring: first read failed; keys are read when first needed", "err", err)
			}
			rcancel()
			m.ring.Run(ctx)
			return nil
		})
	}
	// Each second: a revoked key stops working on every API instance within
	// a second of its revocation reaching the keys read model.
	goRun("keys", func(ctx context.Context) error { m.keys.Refresh(ctx, time.Second); return nil })
	if c.hasRole("projector") {
		pm := newProjectorMetrics(m.reg)
		for _, spec := range projections.Projections(c.Kafka.Topics(), m.ring) {
			p, err := projections.NewProjector(projections.ProjectorConfig{Kafka: c.Kafka, Name: spec.Name,
				Topic: spec.Topic, Pool: m.pool, Apply: pm.wrap(spec.Name, spec.Apply, m.tracing), Logger: m.Log})
			if err != nil {
				return err
			}
			defer p.Close()
			setAsideMetric(m.reg, spec.Name, p)
			goRun("projector "+spec.Name, p.Run)
		}
	}
	if c.hasRole("api") {
		app, err := producers.NewAppender(c.Kafka)
		if err != nil {
			return err
		}
		defer app.Close()
		outcomes, err := producers.NewOutcomes(c.Kafka, m.Log)
		if err != nil {
			return err
		}
		defer outcomes.Close()
		goRun("outcomes", func(ctx context.Context) error { outcomes.Run(ctx); return nil })
		lag, err := kafka.NewLagMonitor(c.Kafka, decider.DefaultGroup, c.Kafka.Topics().Commands, m.Log)
		if err != nil {
			return err
		}
		defer lag.Close()
		m.health.lag = lag
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "logbook_decider_lag_commands",
			Help: "Commands appended but not yet decided: the backpressure admission control reads.",
		}, func() float64 { l, _, _ := lag.Lag(); return float64(l) }))
		goRun("lag", func(ctx context.Context) error { lag.Run(ctx, time.Second); return nil })
		agentLag, err := kafka.NewLagMonitor(c.Kafka, c.AI.Agent.Group, c.Kafka.Topics().Events, m.Log)
		if err != nil {
			return err
		}
		defer agentLag.Close()
		m.health.agentLag = agentLag
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "logbook_agent_lag_events",
			Help: "Events the AI agent worker has not handled yet: its backlog, which grows while a provider is down.",
		}, func() float64 { l, _, _ := agentLag.Lag(); return float64(l) }))
		goRun("agent lag", func(ctx context.Context) error { agentLag.Run(ctx, 2*time.Second); return nil })
		admission := producers.NewAdmission(producers.AdmissionConfig{MaxLag: c.MaxCommandLag, Rate: c.RatePerKey,
			MaxInFlight: c.MaxInFlightCommands}, lag)
		signer := signing.NewBatcher(c.Signer, 0, time.Millisecond)
		defer signer.Close()
		queries := projections.NewQueries(m.pool, m.Log).WithOpener(m.ring)
		grants := projections.NewGrants(m.pool)
		defer grants.Close()
		api := producers.New(producers.Config{Log: app, Watcher: outcomes, Lookup: queries, Grants: grants,
			Admission: admission, Logger: m.Log, Writable: m.health.kafkaOK.Load, Keys: m.keys, Fields: m.ring, Signer: signer})
		throttle := auth.NewThrottle(auth.ThrottleConfig{Failures: c.AuthFailuresPerMinute})
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "logbook_auth_throttled_requests_total",
			Help: "Requests answered 429 too_many_auth_failures: their source address failed authentication too often.",
		}, func() float64 { return float64(throttle.Refused()) }))
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "logbook_auth_throttle_sources",
			Help: "Source addresses the failed-authentication throttle remembers (bounded).",
		}, func() float64 { return float64(throttle.Sources()) }))
		access, err := producers.NewAccessLog(c.Kafka, m.Log)
		if err != nil {
			return err
		}
		defer access.Close()
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "logbook_access_records_total",
			Help: "Failed authentications and denials written to the access topic.",
		}, func() float64 { return float64(access.Written()) }))
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "logbook_access_records_dropped_total",
			Help: "Access records lost: the buffer was full or the log unreachable for a minute.",
		}, func() float64 { return float64(access.Dropped()) }))
		srv := &http.Server{
			Handler:           m.router(api, queries, throttle, access),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       15 * time.Second,
			WriteTimeout:      45 * time.Second, // above the longest Prefer: wait
			IdleTimeout:       120 * time.Second,
			ErrorLog:          slog.NewLogLogger(m.Log.Handler(), slog.LevelWarn),
		}
		goRun("http", func(ctx context.Context) error {
			go func() {
				<-ctx.Done()
				sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer scancel()
				_ = srv.Shutdown(sctx)
			}()
			if err := srv.Serve(m.listener); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	if m.opsLn != nil {
		// Every role's health and metrics, for processes without the API
		// (and beside it, for a scraper kept off the API port).
		ops := chi.NewRouter()
		ops.Use(middleware.Recoverer)
		m.opsRoutes(ops)
		srv := &http.Server{Handler: ops, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
		goRun("metrics", func(ctx context.Context) error {
			go func() { <-ctx.Done(); _ = srv.Close() }()
			if err := srv.Serve(m.opsLn); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	if addr := env("LOGBOOK_DEBUG_ADDR", ""); addr != "" {
		// Profiles for operators, on a separate (loopback) listener: never
		// on the API port.
		dbg := &http.Server{Addr: addr, Handler: http.DefaultServeMux, ReadHeaderTimeout: 5 * time.Second}
		goRun("debug", func(ctx context.Context) error {
			go func() { <-ctx.Done(); _ = dbg.Close() }()
			if err := dbg.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
	<-ctx.Done()
	wg.Wait()
	close(errs)
	return <-errs
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

func (m *Main) router(api *producers.API, queries *projections.Queries, throttle *auth.Throttle, access auth.AccessSink) http.Handler {
	r := chi.NewRouter()
	r.Use(m.tracing.HTTP, metrics.NewHTTP(m.reg).Middleware, middleware.RequestID, m.recoverer)
	m.opsRoutes(r)
	r.Group(func(r chi.Router) {
		// The throttle goes first: a refused source never reaches the key lookup.
		r.Use(throttle.Middleware(m.Log), auth.AccessAudit(access, nil), m.keys.Middleware(m.Log))
		api.Routes(r)
		queries.Routes(r)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, r, m.Log, httpapi.Problemf(httpapi.CodeNotFound, "", "no such route"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		// RFC 9110: a 405 lists the methods the resource allows.
		path := req.URL.RawPath
		if path == "" {
			path = req.URL.Path
		}
		var allow []string
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if r.Match(chi.NewRouteContext(), method, path) {
				allow = append(allow, method)
			}
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		httpapi.WriteError(w, req, m.Log, httpapi.Problemf(httpapi.CodeMethodNotAllowed, "", httpapi.Truncate(req.Method)+" is not allowed here"))
	})
	return r
}

// opsRoutes are what operators and orchestrators read, unauthenticated:
// liveness, readiness, status and metrics.
func (m *Main) opsRoutes(r chi.Router) {
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpapi.WriteJSON(w, 200, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if m.draining.Load() {
			httpapi.WriteError(w, r, m.Log, httpapi.Unavailable(httpapi.CodeDraining, "this instance is stopping", 1))
			return
		}
		if l := m.health.level(); l == levelEmergency {
			httpapi.WriteError(w, r, m.Log, httpapi.Unavailable(httpapi.CodeEmergency, "neither the log nor Postgres is reachable", 5))
			return
		}
		httpapi.WriteJSON(w, 200, map[string]string{"status": "ready"})
	})
	r.Get("/v1/status", func(w http.ResponseWriter, _ *http.Request) { httpapi.WriteJSON(w, 200, m.health.status()) })
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	r.Get("/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(schemas.OpenAPI())
	})
}

// recoverer turns a panic into a logged 500 problem instead of a dropped
// connection.
func (m *Main) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				httpapi.WriteError(w, r, m.Log, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// Degradation levels, DESIGN.md.
type level string

const (
	levelFull            level = "full"
	levelAIDegraded      level = "ai_degraded"
	levelReadOnly        level = "read_only"
	levelQueriesDegraded level = "queries_degraded"
	levelEmergency       level = "emergency"
	// levelDecisionsDelayed: a decider partition cannot restore its state;
	// its workspaces' commands are logged and wait to be decided.
	levelDecisionsDelayed level = "decisions_delayed"
)

func (l level) rank() int {
	switch l {
	case levelAIDegraded:
		return 1
	case levelReadOnly:
		return 2
	case levelQueriesDegraded:
		return 3
	case levelEmergency:
		return 4
	case levelDecisionsDelayed:
		return 5
	}
	return 0
}

// health probes the log and Postgres in the background so status answers
// never wait on a dead dependency.
type health struct {
	kcfg kafka.Config
	pool *pgxpool.Pool
	log  *slog.Logger

	kafkaOK, pgOK atomic.Bool
	checkedAt     atomic.Int64
	lag           *kafka.LagMonitor // nil unless the api role runs
	stalls        atomic.Pointer[projections.StallSummary]
	restores      func() []decider.RestoreStatus // nil unless the decider role runs
	ai            atomic.Pointer[aiHealth]
	aiSeen        atomic.Bool       // an agent worker has reported since start
	agentLag      *kafka.LagMonitor // nil unless the api role runs
	instances     func() []instanceStatus
}

// restoreLimit is how long a decider state restore may run before it
// counts as stuck.
const restoreLimit = time.Minute

// stuckRestores lists the decider partitions whose state cannot be
// restored: their commands are logged but not decided.
func (h *health) stuckRestores() []decider.RestoreStatus {
	if h.restores == nil {
		return nil
	}
	var stuck []decider.RestoreStatus
	now := time.Now()
	for _, s := range h.restores() {
		if s.Stuck(now, restoreLimit) {
			stuck = append(stuck, s)
		}
	}
	return stuck
}

func newHealth(k kafka.Config, pool *pgxpool.Pool, log *slog.Logger) *health {
	h := &health{kcfg: k, pool: pool, log: log}
	h.kafkaOK.Store(true)
	h.pgOK.Store(true)
	return h
}

func (h *health) run(ctx context.Context) {
	cl, err := kgo.NewClient(h.kcfg.Opts()...)
	if err != nil {
		h.log.Error("health: kafka client", "err", err)
		return
	}
	defer cl.Close()
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		// Ping talks to a broker; metadata calls may answer from cache.
		kerr := cl.Ping(pctx)
		perr := h.pool.Ping(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if (kerr == nil) != h.kafkaOK.Load() || (perr == nil) != h.pgOK.Load() {
			h.log.Warn("dependency health changed", "kafka_ok", kerr == nil, "postgres_ok", perr == nil)
		}
		h.kafkaOK.Store(kerr == nil)
		h.pgOK.Store(perr == nil)
		if perr == nil {
			h.probeStalls(ctx)
			h.probeAI(ctx)
		}
		h.checkedAt.Store(time.Now().UnixMilli())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probeStalls reads the quarantine; a stalled workspace is per workspace,
// so it shows in status and metrics without changing the level.
func (h *health) probeStalls(ctx context.Context) {
	sum, err := projections.Stalls(ctx, h.pool, 20)
	if err != nil {
		h.log.Warn("health: cannot read the projection quarantine", "err", err)
		return
	}
	if prev := h.stalls.Load(); prev == nil || prev.Workspaces != sum.Workspaces {
		if sum.Workspaces > 0 {
			h.log.Warn("projections stalled", "workspaces", sum.Workspaces, "records", sum.Records,
				"hint", "logbook dlq list; fix the cause; logbook dlq replay")
		}
	}
	h.stalls.Store(&sum)
}

func (h *health) level() level {
	k, p := h.kafkaOK.Load(), h.pgOK.Load()
	switch {
	case !k && !p:
		return levelEmergency
	case !k:
		return levelReadOnly
	case !p:
		return levelQueriesDegraded
	case len(h.stuckRestores()) > 0:
		return levelDecisionsDelayed
	case h.aiDegraded():
		return levelAIDegraded
	}
	return levelFull
}

func (h *health) status() map[string]any {
	s := map[string]any{
		"level":      h.level(),
		"kafka":      map[string]bool{"ok": h.kafkaOK.Load()},
		"postgres":   map[string]bool{"ok": h.pgOK.Load()},
		"checked_at": time.UnixMilli(h.checkedAt.Load()).UTC(),
	}
	if st := h.stalls.Load(); st != nil {
		s["projections"] = st
	}
	if h.restores != nil {
		s["decider_restores"] = map[string]any{"partitions": h.restores(), "stuck": len(h.stuckRestores())}
	}
	if h.lag != nil {
		lag, drain, fresh := h.lag.Lag()
		s["decider"] = map[string]any{"lag": lag, "drain_per_second": drain, "fresh": fresh}
	}
	s["ai"] = h.aiStatus()
	if h.instances != nil {
		if l := h.instances(); l != nil {
			s["instances"] = l
		}
	}
	return s
}
