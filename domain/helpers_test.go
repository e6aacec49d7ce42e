package domain_test

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/domain"
)

var now = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

const (
	wsID   = "ws-1"
	taskID = "task-1"
)

func command(typ string, payload any) domain.Command {
	return domain.Command{
		ID:          "cmd-" + typ,
		Type:        typ,
		WorkspaceID: wsID,
		Actor:       domain.Actor{ID: "alice", Role: domain.RoleAdmin},
		IssuedAt:    now,
		Payload:     payload,
	}
}

func versioned(c domain.Command, v int64) domain.Command {
	c.ExpectedVersion = &v
	return c
}

// decide runs Decide, checks what every decision must keep (input untouched,
// errors typed, events numbered and stamped, value payloads) and folds the
// events into s with Evolve, checking Evolve leaves its input untouched.
func decide(t *testing.T, s domain.State, c domain.Command) (domain.State, []domain.Event, error) {
	t.Helper()
	before := cloneState(s)
	events, err := domain.Decide(s, c, now)
	if !reflect.DeepEqual(s, before) {
		t.Fatalf("Decide(%s) modified its state", c.Type)
	}
	if err != nil {
		var de *domain.Error
		if !errors.As(err, &de) {
			t.Fatalf("Decide(%s) error %T is not *domain.Error: %v", c.Type, err, err)
		}
		if events != nil {
			t.Fatalf("Decide(%s) returned events with an error", c.Type)
		}
		return s, nil, err
	}
	if len(events) == 0 {
		t.Fatalf("Decide(%s) accepted without events", c.Type)
	}
	ref := domain.AggregateRef{Type: domain.AggregateWorkspace, ID: c.WorkspaceID}
	if s.Workspace != nil && c.Type != domain.CmdWorkspaceCreate {
		ref.Version = s.Workspace.Version
	}
	if strings.HasPrefix(c.Type, "task.") {
		ref = domain.AggregateRef{Type: domain.AggregateTask, ID: targetTask(t, c.Payload)}
		if s.Task != nil {
			ref.Version = s.Task.Version
		}
	}
	if strings.HasPrefix(c.Type, "key.") {
		ref = domain.AggregateRef{Type: domain.AggregateKey, ID: c.Payload.(domain.KeyTarget).TargetKey()}
		if s.Key != nil {
			ref.Version = s.Key.Version
		}
	}
	for i, e := range events {
		ref.Version++
		if e.Aggregate != ref {
			t.Errorf("event %d (%s) aggregate = %+v, want %+v", i, e.Type, e.Aggregate, ref)
		}
		if !e.OccurredAt.Equal(now) {
			t.Errorf("event %d (%s) occurred at %v, want %v", i, e.Type, e.OccurredAt, now)
		}
		if !slices.Contains(domain.EventTypes, e.Type) {
			t.Errorf("event %d type %q is not in EventTypes", i, e.Type)
		}
		want := reflect.TypeOf(domain.NewEventPayload(e.Type)).Elem()
		if got := reflect.TypeOf(e.Payload); got != want {
			t.Errorf("event %d (%s) payload is %v, want the value type %v", i, e.Type, got, want)
		}
		prev := cloneState(s)
		next := domain.Evolve(s, e)
		if !reflect.DeepEqual(s, prev) {
			t.Fatalf("Evolve(%s) modified its input", e.Type)
		}
		// Events read back from the log carry decoded pointer payloads.
		if decoded := domain.Evolve(s, decodePayload(t, e)); !reflect.DeepEqual(decoded, next) {
			t.Fatalf("Evolve(%s) of the decoded event differs:\n got %+v\nwant %+v", e.Type, decoded, next)
		}
		s = next
	}
	var got int64
	switch ref.Type {
	case domain.AggregateWorkspace:
		got = s.Workspace.Version
	case domain.AggregateTask:
		got = s.Task.Version
	case domain.AggregateKey:
		got = s.Key.Version
	}
	if got != ref.Version {
		t.Errorf("after %s the %s is at version %d, want %d", c.Type, ref.Type, got, ref.Version)
	}
	return s, events, nil
}

// must is decide for steps that have to succeed.
func must(t *testing.T, s domain.State, c domain.Command) domain.State {
	t.Helper()
	s, _, err := decide(t, s, c)
	if err != nil {
		t.Fatalf("Decide(%s): %v", c.Type, err)
	}
	return s
}

// decodePayload returns e with its payload through JSON, as a pointer.
func decodePayload(t *testing.T, e domain.Event) domain.Event {
	t.Helper()
	b, err := json.Marshal(e.Payload)
	if err != nil {
		t.Fatal(err)
	}
	p := domain.NewEventPayload(e.Type)
	if err := json.Unmarshal(b, p); err != nil {
		t.Fatal(err)
	}
	e.Payload = p
	return e
}

func targetTask(t *testing.T, payload any) string {
	t.Helper()
	if tt, ok := payload.(domain.TaskTarget); ok {
		return tt.TargetTask()
	}
	t.Fatalf("payload %T names no task", payload)
	return ""
}

