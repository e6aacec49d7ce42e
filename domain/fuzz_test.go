package domain_test

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/logbook-dev/logbook/domain"
)

// Validate and Decide agree on every string, and whatever Decide accepts
// carries only acceptable text into its events.
func FuzzValidateAgreesWithDecide(f *testing.F) {
	for _, s := range [][2]string{{"name", "x"}, {"", " "}, {"a\x00b", "ok"}, {"\u0085", "bot"}, {"bad\xff", "alice"},
		{"\x01lead", "\t"}, {strings.Repeat("é", 201), "bot"}, {"\ud7ff\ue000", "carol"}} {
		for k := range 10 {
			f.Add(uint8(k), s[0], s[1])
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, a, b string) {
		var typ string
		var payload any
		switch kind % 10 {
		case 0:
			typ, payload = domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: a}
		case 1:
			typ, payload = domain.CmdWorkspaceRename, &domain.WorkspaceRenameCmd{Name: a}
		case 2:
			typ, payload = domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: a, Role: b}
		case 3:
			typ, payload = domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{AgentID: "new", Name: a, Model: b, Role: b, Instructions: a}
		case 4:
			typ, payload = domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: taskID, Title: a, Input: b, Priority: 1}
		case 5:
			typ, payload = domain.CmdTaskAssign, &domain.TaskAssignCmd{TaskID: taskID, Assignee: b}
		case 6:
			typ, payload = domain.CmdTaskRecordResult, &domain.TaskRecordResultCmd{TaskID: taskID, Attempt: 1, Output: a}
		case 7:
			typ, payload = domain.CmdTaskFailAttempt, &domain.TaskFailAttemptCmd{TaskID: taskID, Attempt: 1, Reason: a}
		case 8:
			typ, payload = domain.CmdTaskComplete, &domain.TaskCompleteCmd{TaskID: taskID, Output: a}
		default:
			typ, payload = domain.CmdTaskCancel, &domain.TaskCancelCmd{TaskID: taskID, Reason: a}
		}
		c := command(typ, payload)
		verr := domain.Validate(c)
		_, events, derr := decide(t, stateFor(t, typ), c)
		if verr != nil {
			var ve *domain.Error
			if !asError(verr, &ve) || ve.Code != domain.CodeInvalid {
				t.Fatalf("Validate: %v", verr)
			}
			if derr == nil || derr.Error() != verr.Error() {
				t.Fatalf("Validate says %v; Decide says %v", verr, derr)
			}
			return
		}
		for _, e := range events {
			raw, err := json.Marshal(e.Payload)
			if err != nil {
				t.Fatal(err)
			}
			var fields map[string]any
			_ = json.Unmarshal(raw, &fields)
			for k, v := range fields {
				if s, ok := v.(string); ok && (!utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0) {
					t.Fatalf("%s.%s = %q: not acceptable text, yet in an event", e.Type, k, s)
				}
			}
		}
	})
}

func asError(err error, target **domain.Error) bool {
	e, ok := err.(*domain.Error)
	*target = e
	return ok
}
