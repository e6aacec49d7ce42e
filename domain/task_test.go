package domain_test

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/logbook-dev/logbook/domain"
)

// taskCommands builds, for a task state, a command valid in every respect
// except possibly the task's status.
var taskCommands = []struct {
	typ  string
	make func(s domain.State) any
	// legal maps each status the command may leave to the events it emits
	// and the status it reaches.
	legal map[string]struct {
		events []string
		to     string
	}
}{
	{
		typ: domain.CmdTaskCreate,
		make: func(domain.State) any {
			return &domain.TaskCreateCmd{TaskID: taskID, Title: "again"}
		},
	},
	{
		typ:  domain.CmdTaskAssign,
		make: func(domain.State) any { return &domain.TaskAssignCmd{TaskID: taskID, Assignee: "alice"} },
		legal: map[string]struct {
			events []string
			to     string
		}{
			domain.TaskStatusPending:  {[]string{domain.EvTaskAssigned}, domain.TaskStatusAssigned},
			domain.TaskStatusAssigned: {[]string{domain.EvTaskAssigned}, domain.TaskStatusAssigned},
		},
	},
	{
		typ:  domain.CmdTaskStartAttempt,
		make: func(domain.State) any { return &domain.TaskStartAttemptCmd{TaskID: taskID} },
		legal: map[string]struct {
			events []string
			to     string
		}{
			domain.TaskStatusAssigned: {[]string{domain.EvTaskAttemptStarted}, domain.TaskStatusInProgress},
		},
	},
	{
		typ: domain.CmdTaskRecordResult,
		make: func(s domain.State) any {
			return &domain.TaskRecordResultCmd{TaskID: taskID, Attempt: max(1, s.Task.Attempt), Output: "ok"}
		},
		legal: map[string]struct {
			events []string
			to     string
		}{
			domain.TaskStatusInProgress: {[]string{domain.EvTaskResultRecorded, domain.EvTaskCompleted}, domain.TaskStatusCompleted},
		},
	},
	{
		typ: domain.CmdTaskFailAttempt,
		make: func(s domain.State) any {
			return &domain.TaskFailAttemptCmd{TaskID: taskID, Attempt: max(1, s.Task.Attempt), Reason: "boom"}
		},
		legal: map[string]struct {
			events []string
			to     string
		}{
			domain.TaskStatusInProgress: {[]string{domain.EvTaskAttemptFailed}, domain.TaskStatusFailed},
		},
	},
	{
		typ:  domain.CmdTaskRetry,
		make: func(domain.State) any { return &domain.TaskRetryCmd{TaskID: taskID} },
		legal: map[string]struct {
			events []string
			to     string
		}{
			domain.TaskStatusFailed: {[]string{domain.EvTaskRetried}, domain.TaskStatusAssigned},
		},
	},
	{
		typ:  domain.CmdTaskComplete,
		make: func(domain.State) any { return &domain.TaskCompleteCmd{TaskID: taskID} },
		legal: map[string]struct {
			events []string
			to     string
		}{
			domain.TaskStatusInProgress: {[]string{domain.EvTaskCompleted}, domain.TaskStatusCompleted},
		},
	},
	{
		typ:  domain.CmdTaskCancel,
		make: func(domain.State) any { return &domain.TaskCancelCmd{TaskID: taskID} },
		legal: map[string]struct {
			events []string
			to     string
		}{
			domain.TaskStatusPending:    {[]string{domain.EvTaskCancelled}, domain.TaskStatusCancelled},
			domain.TaskStatusAssigned:   {[]string{domain.EvTaskCancelled}, domain.TaskStatusCancelled},
			domain.TaskStatusInProgress: {[]string{domain.EvTaskCancelled}, domain.TaskStatusCancelled},
			domain.TaskStatusFailed:     {[]string{domain.EvTaskCancelled}, domain.TaskStatusCancelled},
		},
	},
}

