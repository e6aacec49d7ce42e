// Package domain holds the workspace and task aggregates. Decide judges a
// command against the current state and Evolve applies the events it
// returns. Both are pure: no I/O, no clock (time is an argument), no logging.
package domain

import "time"

// Decide judges cmd against s and returns the events recording its effect,
// or a *Error saying why it is refused. It never changes s.
//
// cmd.Payload is the payload type NewCommandPayload returns for cmd.Type,
// as a pointer or a value. For task commands s.Task is the task the payload
// targets (nil when it does not exist). Every event is stamped with now.
func Decide(s State, cmd Command, now time.Time) ([]Event, error) {
	uc, ok := useCases[cmd.Type]
	if !ok {
		return nil, unknownType(cmd)
	}
	return uc.decide(s, cmd, now)
}

// Validate checks what can be checked without state: the payload type
// matches cmd.Type, ids are present, and every field's length, range and enum.
// It returns the same *Error (code and field) Decide would return for those.
//
// It refuses nothing Decide could accept in some state. The one difference
// in kind: a blank or over-long cmd.WorkspaceID is Invalid("workspace_id")
// here for every command, where Decide answers NotFound for all but
// workspace.create, since no such workspace can exist.
func Validate(cmd Command) error {
	_, err := Normalize(cmd)
	return err
}

// Normalize validates cmd as Validate does and returns it with its payload
// normalised (trimmed, defaulted) as Decide records it, as a pointer: what
// a writer seals must be what Decide would have kept.
func Normalize(cmd Command) (Command, error) {
	uc, ok := useCases[cmd.Type]
	if !ok {
		return cmd, unknownType(cmd)
	}
	p, err := uc.validate(cmd)
	if err != nil {
		return cmd, err
	}
	cmd.Payload = p
	return cmd, nil
}

// useCase is how one command type is decided and validated.
type useCase struct {
	decide   func(State, Command, time.Time) ([]Event, error)
	validate func(Command) (any, error) // the normalised payload, a pointer
}

var useCases = map[string]useCase{
	CmdWorkspaceCreate:        {decideWorkspaceCreate, validateCommand[WorkspaceCreateCmd]},
	CmdWorkspaceRename:        workspaceUseCase(workspaceRename),
	CmdWorkspaceArchive:       workspaceUseCase(workspaceArchive),
	CmdWorkspaceAddMember:     workspaceUseCase(workspaceAddMember),
	CmdWorkspaceRemoveMember:  workspaceUseCase(workspaceRemoveMember),
	CmdWorkspaceRegisterAgent: workspaceUseCase(workspaceRegisterAgent),
	CmdWorkspaceSetAIPolicy:   workspaceUseCase(workspaceSetAIPolicy),
	CmdWorkspaceErase:         workspaceUseCase(workspaceErase),
	CmdTaskCreate:             taskUseCase(taskCreate),
	CmdTaskAssign:             taskUseCase(taskAssign),
	CmdTaskStartAttempt:       taskUseCase(taskStartAttempt),
	CmdTaskRecordResult:       taskUseCase(taskRecordResult),
	CmdTaskFailAttempt:        taskUseCase(taskFailAttempt),
	CmdTaskRetry:              taskUseCase(taskRetry),
	CmdTaskComplete:           taskUseCase(taskComplete),
	CmdTaskCancel:             taskUseCase(taskCancel),
	CmdKeyIssue:               keyUseCase(keyIssue),
	CmdKeyRevoke:              keyUseCase(keyRevoke),
}

// KnownCommandType reports whether typ is a command type logbook decides.
func KnownCommandType(typ string) bool {
	_, ok := useCases[typ]
	return ok
}

// payload is implemented by every command payload type P. validate makes the
// checks of P's fields that need no state, in the order Decide makes them,
// and returns the payload normalised (trimmed, defaulted) as Decide records
// it. Ids that commands share (workspace_id, task_id) are checked apart.
type payload[P any] interface {
	validate() (P, error)
}

// taskPayload is a payload of a command aimed at one task.
type taskPayload[P any] interface {
	payload[P]
	TaskTarget
}

func workspaceUseCase[P payload[P]](decide func(*Workspace, P, *emitter) error) useCase {
	return useCase{
		decide: func(s State, cmd Command, now time.Time) ([]Event, error) {
			return onWorkspace(s, cmd, now, decide)
		},
		validate: validateCommand[P],
	}
}

func taskUseCase[P taskPayload[P]](decide func(*Workspace, *Task, P, *emitter) error) useCase {
	return useCase{
		decide: func(s State, cmd Command, now time.Time) ([]Event, error) {
			return onTask(s, cmd, now, decide)
		},
		validate: validateCommand[P],
	}
}

// validateCommand makes, without state, the checks Decide makes on a command
// with payload P, in the same order.
func validateCommand[P payload[P]](cmd Command) (any, error) {
	p, ok := payloadAs[P](cmd.Payload)
	if !ok {
		return nil, payloadMismatch(cmd)
	}
	if err := checkTarget(cmd, p); err != nil {
		return nil, err
	}
	n, err := p.validate()
	if err != nil {
		return nil, err
	}
	return &n, nil
}

