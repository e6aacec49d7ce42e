package domain

// taskAssign assigns a pending task or reassigns an assigned one.
func taskAssign(ws *Workspace, t *Task, p TaskAssignCmd, e *emitter) error {
	if err := transition(t, TaskStatusAssigned, TaskStatusPending, TaskStatusAssigned); err != nil {
		return err
	}
	p, err := p.validate()
	if err != nil {
		return err
	}
	if err := checkAssignee(ws, p.Assignee); err != nil {
		return err
	}
	if t.Status == TaskStatusAssigned && t.Assignee == p.Assignee {
		return Conflict("task %q is already assigned to %q", t.ID, p.Assignee)
	}
	e.emit(EvTaskAssigned, TaskAssigned{TaskID: t.ID, Assignee: p.Assignee})
	return nil
}

// validate requires an assignee; Decide checks it exists in the workspace.
func (p TaskAssignCmd) validate() (TaskAssignCmd, error) {
	return p, checkID("assignee", p.Assignee)
}
