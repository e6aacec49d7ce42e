package domain_test

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/domain"
)

// long returns n copies of a two-byte character: limits count characters.
func long(n int) string { return strings.Repeat("é", n) }

const badUTF8 = "bad\xff"

var beforeYear1 = time.Date(0, 12, 31, 0, 0, 0, 0, time.UTC)

// maxLabels is the most labels a task takes, each as long as allowed.
func maxLabels() []string {
	out := make([]string, domain.MaxLabels)
	for i := range out {
		out[i] = string(rune('a'+i)) + long(domain.MaxTaskLabelLen-1)
	}
	return out
}

func TestInvalidInput(t *testing.T) {
	active := func(t *testing.T) domain.State { return activeWorkspace(t) }
	taskIn := func(status string) func(t *testing.T) domain.State {
		return func(t *testing.T) domain.State { return withTask(t, activeWorkspace(t), status) }
	}
	used := func(t *testing.T) domain.State { // in progress, some tokens spent
		s := withTask(t, activeWorkspace(t), domain.TaskStatusInProgress)
		task := *s.Task
		task.Usage = domain.TokenUsage{PromptTokens: 1, CompletionTokens: 1}
		s.Task = &task
		return s
	}
	none := func(*testing.T) domain.State { return domain.State{} }
	create := func(p domain.TaskCreateCmd) any {
		if p.Title == "" {
			p.Title = "t"
		}
		if p.TaskID == "" {
			p.TaskID = taskID
		}
		return &p
	}
	result := func(u domain.TokenUsage) any {
		return &domain.TaskRecordResultCmd{TaskID: taskID, Attempt: 1, Usage: u}
	}
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
	tests := []struct {
		name    string
		s       func(t *testing.T) domain.State
		typ     string
		payload any
		field   string
	}{
		{"unknown command", active, "workspace.explode", &domain.WorkspaceArchiveCmd{}, "type"},
		{"payload of another command", active, domain.CmdWorkspaceRename, &domain.WorkspaceCreateCmd{Name: "x"}, "type"},
		{"nil payload", active, domain.CmdWorkspaceArchive, nil, "type"},
		{"nil pointer payload", active, domain.CmdWorkspaceArchive, (*domain.WorkspaceArchiveCmd)(nil), "type"},
		{"task payload of another command", taskIn("assigned"), domain.CmdTaskStartAttempt, &domain.TaskRetryCmd{TaskID: taskID}, "type"},

		{"create: payload of another command", none, domain.CmdWorkspaceCreate, &domain.WorkspaceRenameCmd{Name: "x"}, "type"},
		{"create: blank name", none, domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: " \t\n"}, "name"},
		{"create: long name", none, domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: long(domain.MaxNameLen + 1)}, "name"},
		{"create: name not UTF-8", none, domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: badUTF8}, "name"},
		{"rename: empty name", active, domain.CmdWorkspaceRename, &domain.WorkspaceRenameCmd{}, "name"},
		{"rename: long name", active, domain.CmdWorkspaceRename, &domain.WorkspaceRenameCmd{Name: long(domain.MaxNameLen + 1)}, "name"},

		{"add member: no principal", active, domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{Role: domain.RoleReader}, "principal_id"},
		{"add member: long principal", active, domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: long(domain.MaxIDLen + 1), Role: domain.RoleReader}, "principal_id"},
		{"add member: no role", active, domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "carol"}, "role"},
		{"add member: unknown role", active, domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "carol", Role: "owner"}, "role"},
		{"add member: role case", active, domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "carol", Role: "Admin"}, "role"},
		{"remove member: no principal", active, domain.CmdWorkspaceRemoveMember, &domain.WorkspaceRemoveMemberCmd{PrincipalID: " "}, "principal_id"},

		{"agent: no id", active, domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{AgentID: " "}), "agent_id"},
		{"agent: long id", active, domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{AgentID: long(domain.MaxIDLen + 1)}), "agent_id"},
		{"agent: blank name", active, domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{Name: "  "}), "name"},
		{"agent: long name", active, domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{Name: long(domain.MaxNameLen + 1)}), "name"},
		{"agent: long role", active, domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{Role: long(domain.MaxNameLen + 1)}), "role"},
		{"agent: blank model", active, domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{Model: " "}), "model"},
		{"agent: long model", active, domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{Model: long(domain.MaxModelLen + 1)}), "model"},
		{"agent: long instructions", active, domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{Instructions: long(domain.MaxTextLen + 1)}), "instructions"},
		{"agent: instructions not UTF-8", active, domain.CmdWorkspaceRegisterAgent, agent(domain.WorkspaceRegisterAgentCmd{Instructions: badUTF8}), "instructions"},

		{"policy: negative budget", active, domain.CmdWorkspaceSetAIPolicy, &domain.WorkspaceSetAIPolicyCmd{DailyTokenBudget: -1}, "daily_token_budget"},
		{"policy: budget over limit", active, domain.CmdWorkspaceSetAIPolicy, &domain.WorkspaceSetAIPolicyCmd{DailyTokenBudget: domain.MaxDailyTokenLimit + 1}, "daily_token_budget"},
		{"policy: unknown fallback", active, domain.CmdWorkspaceSetAIPolicy, &domain.WorkspaceSetAIPolicyCmd{FallbackMode: "cloud"}, "fallback_mode"},

		{"task create: no task id", active, domain.CmdTaskCreate, &domain.TaskCreateCmd{Title: "t"}, "task_id"},
		{"task create: long task id", active, domain.CmdTaskCreate, create(domain.TaskCreateCmd{TaskID: long(domain.MaxIDLen + 1)}), "task_id"},
		{"task create: blank title", active, domain.CmdTaskCreate, create(domain.TaskCreateCmd{Title: "   "}), "title"},
		{"task create: long title", active, domain.CmdTaskCreate, create(domain.TaskCreateCmd{Title: long(domain.MaxTitleLen + 1)}), "title"},
		{"task create: long input", active, domain.CmdTaskCreate, create(domain.TaskCreateCmd{Input: long(domain.MaxTextLen + 1)}), "input"},
		{"task create: input not UTF-8", active, domain.CmdTaskCreate, create(domain.TaskCreateCmd{Input: badUTF8}), "input"},
		{"task create: priority too low", active, domain.CmdTaskCreate, create(domain.TaskCreateCmd{Priority: domain.MinPriority - 1}), "priority"},
		{"task create: too many labels", active, domain.CmdTaskCreate, create(domain.TaskCreateCmd{Labels: make([]string, domain.MaxLabels+1)}), "labels"},
		{"task create: blank label", active, domain.CmdTaskCreate, create(domain.TaskCreateCmd{Labels: []string{"ok", "  "}}), "labels"},
		{"task create: long label", active, domain.CmdTaskCreate, create(domain.TaskCreateCmd{Labels: []string{long(domain.MaxTaskLabelLen + 1)}}), "labels"},
		{"task create: label twice", active, domain.CmdTaskCreate, create(domain.TaskCreateCmd{Labels: []string{"bug", " bug "}}), "labels"},
		{"task create: label with NUL", active, domain.CmdTaskCreate, create(domain.TaskCreateCmd{Labels: []string{"a\x00b"}}), "labels"},
		{"task create: due before year 1", active, domain.CmdTaskCreate, create(domain.TaskCreateCmd{DueAt: &beforeYear1}), "due_at"},
		{"task create: priority too high", active, domain.CmdTaskCreate, create(domain.TaskCreateCmd{Priority: domain.MaxPriority + 1}), "priority"},
		{"task create: unknown assignee", active, domain.CmdTaskCreate, create(domain.TaskCreateCmd{Assignee: "nobody"}), "assignee"},

		{"assign: no task id", taskIn("pending"), domain.CmdTaskAssign, &domain.TaskAssignCmd{Assignee: "bot"}, "task_id"},
		{"assign: no assignee", taskIn("pending"), domain.CmdTaskAssign, &domain.TaskAssignCmd{TaskID: taskID}, "assignee"},
		{"assign: unknown assignee", taskIn("pending"), domain.CmdTaskAssign, &domain.TaskAssignCmd{TaskID: taskID, Assignee: "nobody"}, "assignee"},
		{"start: no task id", taskIn("assigned"), domain.CmdTaskStartAttempt, &domain.TaskStartAttemptCmd{}, "task_id"},
		{"record: no task id", taskIn("in_progress"), domain.CmdTaskRecordResult, &domain.TaskRecordResultCmd{Attempt: 1}, "task_id"},
		{"record: long output", taskIn("in_progress"), domain.CmdTaskRecordResult, &domain.TaskRecordResultCmd{TaskID: taskID, Attempt: 1, Output: long(domain.MaxTextLen + 1)}, "output"},
		{"record: negative prompt tokens", taskIn("in_progress"), domain.CmdTaskRecordResult, result(domain.TokenUsage{PromptTokens: -1}), "usage"},
		{"record: negative completion tokens", taskIn("in_progress"), domain.CmdTaskRecordResult, result(domain.TokenUsage{CompletionTokens: -1}), "usage"},
		{"record: overflowing prompt tokens", used, domain.CmdTaskRecordResult, result(domain.TokenUsage{PromptTokens: math.MaxInt64}), "usage"},
		{"record: overflowing completion tokens", used, domain.CmdTaskRecordResult, result(domain.TokenUsage{CompletionTokens: math.MaxInt64}), "usage"},
		{"record: attempt 0", taskIn("in_progress"), domain.CmdTaskRecordResult, &domain.TaskRecordResultCmd{TaskID: taskID}, "attempt"},
		{"record: negative attempt", taskIn("completed"), domain.CmdTaskRecordResult, &domain.TaskRecordResultCmd{TaskID: taskID, Attempt: -1}, "attempt"},
		{"fail: attempt past the maximum", taskIn("in_progress"), domain.CmdTaskFailAttempt, &domain.TaskFailAttemptCmd{TaskID: taskID, Attempt: domain.MaxAttempt + 1, Reason: "x"}, "attempt"},
		{"fail: no task id", taskIn("in_progress"), domain.CmdTaskFailAttempt, &domain.TaskFailAttemptCmd{Attempt: 1, Reason: "x"}, "task_id"},
		{"fail: no reason", taskIn("in_progress"), domain.CmdTaskFailAttempt, &domain.TaskFailAttemptCmd{TaskID: taskID, Attempt: 1, Reason: " "}, "reason"},
		{"fail: long reason", taskIn("in_progress"), domain.CmdTaskFailAttempt, &domain.TaskFailAttemptCmd{TaskID: taskID, Attempt: 1, Reason: long(domain.MaxReasonLen + 1)}, "reason"},
		{"fail: negative usage", taskIn("in_progress"), domain.CmdTaskFailAttempt, &domain.TaskFailAttemptCmd{TaskID: taskID, Attempt: 1, Reason: "x", Usage: domain.TokenUsage{CompletionTokens: -5}}, "usage"},
		{"retry: no task id", taskIn("failed"), domain.CmdTaskRetry, &domain.TaskRetryCmd{}, "task_id"},
		{"complete: no task id", taskIn("in_progress"), domain.CmdTaskComplete, &domain.TaskCompleteCmd{}, "task_id"},
		{"complete: long output", taskIn("in_progress"), domain.CmdTaskComplete, &domain.TaskCompleteCmd{TaskID: taskID, Output: long(domain.MaxTextLen + 1)}, "output"},
		{"cancel: no task id", taskIn("pending"), domain.CmdTaskCancel, &domain.TaskCancelCmd{}, "task_id"},
		{"cancel: long reason", taskIn("pending"), domain.CmdTaskCancel, &domain.TaskCancelCmd{TaskID: taskID, Reason: long(domain.MaxReasonLen + 1)}, "reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := decide(t, tt.s(t), command(tt.typ, tt.payload))
			wantError(t, err, domain.CodeInvalid, tt.field)
		})
	}

	t.Run("create: no workspace id", func(t *testing.T) {
		c := command(domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: "x"})
		c.WorkspaceID = ""
		_, _, err := decide(t, domain.State{}, c)
		wantError(t, err, domain.CodeInvalid, "workspace_id")
	})
}

