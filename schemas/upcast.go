package schemas

import (
	"encoding/json"
	"fmt"

	"github.com/logbook-dev/logbook/domain"
)

// An upcaster turns an event payload of one schema version into the next
// version's. Events are never rewritten in the log: readers upcast what
// they read, one version at a time, so every version ever written stays
// readable by the code of today.
type upcaster func(payload map[string]json.RawMessage) error

// upcasters holds, per event type, the upcaster from version v to v+1 at
// index v-1. Every type whose domain.EventVersion is above 1 has one per
// step (a package test checks it).
var upcasters = map[string][]upcaster{
	domain.EvWorkspaceAIPolicySet: {
		// v2 added the per-workspace request rate; v1 had none, and 0 says so.
		withDefaults(map[string]string{"requests_per_minute": `0`}),
	},
	domain.EvTaskResultRecorded: {
		// v2 added what produced the output; v1 did not say.
		withDefaults(map[string]string{"provider": `""`, "model": `""`}),
	},
	domain.EvTaskCreated: {
		// v2 added labels and a due time; v1 tasks had neither.
		withDefaults(map[string]string{"labels": `[]`, "due_at": `null`}),
	},
}

// withDefaults adds fields a new version requires with the value that
// means what the old version meant by leaving them out.
func withDefaults(fields map[string]string) upcaster {
	return func(p map[string]json.RawMessage) error {
		for k, v := range fields {
			if _, ok := p[k]; !ok {
				p[k] = json.RawMessage(v)
			}
		}
		return nil
	}
}

// Upcast returns an event payload of the given type and schema version as
// the current version's payload. A version above the current one was
// written by newer code: it is refused, never guessed at.
func Upcast(eventType string, version int, payload []byte) ([]byte, error) {
	current := domain.EventVersion(eventType)
	switch {
	case version == current:
		return payload, nil
	case version < 1 || version > current:
		return nil, fmt.Errorf("schemas: %s has unsupported version %d (this code reads 1 to %d)", eventType, version, current)
	}
	steps := upcasters[eventType]
	var p map[string]json.RawMessage
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, fmt.Errorf("schemas: decode %s v%d payload: %w", eventType, version, err)
	}
	if p == nil {
		return nil, fmt.Errorf("schemas: %s v%d payload is not an object", eventType, version)
	}
	for v := version; v < current; v++ {
		if v-1 >= len(steps) {
			return nil, fmt.Errorf("schemas: no upcaster for %s v%d", eventType, v)
		}
		if err := steps[v-1](p); err != nil {
			return nil, fmt.Errorf("schemas: upcast %s v%d: %w", eventType, v, err)
		}
	}
	return json.Marshal(p)
}
