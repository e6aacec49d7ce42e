package domain

// taskRecordResult records an attempt's answer and completes the task.
func taskRecordResult(_ *Workspace, t *Task, p TaskRecordResultCmd, e *emitter) error {
	p, err := p.validate()
	if err != nil {
		return err
	}
	if err := transition(t, TaskStatusCompleted, TaskStatusInProgress); err != nil {
		return err
	}
	if err := checkAttempt(t, p.Attempt); err != nil {
		return err
	}
	if _, err := addUsage(t.Usage, p.Usage); err != nil {
		return err
	}
	e.emit(EvTaskResultRecorded, TaskResultRecorded{TaskID: t.ID, Attempt: p.Attempt, Output: p.Output, Usage: p.Usage,
		Provider: p.Provider, Model: p.Model})
	// The output is in the event above; repeating it would store it twice.
	e.emit(EvTaskCompleted, TaskCompleted{TaskID: t.ID})
	return nil
}

// validate checks the attempt number and trims provider and model; whether it is current, and the usage
// total, need the task.
func (p TaskRecordResultCmd) validate() (TaskRecordResultCmd, error) {
	if err := checkAttemptNumber(p.Attempt); err != nil {
		return p, err
	}
	if err := checkSensitive("output", p.Output, MaxTextLen); err != nil {
		return p, err
	}
	var err error
	if p.Provider, err = optional("provider", p.Provider, MaxNameLen); err != nil {
		return p, err
	}
	if p.Model, err = optional("model", p.Model, MaxModelLen); err != nil {
		return p, err
	}
	return p, checkUsage(p.Usage)
}
