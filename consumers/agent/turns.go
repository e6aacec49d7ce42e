package agent

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

// turns keeps a deep backlog of one workspace from holding up the others on
// its partitions. The limiter chooses round-robin, but only among the events
// a partition's window holds, and those come in log order: a workspace with
// 10,000 queued tasks would fill every window it shares. So once a
// workspace has as many calls waiting as it may run, its next assignments
// are acknowledged and left assigned ("shelved"), the window moves on to
// the other workspaces, and the turns loop works the shelved ones from the
// read model a few per workspace at a time, oldest first, the limiter
// admitting them round-robin with everything else.
type turns struct {
	mu sync.Mutex
	// shelved holds each workspace with tasks left for their turn and a
	// generation that grows with every task shelved, so a drain that found
	// none cannot forget a workspace that shelved one meanwhile.
	shelved map[string]uint64
	order   []string // round-robin order of the drain
	next    int
	// busy holds each trigger being worked here (zero time) or worked a
	// moment ago (until when it is remembered).
	busy   map[string]time.Time
	pruned time.Time
	// claimed holds the triggers the loop has started and not finished,
	// so the next look at the read model does not start them again, and
	// inflight counts them per workspace.
	claimed  map[string]bool
	inflight map[string]int
	total    int
	doneFor  time.Duration
}

// newTurns remembers a handled task for doneFor: longer than a started
// attempt takes to count as stalled in the sweep, so a slow read model
// never makes the sweep ask again for an attempt answered here.
func newTurns(doneFor time.Duration) *turns {
	return &turns{shelved: map[string]uint64{}, busy: map[string]time.Time{}, claimed: map[string]bool{},
		inflight: map[string]int{}, doneFor: doneFor}
}

// claim marks a waiting task as started by the loop; false when it is
// already, or is being worked another way.
func (t *turns) claim(p Parked) bool {
	key := trigger(p.WorkspaceID, p.TaskID, p.Version)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.busyLocked(key, time.Now()) || t.claimed[key] {
		return false
	}
	t.claimed[key] = true
	t.inflight[p.WorkspaceID]++
	t.total++
	return true
}

func (t *turns) unclaim(p Parked) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.claimed, trigger(p.WorkspaceID, p.TaskID, p.Version))
	if t.inflight[p.WorkspaceID]--; t.inflight[p.WorkspaceID] <= 0 {
		delete(t.inflight, p.WorkspaceID)
	}
	t.total--
}

// load is how many tasks the loop has started and not finished: of ws, and
// in all.
func (t *turns) load(ws string) (int, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inflight[ws], t.total
}

func (t *turns) shelve(ws string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.shelved[ws]; !ok {
		t.order = append(t.order, ws)
	}
	t.shelved[ws]++
}

// pending returns the shelved workspaces with their generations, starting
// where the last round stopped.
func (t *turns) pending() ([]string, []uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.order)
	spaces, gens := make([]string, 0, n), make([]uint64, 0, n)
	for i := range n {
		ws := t.order[(t.next+i)%n]
		spaces, gens = append(spaces, ws), append(gens, t.shelved[ws])
	}
	return spaces, gens
}

// advance starts the next round visited workspaces further on.
func (t *turns) advance(visited int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := len(t.order); n > 0 {
		t.next = (t.next + visited) % n
	}
}

// drained forgets a workspace found with nothing waiting, unless it
// shelved a task since gen.
func (t *turns) drained(ws string, gen uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.shelved[ws] != gen {
		return
	}
	delete(t.shelved, ws)
	for i, o := range t.order {
		if o == ws {
			t.order = append(t.order[:i], t.order[i+1:]...)
			break
		}
	}
	if len(t.order) > 0 {
		t.next %= len(t.order)
	} else {
		t.next = 0
	}
}

func (t *turns) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.shelved)
}

// trigger names what asked for a task's attempt: the task at the version
// its assignment (or retry) gave it.
func trigger(ws, task string, version int64) string {
	return ws + "\x00" + task + "\x00" + strconv.FormatInt(version, 10)
}

// busyLocked reports whether a trigger is being worked here, or was
// answered less than doneFor ago.
func (t *turns) busyLocked(key string, now time.Time) bool {
	until, ok := t.busy[key]
	return ok && (until.IsZero() || now.Before(until))
}

