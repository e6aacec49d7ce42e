// Package schemas holds the wire form of logbook: command, event and result
// envelopes, their JSON codec, the per-workspace hash chain, CloudEvents
// Kafka headers and the JSON Schemas of every event type and version.
package schemas

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/logbook-dev/logbook/domain"
)

// CommandEnvelope is the value of a record on the commands topic.
type CommandEnvelope struct {
	ID              string          `json:"id"`
	Type            string          `json:"type"`
	WorkspaceID     string          `json:"workspace_id"`
	Actor           domain.Actor    `json:"actor"`
	IssuedAt        time.Time       `json:"issued_at"`
	ExpectedVersion *int64          `json:"expected_version,omitempty"`
	CorrelationID   string          `json:"correlation_id,omitempty"`
	Payload         json.RawMessage `json:"payload"`
	// RequestDigest identifies the request behind a command sent with an
	// Idempotency-Key (see RequestDigest), so a key reused for another
	// request is refused instead of answered with the first outcome. Empty
	// without a key, and in records written before it existed.
	RequestDigest string `json:"request_digest,omitempty"`
	// Signature is its writer's proof over SignedBytes; absent in records
	// written before commands were signed, which a decider that verifies
	// refuses.
	Signature *Signature `json:"signature,omitempty"`
}

// EventEnvelope is the value of a record on the events topic. Hash covers
// every other field (see ComputeHash).
type EventEnvelope struct {
	ID            string              `json:"id"`
	Type          string              `json:"type"`
	Version       int                 `json:"version"`
	WorkspaceID   string              `json:"workspace_id"`
	Aggregate     domain.AggregateRef `json:"aggregate"`
	Seq           int64               `json:"seq"`
	CommandID     string              `json:"command_id"`
	CorrelationID string              `json:"correlation_id,omitempty"`
	Actor         domain.Actor        `json:"actor"`
	OccurredAt    time.Time           `json:"occurred_at"`
	Payload       json.RawMessage     `json:"payload"`
	// Signed is the signed command that caused the event, as far as it is
	// not above; absent in events of unsigned commands (before signing).
	// The hash covers it.
	Signed   *SignedCommand `json:"signed,omitempty"`
	PrevHash string         `json:"prev_hash"`
	Hash     string         `json:"hash"`
}

// Result statuses.
const (
	ResultAccepted = "accepted"
	ResultRejected = "rejected"
)

// EventRef points at one event a command caused.
type EventRef struct {
	ID   string `json:"id"`
	Seq  int64  `json:"seq"`
	Type string `json:"type"`
}

// Result is the value of a record on the results topic: the one outcome of
// one command.
type Result struct {
	CommandID   string      `json:"command_id"`
	CommandType string      `json:"command_type"`
	WorkspaceID string      `json:"workspace_id"`
	Status      string      `json:"status"`
	Code        domain.Code `json:"code,omitempty"`
	Reason      string      `json:"reason,omitempty"`
	Field       string      `json:"field,omitempty"`
	AggregateID string      `json:"aggregate_id,omitempty"`
	Events      []EventRef  `json:"events,omitempty"`
	DecidedAt   time.Time   `json:"decided_at"`
	// RequestDigest is the command's RequestDigest: it tells which request
	// a result answers when one command id came with two requests.
	RequestDigest string `json:"request_digest,omitempty"`
	// ActorID is the principal that sent the command: the one caller,
	// besides admins, its outcome is shown to. Empty in results written
	// before it was recorded.
	ActorID string `json:"actor_id,omitempty"`
}

// ResultFormat is the format of the result records this version writes,
// in their "v". Format 0, written before results said theirs, has the same
// fields. DecodeResult refuses a later format rather than read it wrong.
const ResultFormat = 1

// MarshalJSON writes the record with its format.
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return json.Marshal(struct {
		V int `json:"v"`
		plain
	}{ResultFormat, plain(r)})
}

// DecodeResult reads a result record of any format up to ResultFormat.
func DecodeResult(b []byte) (Result, error) {
	type plain Result
	var w struct {
		V *int `json:"v"`
		plain
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return Result{}, err
	}
	if w.V != nil && (*w.V < 1 || *w.V > ResultFormat) {
		return Result{}, fmt.Errorf("result format %d: this version reads formats 0 to %d", *w.V, ResultFormat)
	}
	return Result(w.plain), nil
}

