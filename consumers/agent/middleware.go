package agent

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

// retry retries a handler whose provider call failed transiently, at most
// attempts times, backing off exponentially from base up to max, or for the
// provider's Retry-After when that is longer. Waits end with the message's
// context.
func retry(attempts int, base, max time.Duration, log *slog.Logger) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			return retrying(msg.Context(), attempts, base, max, log.With("event_id", msg.UUID),
				func() ([]*message.Message, error) { return h(msg) })
		}
	}
}

// retrying runs fn as retry does, for the tasks a drain or sweep works
// outside the router.
func retrying(ctx context.Context, attempts int, base, max time.Duration, log *slog.Logger,
	fn func() ([]*message.Message, error)) ([]*message.Message, error) {
	backoff := base
	for i := 0; ; i++ {
		out, err := fn()
		if err == nil || i >= attempts || !retryable(err) {
			return out, err
		}
		d := backoff
		if ra := RetryAfter(err); ra > d {
			d = ra
		}
		d = min(d, max)
		backoff = min(2*backoff, max)
		log.Debug("retrying AI call", "attempt", i+1, "in", d, "err", err)
		if !sleep(ctx, d) {
			return out, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// shelving leaves an assignment for its workspace's turn (turns.go) when
// shelve says so. It sits outside retry: it judges a delivery once, before
// any attempt of this delivery started the task.
func shelving(shelve func(*message.Message) bool) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			if t := msg.Metadata.Get(schemas.HeaderType); (t == domain.EvTaskAssigned || t == domain.EvTaskRetried) && shelve(msg) {
				return nil, nil
			}
			return h(msg)
		}
	}
}

// fair admits the events that give an agent work through the limiter,
// keyed by the workspace they belong to; other events pass straight through.
func fair(l *limiter) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			if t := msg.Metadata.Get(schemas.HeaderType); t != domain.EvTaskAssigned && t != domain.EvTaskRetried {
				return h(msg)
			}
			release, err := l.acquire(msg.Context(), workspaceOf(msg))
			if err != nil {
				return nil, &waitError{reason: "no call slot free", err: err}
			}
			defer release()
			return h(msg)
		}
	}
}

// workspaceOf reads the workspace from the CloudEvents source header.
func workspaceOf(msg *message.Message) string {
	return strings.TrimPrefix(msg.Metadata.Get(schemas.HeaderSource), "/logbook/workspaces/")
}
