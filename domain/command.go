package domain

import "time"

// Actor is the principal on whose behalf a command runs.
type Actor struct {
	ID   string `json:"id"`
	Role string `json:"role"`
}

// Command is a request to change a workspace or one of its tasks. Payload is
// one of the *Cmd payload types below, chosen by Type.
type Command struct {
	ID              string
	Type            string
	WorkspaceID     string
	Actor           Actor
	IssuedAt        time.Time
	ExpectedVersion *int64 // of the target aggregate (the task for task.*)
	Payload         any
}

// Command types.
const (
	CmdWorkspaceCreate        = "workspace.create"
	CmdWorkspaceRename        = "workspace.rename"
	CmdWorkspaceArchive       = "workspace.archive"
	CmdWorkspaceAddMember     = "workspace.add_member"
	CmdWorkspaceRemoveMember  = "workspace.remove_member"
	CmdWorkspaceRegisterAgent = "workspace.register_agent"
	CmdWorkspaceSetAIPolicy   = "workspace.set_ai_policy"
	CmdWorkspaceErase         = "workspace.erase"
	CmdTaskCreate             = "task.create"
	CmdTaskAssign             = "task.assign"
	CmdTaskStartAttempt       = "task.start_attempt"
	CmdTaskRecordResult       = "task.record_result"
	CmdTaskFailAttempt        = "task.fail_attempt"
	CmdTaskRetry              = "task.retry"
	CmdTaskComplete           = "task.complete"
	CmdTaskCancel             = "task.cancel"
	CmdKeyIssue               = "key.issue"
	CmdKeyRevoke              = "key.revoke"
)

// Field limits, enforced by Decide (and earlier by the HTTP layer).
const (
	MaxNameLen         = 200
	MaxTitleLen        = 500
	MaxTextLen         = 64 << 10 // task input, output, agent instructions
	MaxReasonLen       = 2000
	MinPriority        = 0
	MaxPriority        = 9
	MaxMembers         = 1000
	MaxAgents          = 200
	MaxModelLen        = 200
	MaxDailyTokenLimit = 1_000_000_000
	// MaxRequestsPerMinute is far above any provider's limit: the cap is
	// there to slow one workspace down, not to be a second quota.
	MaxRequestsPerMinute = 1_000_000
	MaxAttempt           = 1<<31 - 1 // attempts count from 1
	MaxLabels            = 20
	MaxTaskLabelLen      = 50
)

// Roles: of members, and of keys.
const (
	RoleAdmin   = "admin"
	RoleWriter  = "writer"
	RoleReader  = "reader"
	RoleAuditor = "auditor"
	// RoleAgent is a key role only: the AI worker's service principal.
	RoleAgent = "agent"
)

// AI fallback modes.
const (
	FallbackNone  = "none"  // tasks wait while the provider is unavailable
	FallbackLocal = "local" // the built-in local responder answers instead
)

type WorkspaceCreateCmd struct {
	Name string `json:"name"`
}

type WorkspaceRenameCmd struct {
	Name string `json:"name"`
}

type WorkspaceArchiveCmd struct{}

type WorkspaceAddMemberCmd struct {
	PrincipalID string `json:"principal_id"`
	Role        string `json:"role"`
}

type WorkspaceRemoveMemberCmd struct {
	PrincipalID string `json:"principal_id"`
}

type WorkspaceRegisterAgentCmd struct {
	AgentID      string `json:"agent_id"`
	Name         string `json:"name"`
	Role         string `json:"role"`
	Model        string `json:"model"`
	Instructions string `json:"instructions"`
}

type WorkspaceSetAIPolicyCmd struct {
	DailyTokenBudget  int64  `json:"daily_token_budget"`
	FallbackMode      string `json:"fallback_mode"`
	RequestsPerMinute int64  `json:"requests_per_minute,omitempty"`
}

type WorkspaceEraseCmd struct{}

type TaskCreateCmd struct {
	TaskID   string `json:"task_id"`
	Title    string `json:"title"`
	Input    string `json:"input"`
	Priority int    `json:"priority"`
	Assignee string `json:"assignee,omitempty"`
	// Labels tag the task (at most MaxLabels, each at most MaxTaskLabelLen
	// characters, no two alike); DueAt is when it is wanted, if ever.
	Labels []string   `json:"labels,omitempty"`
	DueAt  *time.Time `json:"due_at,omitempty"`
}

