package producers

import (
	"testing"

	"github.com/logbook-dev/logbook/schemas"
)

func TestDeliverHandsAResultToTheRequestsItAnswers(t *testing.T) {
	o := &Outcomes{waiters: map[string][]waiter{}}
	first, cancelFirst := o.Watch("c", "d1")
	defer cancelFirst()
	retry, cancelRetry := o.Watch("c", "d1")
	defer cancelRetry()
	other, cancelOther := o.Watch("c", "d2")
	defer cancelOther()
	unkeyed, cancelUnkeyed := o.Watch("u", "")
	defer cancelUnkeyed()

	o.deliver(schemas.KeyReused("c", "task.create", "w", "d2", schemas.Result{}.DecidedAt))
	if got := len(other); got != 1 || len(first) != 0 || len(retry) != 0 {
		t.Fatalf("the refusal for d2 reached d2: %d, d1: %d and %d", got, len(first), len(retry))
	}
	if res := <-other; res.Code != "idempotency_key_reused" {
		t.Fatalf("d2 got %+v", res)
	}
	o.deliver(schemas.Result{CommandID: "c", Status: schemas.ResultAccepted, RequestDigest: "d1"})
	if len(first) != 1 || len(retry) != 1 {
		t.Fatal("both requests with d1 must get the outcome of d1")
	}
	o.deliver(schemas.Result{CommandID: "u", Status: schemas.ResultAccepted}) // no digest: answers anyone
	if len(unkeyed) != 1 || len(o.waiters) != 0 {
		t.Fatalf("waiters left: %v", o.waiters)
	}
}
