package domain

import "strings"

// Sensitive fields (task input, outputs, agent instructions, failure and
// cancel reasons) are encrypted by whoever writes a command, before it
// enters the log (internal/fieldcrypt). The domain never needs their
// plaintext: it accepts a field either as acceptable text within its limit
// or in its sealed form, bounded by the sealed size of that limit.

// SealedPrefix starts a sealed field: "lbx1.<generation>.<base64url>".
const SealedPrefix = "lbx1."

// sealOverhead is what sealing adds to a field's bytes: a 12-byte nonce and
// a 16-byte tag.
const sealOverhead = 12 + 16

// MaxSealedLen bounds the sealed form of a field of at most max characters
// (4 bytes each in UTF-8): the prefix, a generation of up to 10 digits and
// a dot, then the unpadded base64url of nonce, ciphertext and tag.
func MaxSealedLen(max int) int {
	n := 4*max + sealOverhead
	return len(SealedPrefix) + 11 + (n*8+5)/6
}

// Slot names the place a sensitive value lives in: sealing binds the
// ciphertext to it and to its workspace, so a value copied to another task,
// field or workspace does not open. Commands and the events they become
// share slots.
func Slot(kind, id, field string) string { return kind + "/" + id + "/" + field }

// The sensitive fields, as slot field names.
const (
	FieldInput         = "input"
	FieldOutput        = "output"
	FieldFailureReason = "failure_reason"
	FieldCancelReason  = "cancel_reason"
	FieldInstructions  = "instructions"
)

// isSealed reports whether v has the sealed form: the prefix, a generation
// (digits), a dot and base64url. The ciphertext is for the key holder to
// judge.
func isSealed(v string) bool {
	rest, ok := strings.CutPrefix(v, SealedPrefix)
	if !ok {
		return false
	}
	gen, body, ok := strings.Cut(rest, ".")
	if !ok || gen == "" || len(gen) > 10 || body == "" {
		return false
	}
	for _, c := range gen {
		if c < '0' || c > '9' {
			return false
		}
	}
	for _, c := range body {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// checkSensitive checks a sensitive field: sealed and within the sealed
// bound of max, or else acceptable text of at most max characters.
func checkSensitive(field, v string, max int) error {
	if !isSealed(v) {
		return checkText(field, v, max)
	}
	if len(v) > MaxSealedLen(max) {
		return Invalid(field, "sealed value is longer than the sealed form of %d characters", max)
	}
	return nil
}

// sensitiveReason checks a reason: a sealed one as it is (it was trimmed
// before sealing), else trimmed as required or optional text.
func sensitiveReason(field, v string, max int, isRequired bool) (string, error) {
	switch {
	case isSealed(v):
		return v, checkSensitive(field, v, max)
	case isRequired:
		return required(field, v, max)
	default:
		return optional(field, v, max)
	}
}

// SealFields returns the command's payload with f applied to each of its
// sensitive fields that is not empty: f gets the field's slot and value and
// returns what the field holds from then on. Payloads without sensitive
// fields come back as they are; the others as a pointer to a copy.
//
// What it is given is plaintext, held to the plaintext rules: text that
// merely looks sealed passes Validate, and must not pass here with more
// characters than the field allows.
func SealFields(cmd Command, f func(slot, v string) (string, error)) (any, error) {
	apply := func(kind, id, field, name string, max int, v *string) error {
		if *v == "" {
			return nil
		}
		if err := checkText(name, *v, max); err != nil {
			return err
		}
		s, err := f(Slot(kind, id, field), *v)
		*v = s
		return err
	}
	switch cmd.Type {
	case CmdWorkspaceRegisterAgent:
		if p, ok := payloadAs[WorkspaceRegisterAgentCmd](cmd.Payload); ok {
			return &p, apply("agent", p.AgentID, FieldInstructions, "instructions", MaxTextLen, &p.Instructions)
		}
	case CmdTaskCreate:
		if p, ok := payloadAs[TaskCreateCmd](cmd.Payload); ok {
			return &p, apply("task", p.TaskID, FieldInput, "input", MaxTextLen, &p.Input)
		}
	case CmdTaskRecordResult:
		if p, ok := payloadAs[TaskRecordResultCmd](cmd.Payload); ok {
			return &p, apply("task", p.TaskID, FieldOutput, "output", MaxTextLen, &p.Output)
		}
	case CmdTaskComplete:
		if p, ok := payloadAs[TaskCompleteCmd](cmd.Payload); ok {
			return &p, apply("task", p.TaskID, FieldOutput, "output", MaxTextLen, &p.Output)
		}
	case CmdTaskFailAttempt:
		if p, ok := payloadAs[TaskFailAttemptCmd](cmd.Payload); ok {
			return &p, apply("task", p.TaskID, FieldFailureReason, "reason", MaxReasonLen, &p.Reason)
		}
	case CmdTaskCancel:
		if p, ok := payloadAs[TaskCancelCmd](cmd.Payload); ok {
			return &p, apply("task", p.TaskID, FieldCancelReason, "reason", MaxReasonLen, &p.Reason)
		}
	}
	return cmd.Payload, nil
}

// EventField is where an event type carries a sensitive field, in its JSON
// payload: the field, and the id field and aggregate kind that, with the
// slot field, make its slot.
type EventField struct {
	JSON, IDJSON, Kind, Slot string
}

// SealedEventFields lists the sensitive field of every event type that has
// one, for readers of the log that open them (replay with the key service).
var SealedEventFields = map[string]EventField{
	EvWorkspaceAgentRegistered: {JSON: "instructions", IDJSON: "agent_id", Kind: "agent", Slot: FieldInstructions},
	EvTaskCreated:              {JSON: "input", IDJSON: "task_id", Kind: "task", Slot: FieldInput},
	EvTaskResultRecorded:       {JSON: "output", IDJSON: "task_id", Kind: "task", Slot: FieldOutput},
	EvTaskCompleted:            {JSON: "output", IDJSON: "task_id", Kind: "task", Slot: FieldOutput},
	EvTaskAttemptFailed:        {JSON: "reason", IDJSON: "task_id", Kind: "task", Slot: FieldFailureReason},
	EvTaskCancelled:            {JSON: "reason", IDJSON: "task_id", Kind: "task", Slot: FieldCancelReason},
}
