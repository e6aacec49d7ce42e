package main

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/consumers/decider"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/projections"
)

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
