package schemas_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

var now = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// scenario drives one workspace through commands that emit every event
// type, with fields at their domain limits, and returns the events.
func scenario(t *testing.T) []domain.Event {
	t.Helper()
	const ws = "ws-1"
	long := func(n int) string { return strings.Repeat("é", n) }
	var (
		s      domain.State
		events []domain.Event
	)
	stream := ws
	run := func(typ string, payload any) {
		t.Helper()
		got, err := domain.Decide(s, domain.Command{ID: "c", Type: typ, WorkspaceID: stream, Payload: payload,
			Actor: domain.Actor{ID: "root", Role: domain.RoleAdmin}}, now)
		if err != nil {
			t.Fatalf("Decide(%s): %v", typ, err)
		}
		for _, e := range got {
			s = domain.Evolve(s, e)
		}
		events = append(events, got...)
	}
	// State holds one task; the next task starts from none.
	newTask := func() { s.Task = nil }

	run(domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: long(domain.MaxNameLen)})
	run(domain.CmdWorkspaceRename, &domain.WorkspaceRenameCmd{Name: "Team"})
	run(domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: long(domain.MaxIDLen), Role: domain.RoleAuditor})
	run(domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "alice", Role: domain.RoleWriter})
	run(domain.CmdWorkspaceRemoveMember, &domain.WorkspaceRemoveMemberCmd{PrincipalID: long(domain.MaxIDLen)})
	run(domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{
		AgentID: "bot", Name: long(domain.MaxNameLen), Role: long(domain.MaxNameLen),
		Model: long(domain.MaxModelLen), Instructions: long(domain.MaxTextLen),
	})
	run(domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{AgentID: "bot2", Name: "Terse", Model: "m"})
	run(domain.CmdWorkspaceSetAIPolicy, &domain.WorkspaceSetAIPolicyCmd{DailyTokenBudget: domain.MaxDailyTokenLimit, FallbackMode: domain.FallbackLocal})
	run(domain.CmdWorkspaceSetAIPolicy, &domain.WorkspaceSetAIPolicyCmd{})

	// Created assigned; fails once, then succeeds.
	newTask()
	run(domain.CmdTaskCreate, &domain.TaskCreateCmd{
		TaskID: long(domain.MaxIDLen), Title: long(domain.MaxTitleLen), Input: long(domain.MaxTextLen),
		Priority: domain.MaxPriority, Assignee: "bot",
	})
	id := long(domain.MaxIDLen)
	run(domain.CmdTaskStartAttempt, &domain.TaskStartAttemptCmd{TaskID: id})
	run(domain.CmdTaskFailAttempt, &domain.TaskFailAttemptCmd{
		TaskID: id, Attempt: 1, Reason: long(domain.MaxReasonLen), Retryable: true,
		Usage: domain.TokenUsage{PromptTokens: 12},
	})
	run(domain.CmdTaskRetry, &domain.TaskRetryCmd{TaskID: id})
	run(domain.CmdTaskStartAttempt, &domain.TaskStartAttemptCmd{TaskID: id})
	run(domain.CmdTaskRecordResult, &domain.TaskRecordResultCmd{
		TaskID: id, Attempt: 2, Output: long(domain.MaxTextLen),
		Usage: domain.TokenUsage{PromptTokens: 1 << 40, CompletionTokens: 7},
	})

	// Created pending, assigned, reassigned, completed by hand.
	newTask()
	run(domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: "task-2", Title: "t", Priority: domain.MinPriority})
	run(domain.CmdTaskAssign, &domain.TaskAssignCmd{TaskID: "task-2", Assignee: "alice"})
	run(domain.CmdTaskAssign, &domain.TaskAssignCmd{TaskID: "task-2", Assignee: "bot2"})
	run(domain.CmdTaskStartAttempt, &domain.TaskStartAttemptCmd{TaskID: "task-2"})
	run(domain.CmdTaskComplete, &domain.TaskCompleteCmd{TaskID: "task-2", Output: "by hand"})

	// Cancelled, with and without a reason.
	newTask()
	run(domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: "task-3", Title: "t"})
	run(domain.CmdTaskCancel, &domain.TaskCancelCmd{TaskID: "task-3", Reason: long(domain.MaxReasonLen)})
	newTask()
	run(domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: "task-4", Title: "t"})
	run(domain.CmdTaskCancel, &domain.TaskCancelCmd{TaskID: "task-4"})

	run(domain.CmdWorkspaceArchive, &domain.WorkspaceArchiveCmd{})
	run(domain.CmdWorkspaceErase, &domain.WorkspaceEraseCmd{})

	// A key issued with the longest label, and revoked.
	stream, s = domain.KeyRegistry, domain.State{}
	run(domain.CmdKeyIssue, &domain.KeyIssueCmd{KeyID: long(domain.MaxIDLen), Role: domain.RoleAuditor,
		Label: long(domain.MaxLabelLen), Hash: strings.Repeat("0f", 32)})
	run(domain.CmdKeyRevoke, &domain.KeyRevokeCmd{KeyID: long(domain.MaxIDLen)})
	run(domain.CmdKeyIssue, &domain.KeyIssueCmd{KeyID: "k2", Role: domain.RoleAdmin, Hash: strings.Repeat("a1", 32)})
	return events
}

