package signing_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/signing"
	"github.com/logbook-dev/logbook/schemas"
)

func keys(t *testing.T) (*signing.Signer, *signing.Verifier) {
	t.Helper()
	priv, pub, err := signing.NewKey("api-1")
	if err != nil {
		t.Fatal(err)
	}
	s, err := signing.ParseSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := signing.ParseVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func envelope(t *testing.T, id string) *schemas.CommandEnvelope {
	t.Helper()
	v := int64(3)
	env, err := schemas.EncodeCommand(domain.Command{ID: id, Type: domain.CmdWorkspaceRename, WorkspaceID: "ws",
		Actor: domain.Actor{ID: "alice", Role: domain.RoleWriter}, IssuedAt: time.Now(),
		Payload: &domain.WorkspaceRenameCmd{Name: "n"}}, "corr-1")
	if err != nil {
		t.Fatal(err)
	}
	env.ExpectedVersion, env.RequestDigest = &v, "ab12"
	return &env
}

// A signed command verifies, and so does every event the decider makes of
// it, from the event alone (through JSON, as auditors read it); any change
// to what the command or the event claims does not.
func TestSignedCommandsAndTheirEventsVerify(t *testing.T) {
	s, v := keys(t)
	cmds := []*schemas.CommandEnvelope{envelope(t, "c1"), envelope(t, "c2"), envelope(t, "c3")}
	if err := s.SignCommands(cmds); err != nil {
		t.Fatal(err)
	}
	for _, c := range cmds {
		if err := v.VerifyCommand(*c); err != nil {
			t.Fatalf("%s: %v", c.ID, err)
		}
	}
	c := *cmds[1]
	evs, _, err := schemas.Seal(schemas.Chain{}, schemas.EventMeta{WorkspaceID: c.WorkspaceID, CommandID: c.ID,
		CorrelationID: c.CorrelationID, Actor: c.Actor, Signed: c.Signed()},
		[]domain.Event{{Type: domain.EvWorkspaceRenamed, Aggregate: domain.AggregateRef{Type: domain.AggregateWorkspace, ID: "ws", Version: 4},
			OccurredAt: time.Now(), Payload: domain.WorkspaceRenamed{Name: "n"}}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(evs[0])
	var ev schemas.EventEnvelope
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyEvent(ev); err != nil {
		t.Fatalf("event of a signed command: %v", err)
	}

	forged := c
	forged.Actor.Role = domain.RoleAdmin
	if err := v.VerifyCommand(forged); !errors.Is(err, signing.ErrBadProof) {
		t.Fatalf("a changed actor: %v, want ErrBadProof", err)
	}
	forged = c
	forged.Payload = json.RawMessage(`{"name":"other"}`)
	if err := v.VerifyCommand(forged); !errors.Is(err, signing.ErrBadProof) {
		t.Fatalf("a changed payload: %v, want ErrBadProof", err)
	}
	forged = c
	forged.Signature = nil
	if err := v.VerifyCommand(forged); !errors.Is(err, signing.ErrUnsigned) {
		t.Fatalf("no signature: %v, want ErrUnsigned", err)
	}
	sig := *c.Signature
	end := "00"
	if strings.HasSuffix(sig.Sig, end) { // one signature in 256: change it all the same
		end = "01"
	}
	sig.Sig = sig.Sig[:len(sig.Sig)-2] + end
	forged = c
	forged.Signature = &sig
	if err := v.VerifyCommand(forged); !errors.Is(err, signing.ErrBadSig) {
		t.Fatalf("a changed signature: %v, want ErrBadSig", err)
	}
	other, _ := keys(t)
	foreign := envelope(t, "c9")
	if err := other.SignCommands([]*schemas.CommandEnvelope{foreign}); err != nil {
		t.Fatal(err)
	}
	if err := v.VerifyCommand(*foreign); err == nil {
		t.Fatal("a key with an accepted id but another secret must not verify")
	}

	huge := c
	hs := *c.Signature
	hs.KeyID = strings.Repeat("k", 100_000)
	huge.Signature = &hs
	if err := v.VerifyCommand(huge); !errors.Is(err, signing.ErrUnknownKey) || len(err.Error()) > 200 {
		t.Fatalf("an unknown key id of 100,000 bytes: an error of %d bytes (%.80v…), want ErrUnknownKey, short", len(err.Error()), err)
	}

	evForged := ev
	evForged.Actor = domain.Actor{ID: "mallory", Role: domain.RoleAdmin}
	if err := v.VerifyEvent(evForged); err == nil {
		t.Fatal("an event whose actor changed must not verify")
	}
	evForged = ev
	evForged.Signed = nil
	if err := v.VerifyEvent(evForged); !errors.Is(err, signing.ErrUnsigned) {
		t.Fatalf("an event without signature: %v", err)
	}
}

// Concurrent writers share signatures under load, and every command
// verifies with its own proof.
func TestBatcherSignsConcurrentCommands(t *testing.T) {
	s, v := keys(t)
	b := signing.NewBatcher(s, 64, time.Millisecond)
	defer b.Close()
	const n = 2000
	envs := make([]*schemas.CommandEnvelope, n)
	errs := make(chan error, n)
	for i := range envs {
		envs[i] = envelope(t, "c"+strconv.Itoa(i))
		go func(e *schemas.CommandEnvelope) { errs <- b.Sign(context.Background(), e) }(envs[i])
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	roots := map[string]bool{}
	for _, e := range envs {
		if err := v.VerifyCommand(*e); err != nil {
			t.Fatalf("%s: %v", e.ID, err)
		}
		if e.Signature.Size > 64 {
			t.Fatalf("batch of %d, max 64", e.Signature.Size)
		}
		roots[e.Signature.Root] = true
	}
	t.Logf("figures: %d commands from %d goroutines signed with %d signatures", n, n, len(roots))
	if len(roots) == n {
		t.Log("no batch formed (a machine that signs faster than goroutines arrive)")
	}
	b.Close()
	if err := b.Sign(context.Background(), envelope(t, "late")); !errors.Is(err, signing.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// The -v1 files were signed by this code's first version, form 1 of the
// signed bytes: a command as the API appended it (the second of a batch of
// three) and the event the decider made of it. A change to what is signed
// must keep them verifying, or every signature already in logs would fail
// its audit.
func TestSignaturesOfTheFirstFormStillVerify(t *testing.T) {
	read := func(name string, v any) []byte {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		b = bytes.TrimSpace(b)
		if v != nil {
			if err := json.Unmarshal(b, v); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
		return b
	}
	v, err := signing.ParseVerifier(string(read("public-keys", nil)))
	if err != nil {
		t.Fatal(err)
	}
	var cmd schemas.CommandEnvelope
	raw := read("command-signed-v1.json", &cmd)
	if again, _ := json.Marshal(cmd); !bytes.Equal(again, raw) {
		t.Fatalf("the command does not round-trip:\nstored  %s\nwritten %s", raw, again)
	}
	if err := v.VerifyCommand(cmd); err != nil || cmd.Signature.Size != 3 || cmd.Signature.Index != 1 {
		t.Fatalf("command: %v (signature %+v)", err, cmd.Signature)
	}
	var ev schemas.EventEnvelope
	read("event-signed-v1.json", &ev)
	if err := v.VerifyEvent(ev); err != nil {
		t.Fatalf("event: %v", err)
	}
	if h, err := schemas.ComputeHash(ev); err != nil || h != ev.Hash {
		t.Fatalf("event hash %s, stored %s (%v)", h, ev.Hash, err)
	}
}
