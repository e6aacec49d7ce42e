package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/consumers/decider"
	"github.com/logbook-dev/logbook/internal/auth"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/signing"
	"github.com/logbook-dev/logbook/producers"
	"github.com/logbook-dev/logbook/projections"
)

// runner runs a process's loops: the first to fail stops them all; what
// was opened for them is closed, last first, once every loop has returned.
type runner struct {
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
	err     error
	closers []func()
}

func (r *runner) goRun(name string, fn func(context.Context) error) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := fn(r.ctx); err != nil && r.ctx.Err() == nil {
			r.fail(fmt.Errorf("%s: %w", name, err))
		}
	}()
}

func (r *runner) fail(err error) {
	r.once.Do(func() { r.err = err })
	r.cancel()
}

func (r *runner) onStop(close func()) { r.closers = append(r.closers, close) }

// wait returns once every loop has, then closes what they used.
func (r *runner) wait() error {
	<-r.ctx.Done()
	r.wg.Wait()
	for i := len(r.closers) - 1; i >= 0; i-- {
		r.closers[i]()
	}
	return r.err
}

// startDecider runs the decider role.
func (m *Main) startDecider(r *runner) error {
	c := m.Config
	dm := newDeciderMetrics(m.reg)
	dc := decider.Config{Kafka: c.Kafka, Logger: m.Log, Verifier: c.Verifier, Observe: dm.observe}
	if m.tracing.Enabled() {
		dc.Trace = func(rec *kgo.Record) (context.Context, func()) { return m.tracing.Record(rec, "decide") }
	}
	d, err := decider.New(dc)
	if err != nil {
		return err
	}
	r.onStop(d.Close)
	dm.d = d
	m.health.restores = d.Restores
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "logbook_decider_restores_stuck",
		Help: "Decider partitions whose state restore failed or runs too long: their commands wait undecided (see /v1/status).",
	}, func() float64 { return float64(len(m.health.stuckRestores())) }))
	r.goRun("decider", d.Run)
	return nil
}

// startAgent runs the AI agent worker role.
func (m *Main) startAgent(r *runner) error {
	w, err := m.newAgent()
	if err != nil {
		return err
	}
	r.onStop(w.Close)
	m.reg.MustRegister(agentCollector{w})
	r.goRun("agent", w.Run)
	return nil
}

