package producers

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/httpapi"
)

// taskRequest is the body of POST /tasks: the task id is the server's.
type taskRequest struct {
	Title    string   `json:"title"`
	Input    string   `json:"input"`
	Priority int      `json:"priority"`
	Assignee string   `json:"assignee,omitempty"`
	Labels   []string `json:"labels,omitempty"`
	DueAt    *dueAt   `json:"due_at,omitempty"`
}

// dueAt is a request's due_at: an RFC 3339 date-time, its T and Z in
// either case as RFC 3339 allows.
type dueAt struct{ time.Time }

func (d *dueAt) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return httpapi.Problemf(httpapi.CodeInvalid, "due_at", "due_at must be a string")
	}
	t, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
	if err != nil {
		return httpapi.Problemf(httpapi.CodeInvalid, "due_at", "due_at must be an RFC 3339 date-time such as 2026-12-01T17:00:00Z")
	}
	d.Time = t
	return nil
}

func (a *API) createTask(w http.ResponseWriter, r *http.Request) {
	var body taskRequest
	a.createIn(w, r, &body, domain.CmdTaskCreate, "task", func(id string) any {
		cmd := &domain.TaskCreateCmd{TaskID: id, Title: body.Title, Input: body.Input,
			Priority: body.Priority, Assignee: body.Assignee, Labels: body.Labels}
		if body.DueAt != nil {
			cmd.DueAt = &body.DueAt.Time
		}
		return cmd
	})
}

// taskBody says what a task route takes as its body.
type taskBody int

const (
	noBody       taskBody = iota
	bodyRequired          // as the document says: none is a 400
	bodyOptional          // none means no options
)

// taskCommand handles the routes that act on one task. body is where the
// request body is decoded (nil for noBody); payload builds the command
// payload from it for the task id.
func (a *API) taskCommand(w http.ResponseWriter, r *http.Request, typ string, rule taskBody, body any, payload func(taskID string) any) {
	ws, err := httpapi.PathID(r, "ws")
	if err != nil {
		httpapi.WriteError(w, r, a.cfg.Logger, err)
		return
	}
	task, err := httpapi.PathID(r, "task")
	if err != nil {
		httpapi.WriteError(w, r, a.cfg.Logger, err)
		return
	}
	if rule == bodyOptional && r.ContentLength == 0 {
		body = nil
	}
	cmdID, keyed, ok := a.begin(w, r, body)
	if !ok {
		return
	}
	a.submit(w, r, cmdID, keyed, submission{typ: typ, workspaceID: ws, payload: payload(task),
		ids: map[string]string{"task_id": task}})
}

func (a *API) assignTask(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Assignee string `json:"assignee"`
	}
	a.taskCommand(w, r, domain.CmdTaskAssign, bodyRequired, &b, func(id string) any {
		return &domain.TaskAssignCmd{TaskID: id, Assignee: b.Assignee}
	})
}

func (a *API) startTask(w http.ResponseWriter, r *http.Request) {
	a.taskCommand(w, r, domain.CmdTaskStartAttempt, noBody, nil, func(id string) any {
		return &domain.TaskStartAttemptCmd{TaskID: id}
	})
}

func (a *API) recordResult(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Attempt  int               `json:"attempt"`
		Output   string            `json:"output"`
		Usage    domain.TokenUsage `json:"usage"`
		Provider string            `json:"provider"`
		Model    string            `json:"model"`
	}
	a.taskCommand(w, r, domain.CmdTaskRecordResult, bodyRequired, &b, func(id string) any {
		return &domain.TaskRecordResultCmd{TaskID: id, Attempt: b.Attempt, Output: b.Output, Usage: b.Usage,
			Provider: b.Provider, Model: b.Model}
	})
}

func (a *API) failAttempt(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Attempt   int               `json:"attempt"`
		Reason    string            `json:"reason"`
		Retryable bool              `json:"retryable"`
		Usage     domain.TokenUsage `json:"usage"`
	}
	a.taskCommand(w, r, domain.CmdTaskFailAttempt, bodyRequired, &b, func(id string) any {
		return &domain.TaskFailAttemptCmd{TaskID: id, Attempt: b.Attempt, Reason: b.Reason, Retryable: b.Retryable, Usage: b.Usage}
	})
}

func (a *API) retryTask(w http.ResponseWriter, r *http.Request) {
	a.taskCommand(w, r, domain.CmdTaskRetry, noBody, nil, func(id string) any {
		return &domain.TaskRetryCmd{TaskID: id}
	})
}

func (a *API) completeTask(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Output string `json:"output"`
	}
	a.taskCommand(w, r, domain.CmdTaskComplete, bodyOptional, &b, func(id string) any {
		return &domain.TaskCompleteCmd{TaskID: id, Output: b.Output}
	})
}

func (a *API) cancelTask(w http.ResponseWriter, r *http.Request) {
	var b struct {
		Reason string `json:"reason"`
	}
	a.taskCommand(w, r, domain.CmdTaskCancel, bodyOptional, &b, func(id string) any {
		return &domain.TaskCancelCmd{TaskID: id, Reason: b.Reason}
	})
}
