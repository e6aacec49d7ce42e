package domain

// keyRevoke ends a key for good.
func keyRevoke(k *Key, p KeyRevokeCmd, e *emitter) error {
	switch {
	case k == nil:
		return NotFound("key %q not found", p.KeyID)
	case k.Status == KeyStatusRevoked:
		return Conflict("key %q is already revoked", p.KeyID)
	}
	e.emit(EvKeyRevoked, KeyRevoked(p))
	return nil
}

func (p KeyRevokeCmd) validate() (KeyRevokeCmd, error) { return p, nil }
