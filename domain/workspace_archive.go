package domain

// workspaceArchive runs on active workspaces only: liveWorkspace refuses
// archived ones.
func workspaceArchive(_ *Workspace, _ WorkspaceArchiveCmd, e *emitter) error {
	e.emit(EvWorkspaceArchived, WorkspaceArchived{})
	return nil
}

// validate has no fields to check.
func (p WorkspaceArchiveCmd) validate() (WorkspaceArchiveCmd, error) { return p, nil }
