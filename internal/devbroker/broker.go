// Package devbroker is the embedded Kafka-protocol broker of `logbook dev`:
// kfake persisted to a directory, made crash-safe for transactions.
//
// kfake writes a commit's markers partition by partition and has no
// transaction log, so a process killed in the middle leaves some partitions
// of the transaction committed and the rest aborted on restart: a torn
// transaction, which a real broker never shows. devbroker journals each
// commit before kfake writes it, as a real coordinator logs PREPARE_COMMIT,
// and on start completes the commit the journal says was under way. A kill
// can also land between a batch and its index entry (index.go): devbroker
// writes the missing entries before kfake reads them.
package devbroker

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/logbook-dev/logbook/internal/kafka"
)

// Config configures the broker.
type Config struct {
	// Dir holds the broker's data (Dir/kafka) and its commit journal.
	Dir string
	// Sync fsyncs every batch and journal entry before acknowledging it.
	Sync   bool
	Logger *slog.Logger
	// Opts are further kfake options (ports, listeners, timeouts).
	Opts []kfake.Opt
	// SASL, when its User is set, makes the broker accept only that
	// principal (SCRAM-SHA-512, a super user): a local user who can reach
	// the port cannot read or write the log without the password.
	SASL kafka.SASL
}

// JournalFile is the commit journal's name under Config.Dir.
const JournalFile = "kafka-txn.journal"

// Broker is a running embedded broker.
type Broker struct {
	*kfake.Cluster
	j    *journal
	once sync.Once
}

