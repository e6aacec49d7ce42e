// Package metrics holds the Prometheus collectors and middleware logbook's
// processes share. Nothing here registers itself: each process builds its
// registry in cmd and passes it in.
package metrics

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// LagSource is one consumer of one topic.
type LagSource struct {
	// Group names the consumer in the metric: a Kafka consumer group, or
	// the name a consumer that keeps its positions elsewhere goes by.
	Group, Topic string
	// Positions, when set, reads the consumer's next offsets per partition
	// from where it keeps them (the projectors: Postgres, in the same
	// transaction as their writes). Nil means the group's committed offsets.
	Positions func(ctx context.Context) (map[int32]int64, error)
}

// Lag measures, every interval, how far each source is behind its topic,
// partition by partition, and how many members each Kafka group has. A
// scrape reads the last measure: it never waits on the brokers.
type Lag struct {
	adm     *kadm.Client
	sources []LagSource
	log     *slog.Logger

	mu      sync.Mutex
	rows    []lagRow
	members map[string]int
	ok      bool
	at      time.Time

	lagDesc, membersDesc, upDesc, ageDesc *prometheus.Desc
}

type lagRow struct {
	group, topic string
	partition    int32
	lag          int64
}

// NewLag measures sources through adm.
func NewLag(adm *kadm.Client, log *slog.Logger, sources ...LagSource) *Lag {
	return &Lag{adm: adm, sources: sources, log: log,
		lagDesc: prometheus.NewDesc("logbook_consumer_lag",
			"Records of the topic the consumer has not handled yet, per partition (end offset minus its position; the log start where it has none).",
			[]string{"group", "topic", "partition"}, nil),
		membersDesc: prometheus.NewDesc("logbook_consumer_group_members",
			"Members of the Kafka consumer group: the instances of a role that share its partitions.", []string{"group"}, nil),
		upDesc: prometheus.NewDesc("logbook_consumer_lag_up",
			"1 if the last lag measure succeeded, 0 if the brokers or Postgres could not answer it.", nil, nil),
		ageDesc: prometheus.NewDesc("logbook_consumer_lag_age_seconds",
			"Seconds since the lag was last measured.", nil, nil),
	}
}

// Run measures every interval until ctx ends.
func (l *Lag) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		mctx, cancel := context.WithTimeout(ctx, min(every, 10*time.Second))
		err := l.measure(mctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			l.log.Debug("metrics: lag measure failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (l *Lag) measure(ctx context.Context) error {
	var topics, groups []string
	seen := map[string]bool{}
	for _, s := range l.sources {
		if !seen["t"+s.Topic] {
			seen["t"+s.Topic] = true
			topics = append(topics, s.Topic)
		}
		if s.Positions == nil && !seen["g"+s.Group] {
			seen["g"+s.Group] = true
			groups = append(groups, s.Group)
		}
	}
	ends, err := l.adm.ListEndOffsets(ctx, topics...)
	if err == nil {
		err = ends.Error()
	}
	var starts kadm.ListedOffsets
	if err == nil {
		starts, err = l.adm.ListStartOffsets(ctx, topics...)
	}
	if err == nil {
		err = starts.Error()
	}
	members := map[string]int{}
	if err == nil && len(groups) > 0 {
		// Membership is best effort: a group whose coordinator is moving
		// leaves the gauge out for one round, not the lag.
		described, _ := l.adm.DescribeGroups(ctx, groups...)
		mine := map[string]bool{}
		for _, s := range l.sources {
			mine[s.Topic] = true
		}
		for g, d := range described {
			if d.Err != nil {
				continue
			}
			n := 0
			for _, m := range d.Members {
				// Another deployment on the same brokers shares the group
				// names, not the topics.
				if meta, ok := m.Join.AsConsumer(); !ok || slices.ContainsFunc(meta.Topics, func(t string) bool { return mine[t] }) {
					n++
				}
			}
			members[g] = n
		}
	}
	var rows []lagRow
	for _, s := range l.sources {
		if err != nil {
			break
		}
		var pos map[int32]int64
		if pos, err = l.positions(ctx, s); err != nil {
			break
		}
		for p, end := range ends[s.Topic] {
			at, ok := pos[p]
			if !ok || at < 0 {
				at = starts[s.Topic][p].Offset
			}
			rows = append(rows, lagRow{group: s.Group, topic: s.Topic, partition: p, lag: max(0, end.Offset-at)})
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ok = err == nil
	if err != nil {
		return err
	}
	l.rows, l.members, l.at = rows, members, time.Now()
	return nil
}

func (l *Lag) positions(ctx context.Context, s LagSource) (map[int32]int64, error) {
	if s.Positions != nil {
		return s.Positions(ctx)
	}
	commits, err := l.adm.FetchOffsets(ctx, s.Group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil, nil // never committed: its whole topic is backlog
	}
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	commits.Each(func(o kadm.OffsetResponse) {
		if o.Topic == s.Topic && o.Err == nil {
			out[o.Partition] = o.At
		}
	})
	return out, nil
}

// Of is the last measured lag of group on the partitions parts, summed.
func (l *Lag) Of(group string, parts []int32) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	var sum int64
	for _, r := range l.rows {
		if r.group == group && slices.Contains(parts, r.partition) {
			sum += r.lag
		}
	}
	return sum
}

// Describe implements prometheus.Collector.
func (l *Lag) Describe(ch chan<- *prometheus.Desc) {
	ch <- l.lagDesc
	ch <- l.membersDesc
	ch <- l.upDesc
	ch <- l.ageDesc
}

// Collect implements prometheus.Collector.
func (l *Lag) Collect(ch chan<- prometheus.Metric) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.rows {
		ch <- prometheus.MustNewConstMetric(l.lagDesc, prometheus.GaugeValue, float64(r.lag),
			r.group, r.topic, strconv.Itoa(int(r.partition)))
	}
	for g, n := range l.members {
		ch <- prometheus.MustNewConstMetric(l.membersDesc, prometheus.GaugeValue, float64(n), g)
	}
	up := 0.0
	if l.ok {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(l.upDesc, prometheus.GaugeValue, up)
	if !l.at.IsZero() {
		ch <- prometheus.MustNewConstMetric(l.ageDesc, prometheus.GaugeValue, time.Since(l.at).Seconds())
	}
}
