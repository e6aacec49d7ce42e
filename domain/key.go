package domain

import (
	"encoding/hex"
	"time"
)

// KeyRegistry is the stream API keys are issued and revoked in: key
// commands name it as their workspace id and key events are chained under
// it, so the trail covers every key. No workspace can take it: the decider
// refuses it to workspace.create.
const KeyRegistry = "_keys"

// AggregateKey is the aggregate type of an API key.
const AggregateKey = "key"

// Key statuses.
const (
	KeyStatusActive  = "active"
	KeyStatusRevoked = "revoked"
)

// MaxLabelLen bounds a key's label.
const MaxLabelLen = 200

// Key is the state of one API key aggregate, rebuilt by Evolve. It holds the
// key's SHA-256 hash, never the key.
type Key struct {
	ID        string    `json:"id"`
	Role      string    `json:"role"`
	Label     string    `json:"label,omitempty"`
	Hash      string    `json:"hash"`
	Status    string    `json:"status"`
	Version   int64     `json:"version"`
	IssuedAt  time.Time `json:"issued_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// KeyTarget is implemented by payloads of commands aimed at one key.
type KeyTarget interface{ TargetKey() string }

func (c KeyIssueCmd) TargetKey() string  { return c.KeyID }
func (c KeyRevokeCmd) TargetKey() string { return c.KeyID }

// keyPayload is a payload of a command aimed at one key.
type keyPayload[P any] interface {
	payload[P]
	KeyTarget
}

func keyUseCase[P keyPayload[P]](decide func(*Key, P, *emitter) error) useCase {
	return useCase{
		decide: func(s State, cmd Command, now time.Time) ([]Event, error) {
			return onKey(s, cmd, now, decide)
		},
		validate: validateCommand[P],
	}
}

// onKey runs the checks every key command shares, then decide with the
// validated payload and the key (nil when it does not exist).
func onKey[P keyPayload[P]](s State, cmd Command, now time.Time, decide func(*Key, P, *emitter) error) ([]Event, error) {
	p, ok := payloadAs[P](cmd.Payload)
	if !ok {
		return nil, payloadMismatch(cmd)
	}
	if err := checkRegistry(cmd); err != nil {
		return nil, err
	}
	// Keys are the admin's alone; the decider asks again whatever the API
	// tier decided.
	if cmd.Actor.Role != RoleAdmin {
		return nil, ForbiddenError("key role %q may not manage keys", cmd.Actor.Role)
	}
	id := p.TargetKey()
	if err := checkID("key_id", id); err != nil {
		return nil, err
	}
	k := s.Key
	if k != nil && k.ID != id {
		k = nil
	}
	var version int64
	if k != nil {
		version = k.Version
	}
	if err := checkVersion(cmd.ExpectedVersion, version); err != nil {
		return nil, err
	}
	p, err := p.validate()
	if err != nil {
		return nil, err
	}
	e := newEmitter(AggregateKey, id, version, now)
	if err := decide(k, p, e); err != nil {
		return nil, err
	}
	return e.events, nil
}

func checkRegistry(cmd Command) error {
	if cmd.WorkspaceID != KeyRegistry {
		return Invalid("workspace_id", "key commands are sent to %q", KeyRegistry)
	}
	return nil
}

// checkKeyHash accepts a SHA-256 hash in lower-case hex.
func checkKeyHash(h string) error {
	if b, err := hex.DecodeString(h); err != nil || len(b) != 32 || hex.EncodeToString(b) != h {
		return Invalid("hash", "must be a SHA-256 hash in lower-case hex (64 characters)")
	}
	return nil
}

// evolveKey applies one key event to a copy of s.Key.
func evolveKey[P any](s State, e Event, creates bool, apply func(*Key, P)) State {
	p, ok := payloadAs[P](e.Payload)
	if !ok {
		return s
	}
	var k Key
	switch {
	case s.Key != nil && s.Key.ID != e.Aggregate.ID:
		return s
	case s.Key != nil:
		k = *s.Key
	case !creates:
		return s
	}
	apply(&k, p)
	k.Version = e.Aggregate.Version
	s.Key = &k
	return s
}
