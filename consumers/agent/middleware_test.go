package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Transient provider errors are retried a bounded number of times, waiting
// the longer of the backoff and the provider's Retry-After; anything else
// is returned at once.
func TestRetryIsBoundedAndHonoursRetryAfter(t *testing.T) {
	limited := &ProviderError{Provider: "p", Class: ClassRateLimited, Status: 429, RetryAfter: 150 * time.Millisecond}
	calls := 0
	start := time.Now()
	_, err := retrying(context.Background(), 2, time.Millisecond, time.Second, quiet, func() ([]*message.Message, error) {
		calls++
		return nil, limited
	})
	if took := time.Since(start); calls != 3 || !errors.Is(err, limited) || took < 300*time.Millisecond {
		t.Fatalf("%d calls in %v (%v): want 1 + 2 retries, each after the 150ms Retry-After", calls, took, err)
	}

	for _, class := range []ErrorClass{ClassBadRequest, ClassUnauthorized, ClassQuotaExhausted, ClassMalformed} {
		calls = 0
		_, _ = retrying(context.Background(), 3, time.Millisecond, time.Second, quiet, func() ([]*message.Message, error) {
			calls++
			return nil, &ProviderError{Provider: "p", Class: class}
		})
		if calls != 1 {
			t.Errorf("%s retried: %d calls", class, calls)
		}
	}
	calls = 0
	_, _ = retrying(context.Background(), 3, time.Millisecond, time.Second, quiet, func() ([]*message.Message, error) {
		calls++
		return nil, errLeftWaiting
	})
	if calls != 1 {
		t.Errorf("a task left waiting was retried: %d calls", calls)
	}

	// A Retry-After past max waits max; the message's end ends the wait.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, _ = retrying(ctx, 3, time.Millisecond, time.Hour, quiet, func() ([]*message.Message, error) {
		return nil, &ProviderError{Provider: "p", Class: ClassUnavailable, RetryAfter: time.Hour}
	})
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("a retry outlived its context: %v", took)
	}
}

// What can never succeed goes to the dlq topic: an undecodable event and a
// panic; waits and provider errors are redelivered instead.
func TestOnlyPermanentFailuresArePoisonous(t *testing.T) {
	w := &Worker{log: quiet}
	msg := message.NewMessage("e1", []byte("{not json"))
	msg.Metadata.Set(schemas.HeaderType, domain.EvTaskAssigned)
	_, err := w.handle(msg)
	if !poisonous(err) {
		t.Fatalf("an undecodable assignment: %v, want it dead-lettered", err)
	}
	panicky := middleware.Recoverer(func(*message.Message) ([]*message.Message, error) { panic("boom") })
	if _, err := panicky(message.NewMessage("e2", nil)); !poisonous(err) {
		t.Fatalf("a panic: %v, want it dead-lettered", err)
	}
	for _, err := range []error{&waitError{reason: "provider unavailable"}, &ProviderError{Provider: "p", Class: ClassUnavailable}} {
		if poisonous(err) {
			t.Errorf("%v dead-lettered; it should wait and be redelivered", err)
		}
	}
}