func wantError(t *testing.T, err error, code domain.Code, field string) {
	t.Helper()
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("error = %v, want a %s *domain.Error", err, code)
	}
	if de.Code != code || de.Field != field {
		t.Fatalf("error = %+v, want code %q field %q", de, code, field)
	}
	if domain.ErrorCode(err) != code {
		t.Fatalf("ErrorCode = %q, want %q", domain.ErrorCode(err), code)
	}
}

func cloneState(s domain.State) domain.State {
	if s.Workspace != nil {
		ws := *s.Workspace
		ws.Members = maps.Clone(ws.Members)
		ws.Agents = maps.Clone(ws.Agents)
		s.Workspace = &ws
	}
	if s.Task != nil {
		t := *s.Task
		s.Task = &t
	}
	if s.Key != nil {
		k := *s.Key
		s.Key = &k
	}
	return s
}

// Fixtures, all reached through Decide and Evolve.

var workspaceStatuses = []string{"missing", domain.WorkspaceStatusActive, domain.WorkspaceStatusArchived, domain.WorkspaceStatusErased}

// activeWorkspace has members alice (writer) and bob (admin) and agents bot
// and bot2: version 5.
func activeWorkspace(t *testing.T) domain.State {
	t.Helper()
	s := must(t, domain.State{}, command(domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: "Team"}))
	s = must(t, s, command(domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "alice", Role: domain.RoleWriter}))
	s = must(t, s, command(domain.CmdWorkspaceAddMember, &domain.WorkspaceAddMemberCmd{PrincipalID: "bob", Role: domain.RoleAdmin}))
	s = must(t, s, command(domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{
		AgentID: "bot", Name: "Bot", Role: "writer", Model: "gpt-4o-mini", Instructions: "Be brief.",
	}))
	s = must(t, s, command(domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{
		AgentID: "bot2", Name: "Reviewer", Role: "reviewer", Model: "llama3", Instructions: "Be thorough.",
	}))
	return s
}

// withWorkspaceStatus moves the workspace of s to status, keeping s.Task.
func withWorkspaceStatus(t *testing.T, s domain.State, status string) domain.State {
	t.Helper()
	task := s.Task
	switch status {
	case "missing":
		s.Workspace = nil
	case domain.WorkspaceStatusActive:
	case domain.WorkspaceStatusArchived:
		s = must(t, s, command(domain.CmdWorkspaceArchive, &domain.WorkspaceArchiveCmd{}))
	case domain.WorkspaceStatusErased:
		s = must(t, s, command(domain.CmdWorkspaceErase, &domain.WorkspaceEraseCmd{}))
	default:
		t.Fatalf("unknown workspace status %q", status)
	}
	s.Task = task
	return s
}

var taskStatuses = []string{
	domain.TaskStatusPending, domain.TaskStatusAssigned, domain.TaskStatusInProgress,
	domain.TaskStatusCompleted, domain.TaskStatusFailed, domain.TaskStatusCancelled,
}

// withTask adds task-1 in status to the active workspace s, assigned to bot
// from assigned on.
func withTask(t *testing.T, s domain.State, status string) domain.State {
	t.Helper()
	create := &domain.TaskCreateCmd{TaskID: taskID, Title: "Summarise", Input: "the text", Priority: 5}
	if status != domain.TaskStatusPending && status != domain.TaskStatusCancelled {
		create.Assignee = "bot"
	}
	s = must(t, s, command(domain.CmdTaskCreate, create))
	switch status {
	case domain.TaskStatusPending, domain.TaskStatusAssigned:
	case domain.TaskStatusCancelled:
		s = must(t, s, command(domain.CmdTaskCancel, &domain.TaskCancelCmd{TaskID: taskID}))
	case domain.TaskStatusInProgress, domain.TaskStatusCompleted, domain.TaskStatusFailed:
		s = must(t, s, command(domain.CmdTaskStartAttempt, &domain.TaskStartAttemptCmd{TaskID: taskID}))
		switch status {
		case domain.TaskStatusCompleted:
			s = must(t, s, command(domain.CmdTaskRecordResult, &domain.TaskRecordResultCmd{
				TaskID: taskID, Attempt: 1, Output: "done", Usage: domain.TokenUsage{PromptTokens: 10, CompletionTokens: 5},
			}))
		case domain.TaskStatusFailed:
			s = must(t, s, command(domain.CmdTaskFailAttempt, &domain.TaskFailAttemptCmd{
				TaskID: taskID, Attempt: 1, Reason: "timeout", Retryable: true, Usage: domain.TokenUsage{PromptTokens: 3},
			}))
		}
	default:
		t.Fatalf("unknown task status %q", status)
	}
	if s.Task.Status != status {
		t.Fatalf("fixture task is %s, want %s", s.Task.Status, status)
	}
	return s
}

func eventTypes(events []domain.Event) []string {
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	return types
}
