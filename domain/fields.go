package domain

import (
	"math"
	"slices"
	"strings"
)

// MaxIDLen bounds client-chosen ids: workspace, task, agent and principal.
const MaxIDLen = 200

// checkWorkspaceID checks the workspace id a command names. Only
// workspace.create needs it: a workspace with a bad id never exists, so
// Decide answers any other command naming one with NotFound.
func checkWorkspaceID(cmd Command) error {
	if cmd.WorkspaceID == KeyRegistry {
		return Invalid("workspace_id", "%q is reserved for keys", KeyRegistry)
	}
	return checkID("workspace_id", cmd.WorkspaceID)
}

func checkTaskID(p TaskTarget) error {
	return checkID("task_id", p.TargetTask())
}

var memberRoles = []string{RoleAdmin, RoleWriter, RoleReader, RoleAuditor}

// keyRoles are the roles a key may have: a member's, or the agent service's.
var keyRoles = []string{RoleAdmin, RoleWriter, RoleReader, RoleAuditor, RoleAgent}

func checkKeyRole(role string) error {
	if !slices.Contains(keyRoles, role) {
		return Invalid("role", "must be one of %s", strings.Join(keyRoles, ", "))
	}
	return nil
}

func checkRole(role string) error {
	if !slices.Contains(memberRoles, role) {
		return Invalid("role", "must be one of %s", strings.Join(memberRoles, ", "))
	}
	return nil
}

// checkAssignee accepts an agent id or a member principal id of ws, and "":
// payloads that need an assignee require one in their validate.
func checkAssignee(ws *Workspace, assignee string) error {
	if assignee == "" {
		return nil
	}
	if _, ok := ws.Agents[assignee]; ok {
		return nil
	}
	if _, ok := ws.Members[assignee]; ok {
		return nil
	}
	return Invalid("assignee", "%q is neither an agent nor a member of the workspace", assignee)
}

// checkUsage refuses negative token counts.
func checkUsage(u TokenUsage) error {
	if u.PromptTokens < 0 || u.CompletionTokens < 0 {
		return Invalid("usage", "token counts must not be negative")
	}
	return nil
}

// addUsage returns total+u, refusing overflow; u has passed checkUsage.
func addUsage(total, u TokenUsage) (TokenUsage, error) {
	if u.PromptTokens > math.MaxInt64-total.PromptTokens || u.CompletionTokens > math.MaxInt64-total.CompletionTokens {
		return total, Invalid("usage", "token counts overflow")
	}
	return TokenUsage{
		PromptTokens:     total.PromptTokens + u.PromptTokens,
		CompletionTokens: total.CompletionTokens + u.CompletionTokens,
	}, nil
}

// transition checks that t may move to status to from its current status.
func transition(t *Task, to string, from ...string) error {
	if slices.Contains(from, t.Status) {
		return nil
	}
	return Conflict("task %q cannot go from %s to %s", t.ID, t.Status, to)
}

// checkAttemptNumber refuses an attempt no task can ever be on.
func checkAttemptNumber(attempt int) error {
	if attempt < 1 || attempt > MaxAttempt {
		return Invalid("attempt", "must be an integer from 1 to %d", MaxAttempt)
	}
	return nil
}

// checkAttempt refuses results of an attempt that is no longer current, such
// as a redelivered AI answer after a retry.
func checkAttempt(t *Task, attempt int) error {
	if attempt != t.Attempt {
		return Conflict("stale attempt %d: task %q is on attempt %d", attempt, t.ID, t.Attempt)
	}
	return nil
}
