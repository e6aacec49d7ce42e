package domain_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"github.com/logbook-dev/logbook/domain"
)

// allCommandTypes lists every command type Decide knows.
var allCommandTypes = []string{
	domain.CmdWorkspaceCreate, domain.CmdWorkspaceRename, domain.CmdWorkspaceArchive,
	domain.CmdWorkspaceAddMember, domain.CmdWorkspaceRemoveMember, domain.CmdWorkspaceRegisterAgent,
	domain.CmdWorkspaceSetAIPolicy, domain.CmdWorkspaceErase,
	domain.CmdTaskCreate, domain.CmdTaskAssign, domain.CmdTaskStartAttempt, domain.CmdTaskRecordResult,
	domain.CmdTaskFailAttempt, domain.CmdTaskRetry, domain.CmdTaskComplete, domain.CmdTaskCancel,
}

// stateFor is a state in which a valid command of type typ is accepted: no
// workspace for workspace.create, the active workspace for the other
// workspace commands and task.create, and the task in a status the command
// may leave otherwise. The in-progress task has spent some tokens, so usage
// can overflow.
func stateFor(t *testing.T, typ string) domain.State {
	t.Helper()
	switch typ {
	case domain.CmdWorkspaceCreate:
		return domain.State{}
	case domain.CmdTaskAssign, domain.CmdTaskCancel:
		return withTask(t, activeWorkspace(t), domain.TaskStatusPending)
	case domain.CmdTaskStartAttempt:
		return withTask(t, activeWorkspace(t), domain.TaskStatusAssigned)
	case domain.CmdTaskRetry:
		return withTask(t, activeWorkspace(t), domain.TaskStatusFailed)
	case domain.CmdTaskRecordResult, domain.CmdTaskFailAttempt, domain.CmdTaskComplete:
		s := withTask(t, activeWorkspace(t), domain.TaskStatusInProgress)
		task := *s.Task
		task.Usage = domain.TokenUsage{PromptTokens: 1, CompletionTokens: 1}
		s.Task = &task
		return s
	}
	return activeWorkspace(t)
}

// validPayloads holds, for every command type, payloads Decide accepts in
// stateFor(typ): the attempt of the in-progress task is 1.
var validPayloads = map[string][]any{
	domain.CmdWorkspaceCreate: {
		&domain.WorkspaceCreateCmd{Name: "Team"},
		&domain.WorkspaceCreateCmd{Name: long(domain.MaxNameLen)},
	},
	domain.CmdWorkspaceRename:  {&domain.WorkspaceRenameCmd{Name: " New name "}},
	domain.CmdWorkspaceArchive: {&domain.WorkspaceArchiveCmd{}},
	domain.CmdWorkspaceAddMember: {
		&domain.WorkspaceAddMemberCmd{PrincipalID: "carol", Role: domain.RoleReader},
		&domain.WorkspaceAddMemberCmd{PrincipalID: long(domain.MaxIDLen), Role: domain.RoleAuditor},
	},
	domain.CmdWorkspaceRemoveMember: {&domain.WorkspaceRemoveMemberCmd{PrincipalID: "alice"}},
	domain.CmdWorkspaceRegisterAgent: {
		&domain.WorkspaceRegisterAgentCmd{AgentID: "bot3", Name: "Third", Model: "m"},
		&domain.WorkspaceRegisterAgentCmd{
			AgentID: long(domain.MaxIDLen), Name: long(domain.MaxNameLen), Role: long(domain.MaxNameLen),
			Model: long(domain.MaxModelLen), Instructions: long(domain.MaxTextLen),
		},
	},
	domain.CmdWorkspaceSetAIPolicy: {
		&domain.WorkspaceSetAIPolicyCmd{},
		&domain.WorkspaceSetAIPolicyCmd{DailyTokenBudget: domain.MaxDailyTokenLimit, FallbackMode: domain.FallbackLocal},
	},
	domain.CmdWorkspaceErase: {&domain.WorkspaceEraseCmd{}},
	domain.CmdTaskCreate: {
		&domain.TaskCreateCmd{TaskID: taskID, Title: "t"},
		&domain.TaskCreateCmd{TaskID: taskID, Title: "t", Priority: domain.MaxPriority, Assignee: "bot"},
		&domain.TaskCreateCmd{TaskID: long(domain.MaxIDLen), Title: long(domain.MaxTitleLen), Input: long(domain.MaxTextLen)},
	},
	domain.CmdTaskAssign:       {&domain.TaskAssignCmd{TaskID: taskID, Assignee: "alice"}},
	domain.CmdTaskStartAttempt: {&domain.TaskStartAttemptCmd{TaskID: taskID}},
	domain.CmdTaskRecordResult: {
		&domain.TaskRecordResultCmd{TaskID: taskID, Attempt: 1, Output: "ok"},
		&domain.TaskRecordResultCmd{TaskID: taskID, Attempt: 1, Output: long(domain.MaxTextLen), Usage: domain.TokenUsage{PromptTokens: 7}},
	},
	domain.CmdTaskFailAttempt: {
		&domain.TaskFailAttemptCmd{TaskID: taskID, Attempt: 1, Reason: "boom", Retryable: true},
		&domain.TaskFailAttemptCmd{TaskID: taskID, Attempt: 1, Reason: long(domain.MaxReasonLen)},
	},
	domain.CmdTaskRetry:    {&domain.TaskRetryCmd{TaskID: taskID}},
	domain.CmdTaskComplete: {&domain.TaskCompleteCmd{TaskID: taskID}, &domain.TaskCompleteCmd{TaskID: taskID, Output: "done"}},
	domain.CmdTaskCancel:   {&domain.TaskCancelCmd{TaskID: taskID}, &domain.TaskCancelCmd{TaskID: taskID, Reason: long(domain.MaxReasonLen)}},
}

