package projections_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/projections"
	"github.com/logbook-dev/logbook/schemas"
)

// The commands read model keeps the first outcome of a command id with its
// request digest; the refusal of a reused key, written later under the
// same id, never replaces it; an outcome written before digests existed
// (the golden record) reads back without one, and without a sender (so only
// admins see it).
func TestCommandsKeepTheFirstOutcomeWithItsDigest(t *testing.T) {
	e := setup(t)
	e.projector("command_results")
	old, err := os.ReadFile("../schemas/testdata/result-before-digest.json")
	if err != nil {
		t.Fatal(err)
	}
	ws, id, last := newID(), newID(), newID()
	d1, d2 := strings.Repeat("a1", 32), strings.Repeat("b2", 32)
	now := time.Now().UTC().Truncate(time.Microsecond)
	first := schemas.Result{CommandID: id, CommandType: domain.CmdTaskCreate, WorkspaceID: ws, Status: schemas.ResultAccepted,
		AggregateID: "t-1", Events: []schemas.EventRef{{ID: newID(), Seq: 2, Type: domain.EvTaskCreated}}, DecidedAt: now, RequestDigest: d1, ActorID: "alice"}
	reused := schemas.KeyReused(id, domain.CmdTaskCreate, ws, d2, now.Add(time.Second))
	sentinel := schemas.Result{CommandID: last, CommandType: domain.CmdTaskCreate, WorkspaceID: ws, Status: schemas.ResultAccepted, DecidedAt: now}
	values := [][]byte{bytes.TrimSpace(old)}
	for _, r := range []schemas.Result{first, reused, sentinel} {
		v, _ := json.Marshal(r)
		values = append(values, v)
	}
	for _, v := range values {
		// One key: one partition, in this order.
		if err := e.cl.ProduceSync(context.Background(), &kgo.Record{Topic: e.cfg.Topics().Results, Key: []byte(ws), Value: v}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	e.eventually("outcomes projected", func() bool { return e.count(`SELECT count(*) FROM commands WHERE id = $1`, last) == 1 })

	q := projections.NewQueries(e.pool, quiet)
	got, err := q.Outcome(context.Background(), id)
	if err != nil || got == nil {
		t.Fatalf("outcome: %v %v", got, err)
	}
	if got.Status != schemas.ResultAccepted || got.RequestDigest != d1 || got.AggregateID != "t-1" || len(got.Events) != 1 || got.ActorID != "alice" {
		t.Fatalf("want the first outcome with its digest, got %+v", got)
	}
	var golden schemas.Result
	_ = json.Unmarshal(old, &golden)
	got, err = q.Outcome(context.Background(), golden.CommandID)
	if err != nil || got == nil || got.Status != schemas.ResultAccepted || got.RequestDigest != "" || got.ActorID != "" ||
		got.AggregateID != golden.AggregateID || len(got.Events) != 1 || !got.DecidedAt.Equal(golden.DecidedAt) {
		t.Fatalf("outcome recorded before digests read as %+v (%v)", got, err)
	}
}
