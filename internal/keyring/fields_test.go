package keyring_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/keyring"
)

// A command sealed by one process opens in another that shares only the
// log and the master key; plaintext written before encryption reads as it
// is; an erased workspace's commands are refused like an unknown workspace
// and its values no longer open anywhere.
func TestSealedFieldsOpenElsewhereUntilErased(t *testing.T) {
	cfg := setup(t)
	ks := masterKeys(t, newKey(t, "m1"))
	api, reader := open(t, cfg, ks), open(t, cfg, ks)
	ctx := ctxFor(t)
	cmd := func(typ string, payload any) domain.Command {
		return domain.Command{ID: "c", Type: typ, WorkspaceID: "ws1", Actor: domain.Actor{ID: "a", Role: domain.RoleAdmin}, Payload: payload}
	}
	if _, err := api.Seal(ctx, cmd(domain.CmdWorkspaceCreate, &domain.WorkspaceCreateCmd{Name: "w"})); err != nil {
		t.Fatal(err)
	}
	sealed, err := api.Seal(ctx, cmd(domain.CmdTaskCreate, domain.TaskCreateCmd{TaskID: "t1", Title: "t", Input: "MARKER-input"}))
	if err != nil {
		t.Fatal(err)
	}
	in := sealed.Payload.(*domain.TaskCreateCmd).Input
	if !strings.HasPrefix(in, domain.SealedPrefix) || strings.Contains(in, "MARKER") {
		t.Fatalf("input %q: want it sealed", in)
	}
	slot := domain.Slot("task", "t1", domain.FieldInput)
	if got, err := reader.Open(ctx, "ws1", slot, in); err != nil || got != "MARKER-input" {
		t.Fatalf("another process opens %q, %v", got, err)
	}
	if _, err := reader.Open(ctx, "ws1", domain.Slot("task", "t2", domain.FieldInput), in); err == nil {
		t.Fatal("a value moved to another slot must not open")
	}
	if got, err := reader.Open(ctx, "ws1", slot, "written before encryption"); err != nil || got != "written before encryption" {
		t.Fatalf("plaintext from before encryption: %q, %v", got, err)
	}

	// A workspace created before encryption gets its key with its first
	// sensitive field.
	old, err := api.Seal(ctx, domain.Command{ID: "c2", Type: domain.CmdTaskCancel, WorkspaceID: "legacy",
		Payload: &domain.TaskCancelCmd{TaskID: "t1", Reason: "MARKER-reason"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := reader.Open(ctx, "legacy", domain.Slot("task", "t1", domain.FieldCancelReason), old.Payload.(*domain.TaskCancelCmd).Reason); err != nil || got != "MARKER-reason" {
		t.Fatalf("legacy workspace: %q, %v", got, err)
	}

	eraser, err := keyring.New(cfg, nil) // the projector erases without the master key
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(eraser.Close)
	if err := eraser.Erase(ctx, "ws1"); err != nil {
		t.Fatal(err)
	}
	if err := reader.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Open(ctx, "ws1", slot, in); !errors.Is(err, keyring.ErrErased) {
		t.Fatalf("after erase: %v, want ErrErased", err)
	}
	_ = api.Refresh(ctx)
	_, err = api.Seal(ctx, cmd(domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: "t3", Title: "t", Input: "x"}))
	if domain.ErrorCode(err) != domain.CodeNotFound {
		t.Fatalf("sealing for an erased workspace: %v, want not found", err)
	}
	other := cmd(domain.CmdTaskCreate, &domain.TaskCreateCmd{TaskID: "t3", Title: "t", Input: "x"})
	other.WorkspaceID = "ws9"
	if _, err := eraser.Seal(ctx, other); !errors.Is(err, keyring.ErrNoKeyService) {
		t.Fatalf("a ring without a key service sealed: %v", err)
	}
}