// derefPayload returns the value a pointer payload points to.
func derefPayload(p any) any { return reflect.ValueOf(p).Elem().Interface() }

func TestValidateAcceptsValidCommands(t *testing.T) {
	for _, typ := range allCommandTypes {
		payloads := validPayloads[typ]
		if len(payloads) == 0 {
			t.Errorf("%s: no valid payload to test", typ)
		}
		for i, p := range payloads {
			t.Run(fmt.Sprintf("%s/%d", typ, i), func(t *testing.T) {
				before := derefPayload(p)
				for _, payload := range []any{p, before} {
					if err := domain.Validate(command(typ, payload)); err != nil {
						t.Fatalf("Validate(%T): %v", payload, err)
					}
				}
				if !reflect.DeepEqual(derefPayload(p), before) {
					t.Fatalf("Validate modified its payload")
				}
				// The payload is valid indeed: Decide accepts it.
				if _, _, err := decide(t, stateFor(t, typ), command(typ, p)); err != nil {
					t.Fatalf("Decide: %v", err)
				}
			})
		}
	}
}

// Validate and Decide refuse the same input with the same error.
func TestValidateRefusesAsDecide(t *testing.T) {
	agent := func(p domain.WorkspaceRegisterAgentCmd) any {
		if p.AgentID == "" {
			p.AgentID = "new"
		}
		if p.Name == "" {
			p.Name = "New"
		}
		if p.Model == "" {
			p.Model = "m"
		}
		return &p
	}
	create := func(p domain.TaskCreateCmd) any {
		if p.TaskID == "" {
			p.TaskID = taskID
		}
		if p.Title == "" {
			p.Title = "t"
		}
		return &p
	}
	record := func(p domain.TaskRecordResultCmd) any {
		p.TaskID, p.Attempt = taskID, 1
		return &p
	}
	fail := func(p domain.TaskFailAttemptCmd) any {
		p.TaskID, p.Attempt = taskID, 1
		if p.Reason == "" {
			p.Reason = "x"
		}
		return &p
	}
	tests := []struct {
		name    string
		typ     string
		payload any
		field   string
	}{
		{"unknown command", "workspace.explode", &domain.WorkspaceArchiveCmd{}, "type"},
		{"empty type", "", &domain.WorkspaceArchiveCmd{}, "type"},
		{"payload of another command", domain.CmdWorkspaceRename, &domain.WorkspaceCreateCmd{Name: "x"}, "type"},
		{"create: payload of another command", domain.CmdWorkspaceCreate, &domain.WorkspaceRenameCmd{Name: "x"}, "type"},
		{"nil payload", domain.CmdWorkspaceArchive, nil, "type"},
		{"nil pointer payload", domain.CmdWorkspaceArchive, (*domain.WorkspaceArchiveCmd)(nil), "type"},
		{"task payload of another command", domain.CmdTaskStartAttempt, &domain.TaskRetryCmd{TaskID: taskID}, "type"},
		{"pointer to pointer payload", domain.CmdTaskRetry, new(*domain.TaskRetryCmd), "type"},

		{"create: blank name", domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: " \t\n"}, "name"},
		{"create: long name", domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: long(domain.MaxNameLen + 1)}, "name"},
		{"create: name not UTF-8", domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: badUTF8}, "name"},
		{"rename: empty name", domain.CmdWorkspaceRename, &domain.WorkspaceRenameCmd{}, "name"},
		{"rename: long name", domain.CmdWorkspaceRename, &domain.WorkspaceRenameCmd{Name: long(domain.MaxNameLen + 1)}, "name"},

		{"add member: no principal", domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{Role: domain.RoleReader}, "principal_id"},
		{"add member: long principal", domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: long(domain.MaxIDLen + 1), Role: domain.RoleReader}, "principal_id"},
		{"add member: principal not UTF-8", domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: badUTF8, Role: domain.RoleReader}, "principal_id"},
		{"add member: principal before role", domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: " ", Role: "owner"}, "principal_id"},
		{"add member: no role", domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "carol"}, "role"},
		{"add member: unknown role", domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "carol", Role: "owner"}, "role"},
		{"add member: role case", domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "carol", Role: "Admin"}, "role"},
		{"remove member: no principal", domain.CmdWorkspaceRemoveMember, &domain.WorkspaceRemoveMemberCmd{PrincipalID: " "}, "principal_id"},
		{"remove member: long principal", domain.CmdWorkspaceRemoveMember, &domain.WorkspaceRemoveMemberCmd{PrincipalID: long(domain.MaxIDLen + 1)}, "principal_id"},

		{"agent: no id", domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{AgentID: " "}), "agent_id"},
		{"agent: long id", domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{AgentID: long(domain.MaxIDLen + 1)}), "agent_id"},
		{"agent: blank name", domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{Name: "  "}), "name"},
		{"agent: long name", domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{Name: long(domain.MaxNameLen + 1)}), "name"},
		{"agent: long role", domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{Role: long(domain.MaxNameLen + 1)}), "role"},
		{"agent: role not UTF-8", domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{Role: badUTF8}), "role"},
		{"agent: blank model", domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{Model: " "}), "model"},
		{"agent: long model", domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{Model: long(domain.MaxModelLen + 1)}), "model"},
		{"agent: long instructions", domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{Instructions: long(domain.MaxTextLen + 1)}), "instructions"},
		{"agent: instructions not UTF-8", domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{Instructions: badUTF8}), "instructions"},
		// Field errors come before the taken id and name Decide would see.
		{"agent: taken id, blank name", domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{AgentID: "bot", Name: " ", Model: "m"}, "name"},

		{"policy: negative budget", domain.CmdWorkspaceSetAIPolicy, &domain.WorkspaceSetAIPolicyCmd{DailyTokenBudget: -1}, "daily_token_budget"},
		{"policy: budget over limit", domain.CmdWorkspaceSetAIPolicy, &domain.WorkspaceSetAIPolicyCmd{DailyTokenBudget: domain.MaxDailyTokenLimit + 1}, "daily_token_budget"},
		{"policy: unknown fallback", domain.CmdWorkspaceSetAIPolicy, &domain.WorkspaceSetAIPolicyCmd{FallbackMode: "cloud"}, "fallback_mode"},
		{"policy: fallback case", domain.CmdWorkspaceSetAIPolicy, &domain.WorkspaceSetAIPolicyCmd{FallbackMode: "Local"}, "fallback_mode"},

		{"task create: no task id", domain.CmdTaskCreate, &domain.TaskCreateCmd{Title: "t"}, "task_id"},
		{"task create: blank task id", domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: " ", Title: " "}, "task_id"},
		{"task create: long task id", domain.CmdTaskCreate, create(domain.TaskCreateCmd{TaskID: long(domain.MaxIDLen + 1)}), "task_id"},
		{"task create: blank title", domain.CmdTaskCreate, create(domain.TaskCreateCmd{Title: "   "}), "title"},
		{"task create: long title", domain.CmdTaskCreate, create(domain.TaskCreateCmd{Title: long(domain.MaxTitleLen + 1)}), "title"},
		{"task create: long input", domain.CmdTaskCreate, create(domain.TaskCreateCmd{Input: long(domain.MaxTextLen + 1)}), "input"},
		{"task create: input not UTF-8", domain.CmdTaskCreate, create(domain.TaskCreateCmd{Input: badUTF8}), "input"},
		{"task create: priority too low", domain.CmdTaskCreate, create(domain.TaskCreateCmd{Priority: domain.MinPriority - 1}), "priority"},
		{"task create: priority too high", domain.CmdTaskCreate, create(domain.TaskCreateCmd{Priority: domain.MaxPriority + 1}), "priority"},
		{"task create: bad priority and unknown assignee", domain.CmdTaskCreate, create(domain.TaskCreateCmd{Priority: -1, Assignee: "nobody"}), "priority"},

		{"assign: no task id", domain.CmdTaskAssign, &domain.TaskAssignCmd{Assignee: "bot"}, "task_id"},
		{"assign: no assignee", domain.CmdTaskAssign, &domain.TaskAssignCmd{TaskID: taskID}, "assignee"},
		{"start: no task id", domain.CmdTaskStartAttempt, &domain.TaskStartAttemptCmd{}, "task_id"},
		{"start: long task id", domain.CmdTaskStartAttempt, &domain.TaskStartAttemptCmd{TaskID: long(domain.MaxIDLen + 1)}, "task_id"},
		{"record: no task id", domain.CmdTaskRecordResult, &domain.TaskRecordResultCmd{Attempt: 1}, "task_id"},
		{"record: long output", domain.CmdTaskRecordResult, record(domain.TaskRecordResultCmd{Output: long(domain.MaxTextLen + 1)}), "output"},
		{"record: output not UTF-8", domain.CmdTaskRecordResult, record(domain.TaskRecordResultCmd{Output: badUTF8}), "output"},
		{"record: negative prompt tokens", domain.CmdTaskRecordResult, record(domain.TaskRecordResultCmd{Usage: domain.TokenUsage{PromptTokens: -1}}), "usage"},
		{"record: negative completion tokens", domain.CmdTaskRecordResult, record(domain.TaskRecordResultCmd{Usage: domain.TokenUsage{CompletionTokens: math.MinInt64}}), "usage"},
		{"record: output before usage", domain.CmdTaskRecordResult, record(domain.TaskRecordResultCmd{Output: badUTF8, Usage: domain.TokenUsage{PromptTokens: -1}}), "output"},
		{"fail: no task id", domain.CmdTaskFailAttempt, &domain.TaskFailAttemptCmd{Attempt: 1, Reason: "x"}, "task_id"},
		{"fail: blank reason", domain.CmdTaskFailAttempt, fail(domain.TaskFailAttemptCmd{Reason: " "}), "reason"},
		{"fail: long reason", domain.CmdTaskFailAttempt, fail(domain.TaskFailAttemptCmd{Reason: long(domain.MaxReasonLen + 1)}), "reason"},
		{"fail: negative usage", domain.CmdTaskFailAttempt, fail(domain.TaskFailAttemptCmd{Usage: domain.TokenUsage{CompletionTokens: -5}}), "usage"},
		{"retry: no task id", domain.CmdTaskRetry, &domain.TaskRetryCmd{}, "task_id"},
		{"complete: no task id", domain.CmdTaskComplete, &domain.TaskCompleteCmd{}, "task_id"},
		{"complete: long output", domain.CmdTaskComplete, &domain.TaskCompleteCmd{TaskID: taskID, Output: long(domain.MaxTextLen + 1)}, "output"},
		{"cancel: no task id", domain.CmdTaskCancel, &domain.TaskCancelCmd{}, "task_id"},
		{"cancel: long reason", domain.CmdTaskCancel, &domain.TaskCancelCmd{TaskID: taskID, Reason: long(domain.MaxReasonLen + 1)}, "reason"},
		{"cancel: reason not UTF-8", domain.CmdTaskCancel, &domain.TaskCancelCmd{TaskID: taskID, Reason: badUTF8}, "reason"},

		// NUL can reach no read model: refused in every field.
		{"create: NUL in name", domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: "a\x00b"}, "name"},
		{"rename: NUL in name", domain.CmdWorkspaceRename, &domain.WorkspaceRenameCmd{Name: "a\x00"}, "name"},
		{"add member: NUL in principal", domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "al\x00ice", Role: domain.RoleReader}, "principal_id"},
		{"remove member: NUL in principal", domain.CmdWorkspaceRemoveMember, &domain.WorkspaceRemoveMemberCmd{PrincipalID: "\x00"}, "principal_id"},
		{"agent: NUL in model", domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{Model: "gpt\x00"}), "model"},
		{"agent: NUL in instructions", domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{Instructions: "\x00"}), "instructions"},
		{"task create: NUL in title", domain.CmdTaskCreate, create(domain.TaskCreateCmd{Title: "t\x00"}), "title"},
		{"task create: NUL in input", domain.CmdTaskCreate, create(domain.TaskCreateCmd{Input: "x\x00y"}), "input"},
		{"task create: NUL in assignee", domain.CmdTaskCreate, create(domain.TaskCreateCmd{Assignee: "bot\x00"}), "assignee"},
		{"assign: NUL in assignee", domain.CmdTaskAssign, &domain.TaskAssignCmd{TaskID: taskID, Assignee: "bot\x00"}, "assignee"},
		{"record: NUL in output", domain.CmdTaskRecordResult, record(domain.TaskRecordResultCmd{Output: "\x00"}), "output"},
		{"fail: NUL in reason", domain.CmdTaskFailAttempt, fail(domain.TaskFailAttemptCmd{Reason: "x\x00"}), "reason"},
		{"complete: NUL in output", domain.CmdTaskComplete, &domain.TaskCompleteCmd{TaskID: taskID, Output: "\x00"}, "output"},
		{"cancel: NUL in reason", domain.CmdTaskCancel, &domain.TaskCancelCmd{TaskID: taskID, Reason: "\x00"}, "reason"},
		{"task create: U+0085 title is blank", domain.CmdTaskCreate, create(domain.TaskCreateCmd{Title: "\u0085"}), "title"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := command(tt.typ, tt.payload)
			verr := domain.Validate(c)
			wantError(t, verr, domain.CodeInvalid, tt.field)
			_, _, derr := decide(t, stateFor(t, tt.typ), c)
			wantError(t, derr, domain.CodeInvalid, tt.field)
			if !reflect.DeepEqual(verr, derr) {
				t.Errorf("Validate: %v\nDecide:   %v", verr, derr)
			}
		})
	}
}

