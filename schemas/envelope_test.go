package schemas_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

// golden reads testdata/name and checks that decoding and encoding it again
// gives the same bytes: what is stored is read back, and written, unchanged
// (a result record of format 0 is written with today's format in front).
func golden[T any](t *testing.T, name string) T {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.TrimSpace(raw)
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	again, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	_, isResult := any(v).(schemas.Result)
	if isResult && !bytes.HasPrefix(raw, []byte(`{"v":`)) {
		raw = append([]byte(fmt.Sprintf(`{"v":%d,`, schemas.ResultFormat)), raw[1:]...)
	}
	if !bytes.Equal(again, raw) {
		t.Fatalf("%s does not round-trip:\nstored  %s\nwritten %s", name, raw, again)
	}
	return v
}

// The -before-digest files were written by logbook before request digests
// existed (a command envelope as the API appended it, results as the
// decider wrote them).
func TestRecordsWrittenBeforeDigestsStillRead(t *testing.T) {
	env := golden[schemas.CommandEnvelope](t, "command-before-digest.json")
	cmd, err := env.Command()
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := cmd.Payload.(*domain.TaskCreateCmd); !ok || p.Title != "t" || p.Priority != 1 || env.RequestDigest != "" || env.CorrelationID != "corr-1" {
		t.Fatalf("old command read as %+v / %+v", env, cmd.Payload)
	}

	d := schemas.RequestDigest("POST", "/v1/workspaces/x/tasks", []byte(`{"title":"t"}`))
	for _, name := range []string{"result-before-digest.json", "result-rejected-before-digest.json"} {
		res := golden[schemas.Result](t, name)
		if res.CommandID == "" || res.WorkspaceID == "" || res.DecidedAt.IsZero() || res.RequestDigest != "" {
			t.Fatalf("%s read as %+v", name, res)
		}
		// No digest, no comparison: any request gets the first outcome.
		if !res.SameRequest(d) || !reflect.DeepEqual(res.For(d), res) {
			t.Fatalf("%s: an old result must answer any request as before, got %+v", name, res.For(d))
		}
	}
	acc := golden[schemas.Result](t, "result-before-digest.json")
	if acc.Status != schemas.ResultAccepted || acc.AggregateID != "0190d6a4-0000-7000-8000-00000000b001" || len(acc.Events) != 1 || acc.Events[0].Seq != 2 {
		t.Fatalf("accepted result read as %+v", acc)
	}
	rej := golden[schemas.Result](t, "result-rejected-before-digest.json")
	if rej.Status != schemas.ResultRejected || rej.Code != domain.CodeConflict || rej.Reason == "" {
		t.Fatalf("rejected result read as %+v", rej)
	}
}

// The -with-digest files pin the format with the digest.
func TestRecordsWithDigestsRoundTrip(t *testing.T) {
	env := golden[schemas.CommandEnvelope](t, "command-with-digest.json")
	res := golden[schemas.Result](t, "result-with-digest.json")
	if len(env.RequestDigest) != 64 || res.RequestDigest != env.RequestDigest {
		t.Fatalf("digest lost: command %q, result %q", env.RequestDigest, res.RequestDigest)
	}
}

func TestRequestDigestTellsRequestsApart(t *testing.T) {
	base := schemas.RequestDigest("POST", "/v1/workspaces/w/tasks", []byte(`{"title":"a"}`))
	if len(base) != 64 || base != schemas.RequestDigest("POST", "/v1/workspaces/w/tasks", []byte(`{"title":"a"}`)) {
		t.Fatalf("digest not a stable hex SHA-256: %q", base)
	}
	if schemas.RequestDigest("POST", "/p", nil) != schemas.RequestDigest("POST", "/p", []byte{}) {
		t.Fatal("no body and an empty body must digest alike")
	}
	for name, other := range map[string]string{
		"method":   schemas.RequestDigest("PUT", "/v1/workspaces/w/tasks", []byte(`{"title":"a"}`)),
		"path":     schemas.RequestDigest("POST", "/v1/workspaces/v/tasks", []byte(`{"title":"a"}`)),
		"body":     schemas.RequestDigest("POST", "/v1/workspaces/w/tasks", []byte(`{"title":"b"}`)),
		"no body":  schemas.RequestDigest("POST", "/v1/workspaces/w/tasks", nil),
		"boundary": schemas.RequestDigest("POST", "/v1/workspaces/w/task", []byte(`s{"title":"a"}`)),
	} {
		if other == base {
			t.Errorf("a different %s gives the same digest", name)
		}
	}
}

func TestResultForAnotherRequestRefusesTheKey(t *testing.T) {
	d1 := schemas.RequestDigest("POST", "/p", []byte(`{"title":"a"}`))
	d2 := schemas.RequestDigest("POST", "/p", []byte(`{"title":"b"}`))
	first := schemas.Result{CommandID: "c", CommandType: domain.CmdTaskCreate, WorkspaceID: "w",
		Status: schemas.ResultAccepted, AggregateID: "t", RequestDigest: d1}
	for _, d := range []string{d1, ""} {
		if got := first.For(d); !reflect.DeepEqual(got, first) {
			t.Fatalf("For(%q) = %+v, want the first outcome", d, got)
		}
	}
	got := first.For(d2)
	if got.Status != schemas.ResultRejected || got.Code != domain.CodeKeyReused || got.Field != "Idempotency-Key" ||
		got.RequestDigest != d2 || got.CommandID != "c" || got.WorkspaceID != "w" || got.AggregateID != "" || len(got.Events) != 0 {
		t.Fatalf("For(another request) = %+v, want the key refused", got)
	}
}

// Result records say their format: what this version writes reads back,
// every past format reads as it did, and a later one is refused, not read
// wrong.
func TestResultRecordsCarryTheirFormat(t *testing.T) {
	for _, name := range []string{"result-before-digest.json", "result-rejected-before-digest.json", "result-with-digest.json", "result-format1.json"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		res, err := schemas.DecodeResult(b)
		if err != nil || res.CommandID == "" || res.DecidedAt.IsZero() {
			t.Fatalf("%s: %+v, %v", name, res, err)
		}
		if want := golden[schemas.Result](t, name); !reflect.DeepEqual(res, want) {
			t.Fatalf("%s: DecodeResult %+v, the fields %+v", name, res, want)
		}
	}
	f1 := golden[schemas.Result](t, "result-format1.json")
	if f1.ActorID != "principal-1" || len(f1.RequestDigest) != 64 {
		t.Fatalf("format 1 read as %+v", f1)
	}
	b, err := json.Marshal(f1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), `{"v":1,`) {
		t.Fatalf("written without its format: %s", b)
	}
	if back, err := schemas.DecodeResult(b); err != nil || !reflect.DeepEqual(back, f1) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	if _, err := schemas.DecodeResult([]byte(`{"v":2,"command_id":"c"}`)); err == nil || !strings.Contains(err.Error(), "format 2") {
		t.Fatalf("a later format: %v", err)
	}
}
