package domain

import "maps"

// Evolve returns s with e applied. The payload may be a value or a pointer
// (decoded events carry pointers). s is never modified: changed maps are
// copied first. Unknown events, events of another aggregate than the one s
// holds, and events of an aggregate not yet created leave s as it is.
func Evolve(s State, e Event) State {
	switch e.Type {
	case EvWorkspaceCreated:
		return evolveWorkspace(s, e, true, func(ws *Workspace, p WorkspaceCreated) {
			*ws = Workspace{
				ID:        e.Aggregate.ID,
				Name:      p.Name,
				Status:    WorkspaceStatusActive,
				CreatedAt: e.OccurredAt,
				Policy:    AIPolicy{FallbackMode: FallbackNone},
			}
		})
	case EvWorkspaceRenamed:
		return evolveWorkspace(s, e, false, func(ws *Workspace, p WorkspaceRenamed) {
			ws.Name = p.Name
		})
	case EvWorkspaceArchived:
		return evolveWorkspace(s, e, false, func(ws *Workspace, _ WorkspaceArchived) {
			ws.Status = WorkspaceStatusArchived
		})
	case EvWorkspaceMemberAdded:
		return evolveWorkspace(s, e, false, func(ws *Workspace, p WorkspaceMemberAdded) {
			ws.Members = withEntry(ws.Members, p.PrincipalID, Member{PrincipalID: p.PrincipalID, Role: p.Role})
		})
	case EvWorkspaceMemberRemoved:
		return evolveWorkspace(s, e, false, func(ws *Workspace, p WorkspaceMemberRemoved) {
			ws.Members = maps.Clone(ws.Members)
			delete(ws.Members, p.PrincipalID)
		})
	case EvWorkspaceAgentRegistered:
		return evolveWorkspace(s, e, false, func(ws *Workspace, p WorkspaceAgentRegistered) {
			ws.Agents = withEntry(ws.Agents, p.AgentID, Agent{
				ID:           p.AgentID,
				Name:         p.Name,
				Role:         p.Role,
				Model:        p.Model,
				Instructions: p.Instructions,
			})
		})
	case EvWorkspaceAIPolicySet:
		return evolveWorkspace(s, e, false, func(ws *Workspace, p WorkspaceAIPolicySet) {
			ws.Policy = AIPolicy{DailyTokenBudget: p.DailyTokenBudget, FallbackMode: p.FallbackMode,
				RequestsPerMinute: p.RequestsPerMinute}
		})
	case EvWorkspaceErased:
		return evolveWorkspace(s, e, false, func(ws *Workspace, _ WorkspaceErased) {
			ws.Status = WorkspaceStatusErased
			// Instructions are sensitive; the state must not outlive the key.
			if ws.Agents != nil {
				agents := make(map[string]Agent, len(ws.Agents))
				for id, a := range ws.Agents {
					a.Instructions = ""
					agents[id] = a
				}
				ws.Agents = agents
			}
		})
	case EvTaskCreated:
		return evolveTask(s, e, true, func(t *Task, p TaskCreated) {
			*t = Task{
				ID:        e.Aggregate.ID,
				Title:     p.Title,
				Input:     p.Input,
				Priority:  p.Priority,
				Assignee:  p.Assignee,
				DueAt:     p.DueAt,
				Status:    TaskStatusPending,
				CreatedAt: e.OccurredAt,
			}
			if len(p.Labels) > 0 {
				t.Labels = p.Labels // none is nil, as before labels
			}
			if s.Workspace != nil {
				t.WorkspaceID = s.Workspace.ID
			}
		})
	case EvTaskAssigned:
		return evolveTask(s, e, false, func(t *Task, p TaskAssigned) {
			t.Assignee = p.Assignee
			t.Status = TaskStatusAssigned
		})
	case EvTaskAttemptStarted:
		return evolveTask(s, e, false, func(t *Task, p TaskAttemptStarted) {
			t.Attempt = p.Attempt
			t.Status = TaskStatusInProgress
		})
	case EvTaskResultRecorded:
		return evolveTask(s, e, false, func(t *Task, p TaskResultRecorded) {
			t.Output = p.Output
			t.Provider, t.Model = p.Provider, p.Model
			t.Usage = sumUsage(t.Usage, p.Usage)
		})
	case EvTaskAttemptFailed:
		return evolveTask(s, e, false, func(t *Task, p TaskAttemptFailed) {
			t.Status = TaskStatusFailed
			t.FailureReason = p.Reason
			t.Usage = sumUsage(t.Usage, p.Usage)
		})
	case EvTaskRetried:
		return evolveTask(s, e, false, func(t *Task, p TaskRetried) {
			t.Assignee = p.Assignee
			t.Status = TaskStatusAssigned
			t.FailureReason = ""
		})
	case EvTaskCompleted:
		return evolveTask(s, e, false, func(t *Task, p TaskCompleted) {
			t.Status = TaskStatusCompleted
			if p.Output != "" {
				t.Output = p.Output
			}
		})
	case EvTaskCancelled:
		return evolveTask(s, e, false, func(t *Task, _ TaskCancelled) {
			t.Status = TaskStatusCancelled
		})
	case EvKeyIssued:
		return evolveKey(s, e, true, func(k *Key, p KeyIssued) {
			*k = Key{ID: e.Aggregate.ID, Role: p.Role, Label: p.Label, Hash: p.Hash, Status: KeyStatusActive,
				IssuedAt: e.OccurredAt}
		})
	case EvKeyRevoked:
		return evolveKey(s, e, false, func(k *Key, _ KeyRevoked) {
			k.Status = KeyStatusRevoked
			k.RevokedAt = e.OccurredAt
		})
	}
	return s
}

// evolveWorkspace applies one workspace event to a copy of s.Workspace.
func evolveWorkspace[P any](s State, e Event, creates bool, apply func(*Workspace, P)) State {
	p, ok := payloadAs[P](e.Payload)
	if !ok {
		return s
	}
	var ws Workspace
	switch {
	case s.Workspace != nil && s.Workspace.ID != e.Aggregate.ID:
		return s
	case s.Workspace != nil:
		ws = *s.Workspace
	case !creates:
		return s
	}
	apply(&ws, p)
	ws.Version = e.Aggregate.Version
	s.Workspace = &ws
	return s
}

// evolveTask applies one task event to a copy of s.Task.
func evolveTask[P any](s State, e Event, creates bool, apply func(*Task, P)) State {
	p, ok := payloadAs[P](e.Payload)
	if !ok {
		return s
	}
	var t Task
	switch {
	case s.Task != nil && s.Task.ID != e.Aggregate.ID:
		return s
	case s.Task != nil:
		t = *s.Task
	case !creates:
		return s
	}
	apply(&t, p)
	t.Version = e.Aggregate.Version
	t.UpdatedAt = e.OccurredAt
	s.Task = &t
	return s
}

// withEntry returns a copy of m with k set to v.
func withEntry[K comparable, V any](m map[K]V, k K, v V) map[K]V {
	c := make(map[K]V, len(m)+1)
	maps.Copy(c, m)
	c[k] = v
	return c
}

func sumUsage(a, b TokenUsage) TokenUsage {
	return TokenUsage{
		PromptTokens:     a.PromptTokens + b.PromptTokens,
		CompletionTokens: a.CompletionTokens + b.CompletionTokens,
	}
}
