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
	Recent    *window // shared by the committed state and a transaction's copy
	// legacy says Recent was read from a workspace record that held it
	// (formats before 3): the next write of the workspace writes it out as
	// command records, before a format-3 record supersedes the old one.
	legacy bool
}

// outcome is the part of a result the idempotency window keeps: a command
// record each (format 3).
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
func (w *workspaceState) recent(commandID string) (outcome, bool) { return w.Recent.find(commandID) }

// result turns a remembered outcome back into a result.
func (o outcome) result(commandType, workspaceID string) schemas.Result {
	r := schemas.Result{CommandID: o.CommandID, CommandType: commandType, WorkspaceID: workspaceID,
		Status: schemas.ResultAccepted, AggregateID: o.AggregateID}
	if o.Rejected {
		r.Status, r.Code, r.Reason, r.Field = schemas.ResultRejected, o.Code, o.Reason, o.Field
	}
	return r
}

// outcomeOf is what the window keeps of a result.
func outcomeOf(r schemas.Result) outcome {
	o := outcome{CommandID: r.CommandID, AggregateID: r.AggregateID, Digest: compactDigest(r.RequestDigest)}
	if r.Status == schemas.ResultRejected {
		o.Rejected, o.Code, o.Reason, o.Field = true, r.Code, r.Reason, r.Field
	}
	return o
}

const (
	keyWorkspace = "workspace/"
	// keyTask starts a task's record key: "task/<workspace>\x00<task>".
	// Task ids are unique within their workspace only, and ids never hold
	// NUL. Records written before tasks were scoped so are keyed
	// "task/<task>"; a restore places them by the workspace in their value.
	keyTask = "task/"
	keyKey  = "key/"
	// keyCommand starts a remembered outcome's key:
	// "cmd/<workspace>\x00<command>".
	keyCommand = "cmd/"
	// keyOffset holds the next command offset of the partition, written in
	// every transaction, so a restore can tell whether it is complete.
	keyOffset = "offset"
)

// taskKey names a task within the partition in its record key: its
// workspace and its id.
func taskKey(workspaceID, taskID string) string { return workspaceID + "\x00" + taskID }

// taskRef names a task in memory: its workspace and its id.
type taskRef struct{ ws, id string }

// heldTask is a task as a partition holds it between transactions: what
// decisions read and nothing else. A partition holds every task of its
// workspaces, so each byte here counts a million times; the workspace and
// id live in the map key.
type heldTask struct {
	assignee string
	status   string // one of the domain's statuses, shared
	attempt  int
	version  int64
	usage    domain.TokenUsage
}

func hold(t *domain.Task) heldTask {
	return heldTask{assignee: t.Assignee, status: internStatus(t.Status), attempt: t.Attempt, version: t.Version, usage: t.Usage}
}

// task is the domain's task for a decision: a copy, which the decision may
// change without touching the committed state.
func (h heldTask) task(ref taskRef) *domain.Task {
	return &domain.Task{ID: ref.id, WorkspaceID: ref.ws, Assignee: h.assignee, Status: h.status, Attempt: h.attempt,
		Usage: h.usage, Version: h.version}
}

// internStatus returns the domain's own string for a known status, so a
// million tasks do not each hold a decoded copy of "pending".
func internStatus(s string) string {
	for _, known := range [...]string{domain.TaskStatusPending, domain.TaskStatusAssigned, domain.TaskStatusInProgress,
		domain.TaskStatusCompleted, domain.TaskStatusFailed, domain.TaskStatusCancelled} {
		if s == known {
			return known
		}
	}
	return s
}

// commandKey is the record key of a remembered outcome.
func commandKey(workspaceID, commandID string) string {
	return keyCommand + workspaceID + "\x00" + commandID
}

// partitionState is the decider's view of the workspaces on one partition.
type partitionState struct {
	workspaces map[string]*workspaceState
	tasks      map[taskRef]heldTask
	keys       map[string]*domain.Key
	next       int64 // next command offset, from the last transaction
}

func newPartitionState() *partitionState {
	return &partitionState{workspaces: map[string]*workspaceState{}, tasks: map[taskRef]heldTask{},
		keys: map[string]*domain.Key{}}
}

