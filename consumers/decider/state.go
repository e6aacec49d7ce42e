package decider

import (
	"fmt"
	"strings"
	"time"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

// workspaceState is what the decider keeps per workspace: the aggregate, its
// position in the hash chain and a bounded window of recent outcomes that
// makes a redelivered or retried command return its first outcome.
// Stored as a workspaceRecord (record.go).
type workspaceState struct {
	Workspace *domain.Workspace
	Chain     schemas.Chain
	Recent    []outcome // oldest first
}

// outcome is the part of a result the idempotency window keeps. It is small
// on purpose: the window is rewritten with its workspace in every
// transaction that touches it.
type outcome struct {
	CommandID   string
	Rejected    bool
	Code        domain.Code
	Reason      string
	Field       string
	AggregateID string
	// Digest is the start of the request digest (compactDigest), when the
	// command came with an Idempotency-Key.
	Digest string
}

// digestLen is how much of a request digest the window keeps: 16 bytes in
// hex, plenty to tell two requests under one key apart.
const digestLen = 32

func compactDigest(d string) string { return d[:min(len(d), digestLen)] }

// answer is the reply to a command whose id is in the window: its first
// outcome, or, when the command came from another request than the first
// (its digest differs), the refusal of the reused key. Outcomes and
// commands without a digest match anything, as they did before digests.
func (o outcome) answer(env schemas.CommandEnvelope, decidedAt time.Time) schemas.Result {
	if o.Digest != "" && env.RequestDigest != "" && compactDigest(env.RequestDigest) != o.Digest {
		return schemas.KeyReused(env.ID, env.Type, env.WorkspaceID, env.RequestDigest, decidedAt)
	}
	r := o.result(env.Type, env.WorkspaceID)
	r.DecidedAt, r.RequestDigest = decidedAt, env.RequestDigest
	return r
}

// recent finds a command's first outcome in the window.
func (w *workspaceState) recent(commandID string) (outcome, bool) {
	for i := len(w.Recent) - 1; i >= 0; i-- {
		if w.Recent[i].CommandID == commandID {
			return w.Recent[i], true
		}
	}
	return outcome{}, false
}

// result turns a remembered outcome back into a result.
func (o outcome) result(commandType, workspaceID string) schemas.Result {
	r := schemas.Result{CommandID: o.CommandID, CommandType: commandType, WorkspaceID: workspaceID,
		Status: schemas.ResultAccepted, AggregateID: o.AggregateID}
	if o.Rejected {
		r.Status, r.Code, r.Reason, r.Field = schemas.ResultRejected, o.Code, o.Reason, o.Field
	}
	return r
}

// remember returns a copy of w whose window holds r, dropping the oldest
// outcomes beyond window.
func (w workspaceState) remember(r schemas.Result, window int) workspaceState {
	o := outcome{CommandID: r.CommandID, AggregateID: r.AggregateID, Digest: compactDigest(r.RequestDigest)}
	if r.Status == schemas.ResultRejected {
		o.Rejected, o.Code, o.Reason, o.Field = true, r.Code, r.Reason, r.Field
	}
	n := len(w.Recent) + 1
	start := 0
	if n > window {
		start = n - window
	}
	recent := make([]outcome, 0, min(n, window))
	recent = append(recent, w.Recent[min(start, len(w.Recent)):]...)
	w.Recent = append(recent, o)
	return w
}

const (
	keyWorkspace = "workspace/"
	// keyTask starts a task's record key: "task/<workspace>\x00<task>".
	// Task ids are unique within their workspace only, and ids never hold
	// NUL. Records written before tasks were scoped so are keyed
	// "task/<task>"; a restore places them by the workspace in their value.
	keyTask = "task/"
	keyKey  = "key/"
	// keyOffset holds the next command offset of the partition, written in
	// every transaction, so a restore can tell whether it is complete.
	keyOffset = "offset"
)

// taskKey names a task within the partition: its workspace and its id.
func taskKey(workspaceID, taskID string) string { return workspaceID + "\x00" + taskID }

// partitionState is the decider's view of the workspaces on one partition.
type partitionState struct {
	workspaces map[string]*workspaceState
	tasks      map[string]*domain.Task // by taskKey
	keys       map[string]*domain.Key
	next       int64 // next command offset, from the last transaction
}

func newPartitionState() *partitionState {
	return &partitionState{workspaces: map[string]*workspaceState{}, tasks: map[string]*domain.Task{},
		keys: map[string]*domain.Key{}}
}

// apply loads one decider-state record, of any format this version reads
// (record.go); a nil value is a tombstone.
func (p *partitionState) apply(key string, value []byte) error {
	switch {
	case key == keyOffset:
		n, err := decodeOffset(value)
		if err != nil {
			return fmt.Errorf("offset record: %w", err)
		}
		p.next = n
	case strings.HasPrefix(key, keyWorkspace):
		id := strings.TrimPrefix(key, keyWorkspace)
		if value == nil {
			delete(p.workspaces, id)
			return nil
		}
		w, err := decodeWorkspace(value)
		if err != nil {
			return fmt.Errorf("workspace %s: %w", id, err)
		}
		p.workspaces[id] = w
	case strings.HasPrefix(key, keyTask):
		id := strings.TrimPrefix(key, keyTask)
		if value == nil {
			// Tasks are never deleted; a tombstone of a scoped key removes
			// that task only.
			if strings.Contains(id, "\x00") {
				delete(p.tasks, id)
			}
			return nil
		}
		t, err := decodeTask(value)
		if err != nil {
			return fmt.Errorf("task %q: %w", id, err)
		}
		if t.WorkspaceID == "" {
			return fmt.Errorf("task %q: record without a workspace", id)
		}
		p.tasks[taskKey(t.WorkspaceID, t.ID)] = t
	case strings.HasPrefix(key, keyKey):
		id := strings.TrimPrefix(key, keyKey)
		if value == nil {
			delete(p.keys, id)
			return nil
		}
		k, err := decodeKey(value)
		if err != nil {
			return fmt.Errorf("key %s: %w", id, err)
		}
		p.keys[id] = k
	}
	return nil
}

// batch holds the changes of one transaction on top of the committed
// partition states; they become visible to later batches only on commit.
type batch struct {
	workspaces map[string]*workspaceState
	tasks      map[string]*domain.Task // by taskKey
	keys       map[string]*domain.Key
	partOf     map[string]int32 // aggregate key → partition, for state records
}

func newBatch() *batch {
	return &batch{workspaces: map[string]*workspaceState{}, tasks: map[string]*domain.Task{},
		keys: map[string]*domain.Key{}, partOf: map[string]int32{}}
}

func (b *batch) workspace(p *partitionState, id string) *workspaceState {
	if w, ok := b.workspaces[id]; ok {
		return w
	}
	return p.workspaces[id]
}

func (b *batch) task(p *partitionState, workspaceID, id string) *domain.Task {
	k := taskKey(workspaceID, id)
	if t, ok := b.tasks[k]; ok {
		return t
	}
	return p.tasks[k]
}

func (b *batch) key(p *partitionState, id string) *domain.Key {
	if k, ok := b.keys[id]; ok {
		return k
	}
	return p.keys[id]
}

func (b *batch) commit(parts map[int32]*partitionState) {
	for id, w := range b.workspaces {
		if p := parts[b.partOf[keyWorkspace+id]]; p != nil {
			p.workspaces[id] = w
		}
	}
	for id, t := range b.tasks {
		if p := parts[b.partOf[keyTask+id]]; p != nil {
			p.tasks[id] = t
		}
	}
	for id, k := range b.keys {
		if p := parts[b.partOf[keyKey+id]]; p != nil {
			p.keys[id] = k
		}
	}
}
