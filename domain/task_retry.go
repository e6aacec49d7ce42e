package domain

// taskRetry hands a failed task back to its assignee for another attempt.
func taskRetry(_ *Workspace, t *Task, p TaskRetryCmd, e *emitter) error {
	if err := transition(t, TaskStatusAssigned, TaskStatusFailed); err != nil {
		return err
	}
	if _, err := p.validate(); err != nil {
		return err
	}
	if t.Assignee == "" {
		return Conflict("task %q has no assignee to retry with", t.ID)
	}
	e.emit(EvTaskRetried, TaskRetried{TaskID: t.ID, Assignee: t.Assignee})
	return nil
}

// validate has nothing to check beyond the task id, which onTask checks.
func (p TaskRetryCmd) validate() (TaskRetryCmd, error) { return p, nil }