func TestEveryDecidedEventValidates(t *testing.T) {
	seen := map[string]bool{}
	for i, e := range scenario(t) {
		seen[e.Type] = true
		b, err := json.Marshal(e.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if err := schemas.ValidateEventPayload(e.Type, domain.EventVersion(e.Type), b); err != nil {
			t.Errorf("event %d: %v\npayload: %.300s", i, err, b)
		}
	}
	for _, typ := range domain.EventTypes {
		if !seen[typ] {
			t.Errorf("the scenario never emits %s", typ)
		}
	}
}

func TestSchemaFilesMatchEventTypes(t *testing.T) {
	versions := schemas.EventSchemaVersions()
	if versions == nil {
		t.Fatal("the embedded schemas do not compile")
	}
	for _, typ := range domain.EventTypes {
		if !slices.Contains(versions[typ], domain.EventVersion(typ)) {
			t.Errorf("%s has no schema for version %d (have %v)", typ, domain.EventVersion(typ), versions[typ])
		}
	}
	for typ := range versions {
		if !slices.Contains(domain.EventTypes, typ) {
			t.Errorf("schema for %s, which is not in domain.EventTypes", typ)
		}
	}
}

// The current schema of each event names exactly the JSON fields of its
// payload struct, and requires exactly those encoding/json always writes.
func TestSchemasMatchPayloadStructs(t *testing.T) {
	for _, typ := range domain.EventTypes {
		t.Run(typ, func(t *testing.T) {
			var sch struct {
				Properties           map[string]json.RawMessage `json:"properties"`
				Required             []string                   `json:"required"`
				AdditionalProperties *bool                      `json:"additionalProperties"`
			}
			readJSON(t, filepath.Join("events", fmt.Sprintf("%s.v%d.json", typ, domain.EventVersion(typ))), &sch)
			if sch.AdditionalProperties == nil || *sch.AdditionalProperties {
				t.Error(`want "additionalProperties": false`)
			}
			var fields, required []string
			rt := reflect.TypeOf(domain.NewEventPayload(typ)).Elem()
			for f := range rt.Fields() {
				name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
				fields = append(fields, name)
				if !strings.Contains(opts, "omitempty") {
					required = append(required, name)
				}
			}
			if got := slices.Sorted(maps.Keys(sch.Properties)); !slices.Equal(got, slices.Sorted(slices.Values(fields))) {
				t.Errorf("schema properties %v, payload fields %v", got, fields)
			}
			if got := slices.Sorted(slices.Values(sch.Required)); !slices.Equal(got, slices.Sorted(slices.Values(required))) {
				t.Errorf("schema requires %v, payload always has %v", got, required)
			}
		})
	}
}

func TestInvalidPayloads(t *testing.T) {
	over := func(n int) string { return `"` + strings.Repeat("é", n+1) + `"` }
	tests := []struct {
		name    string
		typ     string
		version int
		payload string
	}{
		{"extra field", domain.EvWorkspaceCreated, 1, `{"name":"x","color":"red"}`},
		{"extra field in empty payload", domain.EvWorkspaceArchived, 1, `{"by":"me"}`},
		{"extra field in usage", domain.EvTaskResultRecorded, 1, `{"task_id":"t","attempt":1,"output":"","usage":{"prompt_tokens":1,"completion_tokens":1,"cost":2}}`},
		{"missing required field", domain.EvTaskAssigned, 1, `{"task_id":"t"}`},
		{"missing usage", domain.EvTaskAttemptFailed, 1, `{"task_id":"t","attempt":1,"reason":"r","retryable":false}`},
		{"missing usage count", domain.EvTaskResultRecorded, 1, `{"task_id":"t","attempt":1,"output":"","usage":{"prompt_tokens":1}}`},
		{"empty required string", domain.EvWorkspaceCreated, 1, `{"name":""}`},
		{"name too long", domain.EvWorkspaceRenamed, 1, `{"name":` + over(domain.MaxNameLen) + `}`},
		{"title too long", domain.EvTaskCreated, 1, `{"task_id":"t","title":` + over(domain.MaxTitleLen) + `,"input":"","priority":1}`},
		{"input too long", domain.EvTaskCreated, 1, `{"task_id":"t","title":"x","input":` + over(domain.MaxTextLen) + `,"priority":1}`},
		{"reason too long", domain.EvTaskCancelled, 1, `{"task_id":"t","reason":` + over(domain.MaxReasonLen) + `}`},
		{"wrong type", domain.EvTaskCreated, 1, `{"task_id":"t","title":"x","input":"","priority":"high"}`},
		{"fractional priority", domain.EvTaskCreated, 1, `{"task_id":"t","title":"x","input":"","priority":1.5}`},
		{"priority too high", domain.EvTaskCreated, 1, `{"task_id":"t","title":"x","input":"","priority":10}`},
		{"attempt zero", domain.EvTaskAttemptStarted, 1, `{"task_id":"t","attempt":0}`},
		{"negative tokens", domain.EvTaskResultRecorded, 1, `{"task_id":"t","attempt":1,"output":"","usage":{"prompt_tokens":-1,"completion_tokens":0}}`},
		{"budget too high", domain.EvWorkspaceAIPolicySet, 1, `{"daily_token_budget":1000000001,"fallback_mode":"none"}`},
		{"unknown fallback", domain.EvWorkspaceAIPolicySet, 1, `{"daily_token_budget":0,"fallback_mode":""}`},
		{"unknown role", domain.EvWorkspaceMemberAdded, 1, `{"principal_id":"p","role":"owner"}`},
		{"not an object", domain.EvWorkspaceErased, 1, `[]`},
		{"not JSON", domain.EvWorkspaceErased, 1, `{`},
		{"trailing data", domain.EvWorkspaceErased, 1, `{} {}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := schemas.ValidateEventPayload(tt.typ, tt.version, []byte(tt.payload))
			if err == nil {
				t.Fatalf("%s accepted %.200s", tt.typ, tt.payload)
			}
			t.Log(err)
			if errors.Is(err, schemas.ErrUnknownEventSchema) {
				t.Fatalf("error %v, want a validation error", err)
			}
		})
	}
}

func TestUnknownSchemas(t *testing.T) {
	for _, tt := range []struct {
		typ     string
		version int
	}{
		{"task.exploded", 1},
		{domain.EvTaskCreated, 0},
		{domain.EvTaskCreated, domain.EventVersion(domain.EvTaskCreated) + 1},
		{"", 1},
	} {
		err := schemas.ValidateEventPayload(tt.typ, tt.version, []byte(`{}`))
		if !errors.Is(err, schemas.ErrUnknownEventSchema) {
			t.Errorf("%q v%d: error %v, want ErrUnknownEventSchema", tt.typ, tt.version, err)
		}
	}
}

func TestValidateConcurrently(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if err := schemas.ValidateEventPayload(domain.EvTaskAssigned, 1, []byte(`{"task_id":"t","assignee":"a"}`)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// Consumers replay events forever, so a published schema never changes: a
// new payload shape is a new version file, and its hash joins SHA256SUMS.
func TestPublishedSchemasUnchanged(t *testing.T) {
	f, err := os.Open(filepath.Join("events", "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	published := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("SHA256SUMS: malformed line %q, want sha256sum's format", sc.Text())
		}
		published[name] = sum
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("events", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		name := filepath.Base(path)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256(b)
		switch sum, ok := published[name]; {
		case !ok:
			t.Errorf("%s is new: add it with `cd schemas/events && sha256sum %s >> SHA256SUMS`", name, name)
		case sum != hex.EncodeToString(h[:]):
			t.Errorf("%s: published schema changed; add a new version instead", name)
		}
		delete(published, name)
	}
	for name := range published {
		t.Errorf("%s: published schema removed; old events still need it", name)
	}
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
