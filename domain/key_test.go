package domain_test

import (
	"strings"
	"testing"

	"github.com/logbook-dev/logbook/domain"
)

const keyHash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

func keyCommand(typ string, payload any) domain.Command {
	c := command(typ, payload)
	c.WorkspaceID = domain.KeyRegistry
	return c
}

func TestKeyLifecycle(t *testing.T) {
	issue := keyCommand(domain.CmdKeyIssue, domain.KeyIssueCmd{KeyID: "k1", Role: domain.RoleWriter, Label: " ci ", Hash: keyHash})
	s, events, err := decide(t, domain.State{}, issue)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Type != domain.EvKeyIssued || events[0].Aggregate != (domain.AggregateRef{Type: domain.AggregateKey, ID: "k1", Version: 1}) {
		t.Fatalf("issue events: %+v", events)
	}
	if k := s.Key; k == nil || k.Role != domain.RoleWriter || k.Label != "ci" || k.Hash != keyHash || k.Status != domain.KeyStatusActive || !k.IssuedAt.Equal(now) {
		t.Fatalf("issued key: %+v", s.Key)
	}
	if _, _, err := decide(t, s, issue); domain.ErrorCode(err) != domain.CodeConflict {
		t.Fatalf("issuing a key id twice: %v", err)
	}

	revoke := keyCommand(domain.CmdKeyRevoke, domain.KeyRevokeCmd{KeyID: "k1"})
	if _, _, err := decide(t, domain.State{}, revoke); domain.ErrorCode(err) != domain.CodeNotFound {
		t.Fatalf("revoking an unknown key: %v", err)
	}
	s, _, err = decide(t, s, revoke)
	if err != nil || s.Key.Status != domain.KeyStatusRevoked || s.Key.Version != 2 {
		t.Fatalf("revoke: %v %+v", err, s.Key)
	}
	if _, _, err := decide(t, s, revoke); domain.ErrorCode(err) != domain.CodeConflict {
		t.Fatalf("revoking twice: %v", err)
	}
	// A revoked id is never issued again: its events stay in the trail.
	if _, _, err := decide(t, s, issue); domain.ErrorCode(err) != domain.CodeConflict {
		t.Fatalf("reissuing a revoked id: %v", err)
	}
	// The state of another key is not this one's.
	other := keyCommand(domain.CmdKeyRevoke, domain.KeyRevokeCmd{KeyID: "k2"})
	if _, _, err := decide(t, s, other); domain.ErrorCode(err) != domain.CodeNotFound {
		t.Fatalf("revoking k2 with k1's state: %v", err)
	}
}

func TestKeyCommandsAreTheAdminsAlone(t *testing.T) {
	issue := keyCommand(domain.CmdKeyIssue, domain.KeyIssueCmd{KeyID: "k1", Role: domain.RoleAdmin, Hash: keyHash})
	for _, role := range []string{domain.RoleWriter, domain.RoleReader, domain.RoleAuditor, "forged"} {
		_, _, err := decide(t, domain.State{}, as(issue, "mallory", role))
		if domain.ErrorCode(err) != domain.CodeForbidden || !strings.Contains(err.Error(), `"`+role+`"`) {
			t.Errorf("%s issues a key: %v", role, err)
		}
	}
}

func TestKeyFieldsAndStream(t *testing.T) {
	ok := domain.KeyIssueCmd{KeyID: "k1", Role: domain.RoleReader, Hash: keyHash}
	for _, tc := range []struct {
		name  string
		cmd   domain.Command
		field string
	}{
		{"role", keyCommand(domain.CmdKeyIssue, domain.KeyIssueCmd{KeyID: "k1", Role: "root", Hash: keyHash}), "role"},
		{"short hash", keyCommand(domain.CmdKeyIssue, domain.KeyIssueCmd{KeyID: "k1", Role: "reader", Hash: keyHash[:10]}), "hash"},
		{"upper-case hash", keyCommand(domain.CmdKeyIssue, domain.KeyIssueCmd{KeyID: "k1", Role: "reader", Hash: strings.ToUpper(keyHash)}), "hash"},
		{"label", keyCommand(domain.CmdKeyIssue, domain.KeyIssueCmd{KeyID: "k1", Role: "reader", Hash: keyHash, Label: strings.Repeat("x", domain.MaxLabelLen+1)}), "label"},
		{"key id", keyCommand(domain.CmdKeyIssue, domain.KeyIssueCmd{Role: "reader", Hash: keyHash}), "key_id"},
		{"another stream", command(domain.CmdKeyIssue, ok), "workspace_id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decide(t, domain.State{}, tc.cmd)
			wantError(t, err, domain.CodeInvalid, tc.field)
			wantError(t, domain.Validate(tc.cmd), domain.CodeInvalid, tc.field)
		})
	}
	// No workspace may take the registry's id.
	create := command(domain.CmdWorkspaceCreate, domain.WorkspaceCreateCmd{Name: "keys"})
	create.WorkspaceID = domain.KeyRegistry
	_, _, err := decide(t, domain.State{}, create)
	wantError(t, err, domain.CodeInvalid, "workspace_id")
	wantError(t, domain.Validate(create), domain.CodeInvalid, "workspace_id")
}