// hold marks a task, at the version that asked for it, as being worked in
// this process; false when it already is or was a moment ago (the event
// path and a drain reached it both). release(true) says the attempt got
// its outcome: the mark stays for doneFor; release(false) lets a retry in.
func (t *turns) hold(ws, task string, version int64) (release func(done bool), ok bool) {
	key := trigger(ws, task, version)
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.busyLocked(key, now) {
		return nil, false
	}
	t.busy[key] = time.Time{}
	if len(t.busy) > 1024 && now.Sub(t.pruned) > t.doneFor/4 {
		t.pruned = now
		for k, until := range t.busy {
			if !until.IsZero() && now.After(until) {
				delete(t.busy, k)
			}
		}
	}
	return func(done bool) {
		t.mu.Lock()
		defer t.mu.Unlock()
		if done {
			t.busy[key] = time.Now().Add(t.doneFor)
		} else {
			delete(t.busy, key)
		}
	}, true
}

// shelveIfBehind leaves an assignment for its workspace's turn when the
// workspace already has a full share of calls waiting and the task is as
// the event left it (assigned, not started: a started one is finished on
// the event path). It reads the task once; when in doubt it does not
// shelve.
func (w *Worker) shelveIfBehind(msg *message.Message) bool {
	ws := workspaceOf(msg)
	if w.limiter.queued(ws) < w.cfg.PerWorkspace {
		return false
	}
	var env schemas.EventEnvelope
	if err := json.Unmarshal(msg.Payload, &env); err != nil {
		return false
	}
	ev, err := env.Event()
	if err != nil {
		return false
	}
	var taskID string
	switch p := ev.Payload.(type) {
	case *domain.TaskAssigned:
		taskID = p.TaskID
	case *domain.TaskRetried:
		taskID = p.TaskID
	default:
		return false
	}
	ctx, cancel := context.WithTimeout(msg.Context(), 5*time.Second)
	defer cancel()
	work, found, err := w.store.Work(ctx, env.WorkspaceID, taskID, time.Now().UTC())
	if err != nil || !found || work.Agent == nil || work.Status != domain.TaskStatusAssigned ||
		work.Version != env.Aggregate.Version {
		return false
	}
	w.turns.shelve(env.WorkspaceID)
	w.leftForTurn.Add(1)
	return true
}

// takeTurns works the shelved workspaces' waiting tasks: every turnEvery
// it tops each workspace up to twice PerWorkspace tasks started (so its next
// calls already wait in the limiter), at most twice Concurrency in all.
func (w *Worker) takeTurns(ctx context.Context) {
	t := time.NewTicker(turnEvery)
	defer t.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if w.gate == nil || w.gate.available() {
			w.turn(ctx, &wg)
		}
	}
}

const turnEvery = 100 * time.Millisecond

func (w *Worker) turn(ctx context.Context, wg *sync.WaitGroup) {
	spaces, gens := w.turns.pending()
	mine := w.owner()
	visited, started := 0, 0
	for i, ws := range spaces {
		if !mine(ws) {
			// Its partition went to another instance, which has the events.
			w.turns.drained(ws, gens[i])
			continue
		}
		mine, all := w.turns.load(ws)
		room := 2*w.cfg.Concurrency - all
		if room <= 0 {
			break
		}
		visited++
		want := min(2*w.cfg.PerWorkspace-mine, room)
		if want <= 0 || w.rates.waiting(ws) {
			continue // enough started; or the rate drain works it, as its rate allows
		}
		// The oldest may be started or just worked, their outcome not yet
		// in the read model: read past them.
		got, err := w.store.Waiting(ctx, ws, 0, want+2*w.cfg.Concurrency)
		if err != nil {
			w.log.Debug("agent turn failed", "workspace", ws, "err", err)
			continue
		}
		if len(got) == 0 && mine == 0 {
			w.turns.drained(ws, gens[i])
			continue
		}
		for _, p := range got {
			if want == 0 {
				break
			}
			if !w.turns.claim(p) {
				continue
			}
			want--
			started++
			gen := gens[i]
			wg.Go(func() {
				defer w.turns.unclaim(p)
				if _, err := w.unpark(ctx, p); errors.Is(err, errLeftWaiting) {
					// A budget spent: the sweep takes the workspace up
					// again when it can pay.
					w.turns.drained(p.WorkspaceID, gen)
				}
			})
		}
	}
	w.turns.advance(visited)
	if started > 0 {
		w.log.Debug("agent turn", "workspaces_waiting", len(spaces), "started", started)
	}
}
