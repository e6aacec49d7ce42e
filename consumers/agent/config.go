// Package agent is the AI agent worker: a Watermill router over the events
// topic. When a task is assigned to one of a workspace's AI agents it starts
// an attempt, asks a provider for the answer and records it (or fails the
// attempt), sending commands as the agent service principal. Provider
// outages cost delay, never work: a circuit breaker per provider holds the
// calls, the unacknowledged events stay in Kafka, and calls resume on a ramp.
package agent

import (
	"errors"
	"time"
)

// Config tunes the worker. Zero fields take the defaults WithDefaults names.
type Config struct {
	// Principal is the actor id of the commands the worker sends, default
	// "agent-worker". Its role is always domain.RoleAgent.
	Principal string
	// Group is the consumer group on the events topic, default "logbook-agent".
	Group string
	// Concurrency bounds provider calls in flight, default 16.
	Concurrency int
	// PerWorkspace bounds one workspace's calls in flight, default 4, so a
	// workspace with a deep backlog cannot starve the others.
	PerWorkspace int
	// Window bounds the unacknowledged events held per partition, default
	// 256: the worker's memory stays flat however deep the backlog, and
	// the fair limiter chooses among that many waiting tasks.
	Window int
	// HandlerTimeout bounds one event, waits for the provider included,
	// default 2 minutes; an event that times out is redelivered.
	HandlerTimeout time.Duration
	// CallTimeout bounds one provider call, default 60 seconds.
	CallTimeout time.Duration
	// Retries bounds the in-process retries of a transient provider error,
	// default 3; backoff starts at RetryBackoff (default 500 ms) and
	// doubles up to MaxBackoff (default 30 s), or waits the provider's
	// Retry-After when it is longer.
	Retries      int
	RetryBackoff time.Duration
	MaxBackoff   time.Duration
	// Breaker opens after BreakerFailures failures among the last
	// BreakerWindow calls (defaults 5 of 10), stays open BreakerDelay
	// (default 20 s), then lets BreakerProbes calls through (default 1):
	// that many successes close it, one failure opens it again.
	BreakerFailures uint
	BreakerWindow   uint
	BreakerDelay    time.Duration
	BreakerProbes   uint
	// AuthPause is how long a provider that refused the key or the spend
	// limit is left alone before one probe, default 5 minutes.
	AuthPause time.Duration
	// Ramp is how long concurrency takes to climb from 1 back to
	// Concurrency once the breaker closes, default 20 s.
	Ramp time.Duration
	// StatusEvery is how often the worker reports its state, default 2 s.
	StatusEvery time.Duration
	// SweepEvery is how often the worker starts tasks it left assigned
	// while their workspace was over budget, default 1 minute.
	SweepEvery time.Duration
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defU := func(v *uint, d uint) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Principal == "" {
		c.Principal = "agent-worker"
	}
	if c.Group == "" {
		c.Group = "logbook-agent"
	}
	def(&c.Concurrency, 16)
	def(&c.PerWorkspace, 4)
	def(&c.Window, 256)
	def(&c.Retries, 3)
	defDur(&c.HandlerTimeout, 2*time.Minute)
	defDur(&c.CallTimeout, 60*time.Second)
	defDur(&c.RetryBackoff, 500*time.Millisecond)
	defDur(&c.MaxBackoff, 30*time.Second)
	defU(&c.BreakerFailures, 5)
	defU(&c.BreakerWindow, 10)
	defDur(&c.BreakerDelay, 20*time.Second)
	defU(&c.BreakerProbes, 1)
	defDur(&c.AuthPause, 5*time.Minute)
	defDur(&c.Ramp, 20*time.Second)
	defDur(&c.StatusEvery, 2*time.Second)
	defDur(&c.SweepEvery, time.Minute)
	return c
}

// Validate reports a config the worker cannot run with.
func (c Config) Validate() error {
	switch {
	case c.Concurrency < 1 || c.PerWorkspace < 1 || c.Window < 1:
		return errors.New("agent: concurrency, per-workspace concurrency and window must be at least 1")
	case c.Retries < 0:
		return errors.New("agent: retries must not be negative")
	case c.BreakerFailures > c.BreakerWindow:
		return errors.New("agent: breaker failures must not exceed the breaker window")
	case c.CallTimeout >= c.HandlerTimeout:
		return errors.New("agent: the call timeout must be shorter than the handler timeout")
	}
	return nil
}
