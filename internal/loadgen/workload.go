package loadgen

import (
	"fmt"
	"math/rand/v2"
	"sync"
)

// taskState is where loadgen believes a task is, from the commands it had
// acknowledged; the decider decides a workspace's commands in log order, so
// an acknowledged command is decided before any sent after its answer.
type taskState uint8

const (
	statePending taskState = iota
	stateAssigned
	stateInProgress
	stateDone // completed or cancelled: no more commands
	nStates
)

// space is one workspace of the run. A task is taken out of its pool while
// a command about it is in flight, so two clients never race on one task
// and no command of the mix is rejected for the state it finds.
type space struct {
	id string

	mu      sync.Mutex
	pools   [nStates][]string // task ids by state, those not in flight
	renames int
}

// planned is one command ready to send.
type planned struct {
	op   Op
	ws   *space
	task string // "" for create and rename
	path string
	body map[string]any
}

// plan turns a drawn operation into a command the workspace can take,
// walking the task lifecycle back when no task is in the state it needs.
func (s *space) plan(op Op, member, input string, n uint64) planned {
	s.mu.Lock()
	defer s.mu.Unlock()
	take := func(st taskState) string {
		p := s.pools[st]
		if len(p) == 0 {
			return ""
		}
		id := p[len(p)-1]
		s.pools[st] = p[:len(p)-1]
		return id
	}
	base := "/v1/workspaces/" + s.id
	for {
		switch op {
		case OpRename:
			s.renames++
			return planned{op: op, ws: s, path: base + "/rename",
				body: map[string]any{"name": fmt.Sprintf("%s r%d", s.id[:8], s.renames)}}
		case OpCancel:
			for _, st := range []taskState{statePending, stateAssigned, stateInProgress} {
				if id := take(st); id != "" {
					return planned{op: op, ws: s, task: id, path: base + "/tasks/" + id + "/cancel",
						body: map[string]any{"reason": "loadgen"}}
				}
			}
			op = OpCreate
		case OpComplete:
			if id := take(stateInProgress); id != "" {
				return planned{op: op, ws: s, task: id, path: base + "/tasks/" + id + "/complete",
					body: map[string]any{"output": input}}
			}
			op = OpStart
		case OpStart:
			if id := take(stateAssigned); id != "" {
				return planned{op: op, ws: s, task: id, path: base + "/tasks/" + id + "/start", body: map[string]any{}}
			}
			op = OpAssign
		case OpAssign:
			if id := take(statePending); id != "" {
				return planned{op: op, ws: s, task: id, path: base + "/tasks/" + id + "/assign",
					body: map[string]any{"assignee": member}}
			}
			op = OpCreate
		default:
			return planned{op: OpCreate, ws: s, path: base + "/tasks",
				body: map[string]any{"title": fmt.Sprintf("load %d", n), "input": input, "priority": n % 10}}
		}
	}
}

// settle puts the task of an acknowledged command back in the pool of the
// state it is now in. A task whose command got no acknowledgement stays out
// of the run: whether the command reached the log cannot be known.
func (s *space) settle(c planned, createdID string) {
	var st taskState
	switch c.op {
	case OpCreate:
		st, c.task = statePending, createdID
	case OpAssign:
		st = stateAssigned
	case OpStart:
		st = stateInProgress
	default:
		return // done, or not a task
	}
	if c.task == "" {
		return
	}
	s.mu.Lock()
	s.pools[st] = append(s.pools[st], c.task)
	s.mu.Unlock()
}

// pickSpace draws a workspace uniformly.
func pickSpace(spaces []*space, rng *rand.Rand) *space { return spaces[rng.IntN(len(spaces))] }
