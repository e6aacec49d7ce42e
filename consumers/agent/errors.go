package agent

import (
	"errors"

	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
)

// waitError: the event cannot be handled yet (provider unavailable, read
// model behind); it is redelivered, never dead-lettered.
type waitError struct {
	reason string
	err    error
}

func (e *waitError) Error() string { return "waiting: " + e.reason }
func (e *waitError) Unwrap() error { return e.err }

// errLeftWaiting: the task was left assigned (its workspace's budget or
// request rate); the event is done with, a drain or sweep starts it later.
var errLeftWaiting = errors.New("agent: task left waiting")

// permanentError: handling this event can never succeed (it cannot be
// decoded); it goes to the dlq topic so its partition moves on.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// poisonous reports whether a handler error sends the event to the dlq:
// permanent errors and panics, which would repeat on every redelivery.
func poisonous(err error) bool {
	var p *permanentError
	var panicked middleware.RecoveredPanicError
	return errors.As(err, &p) || errors.As(err, &panicked)
}

// retryable reports whether retrying the call in-process may help.
func retryable(err error) bool {
	var w *waitError
	if errors.As(err, &w) {
		return false // it already waited its time out
	}
	if _, ok := AsProviderError(err); !ok {
		return false
	}
	c := Classify(err)
	return c == ClassRateLimited || c == ClassUnavailable
}