// checkTarget checks the ids a command names: the key registry and a key
// id for key commands, else a workspace id and, for task commands, a task id.
func checkTarget(cmd Command, p any) error {
	if k, ok := p.(KeyTarget); ok {
		if err := checkRegistry(cmd); err != nil {
			return err
		}
		return checkID("key_id", k.TargetKey())
	}
	if err := checkWorkspaceID(cmd); err != nil {
		return err
	}
	if t, ok := p.(TaskTarget); ok {
		return checkTaskID(t)
	}
	return nil
}

// onWorkspace runs the checks every command on an existing workspace shares,
// then decide with the validated payload: on a workspace every field check
// comes before those needing state.
func onWorkspace[P payload[P]](s State, cmd Command, now time.Time, decide func(*Workspace, P, *emitter) error) ([]Event, error) {
	p, ok := payloadAs[P](cmd.Payload)
	if !ok {
		return nil, payloadMismatch(cmd)
	}
	ws, err := liveWorkspace(s, cmd)
	if err != nil {
		return nil, err
	}
	if err := checkVersion(cmd.ExpectedVersion, ws.Version); err != nil {
		return nil, err
	}
	p, err = p.validate()
	if err != nil {
		return nil, err
	}
	e := newEmitter(AggregateWorkspace, ws.ID, ws.Version, now)
	if err := decide(ws, p, e); err != nil {
		return nil, err
	}
	return e.events, nil
}

// onTask runs the checks every task command shares, then decide. decide gets
// a nil task for task.create and the existing task otherwise; it validates
// the payload itself, as some transitions are checked before the fields.
func onTask[P TaskTarget](s State, cmd Command, now time.Time, decide func(*Workspace, *Task, P, *emitter) error) ([]Event, error) {
	p, ok := payloadAs[P](cmd.Payload)
	if !ok {
		return nil, payloadMismatch(cmd)
	}
	ws, err := liveWorkspace(s, cmd)
	if err != nil {
		return nil, err
	}
	if err := checkTaskID(p); err != nil {
		return nil, err
	}
	id := p.TargetTask()
	t := s.Task
	var version int64
	if cmd.Type == CmdTaskCreate {
		if t != nil {
			return nil, Conflict("task %q already exists", id)
		}
	} else {
		// A task of another workspace answers like a missing one: ids never
		// reveal other tenants' data.
		if t == nil || t.ID != id || (t.WorkspaceID != "" && t.WorkspaceID != ws.ID) {
			return nil, NotFound("task %q not found", id)
		}
		// The agent service acts for the workspace's agents, never for a
		// person: before any other check, so it learns nothing else.
		if _, ok := ws.Agents[t.Assignee]; cmd.Actor.Role == RoleAgent && !ok {
			return nil, ForbiddenError("task %q is not assigned to an agent: key role %q may not act on it", id, RoleAgent)
		}
		version = t.Version
	}
	if err := checkVersion(cmd.ExpectedVersion, version); err != nil {
		return nil, err
	}
	e := newEmitter(AggregateTask, id, version, now)
	if err := decide(ws, t, p, e); err != nil {
		return nil, err
	}
	return e.events, nil
}

// liveWorkspace returns the workspace cmd addresses if it may still change
// and its actor may send cmd there.
func liveWorkspace(s State, cmd Command) (*Workspace, error) {
	ws := s.Workspace
	// Erased workspaces are gone as far as callers can tell.
	if ws == nil || ws.ID != cmd.WorkspaceID || ws.Status == WorkspaceStatusErased {
		return nil, NotFound("workspace %q not found", cmd.WorkspaceID)
	}
	// Before any other check, so a caller without a grant learns nothing.
	if err := authorize(ws, cmd); err != nil {
		return nil, err
	}
	// Erasing is the one thing left to do with an archived workspace.
	if ws.Status == WorkspaceStatusArchived && cmd.Type != CmdWorkspaceErase {
		return nil, Conflict("workspace %q is archived", ws.ID)
	}
	return ws, nil
}

// checkVersion enforces optimistic concurrency; a missing aggregate is at
// version 0.
func checkVersion(expected *int64, have int64) error {
	if expected != nil && *expected != have {
		return Conflict("version conflict: expected %d, have %d", *expected, have)
	}
	return nil
}

// payloadAs accepts a payload as a value or as a non-nil pointer, since
// decoded payloads arrive as pointers.
func payloadAs[P any](v any) (P, bool) {
	switch p := v.(type) {
	case P:
		return p, true
	case *P:
		if p != nil {
			return *p, true
		}
	}
	var zero P
	return zero, false
}

func unknownType(cmd Command) *Error {
	return Invalid("type", "unknown command type %q", cmd.Type)
}

func payloadMismatch(cmd Command) *Error {
	return Invalid("type", "payload %T does not match command type %q", cmd.Payload, cmd.Type)
}

// emitter numbers the events of one aggregate from its current version.
type emitter struct {
	ref    AggregateRef
	now    time.Time
	events []Event
}

func newEmitter(typ, id string, version int64, now time.Time) *emitter {
	return &emitter{ref: AggregateRef{Type: typ, ID: id, Version: version}, now: now}
}

func (e *emitter) emit(typ string, payload any) {
	e.ref.Version++
	e.events = append(e.events, Event{Type: typ, Aggregate: e.ref, OccurredAt: e.now, Payload: payload})
}
