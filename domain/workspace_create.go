package domain

import "time"

func decideWorkspaceCreate(s State, cmd Command, now time.Time) ([]Event, error) {
	p, ok := payloadAs[WorkspaceCreateCmd](cmd.Payload)
	if !ok {
		return nil, payloadMismatch(cmd)
	}
	if err := checkWorkspaceID(cmd); err != nil {
		return nil, err
	}
	if err := AuthorizeCommand(cmd.Actor, "", cmd.Type, cmd.WorkspaceID); err != nil {
		return nil, err
	}
	// The creator's id becomes a member's: it must be one a member may have.
	if cmd.Actor.Role != RoleAdmin {
		if err := checkID("actor.id", cmd.Actor.ID); err != nil {
			return nil, err
		}
	}
	// Erased workspaces keep their id: it is never reused.
	if s.Workspace != nil {
		return nil, Conflict("workspace %q already exists", cmd.WorkspaceID)
	}
	if err := checkVersion(cmd.ExpectedVersion, 0); err != nil {
		return nil, err
	}
	p, err := p.validate()
	if err != nil {
		return nil, err
	}
	e := newEmitter(AggregateWorkspace, cmd.WorkspaceID, 0, now)
	e.emit(EvWorkspaceCreated, WorkspaceCreated{Name: p.Name})
	// The creator holds the first grant, so the workspace is theirs to use
	// and to share.
	if cmd.Actor.Role != RoleAdmin {
		e.emit(EvWorkspaceMemberAdded, WorkspaceMemberAdded{PrincipalID: cmd.Actor.ID, Role: RoleAdmin})
	}
	return e.events, nil
}

func (p WorkspaceCreateCmd) validate() (WorkspaceCreateCmd, error) {
	var err error
	p.Name, err = required("name", p.Name, MaxNameLen)
	return p, err
}
