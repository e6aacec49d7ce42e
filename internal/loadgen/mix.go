// Package loadgen drives a logbook deployment over its HTTP API with a mix
// of task and workspace commands, measures what a client sees (rates,
// latency from HDR histograms, refusals, consumer lag over time) and checks
// against the log and the read models that every acknowledged command got
// exactly one outcome (check.go).
package loadgen

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Op is one kind of command loadgen sends.
type Op string

// The operations of a mix. Each acts on a task (or workspace) in the state
// it needs; when none is, the task lifecycle's previous step is sent instead
// (a complete becomes a start, a start an assign, an assign a create), so a
// mix never asks for a command the decider must reject.
const (
	OpCreate   Op = "create"   // task.create
	OpAssign   Op = "assign"   // task.assign to the run's member
	OpStart    Op = "start"    // task.start_attempt
	OpComplete Op = "complete" // task.complete
	OpCancel   Op = "cancel"   // task.cancel
	OpRename   Op = "rename"   // workspace.rename
)

// Ops lists every operation in lifecycle order.
var Ops = []Op{OpCreate, OpAssign, OpStart, OpComplete, OpCancel, OpRename}

// DefaultMix is the lifecycle mix of the stress test.
const DefaultMix = "create=70,assign=10,complete=10,cancel=5,rename=5"

// Mix weighs the operations.
type Mix struct {
	weights map[Op]int
	total   int
}

// ParseMix reads "op=weight,…"; weights are non-negative integers and an
// operation left out weighs 0.
func ParseMix(s string) (Mix, error) {
	m := Mix{weights: map[Op]int{}}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, ok := strings.Cut(part, "=")
		op := Op(strings.TrimSpace(name))
		if !ok || !validOp(op) {
			return Mix{}, fmt.Errorf("mix: %q is not op=weight with op one of %v", part, Ops)
		}
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 0 || n > 1_000_000 {
			return Mix{}, fmt.Errorf("mix: weight of %s must be an integer 0..1000000, got %q", op, w)
		}
		if _, dup := m.weights[op]; dup {
			return Mix{}, fmt.Errorf("mix: %s given twice", op)
		}
		m.weights[op] = n
		m.total += n
	}
	if m.total == 0 {
		return Mix{}, fmt.Errorf("mix: %q weighs nothing", s)
	}
	return m, nil
}

func validOp(op Op) bool {
	for _, o := range Ops {
		if o == op {
			return true
		}
	}
	return false
}

// pick draws an operation by weight.
func (m Mix) pick(rng *rand.Rand) Op {
	n := rng.IntN(m.total)
	for _, op := range Ops {
		if n < m.weights[op] {
			return op
		}
		n -= m.weights[op]
	}
	return OpCreate
}

// needsMember reports whether the mix assigns tasks, so each workspace
// needs a member to assign them to.
func (m Mix) needsMember() bool {
	return m.weights[OpAssign]+m.weights[OpStart]+m.weights[OpComplete] > 0
}

// String is the mix in the form ParseMix reads.
func (m Mix) String() string {
	var parts []string
	for _, op := range Ops {
		if w, ok := m.weights[op]; ok {
			parts = append(parts, fmt.Sprintf("%s=%d", op, w))
		}
	}
	return strings.Join(parts, ",")
}