// Values exactly at each limit are accepted.
func TestLimitsAccepted(t *testing.T) {
	ws := activeWorkspace(t)
	tests := []struct {
		name    string
		s       domain.State
		typ     string
		payload any
	}{
		{"name", domain.State{}, domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: long(domain.MaxNameLen)}},
		{"principal id", ws, domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: long(domain.MaxIDLen), Role: domain.RoleAuditor}},
		{"agent fields", ws, domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{
			AgentID: long(domain.MaxIDLen), Name: long(domain.MaxNameLen), Role: long(domain.MaxNameLen),
			Model: long(domain.MaxModelLen), Instructions: long(domain.MaxTextLen),
		}},
		{"top budget", ws, domain.CmdWorkspaceSetAIPolicy, &domain.WorkspaceSetAIPolicyCmd{DailyTokenBudget: domain.MaxDailyTokenLimit, FallbackMode: domain.FallbackNone}},
		{"task fields", ws, domain.CmdTaskCreate, &domain.TaskCreateCmd{
			TaskID: long(domain.MaxIDLen), Title: long(domain.MaxTitleLen), Input: long(domain.MaxTextLen), Priority: domain.MaxPriority,
		}},
		{"low priority", ws, domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: taskID, Title: "t", Priority: domain.MinPriority}},
		{"labels and a due time", ws, domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: taskID, Title: "t", Labels: maxLabels(),
			DueAt: func() *time.Time { d := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC); return &d }()}},
		{"output and usage", withTask(t, ws, domain.TaskStatusInProgress), domain.CmdTaskRecordResult, &domain.TaskRecordResultCmd{
			TaskID: taskID, Attempt: 1, Output: long(domain.MaxTextLen), Usage: domain.TokenUsage{PromptTokens: math.MaxInt64 / 2},
		}},
		{"fail reason", withTask(t, ws, domain.TaskStatusInProgress), domain.CmdTaskFailAttempt, &domain.TaskFailAttemptCmd{
			TaskID: taskID, Attempt: 1, Reason: long(domain.MaxReasonLen),
		}},
		{"cancel reason", withTask(t, ws, domain.TaskStatusPending), domain.CmdTaskCancel, &domain.TaskCancelCmd{TaskID: taskID, Reason: long(domain.MaxReasonLen)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := decide(t, tt.s, command(tt.typ, tt.payload)); err != nil {
				t.Fatalf("Decide: %v", err)
			}
		})
	}
}

