package main

import (
	"context"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kprom"

	"github.com/logbook-dev/logbook/consumers/decider"
	"github.com/logbook-dev/logbook/internal/metrics"
	"github.com/logbook-dev/logbook/internal/tracing"
	"github.com/logbook-dev/logbook/projections"
)

// openMetrics makes the process's registry and gives every Kafka client it
// will open franz-go's client metrics (kprom), one set per client, and the
// tracing hooks (kotel) when tracing is on.
func (m *Main) openMetrics() {
	m.reg = prometheus.NewRegistry()
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var clients atomic.Int64
	m.Config.Kafka.Hooks = func() []kgo.Hook {
		n := clients.Add(1)
		return append(m.tracing.KafkaHooks(), kprom.NewMetrics("logbook_kafka", kprom.Registerer(m.reg),
			kprom.WithStaticLabel(prometheus.Labels{"client": strconv.FormatInt(n, 10)})))
	}
}

// lagSources are the consumers of every role, wherever they run: each
// process reports them all, so one scrape target shows the whole picture.
func (m *Main) lagSources() []metrics.LagSource {
	c := m.Config
	t := c.Kafka.Topics()
	out := []metrics.LagSource{
		{Group: decider.DefaultGroup, Topic: t.Commands},
		{Group: c.AI.Agent.Group, Topic: t.Events},
	}
	for _, spec := range projections.Projections(t, nil) {
		name := spec.Name
		out = append(out, metrics.LagSource{Group: projections.ConsumerGroup(name), Topic: spec.Topic,
			Positions: func(ctx context.Context) (map[int32]int64, error) {
				return projections.Checkpoints(ctx, m.pool, name)
			}})
	}
	return out
}

// newLag is the lag measure of every consumer, on a client of its own.
func (m *Main) newLag() (*metrics.Lag, *kadm.Client, func(), error) {
	cl, err := kgo.NewClient(m.Config.Kafka.Opts()...)
	if err != nil {
		return nil, nil, nil, err
	}
	adm := kadm.NewClient(cl)
	lag := metrics.NewLag(adm, m.Log, m.lagSources()...)
	if err := m.reg.Register(lag); err != nil {
		cl.Close()
		return nil, nil, nil, err
	}
	return lag, adm, func() { m.reg.Unregister(lag); cl.Close() }, nil
}

// deciderMetrics are the decider's counters and what each committed
// transaction did.
type deciderMetrics struct {
	d         *decider.Decider
	decisions *prometheus.CounterVec
	txSeconds prometheus.Histogram
	txSize    prometheus.Histogram
}

func newDeciderMetrics(reg prometheus.Registerer) *deciderMetrics {
	dm := &deciderMetrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logbook_decider_decisions_total",
			Help: "Outcomes written, by command type, status (accepted, rejected) and code.",
		}, []string{"type", "status", "code"}),
		txSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "logbook_decider_transaction_seconds",
			Help:    "Time from a transaction's begin to its commit.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		txSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "logbook_decider_transaction_commands",
			Help:    "Commands decided in one committed transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7), // 1 … 4096
		}),
	}
	reg.MustRegister(dm.decisions, dm.txSeconds, dm.txSize, dm)
	return dm
}

// observe is the decider's Config.Observe.
func (dm *deciderMetrics) observe(tx decider.Transaction) {
	dm.txSeconds.Observe(tx.Duration.Seconds())
	dm.txSize.Observe(float64(tx.Commands))
	for o, n := range tx.Outcomes {
		dm.decisions.WithLabelValues(o.Type, o.Status, string(o.Code)).Add(float64(n))
	}
}

var deciderDescs = map[string]*prometheus.Desc{
	"commands":     prometheus.NewDesc("logbook_decider_commands_total", "Commands decided.", nil, nil),
	"accepted":     prometheus.NewDesc("logbook_decider_accepted_total", "Commands accepted.", nil, nil),
	"rejected":     prometheus.NewDesc("logbook_decider_rejected_total", "Commands rejected.", nil, nil),
	"duplicates":   prometheus.NewDesc("logbook_decider_duplicates_total", "Redelivered commands answered from the idempotency window.", nil, nil),
	"events":       prometheus.NewDesc("logbook_decider_events_total", "Events written.", nil, nil),
	"transactions": prometheus.NewDesc("logbook_decider_transactions_total", "Kafka transactions committed.", nil, nil),
	"aborts":       prometheus.NewDesc("logbook_decider_aborts_total", "Transactions aborted or failed.", nil, nil),
}

func (dm *deciderMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range deciderDescs {
		ch <- d
	}
}

func (dm *deciderMetrics) Collect(ch chan<- prometheus.Metric) {
	if dm.d == nil {
		return
	}
	s := dm.d.Snapshot()
	for k, v := range map[string]int64{"commands": s.Commands, "accepted": s.Accepted, "rejected": s.Rejected,
		"duplicates": s.Duplicates, "events": s.Events, "transactions": s.Transactions, "aborts": s.Aborts} {
		ch <- prometheus.MustNewConstMetric(deciderDescs[k], prometheus.CounterValue, float64(v))
	}
}

// projectorMetrics measure the projectors' batches by wrapping their
// appliers.
type projectorMetrics struct {
	batch    *prometheus.HistogramVec
	duration *prometheus.HistogramVec
}

func newProjectorMetrics(reg prometheus.Registerer) *projectorMetrics {
	pm := &projectorMetrics{
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "logbook_projector_batch_records",
			Help:    "Records applied to Postgres in one transaction, by projection.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 7),
		}, []string{"projection"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "logbook_projector_apply_seconds",
			Help:    "Time to apply one batch inside its transaction, by projection.",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"projection"}),
	}
	reg.MustRegister(pm.batch, pm.duration)
	return pm
}

// wrap returns apply measured under the projection's name, each record a
// span of its trace.
func (pm *projectorMetrics) wrap(name string, apply projections.Applier, tr *tracing.Tracing) projections.Applier {
	return measuredApplier{next: apply, batch: pm.batch.WithLabelValues(name), duration: pm.duration.WithLabelValues(name),
		trace: tr, span: "project " + name}
}

type measuredApplier struct {
	next            projections.Applier
	batch, duration prometheus.Observer
	trace           *tracing.Tracing
	span            string
}

func (a measuredApplier) Apply(ctx context.Context, tx pgx.Tx, partition int32, records []*kgo.Record) error {
	if a.trace.Enabled() {
		for _, r := range records {
			_, end := a.trace.Record(r, a.span)
			defer end()
		}
	}
	start := time.Now()
	err := a.next.Apply(ctx, tx, partition, records)
	if err == nil {
		a.batch.Observe(float64(len(records)))
		a.duration.Observe(time.Since(start).Seconds())
	}
	return err
}

// setAside counts, per projection, the records this process quarantined.
func setAsideMetric(reg prometheus.Registerer, name string, p *projections.Projector) {
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name:        "logbook_projector_set_aside_total",
		Help:        "Records the projection could not apply and sent to the dead-letter topic (logbook dlq list).",
		ConstLabels: prometheus.Labels{"projection": name},
	}, func() float64 { return float64(p.SetAside()) }))
}

// groupsAndTopics are the consumer groups of every role and the topics of
// this deployment they consume, from the lag sources.
func (m *Main) groupsAndTopics() ([]string, map[string]bool) {
	var groups []string
	topics := map[string]bool{}
	for _, s := range m.lagSources() {
		if !slices.Contains(groups, s.Group) {
			groups = append(groups, s.Group)
		}
		topics[s.Topic] = true
	}
	return groups, topics
}