// Start starts the broker on Dir, completes any transaction a crash left
// half-committed, and only then returns, so no client sees a torn one.
func Start(ctx context.Context, cfg Config) (*Broker, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	data := filepath.Join(cfg.Dir, "kafka")
	repaired, err := repairIndexes(data, cfg.Sync)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	if repaired > 0 {
		cfg.Logger.Warn("embedded kafka: wrote the index entries a crash had left unwritten", "entries", repaired)
	}
	opts := append([]kfake.Opt{kfake.DataDir(data)}, cfg.Opts...)
	if cfg.Sync {
		opts = append(opts, kfake.SyncWrites())
	}
	if cfg.SASL.User != "" {
		opts = append(opts, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", cfg.SASL.User, cfg.SASL.Password))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	path := filepath.Join(cfg.Dir, JournalFile)
	last, err := readLastEntry(path)
	if err == nil && last != nil {
		err = complete(ctx, kafka.Config{Brokers: c.ListenAddrs(), SASL: cfg.SASL}.Opts(), *last, cfg.Logger)
	}
	var j *journal
	if err == nil {
		j, err = openJournal(path, cfg.Sync)
	}
	if err == nil {
		err = j.reset()
	}
	if err != nil {
		c.Close()
		if j != nil {
			j.close()
		}
		return nil, fmt.Errorf("embedded kafka: %w", err)
	}
	t := &tracker{c: c, j: j, log: cfg.Logger, open: map[int64]*openTxn{}}
	c.ControlKey(int16(kmsg.Produce), t.produce)
	c.ControlKey(int16(kmsg.TxnOffsetCommit), t.offsetCommit)
	c.ControlKey(int16(kmsg.EndTxn), t.endTxn)
	return &Broker{Cluster: c, j: j}, nil
}

// Close stops the broker; kfake writes a clean shutdown state, so the
// journal has nothing left to complete.
func (b *Broker) Close() {
	b.once.Do(func() {
		b.Cluster.Close()
		_ = b.j.reset()
		_ = b.j.close()
	})
}

// maxOpen bounds the transactions tracked at once; a producer that vanished
// mid-transaction is dropped first.
const maxOpen = 4096

// tracker follows open transactions through the requests that build them.
// Control functions run one at a time, between requests: the lock only
// guards against Close.
type tracker struct {
	c   *kfake.Cluster
	j   *journal
	log *slog.Logger

	mu   sync.Mutex
	open map[int64]*openTxn // by producer id
}

// openTxn is a transaction being built: its journal entry so far and the
// partitions already in it.
type openTxn struct {
	commitEntry
	seen map[partKey]bool
}

type partKey struct {
	topic string
	part  int32
}

// txn returns the open transaction of a producer, starting it when the
// epoch moved on (a commit or abort bumps it).
func (t *tracker) txn(txnID string, pid int64, epoch int16) *openTxn {
	e := t.open[pid]
	if e == nil || e.Epoch != epoch {
		if len(t.open) >= maxOpen {
			for id := range t.open {
				delete(t.open, id)
				break
			}
		}
		e = &openTxn{commitEntry: commitEntry{TxnID: txnID, PID: pid, Epoch: epoch}, seen: map[partKey]bool{}}
		t.open[pid] = e
	}
	return e
}

// produce notes, for a transactional produce, each partition's high
// watermark before the transaction's first record there. It never handles
// the request: kfake does.
func (t *tracker) produce(req kmsg.Request) (kmsg.Response, error, bool) {
	r := req.(*kmsg.ProduceRequest)
	if r.TransactionID == nil {
		return nil, nil, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, rt := range r.Topics {
		topic, ok := t.topic(rt.Topic, rt.TopicID)
		if !ok {
			continue
		}
		for _, rp := range rt.Partitions {
			var b kmsg.RecordBatch
			if err := b.ReadFrom(rp.Records); err != nil {
				continue // kfake refuses it
			}
			e := t.txn(*r.TransactionID, b.ProducerID, b.ProducerEpoch)
			k := partKey{topic, rp.Partition}
			if e.seen[k] {
				continue
			}
			info := t.c.PartitionInfo(topic, rp.Partition)
			if info == nil {
				continue
			}
			e.seen[k] = true
			e.Parts = append(e.Parts, txnPart{Topic: topic, Partition: rp.Partition, From: info.HighWatermark})
		}
	}
	return nil, nil, false
}

// topic names a topic that newer request versions give by ID only.
func (t *tracker) topic(name string, id [16]byte) (string, bool) {
	if name != "" {
		return name, true
	}
	info := t.c.TopicIDInfo(id)
	if info == nil {
		return "", false
	}
	return info.Topic, true
}

// offsetCommit notes the group offsets a transaction commits.
func (t *tracker) offsetCommit(req kmsg.Request) (kmsg.Response, error, bool) {
	r := req.(*kmsg.TxnOffsetCommitRequest)
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.txn(r.TransactionalID, r.ProducerID, r.ProducerEpoch)
	for _, rt := range r.Topics {
		topic, ok := t.topic(rt.Topic, rt.TopicID)
		if !ok {
			continue
		}
		for _, rp := range rt.Partitions {
			o := groupOffset{Group: r.Group, Topic: topic, Partition: rp.Partition, Offset: rp.Offset, LeaderEpoch: rp.LeaderEpoch}
			if rp.Metadata != nil {
				o.Metadata = *rp.Metadata
			}
			replaced := false
			for i, had := range e.Offsets {
				if had.Group == o.Group && had.Topic == o.Topic && had.Partition == o.Partition {
					e.Offsets[i], replaced = o, true
				}
			}
			if !replaced {
				e.Offsets = append(e.Offsets, o)
			}
		}
	}
	return nil, nil, false
}

// endTxn journals a commit before kfake writes its markers. A commit that
// cannot be journaled is refused with a retriable error rather than risk a
// tear nobody could complete.
func (t *tracker) endTxn(req kmsg.Request) (kmsg.Response, error, bool) {
	r := req.(*kmsg.EndTxnRequest)
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.open[r.ProducerID]
	if e == nil || e.Epoch != r.ProducerEpoch {
		return nil, nil, false
	}
	if r.Commit && len(e.Parts)+len(e.Offsets) > 0 {
		if err := t.j.append(e.commitEntry); err != nil {
			t.log.Error("embedded kafka: transaction journal not written; commit refused for a retry", "err", err)
			resp := r.ResponseKind().(*kmsg.EndTxnResponse)
			resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
			t.c.KeepControl()
			return resp, nil, true
		}
	}
	delete(t.open, r.ProducerID)
	return nil, nil, false
}
