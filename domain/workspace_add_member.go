package domain

// workspaceAddMember adds a member or changes an existing member's role.
func workspaceAddMember(ws *Workspace, p WorkspaceAddMemberCmd, e *emitter) error {
	m, exists := ws.Members[p.PrincipalID]
	switch {
	case exists && m.Role == p.Role:
		return Conflict("principal %q is already %s of workspace %q", p.PrincipalID, p.Role, ws.ID)
	case exists:
		// a role change
	case len(ws.Members) >= MaxMembers:
		return Conflict("workspace %q already has the maximum of %d members", ws.ID, MaxMembers)
	default:
		// An assignee must name one principal or agent, never both.
		if _, ok := ws.Agents[p.PrincipalID]; ok {
			return Conflict("%q is already an agent of workspace %q", p.PrincipalID, ws.ID)
		}
	}
	e.emit(EvWorkspaceMemberAdded, WorkspaceMemberAdded{PrincipalID: p.PrincipalID, Role: p.Role})
	return nil
}

func (p WorkspaceAddMemberCmd) validate() (WorkspaceAddMemberCmd, error) {
	if err := checkID("principal_id", p.PrincipalID); err != nil {
		return p, err
	}
	return p, checkRole(p.Role)
}
