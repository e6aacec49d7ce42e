package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

// commandSpace namespaces the worker's command ids.
var commandSpace = uuid.MustParse("5b0f3c1e-8a4e-4e55-9b7c-2f1d6a1c0b7e")

// Command steps of one attempt: its start and its one outcome (result or
// failure), so a redelivered event or a second answer to the same attempt
// is answered with the first outcome, never recorded twice.
const (
	stepStart   = "start"
	stepOutcome = "outcome"
)

// CommandID derives the id of the command the worker sends for one step of
// one attempt of a task.
func CommandID(workspaceID, taskID string, attempt int, step string) string {
	name := strings.Join([]string{workspaceID, taskID, strconv.Itoa(attempt), step}, "\x00")
	return uuid.NewSHA1(commandSpace, []byte(name)).String()
}

// command builds the message carrying one command, caused by env: keyed by
// workspace, with the CloudEvents headers every command record has.
func (w *Worker) command(ctx context.Context, env schemas.EventEnvelope, id, typ string, payload any) (*message.Message, error) {
	corr := env.CorrelationID
	if corr == "" {
		corr = env.CommandID
	}
	cmd := domain.Command{
		ID: id, Type: typ, WorkspaceID: env.WorkspaceID,
		Actor:    domain.Actor{ID: w.cfg.Principal, Role: domain.RoleAgent},
		IssuedAt: time.Now(), Payload: payload,
	}
	if w.deps.Fields != nil {
		var err error
		if cmd, err = w.deps.Fields.Seal(ctx, cmd); err != nil {
			return nil, fmt.Errorf("agent: seal %s: %w", typ, err)
		}
	}
	ce, err := schemas.EncodeCommand(cmd, corr)
	if err != nil {
		return nil, err
	}
	if w.deps.Signer != nil {
		if err := w.deps.Signer.SignCommands([]*schemas.CommandEnvelope{&ce}); err != nil {
			return nil, fmt.Errorf("agent: sign %s: %w", typ, err)
		}
	}
	b, err := json.Marshal(ce)
	if err != nil {
		return nil, fmt.Errorf("agent: encode %s: %w", typ, err)
	}
	msg := message.NewMessage(id, b)
	msg.Metadata.Set(keyMetadata, env.WorkspaceID)
	for _, h := range schemas.CommandHeaders(ce) {
		msg.Metadata.Set(h.Key, string(h.Value))
	}
	return msg, nil
}

// fitText makes provider text acceptable to the domain: valid UTF-8, no
// NUL, at most max characters. An answer the decider would refuse would
// leave the task in progress for ever.
func fitText(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.ReplaceAll(s, "\x00", "")
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max {
			return s[:i]
		}
		n++
	}
	return s
}

// fitUsage clamps token counts a provider reported to what the domain takes.
func fitUsage(u domain.TokenUsage) domain.TokenUsage {
	return domain.TokenUsage{PromptTokens: max(u.PromptTokens, 0), CompletionTokens: max(u.CompletionTokens, 0)}
}
