package domain

func taskFailAttempt(_ *Workspace, t *Task, p TaskFailAttemptCmd, e *emitter) error {
	if err := transition(t, TaskStatusFailed, TaskStatusInProgress); err != nil {
		return err
	}
	if err := checkAttempt(t, p.Attempt); err != nil {
		return err
	}
	p, err := p.validate()
	if err != nil {
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

// validate trims the reason and leaves the attempt and the usage total to
// Decide.
func (p TaskFailAttemptCmd) validate() (TaskFailAttemptCmd, error) {
	var err error
	if p.Reason, err = required("reason", p.Reason, MaxReasonLen); err != nil {
		return p, err
	}
	return p, checkUsage(p.Usage)
}
