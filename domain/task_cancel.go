package domain

func taskCancel(_ *Workspace, t *Task, p TaskCancelCmd, e *emitter) error {
	err := transition(t, TaskStatusCancelled,
		TaskStatusPending, TaskStatusAssigned, TaskStatusInProgress, TaskStatusFailed)
	if err != nil {
		return err
	}
	if p, err = p.validate(); err != nil {
		return err
	}
	e.emit(EvTaskCancelled, TaskCancelled{TaskID: t.ID, Reason: p.Reason})
	return nil
}

// validate trims the reason.
func (p TaskCancelCmd) validate() (TaskCancelCmd, error) {
	var err error
	p.Reason, err = sensitiveReason("reason", p.Reason, MaxReasonLen, false)
	return p, err
}
