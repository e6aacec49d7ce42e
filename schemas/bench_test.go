package schemas_test

import (
	"testing"
	"time"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

func BenchmarkSealOneEvent(b *testing.B) {
	ev := []domain.Event{{Type: domain.EvTaskCreated, Aggregate: domain.AggregateRef{Type: "task", ID: "t", Version: 1},
		OccurredAt: time.Now(), Payload: domain.TaskCreated{TaskID: "t", Title: "title", Input: "input", Priority: 3}}}
	meta := schemas.EventMeta{WorkspaceID: "ws", CommandID: "c", Actor: domain.Actor{ID: "a", Role: "admin"}}
	var chain schemas.Chain
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if _, chain, err = schemas.Seal(chain, meta, ev); err != nil {
			b.Fatal(err)
		}
	}
}
