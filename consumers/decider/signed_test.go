package decider_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/signing"
	"github.com/logbook-dev/logbook/schemas"
)

// A decider that verifies signatures decides signed commands, keeps the
// proof in their events, and rejects, without an event, a command produced
// straight to the topic unsigned, signed by an unknown key, or signed and
// then changed (a forged actor).
func TestDeciderRefusesCommandsWhoseSignatureDoesNotVerify(t *testing.T) {
	h := newHarness(t)
	priv, pub, err := signing.NewKey("api-1")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := signing.ParseSigner(priv)
	verifier, _ := signing.ParseVerifier(pub)
	strangerKey, _, _ := signing.NewKey("api-1")
	stranger, _ := signing.ParseSigner(strangerKey)
	stop := h.startDeciderWith(verifier)
	defer stop()

	ws := newID()
	produce := func(s *signing.Signer, typ string, payload any, change func(*schemas.CommandEnvelope)) string {
		t.Helper()
		env, err := schemas.EncodeCommand(domain.Command{ID: newID(), Type: typ, WorkspaceID: ws,
			Actor: domain.Actor{ID: "alice", Role: domain.RoleWriter}, IssuedAt: time.Now(), Payload: payload}, "")
		if err != nil {
			t.Fatal(err)
		}
		if s != nil {
			if err := s.SignCommands([]*schemas.CommandEnvelope{&env}); err != nil {
				t.Fatal(err)
			}
		}
		if change != nil {
			change(&env)
		}
		val, _ := json.Marshal(env)
		if err := h.cl.ProduceSync(context.Background(), &kgo.Record{Topic: h.cfg.Topics().Commands, Key: []byte(ws), Value: val}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		return env.ID
	}
	create := produce(signer, domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: "w"}, nil)
	unsigned := produce(nil, domain.CmdWorkspaceRename, &domain.WorkspaceRenameCmd{Name: "unsigned"}, nil)
	unknown := produce(stranger, domain.CmdWorkspaceRename, &domain.WorkspaceRenameCmd{Name: "stranger"}, nil)
	forged := produce(signer, domain.CmdWorkspaceRename, &domain.WorkspaceRenameCmd{Name: "forged"}, func(e *schemas.CommandEnvelope) {
		e.Actor = domain.Actor{ID: "forged-no-such-key", Role: domain.RoleAdmin}
	})
	rename := produce(signer, domain.CmdWorkspaceRename, &domain.WorkspaceRenameCmd{Name: "signed"}, nil)

	results := map[string]schemas.Result{}
	for _, r := range read(h, h.cfg.Topics().Results, atLeast[schemas.Result](5)) {
		results[r.CommandID] = r
	}
	for _, id := range []string{create, rename} {
		if r := results[id]; r.Status != schemas.ResultAccepted {
			t.Fatalf("a signed command: %+v", r)
		}
	}
	for name, id := range map[string]string{"unsigned": unsigned, "unknown key": unknown, "forged actor": forged} {
		if r := results[id]; r.Status != schemas.ResultRejected || r.Code != domain.CodeForbidden || r.Field != "signature" || len(r.Events) != 0 {
			t.Fatalf("%s: %+v, want rejected naming the signature", name, r)
		}
	}
	events := readAll[schemas.EventEnvelope](h, h.cfg.Topics().Events)
	// workspace.created and member_added (its creator), then the signed rename.
	if len(events) != 3 || events[2].Type != domain.EvWorkspaceRenamed || events[2].CommandID != rename || events[2].Seq != 3 {
		t.Fatalf("want the signed commands' events alone, seq 1 to 3, got %+v", events)
	}
	for _, e := range events {
		if err := verifier.VerifyEvent(e); err != nil {
			t.Fatalf("event %d: %v", e.Seq, err)
		}
	}
}
