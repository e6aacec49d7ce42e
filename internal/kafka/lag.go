package kafka

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// LagMonitor measures how far a consumer group is behind a topic: the end
// offsets minus the group's committed offsets (the log start where it has
// not committed yet, so a group that is not running at all still shows its
// whole backlog). It also estimates how fast the group drains.
type LagMonitor struct {
	cl    *kgo.Client
	adm   *kadm.Client
	group string
	topic string
	log   *slog.Logger

	mu        sync.Mutex
	lag       int64
	drain     float64 // records per second, smoothed
	committed int64
	at        time.Time
}

// NewLagMonitor watches group on topic.
func NewLagMonitor(cfg Config, group, topic string, log *slog.Logger) (*LagMonitor, error) {
	cl, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		return nil, err
	}
	return &LagMonitor{cl: cl, adm: kadm.NewClient(cl), group: group, topic: topic, log: log}, nil
}

// Close releases the client.
func (m *LagMonitor) Close() { m.cl.Close() }

// Run refreshes the lag every interval until ctx ends.
func (m *LagMonitor) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := m.refresh(ctx); err != nil && ctx.Err() == nil {
			m.log.Debug("lag refresh failed", "group", m.group, "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (m *LagMonitor) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ends, err := m.adm.ListEndOffsets(ctx, m.topic)
	if err != nil {
		return err
	}
	starts, err := m.adm.ListStartOffsets(ctx, m.topic)
	if err != nil {
		return err
	}
	commits, err := m.adm.FetchOffsets(ctx, m.group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		err = nil // no decider has ever run: the whole log is backlog
	}
	if err != nil {
		return err
	}
	var lag, committed int64
	for p, end := range ends[m.topic] {
		if end.Err != nil {
			return end.Err
		}
		at := starts[m.topic][p].Offset
		if c, ok := commits.Lookup(m.topic, p); ok && c.Err == nil && c.At >= 0 {
			at = c.At
		}
		committed += at
		if end.Offset > at {
			lag += end.Offset - at
		}
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.at.IsZero() {
		if dt := now.Sub(m.at).Seconds(); dt > 0 {
			rate := float64(committed-m.committed) / dt
			m.drain = 0.7*m.drain + 0.3*max(rate, 0)
		}
	}
	m.lag, m.committed, m.at = lag, committed, now
	return nil
}

// Lag returns the last measured lag, the smoothed drain rate and whether
// the measure is recent (taken in the last 10 seconds).
func (m *LagMonitor) Lag() (lag int64, drainPerSec float64, fresh bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lag, m.drain, !m.at.IsZero() && time.Since(m.at) < 10*time.Second
}
