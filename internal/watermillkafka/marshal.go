package watermillkafka

import (
	"fmt"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

// UUIDHeader is the record header that carries the message UUID; it is the
// header watermill-kafka uses, so both read each other's records.
const UUIDHeader = "_watermill_message_uuid"

// PartitionKeyMetadata is the metadata whose value DefaultMarshaler uses
// as the record key.
const PartitionKeyMetadata = "partition_key"

// Marshaler turns a message into the record the Publisher produces. The
// record's Topic is set by the Publisher.
type Marshaler interface {
	Marshal(topic string, msg *message.Message) (*kgo.Record, error)
}

// Unmarshaler turns a consumed record into a message. The Subscriber adds
// the record's position to the metadata afterwards (see PartitionMetadata).
type Unmarshaler interface {
	Unmarshal(rec *kgo.Record) (*message.Message, error)
}

// KeyFunc returns the record key of a message; nil means no key.
type KeyFunc func(topic string, msg *message.Message) ([]byte, error)

// KeyFromMetadata is the default KeyFunc: the "partition_key" metadata when
// it is set, else no key (franz-go then spreads the records).
func KeyFromMetadata(_ string, msg *message.Message) ([]byte, error) {
	if k := msg.Metadata.Get(PartitionKeyMetadata); k != "" {
		return []byte(k), nil
	}
	return nil, nil
}

// DefaultMarshaler writes the payload as the value, the UUID and every
// metadata entry as headers, and the key from Key (KeyFromMetadata when
// nil). As an Unmarshaler it reads the same shape back.
type DefaultMarshaler struct {
	Key KeyFunc
}

// Marshal implements Marshaler.
func (m DefaultMarshaler) Marshal(topic string, msg *message.Message) (*kgo.Record, error) {
	keyOf := m.Key
	if keyOf == nil {
		keyOf = KeyFromMetadata
	}
	key, err := keyOf(topic, msg)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	headers := make([]kgo.RecordHeader, 0, len(msg.Metadata)+1)
	headers = append(headers, kgo.RecordHeader{Key: UUIDHeader, Value: []byte(msg.UUID)})
	for k, v := range msg.Metadata {
		if k == UUIDHeader {
			continue // the message's own UUID wins
		}
		headers = append(headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	return &kgo.Record{Topic: topic, Key: key, Value: msg.Payload, Headers: headers}, nil
}

// Unmarshal implements Unmarshaler. A record without a UUID header (written
// by another producer) gets "topic/partition/offset" as its UUID, which stays
// the same when the record is redelivered.
func (DefaultMarshaler) Unmarshal(rec *kgo.Record) (*message.Message, error) {
	id := ""
	md := make(message.Metadata, len(rec.Headers)+len(positionKeys))
	for _, h := range rec.Headers {
		if h.Key == UUIDHeader {
			id = string(h.Value)
			continue
		}
		md[h.Key] = string(h.Value)
	}
	if id == "" {
		id = fmt.Sprintf("%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)
	}
	msg := message.NewMessage(id, rec.Value)
	msg.Metadata = md
	return msg, nil
}
