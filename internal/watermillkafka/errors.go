package watermillkafka

import (
	"errors"
	"fmt"
)

var (
	// ErrPublisherClosed is a Publish on a closed Publisher.
	ErrPublisherClosed = errors.New("watermillkafka: publisher closed")
	// ErrSubscriberClosed is a Subscribe on a closed Subscriber.
	ErrSubscriberClosed = errors.New("watermillkafka: subscriber closed")
)

// ConfigError is a config field that cannot work.
type ConfigError struct {
	Field  string
	Reason string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("watermillkafka: config %s: %s", e.Field, e.Reason)
}

// PublishError is a message that was not published: its marshaling failed
// or Kafka did not acknowledge it.
type PublishError struct {
	Topic string
	UUID  string
	Err   error
}

func (e *PublishError) Error() string {
	return fmt.Sprintf("watermillkafka: publish %s to %s: %v", e.UUID, e.Topic, e.Err)
}

func (e *PublishError) Unwrap() error { return e.Err }

// CloseError is a Close that did not finish in time: the client or the
// final commit was still running when the close timeout ran out.
type CloseError struct {
	Step string // what was still running: "commit", "client close", "subscriptions"
	Err  error
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("watermillkafka: close: %s: %v", e.Step, e.Err)
}

func (e *CloseError) Unwrap() error { return e.Err }
