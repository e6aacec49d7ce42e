package signing

import (
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/logbook-dev/logbook/schemas"
)

// ErrUnsigned means a command or event carries no signature.
var ErrUnsigned = errors.New("signing: not signed")

// Schema is the proof as envelopes carry it.
func (p Proof) Schema() schemas.Signature {
	s := schemas.Signature{KeyID: p.KeyID, Root: hex.EncodeToString(p.Root[:]), Sig: hex.EncodeToString(p.Sig),
		Index: p.Index, Size: p.Size, Path: make([]string, len(p.Path))}
	for i, h := range p.Path {
		s.Path[i] = hex.EncodeToString(h[:])
	}
	return s
}

// proofOf reads a proof from an envelope; a malformed one is a bad proof.
func proofOf(s schemas.Signature) (Proof, error) {
	p := Proof{KeyID: s.KeyID, Index: s.Index, Size: s.Size}
	root, err := hex.DecodeString(s.Root)
	if err != nil || len(root) != 32 || len(s.Path) > 64 {
		return p, ErrBadProof
	}
	copy(p.Root[:], root)
	if p.Sig, err = hex.DecodeString(s.Sig); err != nil {
		return p, ErrBadSig
	}
	for _, h := range s.Path {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != 32 {
			return p, ErrBadProof
		}
		p.Path = append(p.Path, [32]byte(b))
	}
	return p, nil
}

// SignCommands signs a batch of commands, each with its proof, in place.
func (s *Signer) SignCommands(envs []*schemas.CommandEnvelope) error {
	msgs := make([][]byte, len(envs))
	for i, e := range envs {
		msgs[i] = e.SignedBytes()
	}
	proofs, err := s.SignBatch(msgs)
	if err != nil {
		return err
	}
	for i, e := range envs {
		sig := proofs[i].Schema()
		e.Signature = &sig
	}
	return nil
}

// VerifyCommand checks a command's signature.
func (v *Verifier) VerifyCommand(e schemas.CommandEnvelope) error {
	if e.Signature == nil {
		return ErrUnsigned
	}
	p, err := proofOf(*e.Signature)
	if err != nil {
		return err
	}
	return v.Verify(e.SignedBytes(), p)
}

// VerifyEvent checks that the event's command, as the event names it
// (command id, workspace, actor, correlation id and what Signed keeps),
// was signed by an accepted key.
func (v *Verifier) VerifyEvent(e schemas.EventEnvelope) error {
	b, ok := e.SignedBytes()
	if !ok {
		return ErrUnsigned
	}
	p, err := proofOf(e.Signed.Signature)
	if err != nil {
		return err
	}
	if err := v.Verify(b, p); err != nil {
		return fmt.Errorf("event %d of %s: %w", e.Seq, e.WorkspaceID, err)
	}
	return nil
}
