package domain

func taskFailAttempt(_ *Workspace, t *Task, p TaskFailAttemptCmd, e *emitter) error {
	p, err := p.validate()
	if err != nil {
		return err
	}
	if err := transition(t, TaskStatusFailed, TaskStatusInProgress); err != nil {
		return err
	}
	if err := checkAttempt(t, p.Attempt); err != nil {
		return err
	}
	if _, err := addUsage(t.Usage, p.Usage); err != nil {
		return err
	}
	e.emit(EvTaskAttemptFailed, TaskAttemptFailed{
		TaskID:    t.ID,
		Attempt:   p.Attempt,
		Reason:    p.Reason,
		Retryable: p.Retryable,
		Usage:     p.Usage,
	})
	return nil
}

// validate checks the attempt number and trims the reason; whether the
// attempt is current, and the usage total, need the task.
func (p TaskFailAttemptCmd) validate() (TaskFailAttemptCmd, error) {
	if err := checkAttemptNumber(p.Attempt); err != nil {
		return p, err
	}
	var err error
	if p.Reason, err = sensitiveReason("reason", p.Reason, MaxReasonLen, true); err != nil {
		return p, err
	}
	return p, checkUsage(p.Usage)
}
