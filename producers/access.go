package producers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/schemas"
)

// AccessLog appends access records (failed authentications and denials) to
// the access topic without ever blocking a request: past its buffer, or
// while the log is unreachable, a record is dropped and counted.
type AccessLog struct {
	cl      *kgo.Client
	topic   string
	log     *slog.Logger
	dropped atomic.Int64
	written atomic.Int64
}

// accessBuffer bounds the records waiting for the log. The failed-
// authentication throttle bounds how fast one source can fill it.
const accessBuffer = 10_000

// NewAccessLog connects a producer to the access topic.
func NewAccessLog(cfg kafka.Config, log *slog.Logger) (*AccessLog, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(cfg.Opts(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(20*time.Millisecond),
		kgo.MaxBufferedRecords(accessBuffer),
		kgo.RecordDeliveryTimeout(time.Minute),
	)...)
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return &AccessLog{cl: cl, topic: cfg.Topics().Access, log: log}, nil
}

// Record implements auth.AccessSink. The key is the principal, or the
// source address when there is none.
func (a *AccessLog) Record(r schemas.AccessRecord) {
	val, err := json.Marshal(r)
	if err != nil {
		a.dropped.Add(1)
		return
	}
	key := r.PrincipalID
	if key == "" {
		key = r.Source
	}
	a.cl.TryProduce(context.Background(), &kgo.Record{Topic: a.topic, Key: []byte(key), Value: val},
		func(_ *kgo.Record, err error) {
			if err != nil {
				if a.dropped.Add(1) == 1 {
					a.log.Warn("access audit: a record could not be written; dropped records are counted in logbook_access_records_dropped_total", "err", err)
				}
				return
			}
			a.written.Add(1)
		})
}

// Written is how many records the log acknowledged.
func (a *AccessLog) Written() int64 { return a.written.Load() }

// Dropped is how many records were lost: buffer full or log unreachable.
func (a *AccessLog) Dropped() int64 { return a.dropped.Load() }

// Close flushes for at most 5 s and closes the producer.
func (a *AccessLog) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = a.cl.Flush(ctx)
	a.cl.Close()
}
