package domain

func workspaceRemoveMember(ws *Workspace, p WorkspaceRemoveMemberCmd, e *emitter) error {
	if _, ok := ws.Members[p.PrincipalID]; !ok {
		return NotFound("member %q not found in workspace %q", p.PrincipalID, ws.ID)
	}
	e.emit(EvWorkspaceMemberRemoved, WorkspaceMemberRemoved{PrincipalID: p.PrincipalID})
	return nil
}

func (p WorkspaceRemoveMemberCmd) validate() (WorkspaceRemoveMemberCmd, error) {
	return p, checkID("principal_id", p.PrincipalID)
}
