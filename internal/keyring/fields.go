package keyring

import (
	"context"
	"errors"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/fieldcrypt"
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