// A blank or over-long workspace id is Invalid for every command. Decide says
// the same for workspace.create, and NotFound for the others: no workspace
// can have such an id.
func TestValidateWorkspaceID(t *testing.T) {
	for _, typ := range allCommandTypes {
		for _, id := range []string{"", " \t", long(domain.MaxIDLen + 1), badUTF8} {
			t.Run(fmt.Sprintf("%s/%q", typ, id), func(t *testing.T) {
				c := command(typ, validPayloads[typ][0])
				c.WorkspaceID = id
				wantError(t, domain.Validate(c), domain.CodeInvalid, "workspace_id")
				_, _, err := decide(t, stateFor(t, typ), c)
				if typ == domain.CmdWorkspaceCreate {
					wantError(t, err, domain.CodeInvalid, "workspace_id")
				} else {
					wantError(t, err, domain.CodeNotFound, "")
				}
			})
		}
		t.Run(typ+"/type first", func(t *testing.T) {
			c := command(typ, struct{}{})
			c.WorkspaceID = ""
			wantError(t, domain.Validate(c), domain.CodeInvalid, "type")
		})
	}
}

// What only the state can tell is left to Decide.
func TestValidateLeavesStateToDecide(t *testing.T) {
	tests := []struct {
		name    string
		typ     string
		payload any
		code    domain.Code
		field   string
	}{
		{"workspace exists", domain.CmdWorkspaceRename, &domain.WorkspaceRenameCmd{Name: "x"}, "", ""},
		{"member already has the role", domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "alice", Role: domain.RoleWriter}, domain.CodeConflict, ""},
		{"remove a non-member", domain.CmdWorkspaceRemoveMember, &domain.WorkspaceRemoveMemberCmd{PrincipalID: "zed"}, domain.CodeNotFound, ""},
		{"agent id taken", domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{AgentID: "bot", Name: "Other", Model: "m"}, domain.CodeConflict, ""},
		{"agent name taken", domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{AgentID: "bot9", Name: " rEVIEWER ", Model: "m"}, domain.CodeConflict, ""},
		{"task create: unknown assignee", domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: taskID, Title: "t", Assignee: "nobody"}, domain.CodeInvalid, "assignee"},
		{"assign: unknown assignee", domain.CmdTaskAssign, &domain.TaskAssignCmd{TaskID: taskID, Assignee: "nobody"}, domain.CodeInvalid, "assignee"},
		{"assign: another task", domain.CmdTaskAssign, &domain.TaskAssignCmd{TaskID: "task-2", Assignee: "bot"}, domain.CodeNotFound, ""},
		{"record: stale attempt", domain.CmdTaskRecordResult, &domain.TaskRecordResultCmd{TaskID: taskID, Attempt: 2}, domain.CodeConflict, ""},
		{"record: usage overflows the total", domain.CmdTaskRecordResult, &domain.TaskRecordResultCmd{TaskID: taskID, Attempt: 1, Usage: domain.TokenUsage{PromptTokens: math.MaxInt64}}, domain.CodeInvalid, "usage"},
		{"fail: usage overflows the total", domain.CmdTaskFailAttempt, &domain.TaskFailAttemptCmd{TaskID: taskID, Attempt: 1, Reason: "x", Usage: domain.TokenUsage{CompletionTokens: math.MaxInt64}}, domain.CodeInvalid, "usage"},
		{"fail: stale attempt", domain.CmdTaskFailAttempt, &domain.TaskFailAttemptCmd{TaskID: taskID, Attempt: 2, Reason: "x"}, domain.CodeConflict, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := command(tt.typ, tt.payload)
			if err := domain.Validate(c); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if tt.code == "" { // refused by the state of the workspace only
				c.WorkspaceID = "ws-2"
				tt.code = domain.CodeNotFound
			}
			_, _, err := decide(t, stateFor(t, tt.typ), c)
			wantError(t, err, tt.code, tt.field)
		})
	}

	// Transitions are checked before the fields, so a task in the wrong
	// status hides field errors from Decide but not from Validate.
	c := command(domain.CmdTaskComplete, &domain.TaskCompleteCmd{TaskID: taskID, Output: badUTF8})
	wantError(t, domain.Validate(c), domain.CodeInvalid, "output")
	_, _, err := decide(t, withTask(t, activeWorkspace(t), domain.TaskStatusPending), c)
	wantError(t, err, domain.CodeConflict, "")
}