// A payload may come as a value as well as a pointer, with the same result.
func TestPayloadValueOrPointer(t *testing.T) {
	s := withTask(t, activeWorkspace(t), domain.TaskStatusInProgress)
	ptr := &domain.TaskRecordResultCmd{TaskID: taskID, Attempt: 1, Output: "x", Usage: domain.TokenUsage{PromptTokens: 1}}
	a, err := domain.Decide(s, command(domain.CmdTaskRecordResult, ptr), now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := domain.Decide(s, command(domain.CmdTaskRecordResult, *ptr), now)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("pointer gave %+v, value gave %+v", a, b)
	}
}

// Every command type takes the payload NewCommandPayload makes for it.
func TestDecodedPayloadsAccepted(t *testing.T) {
	types := []string{
		domain.CmdWorkspaceCreate, domain.CmdWorkspaceRename, domain.CmdWorkspaceArchive,
		domain.CmdWorkspaceAddMember, domain.CmdWorkspaceRemoveMember, domain.CmdWorkspaceRegisterAgent,
		domain.CmdWorkspaceSetAIPolicy, domain.CmdWorkspaceErase,
		domain.CmdTaskCreate, domain.CmdTaskAssign, domain.CmdTaskStartAttempt, domain.CmdTaskRecordResult,
		domain.CmdTaskFailAttempt, domain.CmdTaskRetry, domain.CmdTaskComplete, domain.CmdTaskCancel,
	}
	s := activeWorkspace(t)
	for _, typ := range types {
		t.Run(typ, func(t *testing.T) {
			p := domain.NewCommandPayload(typ)
			if p == nil {
				t.Fatal("no payload type")
			}
			_, _, err := decide(t, s, command(typ, p))
			var de *domain.Error
			if errors.As(err, &de) && de.Field == "type" {
				t.Errorf("payload %T refused: %v", p, err)
			}
		})
	}
}