// ref is a task's reference that shares its workspace's id string with
// the workspace's state, when the partition holds it.
func (p *partitionState) ref(ws, id string) taskRef {
	if w := p.workspaces[ws]; w != nil && w.Workspace != nil && w.Workspace.ID == ws {
		ws = w.Workspace.ID
	}
	return taskRef{ws: ws, id: id}
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
		w, held, err := decodeWorkspace(value)
		if err != nil {
			return fmt.Errorf("workspace %s: %w", id, err)
		}
		if had := p.workspaces[id]; !held && had != nil {
			// The window is in command records, read before or after.
			w.Recent, w.legacy = had.Recent, had.legacy
		} else {
			w.legacy = held && w.Recent.len() > 0
		}
		p.workspaces[id] = w
	case strings.HasPrefix(key, keyCommand):
		ws, cmd, ok := strings.Cut(strings.TrimPrefix(key, keyCommand), "\x00")
		if !ok || ws == "" || cmd == "" {
			return fmt.Errorf("command record key %q is not cmd/<workspace>\\x00<command>", key)
		}
		w := p.workspaces[ws]
		if value == nil {
			if w != nil && w.Recent != nil {
				w.Recent.remove(cmd)
			}
			return nil
		}
		o, err := decodeCommand(value)
		if err != nil {
			return fmt.Errorf("command %s of workspace %s: %w", cmd, ws, err)
		}
		if o.CommandID != cmd {
			return fmt.Errorf("command record %s holds command %s", cmd, o.CommandID)
		}
		if w == nil {
			// Its workspace's record comes later in the log: it keeps this.
			w = &workspaceState{}
			p.workspaces[ws] = w
		}
		if _, dup := w.recent(cmd); !dup {
			if w.Recent == nil {
				w.Recent = &window{}
			}
			w.Recent.add(o, false, 0)
		}
	case strings.HasPrefix(key, keyTask):
		id := strings.TrimPrefix(key, keyTask)
		if value == nil {
			// Tasks are never deleted; a tombstone of a scoped key removes
			// that task only.
			if ws, task, scoped := strings.Cut(id, "\x00"); scoped {
				delete(p.tasks, taskRef{ws: ws, id: task})
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
		p.tasks[p.ref(t.WorkspaceID, t.ID)] = hold(t)
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
	tasks      map[taskRef]*domain.Task
	keys       map[string]*domain.Key
	partOf     map[string]int32 // aggregate key → partition, for state records
	// evicted are the command ids each workspace's window let go, whose
	// records get a tombstone.
	evicted map[string][]string
	// outcomes count the batch's results by class, for Config.Observe.
	outcomes map[Outcome]int
}

func (b *batch) count(res *schemas.Result) {
	if b.outcomes == nil {
		b.outcomes = map[Outcome]int{}
	}
	typ := res.CommandType
	if !domain.KnownCommandType(typ) {
		typ = "other"
	}
	b.outcomes[Outcome{Type: typ, Status: res.Status, Code: res.Code}]++
}

func newBatch() *batch {
	return &batch{workspaces: map[string]*workspaceState{}, tasks: map[taskRef]*domain.Task{},
		keys: map[string]*domain.Key{}, partOf: map[string]int32{}, evicted: map[string][]string{}}
}

// remember makes w, holding r in its window of at most size outcomes, the
// batch's state of r's workspace.
func (b *batch) remember(w workspaceState, r schemas.Result, size int, partition int32) {
	if w.Recent == nil {
		w.Recent = &window{}
	}
	id := r.WorkspaceID
	w.Recent.trim(size-1, func(cmd string) { b.evicted[id] = append(b.evicted[id], cmd) })
	w.Recent.add(outcomeOf(r), true, size)
	b.workspaces[id] = &w
	b.partOf[keyWorkspace+id] = partition
}

func (b *batch) workspace(p *partitionState, id string) *workspaceState {
	if w, ok := b.workspaces[id]; ok {
		return w
	}
	return p.workspaces[id]
}

func (b *batch) task(p *partitionState, workspaceID, id string) *domain.Task {
	ref := taskRef{ws: workspaceID, id: id}
	if t, ok := b.tasks[ref]; ok {
		return t
	}
	if h, ok := p.tasks[ref]; ok {
		return h.task(ref)
	}
	return nil
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
			w.legacy = false // written out as command records by this batch
			if w.Recent != nil {
				w.Recent.fresh = 0
			}
			p.workspaces[id] = w
		}
	}
	for ref, t := range b.tasks {
		if p := parts[b.partOf[keyTask+taskKey(ref.ws, ref.id)]]; p != nil {
			p.tasks[p.ref(ref.ws, ref.id)] = hold(t)
		}
	}
	for id, k := range b.keys {
		if p := parts[b.partOf[keyKey+id]]; p != nil {
			p.keys[id] = k
		}
	}
}
