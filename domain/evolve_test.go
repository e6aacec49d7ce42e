package domain_test

import (
	"reflect"
	"testing"

	"github.com/logbook-dev/logbook/domain"
)

func event(typ, aggType, id string, version int64, payload any) domain.Event {
	return domain.Event{
		Type:       typ,
		Aggregate:  domain.AggregateRef{Type: aggType, ID: id, Version: version},
		OccurredAt: now,
		Payload:    payload,
	}
}

// Events Evolve cannot apply leave the state as it is.
func TestEvolveIgnores(t *testing.T) {
	s := withTask(t, activeWorkspace(t), domain.TaskStatusAssigned)
	tests := []struct {
		name string
		s    domain.State
		e    domain.Event
	}{
		{"unknown type", s, event("workspace.exploded", domain.AggregateWorkspace, wsID, 6, &domain.WorkspaceArchived{})},
		{"payload of another type", s, event(domain.EvWorkspaceRenamed, domain.AggregateWorkspace, wsID, 6, domain.WorkspaceCreated{Name: "x"})},
		{"nil payload", s, event(domain.EvWorkspaceArchived, domain.AggregateWorkspace, wsID, 6, nil)},
		{"nil pointer payload", s, event(domain.EvTaskCancelled, domain.AggregateTask, taskID, 3, (*domain.TaskCancelled)(nil))},
		{"workspace event before creation", domain.State{}, event(domain.EvWorkspaceRenamed, domain.AggregateWorkspace, wsID, 2, domain.WorkspaceRenamed{Name: "x"})},
		{"task event before creation", domain.State{Workspace: s.Workspace}, event(domain.EvTaskAssigned, domain.AggregateTask, taskID, 2, domain.TaskAssigned{TaskID: taskID, Assignee: "bot"})},
		{"another workspace", s, event(domain.EvWorkspaceRenamed, domain.AggregateWorkspace, "ws-2", 6, domain.WorkspaceRenamed{Name: "x"})},
		{"another workspace created", s, event(domain.EvWorkspaceCreated, domain.AggregateWorkspace, "ws-2", 1, domain.WorkspaceCreated{Name: "x"})},
		{"another task", s, event(domain.EvTaskCancelled, domain.AggregateTask, "task-2", 3, domain.TaskCancelled{TaskID: "task-2"})},
		{"another task created", s, event(domain.EvTaskCreated, domain.AggregateTask, "task-2", 1, domain.TaskCreated{TaskID: "task-2", Title: "x"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := cloneState(tt.s)
			if got := domain.Evolve(tt.s, tt.e); !reflect.DeepEqual(got, before) {
				t.Errorf("state changed:\n got %+v\nwant %+v", got, before)
			}
		})
	}
}

func TestEvolveTaskWithoutWorkspace(t *testing.T) {
	s := domain.Evolve(domain.State{}, event(domain.EvTaskCreated, domain.AggregateTask, taskID, 1,
		&domain.TaskCreated{TaskID: taskID, Title: "t", Priority: 2}))
	want := domain.Task{ID: taskID, Title: "t", Priority: 2, Status: domain.TaskStatusPending, Version: 1, CreatedAt: now, UpdatedAt: now}
	if s.Workspace != nil || !reflect.DeepEqual(*s.Task, want) {
		t.Errorf("state = %+v, task %+v", s, s.Task)
	}
}

// Evolve copies the maps it changes, so earlier states stay valid.
func TestEvolveKeepsEarlierStates(t *testing.T) {
	s0 := activeWorkspace(t)
	s1 := domain.Evolve(s0, event(domain.EvWorkspaceMemberRemoved, domain.AggregateWorkspace, wsID, 6, domain.WorkspaceMemberRemoved{PrincipalID: "alice"}))
	s2 := domain.Evolve(s1, event(domain.EvWorkspaceMemberAdded, domain.AggregateWorkspace, wsID, 7, domain.WorkspaceMemberAdded{PrincipalID: "carol", Role: domain.RoleReader}))
	s3 := domain.Evolve(s2, event(domain.EvWorkspaceErased, domain.AggregateWorkspace, wsID, 8, domain.WorkspaceErased{}))
	if _, ok := s0.Workspace.Members["alice"]; !ok {
		t.Error("removing alice changed the earlier state")
	}
	if _, ok := s1.Workspace.Members["carol"]; ok {
		t.Error("adding carol changed the earlier state")
	}
	if s2.Workspace.Agents["bot"].Instructions == "" {
		t.Error("erasing changed the earlier state's agents")
	}
	if s3.Workspace.Agents["bot"].Instructions != "" || s3.Workspace.Status != domain.WorkspaceStatusErased {
		t.Errorf("erased workspace = %+v", *s3.Workspace)
	}
}