// Every task command from every task status.
func TestTaskTransitions(t *testing.T) {
	for _, tc := range taskCommands {
		for _, from := range taskStatuses {
			t.Run(tc.typ+"/from_"+from, func(t *testing.T) {
				s := withTask(t, activeWorkspace(t), from)
				got, events, err := decide(t, s, command(tc.typ, tc.make(s)))
				want, legal := tc.legal[from]
				if !legal {
					wantError(t, err, domain.CodeConflict, "")
					if tc.typ != domain.CmdTaskCreate && !strings.Contains(err.Error(), from) {
						t.Errorf("error %q does not name the status %s", err, from)
					}
					return
				}
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				if types := eventTypes(events); !slices.Equal(types, want.events) {
					t.Errorf("events = %v, want %v", types, want.events)
				}
				if got.Task.Status != want.to {
					t.Errorf("status = %s, want %s", got.Task.Status, want.to)
				}
				if got.Task.Version != s.Task.Version+int64(len(want.events)) {
					t.Errorf("version = %d, want %d", got.Task.Version, s.Task.Version+int64(len(want.events)))
				}
				if !reflect.DeepEqual(got.Workspace, s.Workspace) {
					t.Errorf("a task command changed the workspace")
				}
			})
		}
	}
}

// Task commands are refused unless the workspace is active, even when the
// task's status allows them.
func TestTaskCommandsNeedActiveWorkspace(t *testing.T) {
	for _, tc := range taskCommands {
		var from string // a status the command may leave; none for task.create
		if legal := slices.Sorted(maps.Keys(tc.legal)); len(legal) > 0 {
			from = legal[0]
		}
		for _, wsStatus := range workspaceStatuses {
			t.Run(tc.typ+"/workspace_"+wsStatus, func(t *testing.T) {
				s := activeWorkspace(t)
				if tc.typ != domain.CmdTaskCreate {
					s = withTask(t, s, from)
				}
				s = withWorkspaceStatus(t, s, wsStatus)
				var payload any
				if tc.typ == domain.CmdTaskCreate {
					payload = &domain.TaskCreateCmd{TaskID: taskID, Title: "t"}
				} else {
					payload = tc.make(s)
				}
				_, _, err := decide(t, s, command(tc.typ, payload))
				switch wsStatus {
				case domain.WorkspaceStatusActive:
					if err != nil {
						t.Fatalf("Decide: %v", err)
					}
				case domain.WorkspaceStatusArchived:
					wantError(t, err, domain.CodeConflict, "")
				default:
					wantError(t, err, domain.CodeNotFound, "")
				}
			})
		}
	}
}

func TestTaskNotFound(t *testing.T) {
	for _, tc := range taskCommands[1:] {
		t.Run(tc.typ+"/missing", func(t *testing.T) {
			s := withTask(t, activeWorkspace(t), domain.TaskStatusInProgress)
			payload := tc.make(s)
			s.Task = nil
			_, _, err := decide(t, s, command(tc.typ, payload))
			wantError(t, err, domain.CodeNotFound, "")
		})
		t.Run(tc.typ+"/other_workspace", func(t *testing.T) {
			s := withTask(t, activeWorkspace(t), domain.TaskStatusInProgress)
			task := *s.Task
			task.WorkspaceID = "ws-2"
			s.Task = &task
			_, _, err := decide(t, s, command(tc.typ, tc.make(s)))
			wantError(t, err, domain.CodeNotFound, "")
		})
		t.Run(tc.typ+"/other_task", func(t *testing.T) {
			s := withTask(t, activeWorkspace(t), domain.TaskStatusInProgress)
			task := *s.Task
			task.ID = "task-2"
			s.Task = &task
			_, _, err := decide(t, s, command(tc.typ, tc.make(s)))
			wantError(t, err, domain.CodeNotFound, "")
		})
	}
}

