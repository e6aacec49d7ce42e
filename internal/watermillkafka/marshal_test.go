package watermillkafka_test

import (
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/watermillkafka"
)

func TestMarshalRoundTrip(t *testing.T) {
	m := watermillkafka.DefaultMarshaler{}
	msg := message.NewMessage("id-1", []byte("body"))
	msg.Metadata.Set("a", "1")
	msg.Metadata.Set(watermillkafka.PartitionKeyMetadata, "ws-1")
	msg.Metadata.Set(watermillkafka.UUIDHeader, "forged")
	rec, err := m.Marshal("t", msg)
	if err != nil {
		t.Fatal(err)
	}
	if string(rec.Key) != "ws-1" || string(rec.Value) != "body" {
		t.Fatalf("record key %q value %q", rec.Key, rec.Value)
	}
	back, err := m.Unmarshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if back.UUID != "id-1" || back.Metadata.Get("a") != "1" || back.Metadata.Get(watermillkafka.PartitionKeyMetadata) != "ws-1" {
		t.Fatalf("round trip: %s %v", back.UUID, back.Metadata)
	}
	if _, ok := back.Metadata[watermillkafka.UUIDHeader]; ok {
		t.Fatal("the UUID header leaked into the metadata")
	}
}

func TestMarshalKey(t *testing.T) {
	rec, err := watermillkafka.DefaultMarshaler{}.Marshal("t", message.NewMessage("x", nil))
	if err != nil || rec.Key != nil {
		t.Fatalf("without partition_key: key %q, err %v", rec.Key, err)
	}
	byType := watermillkafka.DefaultMarshaler{Key: func(_ string, m *message.Message) ([]byte, error) {
		return []byte(m.Metadata.Get("type")), nil
	}}
	msg := message.NewMessage("x", nil)
	msg.Metadata.Set("type", "order")
	if rec, _ := byType.Marshal("t", msg); string(rec.Key) != "order" {
		t.Fatalf("custom key %q", rec.Key)
	}
}

// A record from another producer has no UUID header: its UUID is its
// position, the same on every redelivery.
func TestUnmarshalWithoutUUID(t *testing.T) {
	msg, err := watermillkafka.DefaultMarshaler{}.Unmarshal(&kgo.Record{Topic: "t", Partition: 2, Offset: 41})
	if err != nil || msg.UUID != "t/2/41" {
		t.Fatalf("uuid %q err %v", msg.UUID, err)
	}
}
