// Command analytics is an example analytics consumer of logbook's event
// log: it reads the events topic with its own consumer group, read_committed
// (aborted decider transactions never count), routes on the CloudEvents
// headers, and prints tasks completed per workspace per day and AI tokens
// per agent.
//
//	go run ./examples/analytics --brokers 127.0.0.1:9092 --idle 5s
//
// On a secured cluster give the analytics principal (LOGBOOK_KAFKA_USER,
// LOGBOOK_KAFKA_PASSWORD): it may read the events topic and use groups
// named analytics-*. The tally lives in memory, so the consumer commits no
// offsets: every run counts from the start of the log, and the group only
// shares the partitions among the instances of one run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func main() {
	brokers := flag.String("brokers", envOr("LOGBOOK_KAFKA_BROKERS", "127.0.0.1:9092"), "Kafka bootstrap brokers, comma-separated")
	topic := flag.String("topic", envOr("LOGBOOK_TOPIC_PREFIX", "logbook.")+"events", "the events topic")
	group := flag.String("group", "analytics-tally", "the consumer group (analytics-* on a secured cluster)")
	idle := flag.Duration("idle", 0, "stop after this long without a record and print the tally (0: run until interrupted)")
	flag.Parse()

	opts := []kgo.Opt{kgo.SeedBrokers(strings.Split(*brokers, ",")...)}
	if user := os.Getenv("LOGBOOK_KAFKA_USER"); user != "" {
		opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: os.Getenv("LOGBOOK_KAFKA_PASSWORD")}.AsSha512Mechanism()))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	tally := NewTally()
	err := Consume(ctx, opts, *topic, *group, *idle, tally)
	tally.Write(os.Stdout)
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "analytics:", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Consume feeds every committed event of topic to tally, from the start of
// the log, until ctx ends or, with idle above zero, until no record has
// come for that long.
func Consume(ctx context.Context, opts []kgo.Opt, topic, group string, idle time.Duration, tally *Tally) error {
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(), // the tally is in memory: each run counts from the start
	)...)
	if err != nil {
		return err
	}
	defer cl.Close()
	last := time.Now()
	for {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if idle > 0 {
			pctx, cancel = context.WithTimeout(ctx, idle)
		}
		fetches := cl.PollFetches(pctx)
		cancel()
		if err := ctx.Err(); err != nil {
			return err
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				ferr = fmt.Errorf("fetch %s/%d: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		n := 0
		var rerr error
		fetches.EachRecord(func(r *kgo.Record) {
			n++
			if rerr == nil {
				rerr = tally.Record(r)
			}
		})
		if rerr != nil {
			return rerr
		}
		if n > 0 {
			last = time.Now()
		} else if idle > 0 && time.Since(last) >= idle {
			return nil
		}
	}
}
