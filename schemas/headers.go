package schemas

import (
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// CloudEvents Kafka binding (binary mode) headers, so standard tooling can
// route on them without parsing values.
const (
	HeaderSpecVersion = "ce_specversion"
	HeaderID          = "ce_id"
	HeaderType        = "ce_type"
	HeaderSource      = "ce_source"
	HeaderTime        = "ce_time"
	HeaderSubject     = "ce_subject"
	HeaderContentType = "content-type"
	// HeaderCommandID on a result record names its command, so readers
	// waiting for one outcome skip the others without decoding them.
	HeaderCommandID = "logbook_command_id"
)

// EventHeaders are the CloudEvents headers of an event record.
func EventHeaders(e EventEnvelope) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: HeaderSpecVersion, Value: []byte("1.0")},
		{Key: HeaderID, Value: []byte(e.ID)},
		{Key: HeaderType, Value: []byte(e.Type)},
		{Key: HeaderSource, Value: []byte("/logbook/workspaces/" + e.WorkspaceID)},
		{Key: HeaderTime, Value: []byte(e.OccurredAt.Format(time.RFC3339Nano))},
		{Key: HeaderSubject, Value: []byte(e.Aggregate.Type + "/" + e.Aggregate.ID)},
		{Key: HeaderContentType, Value: []byte("application/json")},
	}
}

// CommandHeaders are the CloudEvents headers of a command record.
func CommandHeaders(c CommandEnvelope) []kgo.RecordHeader {
	return []kgo.RecordHeader{
		{Key: HeaderSpecVersion, Value: []byte("1.0")},
		{Key: HeaderID, Value: []byte(c.ID)},
		{Key: HeaderType, Value: []byte(c.Type)},
		{Key: HeaderSource, Value: []byte("/logbook/workspaces/" + c.WorkspaceID)},
		{Key: HeaderTime, Value: []byte(c.IssuedAt.Format(time.RFC3339Nano))},
		{Key: HeaderContentType, Value: []byte("application/json")},
	}
}

// Header returns the value of a record header, or "".
func Header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
