package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

// handle acts on the two events that concern AI agents and acknowledges
// every other one.
func (w *Worker) handle(msg *message.Message) ([]*message.Message, error) {
	switch msg.Metadata.Get(schemas.HeaderType) {
	case domain.EvTaskAssigned, domain.EvTaskRetried, domain.EvTaskAttemptStarted, "":
	default:
		return nil, nil
	}
	var env schemas.EventEnvelope
	if err := json.Unmarshal(msg.Payload, &env); err != nil {
		return nil, &permanentError{fmt.Errorf("agent: undecodable event: %w", err)}
	}
	switch env.Type {
	case domain.EvTaskAssigned, domain.EvTaskRetried, domain.EvTaskAttemptStarted:
	default:
		return nil, nil
	}
	ev, err := env.Event()
	if err != nil {
		return nil, &permanentError{err}
	}
	ctx := msg.Context()
	switch p := ev.Payload.(type) {
	case *domain.TaskAssigned:
		return w.onAssigned(ctx, env, p.TaskID, p.Assignee)
	case *domain.TaskRetried:
		return w.onAssigned(ctx, env, p.TaskID, p.Assignee)
	case *domain.TaskAttemptStarted:
		return w.onAttemptStarted(ctx, env, p)
	}
	return nil, nil
}

// onAssigned starts an attempt of a task assigned (or, after a failed
// attempt, retried) to an agent, once the
// provider can take it: while it cannot, the event waits unacknowledged and
// the task stays assigned. A workspace over its daily token budget without
// a local fallback is left assigned (status shows it) and not held here,
// where it would hold up the other workspaces of its partition.
func (w *Worker) onAssigned(ctx context.Context, env schemas.EventEnvelope, taskID, assignee string) ([]*message.Message, error) {
	work, ok, err := w.lookup(ctx, env, taskID)
	if !ok || err != nil {
		return nil, err
	}
	if work.Agent == nil || work.Status != domain.TaskStatusAssigned || work.Assignee != assignee {
		return nil, nil
	}
	local := work.Policy.FallbackMode == domain.FallbackLocal
	if w.gate != nil && !local {
		if work.overBudget() {
			w.overBudget.Add(1)
			w.log.Debug("task left assigned: daily token budget spent", "workspace", env.WorkspaceID, "task", taskID)
			return nil, nil
		}
		if err := w.gate.wait(ctx); err != nil {
			return nil, err
		}
	}
	n := work.Attempt + 1
	m, err := w.command(env, CommandID(env.WorkspaceID, taskID, n, stepStart), domain.CmdTaskStartAttempt,
		domain.TaskStartAttemptCmd{TaskID: taskID})
	if err != nil {
		return nil, err
	}
	return []*message.Message{m}, nil
}

// onAttemptStarted asks a provider for the attempt's answer and records it,
// or fails the attempt when the provider refused the request or answered
// with something unusable. Outages and rate limits return an error: the
// event is retried, then redelivered, never failed.
func (w *Worker) onAttemptStarted(ctx context.Context, env schemas.EventEnvelope, p *domain.TaskAttemptStarted) ([]*message.Message, error) {
	work, ok, err := w.lookup(ctx, env, p.TaskID)
	if !ok || err != nil {
		return nil, err
	}
	if work.Agent == nil || work.Status != domain.TaskStatusInProgress || work.Attempt != p.Attempt {
		return nil, nil
	}
	req := Request{
		WorkspaceID: env.WorkspaceID, TaskID: p.TaskID, Attempt: p.Attempt,
		AgentName: work.Agent.Name, Model: work.Agent.Model, Instructions: work.Agent.Instructions, Input: work.Input,
	}
	resp, err := w.call(ctx, work, req)
	class := Classify(err)
	id := CommandID(env.WorkspaceID, p.TaskID, p.Attempt, stepOutcome)
	var m *message.Message
	switch class {
	case "":
		m, err = w.command(env, id, domain.CmdTaskRecordResult, domain.TaskRecordResultCmd{
			TaskID: p.TaskID, Attempt: p.Attempt, Output: fitText(resp.Output, domain.MaxTextLen), Usage: fitUsage(resp.Usage),
		})
	case ClassBadRequest, ClassMalformed:
		m, err = w.command(env, id, domain.CmdTaskFailAttempt, domain.TaskFailAttemptCmd{
			TaskID: p.TaskID, Attempt: p.Attempt, Reason: failReason(err), Retryable: class == ClassMalformed,
		})
	default:
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	return []*message.Message{m}, nil
}

// call asks the primary provider, through its gate, or the local responder
// where the workspace's policy allows it and the primary cannot answer.
func (w *Worker) call(ctx context.Context, work Work, req Request) (Response, error) {
	local := work.Policy.FallbackMode == domain.FallbackLocal
	if w.gate == nil || (local && (!w.gate.available() || work.overBudget())) {
		return w.complete(ctx, w.local, req)
	}
	if err := w.gate.acquire(ctx); err != nil {
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
	return p.Complete(ctx, req)
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
// the read model has not caught up with the event. ok is false, with a nil
// error, when the task has moved on since: the event is stale.
func (w *Worker) lookup(ctx context.Context, env schemas.EventEnvelope, taskID string) (Work, bool, error) {
	backoff := 100 * time.Millisecond
	for {
		work, found, err := w.store.Work(ctx, env.WorkspaceID, taskID, time.Now().UTC())
		switch {
		case err == nil && found && work.Version == env.Aggregate.Version:
			return work, true, nil
		case err == nil && found && work.Version > env.Aggregate.Version:
			return Work{}, false, nil
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
