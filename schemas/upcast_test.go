package schemas_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

// testdata/events holds a payload of every superseded version of every
// event type, as the code of that version wrote it. Each must still
// validate against its own schema, upcast to a payload the current schema
// accepts, and decode to what it meant.
func TestOldEventVersionsReadAsCurrent(t *testing.T) {
	want := map[string]any{
		"task.result_recorded.v1": &domain.TaskResultRecorded{TaskID: "task-1", Attempt: 2, Output: "The report says…",
			Usage: domain.TokenUsage{PromptTokens: 812, CompletionTokens: 95}},
		"workspace.ai_policy_set.v1": &domain.WorkspaceAIPolicySet{DailyTokenBudget: 50000, FallbackMode: domain.FallbackLocal},
		"task.created.v1": &domain.TaskCreated{TaskID: "task-7", Title: "Summarise the incident", Input: "lbx1.1.sealed",
			Priority: 3, Assignee: "agent-1", Labels: []string{}},
	}
	for _, typ := range domain.EventTypes {
		for v := 1; v < domain.EventVersion(typ); v++ {
			name := typ + ".v" + strconv.Itoa(v)
			t.Run(name, func(t *testing.T) {
				old, err := os.ReadFile(filepath.Join("testdata", "events", name+".json"))
				if err != nil {
					t.Fatalf("no payload written by version %d: %v", v, err)
				}
				if err := schemas.ValidateEventPayload(typ, v, old); err != nil {
					t.Fatalf("the sample is not a v%d payload: %v", v, err)
				}
				cur, err := schemas.Upcast(typ, v, old)
				if err != nil {
					t.Fatal(err)
				}
				if err := schemas.ValidateEventPayload(typ, domain.EventVersion(typ), cur); err != nil {
					t.Fatalf("upcast payload %s: %v", cur, err)
				}
				ev, err := schemas.EventEnvelope{Type: typ, Version: v, Payload: old}.Event()
				if err != nil {
					t.Fatal(err)
				}
				w, ok := want[name]
				if !ok {
					t.Fatalf("add what %s means to this test", name)
				}
				if !reflect.DeepEqual(ev.Payload, w) {
					t.Fatalf("decoded %+v, want %+v", ev.Payload, w)
				}
			})
		}
	}
}

// An upcaster adds what a version lacks; it never overwrites what the
// payload says, and a current payload passes through unchanged.
func TestUpcastKeepsWhatThePayloadSays(t *testing.T) {
	in := []byte(`{"task_id":"t","attempt":1,"output":"","usage":{"prompt_tokens":0,"completion_tokens":0},"provider":"openai"}`)
	out, err := schemas.Upcast(domain.EvTaskResultRecorded, 1, in)
	if err != nil {
		t.Fatal(err)
	}
	var p domain.TaskResultRecorded
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatal(err)
	}
	if p.Provider != "openai" || p.Model != "" {
		t.Fatalf("got provider %q model %q", p.Provider, p.Model)
	}
	cur := []byte(`{"name":"x"}`)
	if out, err := schemas.Upcast(domain.EvWorkspaceRenamed, 1, cur); err != nil || string(out) != string(cur) {
		t.Fatalf("current payload changed: %s, %v", out, err)
	}
}

// A version this code does not know, older or newer, is refused with the
// versions it reads, never decoded as a guess.
func TestUpcastRefusesUnknownVersions(t *testing.T) {
	for _, v := range []int{0, -1, domain.EventVersion(domain.EvTaskResultRecorded) + 1} {
		_, err := schemas.Upcast(domain.EvTaskResultRecorded, v, []byte(`{}`))
		if err == nil || !strings.Contains(err.Error(), "unsupported version") {
			t.Errorf("v%d: got %v", v, err)
		}
	}
	if _, err := schemas.Upcast(domain.EvTaskResultRecorded, 1, []byte(`[1]`)); err == nil {
		t.Error("a payload that is not an object was upcast")
	}
	if _, err := schemas.Upcast(domain.EvTaskResultRecorded, 1, []byte(`null`)); err == nil {
		t.Error("a null payload was upcast")
	}
}
