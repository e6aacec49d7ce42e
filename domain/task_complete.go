package domain

func taskComplete(_ *Workspace, t *Task, p TaskCompleteCmd, e *emitter) error {
	if err := transition(t, TaskStatusCompleted, TaskStatusInProgress); err != nil {
		return err
	}
	p, err := p.validate()
	if err != nil {
		return err
	}
	e.emit(EvTaskCompleted, TaskCompleted{TaskID: t.ID, Output: p.Output})
	return nil
}

func (p TaskCompleteCmd) validate() (TaskCompleteCmd, error) {
	return p, checkSensitive("output", p.Output, MaxTextLen)
}
