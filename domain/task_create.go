package domain

// taskCreate creates a pending task; given an assignee it also assigns it,
// so the task's history reads the same as a create followed by an assign.
func taskCreate(ws *Workspace, _ *Task, p TaskCreateCmd, e *emitter) error {
	p, err := p.validate()
	if err != nil {
		return err
	}
	if err := checkAssignee(ws, p.Assignee); err != nil {
		return err
	}
	e.emit(EvTaskCreated, TaskCreated{
		TaskID:   p.TaskID,
		Title:    p.Title,
		Input:    p.Input,
		Priority: p.Priority,
		Assignee: p.Assignee,
	})
	if p.Assignee != "" {
		e.emit(EvTaskAssigned, TaskAssigned{TaskID: p.TaskID, Assignee: p.Assignee})
	}
	return nil
}

// validate trims the title. The assignee, optional here, must exist in the
// workspace: Decide checks that.
func (p TaskCreateCmd) validate() (TaskCreateCmd, error) {
	var err error
	if p.Title, err = required("title", p.Title, MaxTitleLen); err != nil {
		return p, err
	}
	if err := checkSensitive("input", p.Input, MaxTextLen); err != nil {
		return p, err
	}
	if p.Assignee != "" {
		if err := checkID("assignee", p.Assignee); err != nil {
			return p, err
		}
	}
	if p.Priority < MinPriority || p.Priority > MaxPriority {
		return p, Invalid("priority", "must be between %d and %d", MinPriority, MaxPriority)
	}
	return p, nil
}