// stateFields are the fields whose validity Decide alone can judge.
var stateFields = []string{"assignee", "usage"}

// brief formats v for a failure message, cut short: payloads may hold
// strings of 64K characters.
func brief(v any) string {
	s := fmt.Sprintf("%+v", v)
	if r := []rune(s); len(r) > 300 {
		return string(r[:300]) + "…"
	}
	return s
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

// Property: for many generated payloads, when Validate refuses one naming
// field F, Decide refuses it with the same error in a state where the
// workspace is live and the task suitable; when Validate passes, Decide
// refuses nothing for a field Validate checks.
func TestValidateAgreesWithDecide(t *testing.T) {
	const perType = 300
	r := rand.New(rand.NewPCG(20250304, 1))
	// str draws a string around a limit of max characters.
	str := func(max int) string {
		return pick(r, "", " ", "\t \n", "x", " padded\t", long(max), long(max+1), " "+long(max)+" ", badUTF8)
	}
	// id draws one of the valid ids or a bad one. Task ids are valid only
	// as the id of the state's task: another would be a task not found.
	id := func(valid ...string) string {
		return pick(r, append(valid, "", " ", long(domain.MaxIDLen+1), badUTF8)...)
	}
	usage := func() domain.TokenUsage {
		n := func() int64 { return pick[int64](r, 0, 0, 1, 1000, -1, math.MaxInt64, math.MinInt64) }
		return domain.TokenUsage{PromptTokens: n(), CompletionTokens: n()}
	}
	gen := map[string]func(s domain.State) any{
		domain.CmdWorkspaceCreate: func(domain.State) any { return &domain.WorkspaceCreateCmd{Name: str(domain.MaxNameLen)} },
		domain.CmdWorkspaceRename: func(domain.State) any { return &domain.WorkspaceRenameCmd{Name: str(domain.MaxNameLen)} },
		domain.CmdWorkspaceArchive: func(domain.State) any {
			return pick[any](r, &domain.WorkspaceArchiveCmd{}, domain.WorkspaceArchiveCmd{}, &domain.WorkspaceEraseCmd{})
		},
		domain.CmdWorkspaceAddMember: func(domain.State) any {
			return &domain.WorkspaceAddMemberCmd{
				PrincipalID: id("carol", "alice", "bot", long(domain.MaxIDLen)),
				Role:        pick(r, domain.RoleAdmin, domain.RoleWriter, domain.RoleReader, domain.RoleAuditor, "", "owner", "Admin", " reader"),
			}
		},
		domain.CmdWorkspaceRemoveMember: func(domain.State) any {
			return &domain.WorkspaceRemoveMemberCmd{PrincipalID: id("alice", "zed")}
		},
		domain.CmdWorkspaceRegisterAgent: func(domain.State) any {
			return &domain.WorkspaceRegisterAgentCmd{
				AgentID:      id("new", "bot", long(domain.MaxIDLen)),
				Name:         pick(r, str(domain.MaxNameLen), "New", "reviewer"),
				Role:         str(domain.MaxNameLen),
				Model:        str(domain.MaxModelLen),
				Instructions: pick(r, "", "  keep  ", long(domain.MaxTextLen), long(domain.MaxTextLen+1), badUTF8),
			}
		},
		domain.CmdWorkspaceSetAIPolicy: func(domain.State) any {
			return &domain.WorkspaceSetAIPolicyCmd{
				DailyTokenBudget: pick[int64](r, 0, 1000, domain.MaxDailyTokenLimit, -1, domain.MaxDailyTokenLimit+1, math.MinInt64),
				FallbackMode:     pick(r, "", domain.FallbackNone, domain.FallbackLocal, "cloud", "Local", " none"),
			}
		},
		domain.CmdWorkspaceErase: func(domain.State) any { return pick[any](r, &domain.WorkspaceEraseCmd{}, nil) },
		domain.CmdTaskCreate: func(domain.State) any {
			return &domain.TaskCreateCmd{
				TaskID:   id(taskID, long(domain.MaxIDLen)),
				Title:    str(domain.MaxTitleLen),
				Input:    pick(r, "", " x ", long(domain.MaxTextLen), long(domain.MaxTextLen+1), badUTF8),
				Priority: pick(r, domain.MinPriority-1, domain.MinPriority, 5, domain.MaxPriority, domain.MaxPriority+1, math.MinInt),
				Assignee: pick(r, "", "bot", "alice", "nobody", " "),
			}
		},
		domain.CmdTaskAssign: func(domain.State) any {
			return &domain.TaskAssignCmd{TaskID: id(taskID), Assignee: pick(r, "", "bot", "alice", "nobody", " ")}
		},
		domain.CmdTaskStartAttempt: func(domain.State) any {
			return pick[any](r, &domain.TaskStartAttemptCmd{TaskID: id(taskID)}, &domain.TaskRetryCmd{TaskID: taskID})
		},
		domain.CmdTaskRecordResult: func(s domain.State) any {
			return &domain.TaskRecordResultCmd{
				TaskID: id(taskID), Attempt: s.Task.Attempt,
				Output: pick(r, "", "ok", long(domain.MaxTextLen), long(domain.MaxTextLen+1), badUTF8),
				Usage:  usage(),
			}
		},
		domain.CmdTaskFailAttempt: func(s domain.State) any {
			return &domain.TaskFailAttemptCmd{
				TaskID: id(taskID), Attempt: s.Task.Attempt,
				Reason: str(domain.MaxReasonLen), Retryable: r.IntN(2) == 0, Usage: usage(),
			}
		},
		domain.CmdTaskRetry: func(domain.State) any { return &domain.TaskRetryCmd{TaskID: id(taskID)} },
		domain.CmdTaskComplete: func(domain.State) any {
			return &domain.TaskCompleteCmd{TaskID: id(taskID), Output: pick(r, "", "ok", long(domain.MaxTextLen), long(domain.MaxTextLen+1), badUTF8)}
		},
		domain.CmdTaskCancel: func(domain.State) any {
			return &domain.TaskCancelCmd{TaskID: id(taskID), Reason: str(domain.MaxReasonLen)}
		},
	}
	for _, typ := range allCommandTypes {
		t.Run(typ, func(t *testing.T) {
			s := stateFor(t, typ)
			var refused, passed int
			for range perType {
				c := command(typ, gen[typ](s))
				if typ == domain.CmdWorkspaceCreate {
					c.WorkspaceID = id(wsID, long(domain.MaxIDLen))
				}
				verr := domain.Validate(c)
				_, derr := domain.Decide(s, c, now)
				var dde *domain.Error
				if derr != nil && !errors.As(derr, &dde) {
					t.Fatalf("Decide(%s) error %T is not *domain.Error", brief(c.Payload), derr)
				}
				if verr != nil {
					refused++
					var vde *domain.Error
					if !errors.As(verr, &vde) || vde.Code != domain.CodeInvalid || vde.Field == "" {
						t.Fatalf("Validate(%s) = %v, want an Invalid *domain.Error naming a field", brief(c.Payload), verr)
					}
					if !reflect.DeepEqual(vde, dde) {
						t.Fatalf("payload %s:\nValidate: %v\nDecide:   %v", brief(c.Payload), verr, brief(derr))
					}
					continue
				}
				passed++
				if dde != nil && dde.Code == domain.CodeInvalid && !slices.Contains(stateFields, dde.Field) {
					t.Fatalf("payload %s passes Validate, but Decide: %v", brief(c.Payload), brief(derr))
				}
			}
			if refused == 0 || passed == 0 {
				t.Errorf("%d refused, %d passed: the generator misses a side", refused, passed)
			}
		})
	}
}