type TaskAssignCmd struct {
	TaskID   string `json:"task_id"`
	Assignee string `json:"assignee"`
}

type TaskStartAttemptCmd struct {
	TaskID string `json:"task_id"`
}

type TokenUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

type TaskRecordResultCmd struct {
	TaskID   string     `json:"task_id"`
	Attempt  int        `json:"attempt"`
	Output   string     `json:"output"`
	Usage    TokenUsage `json:"usage"`
	Provider string     `json:"provider,omitempty"`
	Model    string     `json:"model,omitempty"`
}

type TaskFailAttemptCmd struct {
	TaskID    string     `json:"task_id"`
	Attempt   int        `json:"attempt"`
	Reason    string     `json:"reason"`
	Retryable bool       `json:"retryable"`
	Usage     TokenUsage `json:"usage"`
}

type TaskRetryCmd struct {
	TaskID string `json:"task_id"`
}

type TaskCompleteCmd struct {
	TaskID string `json:"task_id"`
	Output string `json:"output,omitempty"`
}

type TaskCancelCmd struct {
	TaskID string `json:"task_id"`
	Reason string `json:"reason,omitempty"`
}

// KeyIssueCmd issues a key. Hash is the SHA-256 of the key, in hex: the key
// itself never enters the log.
type KeyIssueCmd struct {
	KeyID string `json:"key_id"`
	Role  string `json:"role"`
	Label string `json:"label,omitempty"`
	Hash  string `json:"hash"`
}

type KeyRevokeCmd struct {
	KeyID string `json:"key_id"`
}

// TaskTarget is implemented by payloads of commands aimed at one task.
type TaskTarget interface{ TargetTask() string }

func (c TaskCreateCmd) TargetTask() string       { return c.TaskID }
func (c TaskAssignCmd) TargetTask() string       { return c.TaskID }
func (c TaskStartAttemptCmd) TargetTask() string { return c.TaskID }
func (c TaskRecordResultCmd) TargetTask() string { return c.TaskID }
func (c TaskFailAttemptCmd) TargetTask() string  { return c.TaskID }
func (c TaskRetryCmd) TargetTask() string        { return c.TaskID }
func (c TaskCompleteCmd) TargetTask() string     { return c.TaskID }
func (c TaskCancelCmd) TargetTask() string       { return c.TaskID }

// NewCommandPayload returns a pointer to a zero payload for a command type,
// for decoding, or nil for an unknown type.
func NewCommandPayload(typ string) any {
	switch typ {
	case CmdWorkspaceCreate:
		return &WorkspaceCreateCmd{}
	case CmdWorkspaceRename:
		return &WorkspaceRenameCmd{}
	case CmdWorkspaceArchive:
		return &WorkspaceArchiveCmd{}
	case CmdWorkspaceAddMember:
		return &WorkspaceAddMemberCmd{}
	case CmdWorkspaceRemoveMember:
		return &WorkspaceRemoveMemberCmd{}
	case CmdWorkspaceRegisterAgent:
		return &WorkspaceRegisterAgentCmd{}
	case CmdWorkspaceSetAIPolicy:
		return &WorkspaceSetAIPolicyCmd{}
	case CmdWorkspaceErase:
		return &WorkspaceEraseCmd{}
	case CmdTaskCreate:
		return &TaskCreateCmd{}
	case CmdTaskAssign:
		return &TaskAssignCmd{}
	case CmdTaskStartAttempt:
		return &TaskStartAttemptCmd{}
	case CmdTaskRecordResult:
		return &TaskRecordResultCmd{}
	case CmdTaskFailAttempt:
		return &TaskFailAttemptCmd{}
	case CmdTaskRetry:
		return &TaskRetryCmd{}
	case CmdKeyIssue:
		return &KeyIssueCmd{}
	case CmdKeyRevoke:
		return &KeyRevokeCmd{}
	case CmdTaskComplete:
		return &TaskCompleteCmd{}
	case CmdTaskCancel:
		return &TaskCancelCmd{}
	}
	return nil
}
