package domain

func taskStartAttempt(_ *Workspace, t *Task, p TaskStartAttemptCmd, e *emitter) error {
	if err := transition(t, TaskStatusInProgress, TaskStatusAssigned); err != nil {
		return err
	}
	if _, err := p.validate(); err != nil {
		return err
	}
	e.emit(EvTaskAttemptStarted, TaskAttemptStarted{TaskID: t.ID, Attempt: t.Attempt + 1})
	return nil
}

// validate has nothing to check beyond the task id, which onTask checks.
func (p TaskStartAttemptCmd) validate() (TaskStartAttemptCmd, error) { return p, nil }
