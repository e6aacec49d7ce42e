package domain

import (
	"slices"
	"time"
)

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
		Labels:   p.Labels,
		DueAt:    p.DueAt,
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
	if p.Labels, err = checkLabels(p.Labels); err != nil {
		return p, err
	}
	if p.DueAt != nil {
		// As the read models keep it: UTC, to the microsecond.
		due := p.DueAt.UTC().Truncate(time.Microsecond)
		if due.Year() < 1 || due.Year() > 9999 {
			return p, Invalid("due_at", "must be a time between the years 1 and 9999")
		}
		p.DueAt = &due
	}
	return p, nil
}

// checkLabels trims each label and refuses an empty one, a duplicate, or
// more than MaxLabels; a task always has a list (empty, never nil).
func checkLabels(in []string) ([]string, error) {
	if len(in) > MaxLabels {
		return nil, Invalid("labels", "must be at most %d labels, got %d", MaxLabels, len(in))
	}
	out := make([]string, 0, len(in))
	for _, l := range in {
		l, err := required("labels", l, MaxTaskLabelLen)
		if err != nil {
			return nil, err
		}
		if slices.Contains(out, l) {
			return nil, Invalid("labels", "label %q is given twice", l)
		}
		out = append(out, l)
	}
	return out, nil
}
