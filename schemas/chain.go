package schemas

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/logbook-dev/logbook/domain"
)

// Chain is a workspace's position in its event stream: the last sequence
// number and hash. The zero Chain precedes the first event.
type Chain struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
}

// EventMeta is what the decider knows of the command that caused events.
type EventMeta struct {
	WorkspaceID   string
	CommandID     string
	CorrelationID string
	Actor         domain.Actor
	Signed        *SignedCommand // nil for an unsigned command
}

// Seal wraps decided events in envelopes that extend the chain: seq is
// gapless and each hash covers the previous one. It returns the new chain.
func Seal(chain Chain, meta EventMeta, events []domain.Event) ([]EventEnvelope, Chain, error) {
	out := make([]EventEnvelope, 0, len(events))
	for _, ev := range events {
		p, err := json.Marshal(ev.Payload)
		if err != nil {
			return nil, chain, fmt.Errorf("schemas: encode %s: %w", ev.Type, err)
		}
		id, err := uuid.NewV7()
		if err != nil {
			return nil, chain, err
		}
		env := EventEnvelope{
			ID: id.String(), Type: ev.Type, Version: domain.EventVersion(ev.Type),
			WorkspaceID: meta.WorkspaceID, Aggregate: ev.Aggregate,
			Seq: chain.Seq + 1, CommandID: meta.CommandID, CorrelationID: meta.CorrelationID,
			Actor: meta.Actor, OccurredAt: Timestamp(ev.OccurredAt), Payload: p,
			Signed: meta.Signed, PrevHash: chain.Hash,
		}
		if env.Hash, err = ComputeHash(env); err != nil {
			return nil, chain, err
		}
		chain = Chain{Seq: env.Seq, Hash: env.Hash}
		out = append(out, env)
	}
	return out, chain, nil
}

// Timestamp normalises a time to what every store keeps exactly: UTC,
// microseconds (Postgres precision), so hashes recompute the same anywhere.
func Timestamp(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// ComputeHash is SHA-256(prev_hash ‖ canonical JSON of the envelope without
// its hash), hex encoded. The payload is hashed as stored, so erasing a
// workspace's keys never breaks the chain.
func ComputeHash(e EventEnvelope) (string, error) {
	e.Hash = ""
	b, err := json.Marshal(e)
	if err != nil {
		return "", fmt.Errorf("schemas: canonical event: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(e.PrevHash))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ChainError reports the first break in a workspace's hash chain.
type ChainError struct {
	WorkspaceID string
	Seq         int64
	Reason      string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("chain broken in workspace %s at seq %d: %s", e.WorkspaceID, e.Seq, e.Reason)
}

// Verify checks that e follows chain: next seq, matching prev_hash and a hash
// that recomputes. It returns the advanced chain.
func Verify(chain Chain, e EventEnvelope) (Chain, error) {
	if e.Seq != chain.Seq+1 {
		return chain, &ChainError{e.WorkspaceID, e.Seq, fmt.Sprintf("expected seq %d", chain.Seq+1)}
	}
	if e.PrevHash != chain.Hash {
		return chain, &ChainError{e.WorkspaceID, e.Seq, "prev_hash does not match the previous event's hash"}
	}
	h, err := ComputeHash(e)
	if err != nil {
		return chain, err
	}
	if h != e.Hash {
		return chain, &ChainError{e.WorkspaceID, e.Seq, "hash does not match the event's content"}
	}
	return Chain{Seq: e.Seq, Hash: e.Hash}, nil
}