// startCommon runs what every process runs whatever its roles: health
// probes, lag metrics, the registry heartbeat, the data keys and API keys.
func (m *Main) startCommon(r *runner) error {
	r.goRun("health", func(ctx context.Context) error { m.health.run(ctx); return nil })
	lag, adm, closeLag, err := m.newLag()
	if err != nil {
		return err
	}
	r.onStop(closeLag)
	r.goRun("lag metrics", func(ctx context.Context) error { lag.Run(ctx, 10*time.Second); return nil })
	groups, topics := m.groupsAndTopics()
	reg := &registry{self: m.self, table: projections.NewRegistry(m.pool), adm: adm, lag: lag, log: m.Log,
		groups: groups, topics: topics, level: func() string { return string(m.health.level()) }}
	reg.self.HTTPAddr = m.URL()
	if reg.self.HTTPAddr == "" {
		reg.self.HTTPAddr = m.MetricsURL()
	}
	m.health.instances = reg.instances
	r.goRun("registry", func(ctx context.Context) error { reg.run(ctx); return nil })
	if m.ring != nil {
		r.goRun("keyring", func(ctx context.Context) error {
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
	r.goRun("keys", func(ctx context.Context) error { m.keys.Refresh(ctx, time.Second); return nil })
	return nil
}

// startProjectors runs the projector role: one projector per projection.
func (m *Main) startProjectors(r *runner) error {
	c := m.Config
	pm := newProjectorMetrics(m.reg)
	for _, spec := range projections.Projections(c.Kafka.Topics(), m.ring) {
		p, err := projections.NewProjector(projections.ProjectorConfig{Kafka: c.Kafka, Name: spec.Name,
			Topic: spec.Topic, Pool: m.pool, Apply: pm.wrap(spec.Name, spec.Apply, m.tracing), Logger: m.Log})
		if err != nil {
			return err
		}
		r.onStop(p.Close)
		setAsideMetric(m.reg, spec.Name, p)
		r.goRun("projector "+spec.Name, p.Run)
	}
	return nil
}

// startAPI runs the api role: admission, the appender, outcomes and the
// HTTP server.
func (m *Main) startAPI(r *runner) error {
	c := m.Config
	app, err := producers.NewAppender(c.Kafka)
	if err != nil {
		return err
	}
	r.onStop(app.Close)
	outcomes, err := producers.NewOutcomes(c.Kafka, m.Log)
	if err != nil {
		return err
	}
	r.onStop(outcomes.Close)
	r.goRun("outcomes", func(ctx context.Context) error { outcomes.Run(ctx); return nil })
	lag, err := kafka.NewLagMonitor(c.Kafka, decider.DefaultGroup, c.Kafka.Topics().Commands, m.Log)
	if err != nil {
		return err
	}
	r.onStop(lag.Close)
	m.health.lag = lag
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "logbook_decider_lag_commands",
		Help: "Commands appended but not yet decided: the backpressure admission control reads.",
	}, func() float64 { l, _, _ := lag.Lag(); return float64(l) }))
	r.goRun("lag", func(ctx context.Context) error { lag.Run(ctx, time.Second); return nil })
	agentLag, err := kafka.NewLagMonitor(c.Kafka, c.AI.Agent.Group, c.Kafka.Topics().Events, m.Log)
	if err != nil {
		return err
	}
	r.onStop(agentLag.Close)
	m.health.agentLag = agentLag
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "logbook_agent_lag_events",
		Help: "Events the AI agent worker has not handled yet: its backlog, which grows while a provider is down.",
	}, func() float64 { l, _, _ := agentLag.Lag(); return float64(l) }))
	r.goRun("agent lag", func(ctx context.Context) error { agentLag.Run(ctx, 2*time.Second); return nil })
	admission := producers.NewAdmission(producers.AdmissionConfig{MaxLag: c.MaxCommandLag, Rate: c.RatePerKey,
		MaxInFlight: c.MaxInFlightCommands}, lag)
	signer := signing.NewBatcher(c.Signer, 0, time.Millisecond)
	r.onStop(signer.Close)
	queries := projections.NewQueries(m.pool, m.Log).WithOpener(m.ring)
	grants := projections.NewGrants(m.pool)
	r.onStop(grants.Close)
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
	r.onStop(access.Close)
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
		ReadHeaderTimeout: min(5*time.Second, c.HTTPReadTimeout),
		ReadTimeout:       c.HTTPReadTimeout,
		WriteTimeout:      c.HTTPWriteTimeout,
		IdleTimeout:       c.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(m.Log.Handler(), slog.LevelWarn),
	}
	r.goRun("http", func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.Background(), c.ShutdownTimeout)
			defer scancel()
			_ = srv.Shutdown(sctx)
		}()
		if err := srv.Serve(m.listener); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	return nil
}

// startOps serves the metrics listener and the debug listener when set.
func (m *Main) startOps(r *runner) {
	if m.opsLn != nil {
		// Every role's health and metrics, for processes without the API
		// (and beside it, for a scraper kept off the API port).
		ops := chi.NewRouter()
		ops.Use(middleware.Recoverer)
		m.opsRoutes(ops)
		srv := &http.Server{Handler: ops, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
		r.goRun("metrics", func(ctx context.Context) error {
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
		r.goRun("debug", func(ctx context.Context) error {
			go func() { <-ctx.Done(); _ = dbg.Close() }()
			if err := dbg.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
	}
}
