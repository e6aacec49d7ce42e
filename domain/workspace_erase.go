package domain

// workspaceErase records the crypto-shredding of a workspace. The event is
// the proof that remains; destroying the data key is the caller's job.
func workspaceErase(_ *Workspace, _ WorkspaceEraseCmd, e *emitter) error {
	e.emit(EvWorkspaceErased, WorkspaceErased{})
	return nil
}

// validate has no fields to check.
func (p WorkspaceEraseCmd) validate() (WorkspaceEraseCmd, error) { return p, nil }
