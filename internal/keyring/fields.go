package keyring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/fieldcrypt"
	"github.com/logbook-dev/logbook/schemas"
)

// Seal returns cmd with its sensitive fields sealed under its workspace's
// data key. A workspace.create makes the key, so it is in the topic before
// anything of the workspace needs it; a workspace created before encryption
// gets one with its first sensitive field. An erased workspace is not found,
// as the decider would answer.
func (r *Ring) Seal(ctx context.Context, cmd domain.Command) (domain.Command, error) {
	var key *fieldcrypt.DataKey
	need := func() error {
		if key != nil {
			return nil
		}
		var err error
		key, err = r.Create(ctx, cmd.WorkspaceID)
		if errors.Is(err, ErrErased) {
			return domain.NotFound("workspace %q not found", cmd.WorkspaceID)
		}
		return err
	}
	if cmd.Type == domain.CmdWorkspaceCreate {
		if err := need(); err != nil {
			return cmd, err
		}
	}
	p, err := domain.SealFields(cmd, func(slot, v string) (string, error) {
		if err := need(); err != nil {
			return v, err
		}
		return key.Seal(slot, v)
	})
	if err != nil {
		return cmd, err
	}
	cmd.Payload = p
	return cmd, nil
}

// Open returns the plaintext of a sensitive field of the workspace, from
// its slot. A value that is not sealed was written before encryption and
// comes back as it is; an erased workspace's values give ErrErased.
func (r *Ring) Open(ctx context.Context, ws, slot, v string) (string, error) {
	if !fieldcrypt.IsSealed(v) {
		return v, nil
	}
	k, err := r.Key(ctx, ws)
	if err != nil {
		return "", err
	}
	return k.Open(slot, v)
}

// OpenEvent returns e with its sensitive field (domain.SealedEventFields)
// in plaintext, for readers of the log that hold the master key. The hash
// covers the sealed value, so the opened envelope no longer verifies. A
// field of an erased workspace stays sealed: it can never be opened.
func (r *Ring) OpenEvent(ctx context.Context, e schemas.EventEnvelope) (schemas.EventEnvelope, error) {
	f, ok := domain.SealedEventFields[e.Type]
	if !ok {
		return e, nil
	}
	var p map[string]json.RawMessage
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		return e, fmt.Errorf("keyring: event %s: %w", e.ID, err)
	}
	var id, v string
	if json.Unmarshal(p[f.IDJSON], &id) != nil || json.Unmarshal(p[f.JSON], &v) != nil || v == "" {
		return e, nil
	}
	plain, err := r.Open(ctx, e.WorkspaceID, domain.Slot(f.Kind, id, f.Slot), v)
	if errors.Is(err, ErrErased) {
		return e, nil
	}
	if err != nil {
		return e, fmt.Errorf("keyring: event %s: %w", e.ID, err)
	}
	if p[f.JSON], err = json.Marshal(plain); err != nil {
		return e, err
	}
	if e.Payload, err = json.Marshal(p); err != nil {
		return e, err
	}
	return e, nil
}
