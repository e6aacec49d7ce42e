package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 5 minutes, to three
// significant digits.
const (
	histMin  = 1
	histMax  = int64(5 * time.Minute / time.Microsecond)
	histSigs = 3
)

func newHist() *hdrhistogram.Histogram { return hdrhistogram.New(histMin, histMax, histSigs) }

// stats gathers a run's figures: totals, whole-run histograms, and a
// timeline of one sample per second.
type stats struct {
	start time.Time

	mu       sync.Mutex
	accept   *hdrhistogram.Histogram // request → acknowledgement, of the attempt acknowledged
	command  *hdrhistogram.Histogram // due → acknowledged, retries and waits included
	interval *hdrhistogram.Histogram // accept latency since the last tick
	byOp     map[Op]*OpCounts
	failures []string // the first few unexpected answers

	sentN, ackN, refusedN, failedN, t429, t503 atomic.Int64
	retried, dropped, abandoned                atomic.Int64

	// Tick state, touched by the sampler only.
	last     Sample
	timeline []Sample
}

// OpCounts are one operation's totals.
type OpCounts struct {
	Sent         int64 `json:"sent"`
	Acknowledged int64 `json:"acknowledged"`
	Refused      int64 `json:"refused"`
	Failed       int64 `json:"failed"`
}

func newStats() *stats {
	byOp := map[Op]*OpCounts{}
	for _, op := range Ops {
		byOp[op] = &OpCounts{}
	}
	return &stats{start: time.Now(), accept: newHist(), command: newHist(), interval: newHist(), byOp: byOp}
}

func (s *stats) sent(op Op) {
	s.sentN.Add(1)
	s.mu.Lock()
	s.byOp[op].Sent++
	s.mu.Unlock()
}

func (s *stats) acknowledged(op Op, accept, command time.Duration) {
	s.ackN.Add(1)
	a, c := max(accept.Microseconds(), histMin), max(command.Microseconds(), histMin)
	s.mu.Lock()
	s.byOp[op].Acknowledged++
	_ = s.accept.RecordValue(min(a, histMax))
	_ = s.interval.RecordValue(min(a, histMax))
	_ = s.command.RecordValue(min(c, histMax))
	s.mu.Unlock()
}

// refused counts a command given up after its retries were all refused.
func (s *stats) refused(op Op) {
	s.refusedN.Add(1)
	s.mu.Lock()
	s.byOp[op].Refused++
	s.mu.Unlock()
}

func (s *stats) failed(op Op, why string) {
	s.failedN.Add(1)
	s.mu.Lock()
	s.byOp[op].Failed++
	if len(s.failures) < 20 {
		s.failures = append(s.failures, why)
	}
	s.mu.Unlock()
}

// throttled counts one 429 or 503 answer, retried or not.
func (s *stats) throttled(code int) {
	s.retried.Add(1)
	if code == 429 {
		s.t429.Add(1)
	} else {
		s.t503.Add(1)
	}
}

// Sample is one second of the run.
type Sample struct {
	At           float64          `json:"t"` // seconds since the load began
	Sent         int64            `json:"sent"`
	Acknowledged int64            `json:"acknowledged"`
	Throttled    int64            `json:"throttled"` // 429 and 503 answers
	Failed       int64            `json:"failed"`
	P50Ms        float64          `json:"p50_ms"`
	P99Ms        float64          `json:"p99_ms"`
	MaxMs        float64          `json:"max_ms"`
	Lag          map[string]int64 `json:"lag,omitempty"`
}

// tick closes a one-second sample and writes the progress line.
func (s *stats) tick(lag map[string]int64, progress io.Writer) {
	s.mu.Lock()
	h := s.interval
	s.interval = newHist()
	s.mu.Unlock()
	now := Sample{At: time.Since(s.start).Seconds(), Sent: s.sentN.Load(), Acknowledged: s.ackN.Load(),
		Throttled: s.t429.Load() + s.t503.Load(), Failed: s.failedN.Load(), Lag: lag}
	d := now
	d.Sent -= s.last.Sent
	d.Acknowledged -= s.last.Acknowledged
	d.Throttled -= s.last.Throttled
	d.Failed -= s.last.Failed
	d.P50Ms, d.P99Ms, d.MaxMs = ms(h.ValueAtQuantile(50)), ms(h.ValueAtQuantile(99)), ms(h.Max())
	span := now.At - s.last.At
	s.last = now
	s.timeline = append(s.timeline, d)
	if progress == nil || span <= 0 {
		return
	}
	var lags []string
	for _, g := range slices.Sorted(maps.Keys(lag)) {
		lags = append(lags, fmt.Sprintf("%s=%d", g, lag[g]))
	}
	fmt.Fprintf(progress, "%6.0fs  sent %d  acknowledged %d (%.0f/s)  429/503 %d  failed %d  p99 %.1f ms  lag %s\n",
		now.At, now.Sent, now.Acknowledged, float64(d.Acknowledged)/span, now.Throttled, now.Failed, d.P99Ms,
		orNone(strings.Join(lags, " ")))
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ms(us int64) float64 { return float64(us) / 1000 }

// Latency summarises a histogram in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
	N    int64   `json:"count"`
}

func summarise(h *hdrhistogram.Histogram) Latency {
	return Latency{P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)), P99: ms(h.ValueAtQuantile(99)),
		P999: ms(h.ValueAtQuantile(99.9)), Max: ms(h.Max()), Mean: h.Mean() / 1000, N: h.TotalCount()}
}

// fill writes the totals into res; sent is how long commands were sent,
// e2e until the last was visible.
func (s *stats) fill(res *Result, sent, e2e time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res.Sent = s.sentN.Load()
	res.Acknowledged = s.ackN.Load()
	res.Refused = s.refusedN.Load()
	res.Failed = s.failedN.Load()
	res.Throttled429, res.Throttled503 = s.t429.Load(), s.t503.Load()
	res.Retries = s.retried.Load()
	res.Dropped = s.dropped.Load()
	res.Abandoned = s.abandoned.Load()
	res.ByOp = map[Op]OpCounts{}
	for op, c := range s.byOp {
		if c.Sent > 0 {
			res.ByOp[op] = *c
		}
	}
	res.Failures = slices.Clone(s.failures)
	res.SendSeconds, res.EndToEndSeconds = sent.Seconds(), e2e.Seconds()
	if sent > 0 {
		res.AcceptedPerSecond = float64(res.Acknowledged) / sent.Seconds()
	}
	if e2e > 0 {
		res.EndToEndPerSecond = float64(res.Acknowledged) / e2e.Seconds()
	}
	res.Accept, res.Command = summarise(s.accept), summarise(s.command)
}
