package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/schemas"
)

// The example counts completions per workspace and day and tokens per agent
// from records as logbook writes them (CloudEvents headers, v1 and v2
// results), and never counts an aborted transaction's events.
func TestTallyOfALog(t *testing.T) {
	cfg := kafkatest.Config(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(append(cfg.Opts(), kgo.TransactionalID("analytics-test-"+uuid.NewString()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	day1 := time.Date(2026, 11, 23, 23, 59, 0, 0, time.UTC)
	day2 := day1.Add(2 * time.Minute)
	ev := func(ws, typ string, version int, at time.Time, payload string) *kgo.Record {
		e := schemas.EventEnvelope{ID: uuid.NewString(), Type: typ, Version: version, WorkspaceID: ws, OccurredAt: at,
			Aggregate: domain.AggregateRef{Type: domain.AggregateTask, ID: "t"}, Payload: json.RawMessage(payload)}
		val, _ := json.Marshal(e)
		return &kgo.Record{Topic: cfg.Topics().Events, Key: []byte(ws), Value: val, Headers: schemas.EventHeaders(e), Timestamp: at}
	}
	txn := func(commit kgo.TransactionEndTry, records ...*kgo.Record) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, r := range records {
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
	}
	usage := `"usage":{"prompt_tokens":10,"completion_tokens":5}`
	txn(kgo.TryCommit,
		ev("a", domain.EvTaskCreated, 1, day1, `{"task_id":"t1","title":"x","input":"","priority":0}`),
		ev("a", domain.EvTaskAssigned, 1, day1, `{"task_id":"t1","assignee":"agent-1"}`),
		ev("a", domain.EvTaskResultRecorded, 1, day1, `{"task_id":"t1","attempt":1,"output":"o",`+usage+`}`),
		ev("a", domain.EvTaskCompleted, 1, day1, `{"task_id":"t1"}`),
		ev("a", domain.EvTaskAssigned, 1, day2, `{"task_id":"t2","assignee":"agent-1"}`),
		ev("a", domain.EvTaskResultRecorded, 2, day2, `{"task_id":"t2","attempt":1,"output":"o",`+usage+`,"provider":"openai","model":"m"}`),
		ev("a", domain.EvTaskCompleted, 1, day2, `{"task_id":"t2"}`),
		ev("b", domain.EvTaskAssigned, 1, day2, `{"task_id":"t1","assignee":"agent-9"}`),
		ev("b", domain.EvTaskResultRecorded, 2, day2, `{"task_id":"t1","attempt":1,"output":"o",`+usage+`,"provider":"local","model":""}`),
		ev("b", domain.EvTaskCompleted, 1, day2, `{"task_id":"t1"}`),
		ev("b", domain.EvWorkspaceRenamed, 1, day2, `{"name":"n"}`),
	)
	txn(kgo.TryAbort, ev("b", domain.EvTaskCompleted, 1, day2, `{"task_id":"t9"}`))

	tally := NewTally()
	if err := Consume(ctx, cfg.Opts(), cfg.Topics().Events, "analytics-test-"+uuid.NewString(), 2*time.Second, tally); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	tally.Write(&out)
	want := "# 11 events read\n" +
		"completed\ta\t2026-11-23\t1\n" +
		"completed\ta\t2026-11-24\t1\n" +
		"completed\tb\t2026-11-24\t1\n" +
		"tokens\ta/agent-1\t30\n" +
		"tokens\tb/agent-9\t15\n"
	if out.String() != want {
		t.Fatalf("tally:\n%s\nwant:\n%s", out.String(), want)
	}
}
