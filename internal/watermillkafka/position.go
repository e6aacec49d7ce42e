package watermillkafka

import (
	"strconv"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The metadata the Subscriber adds to every message it delivers, so a
// handler can tell where the message came from. They overwrite headers of
// the same name, so a message republished as it was consumed carries its
// new position, not its old one.
const (
	TopicMetadata     = "kafka_topic"
	PartitionMetadata = "kafka_partition" // decimal
	OffsetMetadata    = "kafka_offset"    // decimal
	KeyMetadata       = "kafka_key"       // the record key as bytes; absent when the record has none
	TimestampMetadata = "kafka_timestamp" // RFC 3339 with nanoseconds, UTC
)

var positionKeys = []string{TopicMetadata, PartitionMetadata, OffsetMetadata, KeyMetadata, TimestampMetadata}

func setPosition(md message.Metadata, rec *kgo.Record) {
	md[TopicMetadata] = rec.Topic
	md[PartitionMetadata] = strconv.FormatInt(int64(rec.Partition), 10)
	md[OffsetMetadata] = strconv.FormatInt(rec.Offset, 10)
	if rec.Key != nil {
		md[KeyMetadata] = string(rec.Key)
	} else {
		delete(md, KeyMetadata)
	}
	md[TimestampMetadata] = rec.Timestamp.UTC().Format(time.RFC3339Nano)
}

// Position is where a delivered message was read from.
type Position struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte // nil when the record had none
	Timestamp time.Time
}

// PositionOf reads the position the Subscriber put in msg's metadata; ok is
// false for a message that did not come from a Subscriber.
func PositionOf(msg *message.Message) (pos Position, ok bool) {
	md := msg.Metadata
	p, err1 := strconv.ParseInt(md.Get(PartitionMetadata), 10, 32)
	o, err2 := strconv.ParseInt(md.Get(OffsetMetadata), 10, 64)
	ts, err3 := time.Parse(time.RFC3339Nano, md.Get(TimestampMetadata))
	if err1 != nil || err2 != nil || err3 != nil {
		return Position{}, false
	}
	pos = Position{Topic: md.Get(TopicMetadata), Partition: int32(p), Offset: o, Timestamp: ts}
	if k, has := md[KeyMetadata]; has {
		pos.Key = []byte(k)
	}
	return pos, true
}
