package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/keyring"
	"github.com/logbook-dev/logbook/schemas"
)

// handle acts on the events that give an agent work, task.assigned and
// task.retried, and acknowledges every other one.
func (w *Worker) handle(msg *message.Message) ([]*message.Message, error) {
	switch msg.Metadata.Get(schemas.HeaderType) {
	case domain.EvTaskAssigned, domain.EvTaskRetried, "":
	default:
		return nil, nil
	}
	var env schemas.EventEnvelope
	if err := json.Unmarshal(msg.Payload, &env); err != nil {
		return nil, &permanentError{fmt.Errorf("agent: undecodable event: %w", err)}
	}
	if env.Type != domain.EvTaskAssigned && env.Type != domain.EvTaskRetried {
		return nil, nil
	}
	ev, err := env.Event()
	if err != nil {
		return nil, &permanentError{err}
	}
	var out []*message.Message
	switch p := ev.Payload.(type) {
	case *domain.TaskAssigned:
		out, err = w.work(msg.Context(), env, p.TaskID, p.Assignee)
	case *domain.TaskRetried:
		out, err = w.work(msg.Context(), env, p.TaskID, p.Assignee)
	}
	if errors.Is(err, errLeftWaiting) {
		return nil, nil
	}
	return out, err
}

// work runs one attempt of a task assigned (or retried) to an agent: it
// sends task.start_attempt, asks a provider, and returns the attempt's one
// outcome, task.record_result or task.fail_attempt (refused request or
// unusable answer). Both command ids derive from (task, attempt), so a
// redelivered event, or a retry after a crash between the two commands,
// finishes the same attempt and never records twice. Outages and rate
// limits return an error: the event is retried, then redelivered, and the
// task waits. A workspace over its daily token budget without a local
// fallback is left assigned, not held here where it would hold up the
// other workspaces of its partition; the sweep starts it later. So is a
// task whose workspace has made the requests per minute its policy allows;
// the drain starts it when the rate does. A task this process is working
// already, reached another way (its event, a drain, a sweep), is left to
// that way, so the provider is asked once, and so is one handled a moment
// ago, whose outcome may not be in the read model yet.
func (w *Worker) work(ctx context.Context, env schemas.EventEnvelope, taskID, assignee string) (out []*message.Message, err error) {
	release, free := w.turns.hold(env.WorkspaceID, taskID, env.Aggregate.Version)
	if !free {
		return nil, nil // worked here already, reached another way: that way finishes it
	}
	defer func() { release(err == nil && len(out) > 0) }()
	return w.attempt(ctx, env, taskID, assignee)
}

func (w *Worker) attempt(ctx context.Context, env schemas.EventEnvelope, taskID, assignee string) ([]*message.Message, error) {
	work, ok, err := w.lookup(ctx, env, taskID)
	if !ok || err != nil || work.Agent == nil || work.Assignee != assignee {
		return nil, err
	}
	n := work.Attempt + 1 // the attempt this event asks for
	switch {
	case work.Status == domain.TaskStatusAssigned && work.Version == env.Aggregate.Version:
	case work.Status == domain.TaskStatusInProgress && work.Version == env.Aggregate.Version+1:
		n = work.Attempt // started, by this worker before a crash or a retry: finish it
	default:
		return nil, nil // moved on since
	}
	local := work.Policy.FallbackMode == domain.FallbackLocal
	if w.gate != nil && !local && work.overBudget() && n > work.Attempt {
		w.overBudget.Add(1)
		w.log.Debug("task left assigned: daily token budget spent", "workspace", env.WorkspaceID, "task", taskID)
		return nil, errLeftWaiting
	}
	if n > work.Attempt && !w.rates.take(env.WorkspaceID, work.Policy.RequestsPerMinute) {
		w.overRate.Add(1)
		w.log.Debug("task left assigned: workspace at its requests per minute", "workspace", env.WorkspaceID, "task", taskID)
		return nil, errLeftWaiting
	}
	req := Request{
		WorkspaceID: env.WorkspaceID, TaskID: taskID, Attempt: n,
		AgentName: work.Agent.Name, Model: work.Agent.Model, Instructions: work.Agent.Instructions, Input: work.Input,
	}
	if err := w.open(ctx, &req, work.Agent.ID); err != nil {
		if errors.Is(err, keyring.ErrErased) {
			return nil, nil // the workspace is being erased: nothing to answer
		}
		return nil, err
	}
	start, err := w.command(ctx, env, CommandID(env.WorkspaceID, taskID, n, stepStart), domain.CmdTaskStartAttempt,
		domain.TaskStartAttemptCmd{TaskID: taskID})
	if err != nil {
		return nil, err
	}
	resp, err := w.call(ctx, work, req, func() error { return w.pub.Publish(w.deps.Kafka.Topics().Commands, start) })
	class := Classify(err)
	id := CommandID(env.WorkspaceID, taskID, n, stepOutcome)
	var m *message.Message
	switch class {
	case "":
		model := resp.Model
		if model == "" {
			model = req.Model
		}
		m, err = w.command(ctx, env, id, domain.CmdTaskRecordResult, domain.TaskRecordResultCmd{
			TaskID: taskID, Attempt: n, Output: fitText(resp.Output, domain.MaxTextLen), Usage: fitUsage(resp.Usage),
			Provider: fitText(resp.Provider, domain.MaxNameLen), Model: fitText(model, domain.MaxModelLen),
		})
	case ClassBadRequest, ClassMalformed:
		m, err = w.command(ctx, env, id, domain.CmdTaskFailAttempt, domain.TaskFailAttemptCmd{
			TaskID: taskID, Attempt: n, Reason: failReason(err), Retryable: class == ClassMalformed,
		})
	default:
		return nil, err
	}
	if domain.ErrorCode(err) == domain.CodeNotFound {
		return nil, nil // erased meanwhile: the decider would refuse the outcome
	}
	if err != nil {
		return nil, err
	}
	return []*message.Message{m}, nil
}

