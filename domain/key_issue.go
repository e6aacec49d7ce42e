package domain

// keyIssue records a new key: its role, label and hash. A key id is never
// reused, revoked or not.
func keyIssue(k *Key, p KeyIssueCmd, e *emitter) error {
	if k != nil {
		return Conflict("key %q already exists", p.KeyID)
	}
	e.emit(EvKeyIssued, KeyIssued(p))
	return nil
}

func (p KeyIssueCmd) validate() (KeyIssueCmd, error) {
	if err := checkKeyRole(p.Role); err != nil {
		return p, err
	}
	var err error
	if p.Label, err = optional("label", p.Label, MaxLabelLen); err != nil {
		return p, err
	}
	return p, checkKeyHash(p.Hash)
}