func TestTaskCreate(t *testing.T) {
	ws := activeWorkspace(t)
	tests := []struct {
		name     string
		cmd      domain.TaskCreateCmd
		events   []string
		wantTask domain.Task
	}{
		{
			name:   "pending without assignee",
			cmd:    domain.TaskCreateCmd{TaskID: taskID, Title: "  Summarise  ", Input: " raw\n", Priority: 3},
			events: []string{domain.EvTaskCreated},
			wantTask: domain.Task{
				ID: taskID, WorkspaceID: wsID, Title: "Summarise", Input: " raw\n", Priority: 3,
				Status: domain.TaskStatusPending, Version: 1, CreatedAt: now, UpdatedAt: now,
			},
		},
		{
			name:   "assigned to an agent",
			cmd:    domain.TaskCreateCmd{TaskID: taskID, Title: "Summarise", Priority: domain.MaxPriority, Assignee: "bot"},
			events: []string{domain.EvTaskCreated, domain.EvTaskAssigned},
			wantTask: domain.Task{
				ID: taskID, WorkspaceID: wsID, Title: "Summarise", Priority: domain.MaxPriority, Assignee: "bot",
				Status: domain.TaskStatusAssigned, Version: 2, CreatedAt: now, UpdatedAt: now,
			},
		},
		{
			name:   "assigned to a member",
			cmd:    domain.TaskCreateCmd{TaskID: taskID, Title: "Review", Priority: domain.MinPriority, Assignee: "alice"},
			events: []string{domain.EvTaskCreated, domain.EvTaskAssigned},
			wantTask: domain.Task{
				ID: taskID, WorkspaceID: wsID, Title: "Review", Priority: domain.MinPriority, Assignee: "alice",
				Status: domain.TaskStatusAssigned, Version: 2, CreatedAt: now, UpdatedAt: now,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, events, err := decide(t, ws, command(domain.CmdTaskCreate, &tt.cmd))
			if err != nil {
				t.Fatal(err)
			}
			if types := eventTypes(events); !slices.Equal(types, tt.events) {
				t.Errorf("events = %v, want %v", types, tt.events)
			}
			created := events[0].Payload.(domain.TaskCreated)
			if created.Title != strings.TrimSpace(tt.cmd.Title) || created.Assignee != tt.cmd.Assignee {
				t.Errorf("task.created payload = %+v", created)
			}
			if !reflect.DeepEqual(*s.Task, tt.wantTask) {
				t.Errorf("task = %+v\nwant   %+v", *s.Task, tt.wantTask)
			}
		})
	}
}

// One task through failure, retry and success, checked field by field.
func TestTaskLifecycle(t *testing.T) {
	s := withTask(t, activeWorkspace(t), domain.TaskStatusPending)
	s = must(t, s, command(domain.CmdTaskAssign, &domain.TaskAssignCmd{TaskID: taskID, Assignee: "bot2"}))
	s = must(t, s, command(domain.CmdTaskAssign, &domain.TaskAssignCmd{TaskID: taskID, Assignee: "bot"}))
	s = must(t, s, command(domain.CmdTaskStartAttempt, &domain.TaskStartAttemptCmd{TaskID: taskID}))
	if s.Task.Attempt != 1 {
		t.Fatalf("attempt = %d, want 1", s.Task.Attempt)
	}
	s = must(t, s, command(domain.CmdTaskFailAttempt, &domain.TaskFailAttemptCmd{
		TaskID: taskID, Attempt: 1, Reason: " rate limited ", Retryable: true,
		Usage: domain.TokenUsage{PromptTokens: 100, CompletionTokens: 0},
	}))
	if s.Task.FailureReason != "rate limited" || s.Task.Usage.PromptTokens != 100 {
		t.Fatalf("after failure: %+v", *s.Task)
	}
	s, events, err := decide(t, s, command(domain.CmdTaskRetry, &domain.TaskRetryCmd{TaskID: taskID}))
	if err != nil {
		t.Fatal(err)
	}
	if p := events[0].Payload.(domain.TaskRetried); p.Assignee != "bot" {
		t.Errorf("retried to %q, want the previous assignee bot", p.Assignee)
	}
	s = must(t, s, command(domain.CmdTaskStartAttempt, &domain.TaskStartAttemptCmd{TaskID: taskID}))
	s = must(t, s, command(domain.CmdTaskRecordResult, &domain.TaskRecordResultCmd{
		TaskID: taskID, Attempt: 2, Output: "summary",
		Usage: domain.TokenUsage{PromptTokens: 120, CompletionTokens: 40},
	}))
	want := domain.Task{
		ID: taskID, WorkspaceID: wsID, Title: "Summarise", Input: "the text", Priority: 5,
		Assignee: "bot", Status: domain.TaskStatusCompleted, Attempt: 2, Output: "summary",
		Usage:   domain.TokenUsage{PromptTokens: 220, CompletionTokens: 40},
		Version: 9, CreatedAt: now, UpdatedAt: now,
	}
	if !reflect.DeepEqual(*s.Task, want) {
		t.Errorf("task = %+v\nwant   %+v", *s.Task, want)
	}
}