// open replaces the request's sealed task input and agent instructions
// with their plaintext; it is never logged (Request's LogValue).
func (w *Worker) open(ctx context.Context, req *Request, agentID string) error {
	if w.deps.Fields == nil {
		return nil
	}
	var err error
	if req.Input, err = w.deps.Fields.Open(ctx, req.WorkspaceID, domain.Slot("task", req.TaskID, domain.FieldInput), req.Input); err != nil {
		return fmt.Errorf("agent: open the task input: %w", err)
	}
	if req.Instructions, err = w.deps.Fields.Open(ctx, req.WorkspaceID, domain.Slot("agent", agentID, domain.FieldInstructions), req.Instructions); err != nil {
		return fmt.Errorf("agent: open the agent instructions: %w", err)
	}
	return nil
}

// call asks the primary provider, through its gate, or the local responder
// where the workspace's policy allows it and the primary cannot answer.
//
// begin runs once the call may go out: it starts the attempt, so a task
// waits for the provider as assigned, not in progress.
func (w *Worker) call(ctx context.Context, work Work, req Request, begin func() error) (Response, error) {
	local := work.Policy.FallbackMode == domain.FallbackLocal
	if w.gate == nil || (local && (!w.gate.available() || work.overBudget())) {
		if err := begin(); err != nil {
			return Response{}, err
		}
		return w.complete(ctx, w.local, req)
	}
	if err := w.gate.acquire(ctx); err != nil {
		return Response{}, err
	}
	if err := begin(); err != nil {
		w.gate.done(nil) // the provider was not asked: give the permit back
		return Response{}, err
	}
	resp, err := w.complete(ctx, w.primary, req)
	w.gate.done(err)
	if class := Classify(err); local && (class == ClassQuotaExhausted || class == ClassUnauthorized) {
		return w.complete(ctx, w.local, req)
	}
	return resp, err
}

func (w *Worker) complete(ctx context.Context, p Provider, req Request) (Response, error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	defer cancel()
	w.calls.Add(1)
	resp, err := p.Complete(ctx, req)
	// With ctx: the line carries the trace id when tracing is on.
	w.log.DebugContext(ctx, "agent: provider call", "provider", p.Name(), "task", req.TaskID, "class", Classify(err))
	return resp, err
}

// failReason says why an attempt failed without repeating what the provider
// said: its error bodies can echo the prompt.
func failReason(err error) string {
	pe, ok := AsProviderError(err)
	switch {
	case !ok:
		return "AI provider failed: " + string(Classify(err))
	case pe.Class == ClassMalformed:
		return fmt.Sprintf("AI provider %s gave an unusable answer; a retry may succeed", pe.Provider)
	case pe.Status != 0:
		return fmt.Sprintf("AI provider %s refused the request: %s (HTTP %d)", pe.Provider, pe.Class, pe.Status)
	}
	return fmt.Sprintf("AI provider %s refused the request: %s", pe.Provider, pe.Class)
}

// lookup reads the task the event is about, waiting (with backoff) while
// the read model has not caught up with the event; the caller judges
// whether the task has moved on since.
func (w *Worker) lookup(ctx context.Context, env schemas.EventEnvelope, taskID string) (Work, bool, error) {
	backoff := 100 * time.Millisecond
	for {
		work, found, err := w.store.Work(ctx, env.WorkspaceID, taskID, time.Now().UTC())
		switch {
		case err == nil && found && work.Version >= env.Aggregate.Version:
			return work, true, nil
		}
		reason := "the read model has not caught up"
		if err != nil {
			reason = "the read model is unavailable"
		}
		if !sleep(ctx, backoff) {
			return Work{}, false, &waitError{reason: reason, err: err}
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
