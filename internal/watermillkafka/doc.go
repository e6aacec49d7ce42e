// Package watermillkafka is a Watermill Publisher and Subscriber on
// franz-go, so a binary that uses Watermill keeps one Kafka client.
//
// The Publisher produces with an idempotent acks=all client and returns once
// every message is acknowledged. The Subscriber delivers at least once:
// offsets are committed only up to the lowest message not yet acked, so a
// crash or a rebalance redelivers and never skips.
//
// Inside a partition the Subscriber hands out up to MaxInFlightPerPartition
// unacked messages at once, in offset order, but never two with the same
// ordering key (by default the record key): messages of one key are handled
// one after the other, messages of different keys in parallel. With the
// default of 1 a partition is strictly sequential.
//
// Memory stays flat: a partition that holds more than a window's worth of
// records not yet handed out, or whose uncommitted span is full, is paused
// in franz-go (PauseFetchPartitions) and resumed when room frees up. franz-go drops the
// records it had buffered for a partition paused before they were polled,
// without moving the partition's fetch position, so they are fetched again
// on resume: nothing is skipped and nothing is repeated. A resumed
// partition joins the next fetch to its broker, not one already waiting
// there, which is why the fetch wait defaults to 500ms (see FetchMaxWait).
package watermillkafka
