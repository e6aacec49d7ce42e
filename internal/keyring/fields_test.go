package keyring_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/kafka"
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

// A read of the key topic that fails is no reason to make a new key: that
// key would replace the workspace's and lose what the old one sealed.
func TestAFailedReadNeverReplacesAKey(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cfg := kafka.Config{Brokers: c.ListenAddrs(), Prefix: "k.", Partitions: 1}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t)
	if err := kafka.EnsureTopics(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	ks := masterKeys(t, newKey(t, "m1"))
	first := open(t, cfg, ks)
	sealed, err := first.Seal(ctx, domain.Command{ID: "c", Type: domain.CmdTaskCreate, WorkspaceID: "ws",
		Payload: &domain.TaskCreateCmd{TaskID: "t", Title: "t", Input: "kept"}})
	if err != nil {
		t.Fatal(err)
	}
	later, err := keyring.New(cfg, ks) // a process that has not read the topic yet
	if err != nil {
		t.Fatal(err)
	}
	defer later.Close()
	var failing atomic.Bool
	failing.Store(true)
	c.ControlKey(int16(kmsg.ListOffsets), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if failing.Load() {
			return nil, errors.New("broker unreachable"), true
		}
		return nil, nil, false
	})
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	_, err = later.Seal(rctx, domain.Command{ID: "c2", Type: domain.CmdTaskCreate, WorkspaceID: "ws",
		Payload: &domain.TaskCreateCmd{TaskID: "t2", Title: "t", Input: "new"}})
	cancel()
	if err == nil {
		t.Fatal("sealing while the key topic cannot be read succeeded: with which key?")
	}
	failing.Store(false)
	in := sealed.Payload.(*domain.TaskCreateCmd).Input
	for _, r := range []*keyring.Ring{later, open(t, cfg, ks)} {
		if got, err := r.Open(ctx, "ws", domain.Slot("task", "t", domain.FieldInput), in); err != nil || got != "kept" {
			t.Fatalf("after the failed read, the first value opens as %q, %v", got, err)
		}
	}
}