// FieldIdempotencyKey is the field a CodeKeyReused rejection names.
const FieldIdempotencyKey = "Idempotency-Key"

// RequestDigest is the hex SHA-256 of a request: its method, path and
// canonical body (nil when there is none), each length-prefixed.
func RequestDigest(method, path string, body []byte) string {
	h := sha256.New()
	for _, part := range [][]byte{[]byte(method), []byte(path), body} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// SameRequest reports whether r answers the request with digest. A side
// without a digest (no Idempotency-Key, or a record older than digests)
// matches any request, as before digests existed.
func (r Result) SameRequest(digest string) bool {
	return r.RequestDigest == "" || digest == "" || r.RequestDigest == digest
}

// For returns r as the answer to the request with digest: r itself when it
// is that request's outcome, else the refusal of the reused key.
func (r Result) For(digest string) Result {
	if r.SameRequest(digest) {
		return r
	}
	return KeyReused(r.CommandID, r.CommandType, r.WorkspaceID, digest, r.DecidedAt)
}

// KeyReused is the outcome of a request whose command id (its
// Idempotency-Key) was already decided for a different request: rejected,
// carrying the new request's digest; the first outcome stands.
func KeyReused(commandID, commandType, workspaceID, digest string, at time.Time) Result {
	return Result{CommandID: commandID, CommandType: commandType, WorkspaceID: workspaceID,
		Status: ResultRejected, Code: domain.CodeKeyReused, Field: FieldIdempotencyKey,
		Reason: "this Idempotency-Key was already used for a different request (method, path or body); " +
			"its first outcome stands: use a new key for a new request",
		DecidedAt: at, RequestDigest: digest}
}

// EncodeCommand turns a domain command into its envelope.
func EncodeCommand(cmd domain.Command, correlationID string) (CommandEnvelope, error) {
	p, err := json.Marshal(cmd.Payload)
	if err != nil {
		return CommandEnvelope{}, fmt.Errorf("schemas: encode %s payload: %w", cmd.Type, err)
	}
	return CommandEnvelope{
		ID: cmd.ID, Type: cmd.Type, WorkspaceID: cmd.WorkspaceID, Actor: cmd.Actor,
		IssuedAt: cmd.IssuedAt.UTC(), ExpectedVersion: cmd.ExpectedVersion,
		CorrelationID: correlationID, Payload: p,
	}, nil
}

// Command decodes the envelope's payload strictly (unknown fields refused).
func (c CommandEnvelope) Command() (domain.Command, error) {
	p := domain.NewCommandPayload(c.Type)
	if p == nil {
		return domain.Command{}, domain.Invalid("type", "unknown command type %q", c.Type)
	}
	if len(c.Payload) > 0 {
		if err := strictUnmarshal(c.Payload, p); err != nil {
			return domain.Command{}, domain.Invalid("payload", "%v", err)
		}
	}
	return domain.Command{
		ID: c.ID, Type: c.Type, WorkspaceID: c.WorkspaceID, Actor: c.Actor,
		IssuedAt: c.IssuedAt, ExpectedVersion: c.ExpectedVersion, Payload: p,
	}, nil
}

// Event decodes the envelope's payload into a domain event.
func (e EventEnvelope) Event() (domain.Event, error) {
	p := domain.NewEventPayload(e.Type)
	if p == nil {
		return domain.Event{}, fmt.Errorf("schemas: unknown event type %q", e.Type)
	}
	payload, err := Upcast(e.Type, e.Version, e.Payload)
	if err != nil {
		return domain.Event{}, err
	}
	if err := json.Unmarshal(payload, p); err != nil {
		return domain.Event{}, fmt.Errorf("schemas: decode %s payload: %w", e.Type, err)
	}
	return domain.Event{Type: e.Type, Aggregate: e.Aggregate, OccurredAt: e.OccurredAt, Payload: p}, nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after JSON value")
	}
	return nil
}