func TestTaskCompleteKeepsOrSetsOutput(t *testing.T) {
	s := withTask(t, activeWorkspace(t), domain.TaskStatusInProgress)
	done := must(t, s, command(domain.CmdTaskComplete, &domain.TaskCompleteCmd{TaskID: taskID, Output: "by hand"}))
	if done.Task.Output != "by hand" || done.Task.Status != domain.TaskStatusCompleted {
		t.Errorf("task = %+v", *done.Task)
	}
	s, events, err := decide(t, s, command(domain.CmdTaskRecordResult, &domain.TaskRecordResultCmd{TaskID: taskID, Attempt: 1, Output: "by AI"}))
	if err != nil {
		t.Fatal(err)
	}
	if p := events[1].Payload.(domain.TaskCompleted); p.Output != "" {
		t.Errorf("task.completed repeats the output %q", p.Output)
	}
	if s.Task.Output != "by AI" {
		t.Errorf("output = %q, want by AI", s.Task.Output)
	}
}

func TestTaskCancelReason(t *testing.T) {
	s := withTask(t, activeWorkspace(t), domain.TaskStatusFailed)
	_, events, err := decide(t, s, command(domain.CmdTaskCancel, &domain.TaskCancelCmd{TaskID: taskID, Reason: "  obsolete "}))
	if err != nil {
		t.Fatal(err)
	}
	if p := events[0].Payload.(domain.TaskCancelled); p.Reason != "obsolete" {
		t.Errorf("reason = %q, want obsolete", p.Reason)
	}
}

func TestTaskConflicts(t *testing.T) {
	tests := []struct {
		name   string
		status string
		edit   func(*domain.Task)
		cmd    func(s domain.State) domain.Command
	}{
		{"reassign to the same assignee", domain.TaskStatusAssigned, nil, func(domain.State) domain.Command {
			return command(domain.CmdTaskAssign, &domain.TaskAssignCmd{TaskID: taskID, Assignee: "bot"})
		}},
		{"record a stale attempt", domain.TaskStatusInProgress, func(t *domain.Task) { t.Attempt = 2 }, func(domain.State) domain.Command {
			return command(domain.CmdTaskRecordResult, &domain.TaskRecordResultCmd{TaskID: taskID, Attempt: 1})
		}},
		{"record a future attempt", domain.TaskStatusInProgress, nil, func(domain.State) domain.Command {
			return command(domain.CmdTaskRecordResult, &domain.TaskRecordResultCmd{TaskID: taskID, Attempt: 2})
		}},
		{"fail a stale attempt", domain.TaskStatusInProgress, func(t *domain.Task) { t.Attempt = 2 }, func(domain.State) domain.Command {
			return command(domain.CmdTaskFailAttempt, &domain.TaskFailAttemptCmd{TaskID: taskID, Attempt: 1, Reason: "x"})
		}},
		{"retry without assignee", domain.TaskStatusFailed, func(t *domain.Task) { t.Assignee = "" }, func(domain.State) domain.Command {
			return command(domain.CmdTaskRetry, &domain.TaskRetryCmd{TaskID: taskID})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := withTask(t, activeWorkspace(t), tt.status)
			if tt.edit != nil {
				task := *s.Task
				tt.edit(&task)
				s.Task = &task
			}
			_, _, err := decide(t, s, tt.cmd(s))
			wantError(t, err, domain.CodeConflict, "")
		})
	}
}
