package domain_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/logbook-dev/logbook/domain"
)

// fakeSeal stands in for the cipher: a sealed-form value that names its slot.
func fakeSeal(slot, v string) (string, error) {
	return domain.SealedPrefix + "1." + base64.RawURLEncoding.EncodeToString([]byte(slot+"="+v)), nil
}

// Every sensitive field of a command, sealed by SealFields, is decided into
// its event unchanged, and the event names the same slot through
// SealedEventFields: writers seal and readers open the same place.
func TestSealedFieldsPassTheDeciderIntoTheirEvents(t *testing.T) {
	inProgress := func(t *testing.T) domain.State { return withTask(t, activeWorkspace(t), domain.TaskStatusInProgress) }
	cases := []struct {
		state func(*testing.T) domain.State
		cmd   domain.Command
		event string
	}{
		{activeWorkspace, command(domain.CmdWorkspaceRegisterAgent, &domain.WorkspaceRegisterAgentCmd{
			AgentID: "bot3", Name: "B", Role: "writer", Model: "m", Instructions: "secret instructions"}), domain.EvWorkspaceAgentRegistered},
		{activeWorkspace, command(domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: "t9", Title: "t", Input: "secret input"}), domain.EvTaskCreated},
		{inProgress, command(domain.CmdTaskRecordResult, domain.TaskRecordResultCmd{TaskID: taskID, Attempt: 1, Output: "secret output"}), domain.EvTaskResultRecorded},
		{inProgress, command(domain.CmdTaskComplete, &domain.TaskCompleteCmd{TaskID: taskID, Output: "secret output"}), domain.EvTaskCompleted},
		{inProgress, command(domain.CmdTaskFailAttempt, domain.TaskFailAttemptCmd{TaskID: taskID, Attempt: 1, Reason: "secret reason"}), domain.EvTaskAttemptFailed},
		{inProgress, command(domain.CmdTaskCancel, &domain.TaskCancelCmd{TaskID: taskID, Reason: "secret reason"}), domain.EvTaskCancelled},
	}
	for _, c := range cases {
		t.Run(c.cmd.Type, func(t *testing.T) {
			var slots []string
			sealed, err := domain.SealFields(c.cmd, func(slot, v string) (string, error) {
				slots = append(slots, slot)
				return fakeSeal(slot, v)
			})
			if err != nil || len(slots) != 1 {
				t.Fatalf("SealFields: err %v, sealed slots %v: want one", err, slots)
			}
			cmd := c.cmd
			cmd.Payload = sealed
			if err := domain.Validate(cmd); err != nil {
				t.Fatalf("a sealed command must validate: %v", err)
			}
			_, events, err := decide(t, c.state(t), cmd)
			if err != nil {
				t.Fatalf("a sealed command must be decided as its plaintext would: %v", err)
			}
			f, ok := domain.SealedEventFields[c.event]
			if !ok {
				t.Fatalf("%s is not in SealedEventFields", c.event)
			}
			for _, e := range events {
				if e.Type != c.event {
					continue
				}
				b, _ := json.Marshal(e.Payload)
				var m map[string]string
				_ = json.Unmarshal(b, &m)
				if got := domain.Slot(f.Kind, m[f.IDJSON], f.Slot); got != slots[0] {
					t.Fatalf("the event names slot %q, the command sealed %q", got, slots[0])
				}
				if !strings.HasPrefix(m[f.JSON], domain.SealedPrefix) || strings.Contains(m[f.JSON], "secret") {
					t.Fatalf("event field %s = %q: want the sealed value", f.JSON, m[f.JSON])
				}
				return
			}
			t.Fatalf("no %s event in %v", c.event, events)
		})
	}
}

func TestSealedFieldsAreBounded(t *testing.T) {
	s := activeWorkspace(t)
	long := domain.SealedPrefix + "1." + strings.Repeat("A", domain.MaxSealedLen(domain.MaxTextLen))
	_, _, err := decide(t, s, command(domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: "t9", Title: "t", Input: long}))
	wantError(t, err, domain.CodeInvalid, "input")
	// Not the sealed form: plaintext, checked as such.
	notSealed := domain.SealedPrefix + "1.\x00"
	_, _, err = decide(t, s, command(domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: "t9", Title: "t", Input: notSealed}))
	wantError(t, err, domain.CodeInvalid, "input")
	// Plaintext that looks sealed is accepted as text: its writer seals it.
	ok := domain.SealedPrefix + "1.é"
	if _, _, err = decide(t, s, command(domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: "t9", Title: "t", Input: ok})); err != nil {
		t.Fatal(err)
	}
}

// Text that looks sealed is accepted by Validate, which cannot tell it
// from a sealed value; the writer seals plaintext, and SealFields holds it
// to the plaintext limit, so the look-alike cannot carry more characters
// than the field allows into the log.
func TestSealFieldsHoldsPlaintextToItsLimits(t *testing.T) {
	lookalike := domain.SealedPrefix + "1." + strings.Repeat("A", domain.MaxTextLen+1)
	cmd := command(domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: "t9", Title: "t", Input: lookalike})
	if err := domain.Validate(cmd); err != nil {
		t.Fatalf("precondition: Validate takes it for sealed: %v", err)
	}
	called := false
	_, err := domain.SealFields(cmd, func(slot, v string) (string, error) { called = true; return fakeSeal(slot, v) })
	wantError(t, err, domain.CodeInvalid, "input")
	if called {
		t.Fatal("an over-long plaintext was handed to the cipher")
	}
	reason := command(domain.CmdTaskCancel, &domain.TaskCancelCmd{TaskID: taskID, Reason: strings.Repeat("r", domain.MaxReasonLen+1)})
	_, err = domain.SealFields(reason, fakeSeal)
	wantError(t, err, domain.CodeInvalid, "reason")
}

func TestNormalizeReturnsWhatDecideRecords(t *testing.T) {
	cmd, err := domain.Normalize(command(domain.CmdTaskCancel, domain.TaskCancelCmd{TaskID: taskID, Reason: "  obsolete "}))
	if err != nil {
		t.Fatal(err)
	}
	if p, ok := cmd.Payload.(*domain.TaskCancelCmd); !ok || p.Reason != "obsolete" {
		t.Fatalf("payload %#v: want *TaskCancelCmd with the reason trimmed", cmd.Payload)
	}
	if _, err := domain.Normalize(command(domain.CmdTaskCancel, &domain.TaskCreateCmd{})); err == nil {
		t.Fatal("a payload of another type must be refused")
	}
}
