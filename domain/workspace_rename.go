package domain

func workspaceRename(_ *Workspace, p WorkspaceRenameCmd, e *emitter) error {
	e.emit(EvWorkspaceRenamed, WorkspaceRenamed{Name: p.Name})
	return nil
}

func (p WorkspaceRenameCmd) validate() (WorkspaceRenameCmd, error) {
	var err error
	p.Name, err = required("name", p.Name, MaxNameLen)
	return p, err
}
