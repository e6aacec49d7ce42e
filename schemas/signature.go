package schemas

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/logbook-dev/logbook/domain"
)

// Signature proves that a command was in a batch its writer (the API tier,
// the agent worker) signed: an Ed25519 signature over the Merkle root of
// the batch, and the command's audit path to that root (internal/signing).
type Signature struct {
	KeyID string   `json:"key_id"`
	Root  string   `json:"root"` // hex
	Sig   string   `json:"sig"`  // hex
	Index int      `json:"index"`
	Size  int      `json:"size"`
	Path  []string `json:"path,omitempty"` // hex, leaf to root
}

// SignedCommand is what an event keeps of the signed command that caused
// it, beside the command id, workspace, actor and correlation id it already
// names: with them it gives back the bytes the writer signed, so an auditor
// checks with the public keys alone that the event's actor asked for it.
type SignedCommand struct {
	Type            string    `json:"type"`
	IssuedAt        time.Time `json:"issued_at"`
	ExpectedVersion *int64    `json:"expected_version,omitempty"`
	RequestDigest   string    `json:"request_digest,omitempty"`
	// PayloadSHA256 is the hex SHA-256 of the command's payload as sent
	// (compacted JSON; sealed fields sealed).
	PayloadSHA256 string    `json:"payload_sha256"`
	Signature     Signature `json:"signature"`
}

// signedForm is what a writer signs of a command, format 1: every field
// but the payload, which is in by its hash, so an event can carry the
// proof without the command's payload.
type signedForm struct {
	V               int          `json:"v"`
	ID              string       `json:"id"`
	Type            string       `json:"type"`
	WorkspaceID     string       `json:"workspace_id"`
	Actor           domain.Actor `json:"actor"`
	IssuedAt        time.Time    `json:"issued_at"`
	ExpectedVersion *int64       `json:"expected_version,omitempty"`
	CorrelationID   string       `json:"correlation_id,omitempty"`
	RequestDigest   string       `json:"request_digest,omitempty"`
	PayloadSHA256   string       `json:"payload_sha256"`
}

func (f signedForm) bytes() []byte {
	b, _ := json.Marshal(f) // plain strings, times and ints: cannot fail
	return append([]byte("logbook.command.v1\x00"), b...)
}

// PayloadDigest is the hex SHA-256 of a payload, compacted.
func PayloadDigest(p json.RawMessage) string {
	var c bytes.Buffer
	if json.Compact(&c, p) != nil {
		c.Reset()
		c.Write(p)
	}
	s := sha256.Sum256(c.Bytes())
	return hex.EncodeToString(s[:])
}

// SignedBytes is what the writer of the command signs.
func (e CommandEnvelope) SignedBytes() []byte {
	return signedForm{V: 1, ID: e.ID, Type: e.Type, WorkspaceID: e.WorkspaceID, Actor: e.Actor,
		IssuedAt: e.IssuedAt.UTC(), ExpectedVersion: e.ExpectedVersion, CorrelationID: e.CorrelationID,
		RequestDigest: e.RequestDigest, PayloadSHA256: PayloadDigest(e.Payload)}.bytes()
}

// Signed returns what events of this command keep of it and its
// signature; nil for an unsigned command.
func (e CommandEnvelope) Signed() *SignedCommand {
	if e.Signature == nil {
		return nil
	}
	return &SignedCommand{Type: e.Type, IssuedAt: e.IssuedAt.UTC(), ExpectedVersion: e.ExpectedVersion,
		RequestDigest: e.RequestDigest, PayloadSHA256: PayloadDigest(e.Payload), Signature: *e.Signature}
}

// SignedBytes gives back the bytes the writer of the event's command
// signed, from the event; ok is false for an event without a signature.
func (e EventEnvelope) SignedBytes() (b []byte, ok bool) {
	s := e.Signed
	if s == nil {
		return nil, false
	}
	return signedForm{V: 1, ID: e.CommandID, Type: s.Type, WorkspaceID: e.WorkspaceID, Actor: e.Actor,
		IssuedAt: s.IssuedAt.UTC(), ExpectedVersion: s.ExpectedVersion, CorrelationID: e.CorrelationID,
		RequestDigest: s.RequestDigest, PayloadSHA256: s.PayloadSHA256}.bytes(), true
}
