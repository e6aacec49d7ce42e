package fieldcrypt_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/fieldcrypt"
)

func dataKey(t testing.TB, ws string, gen int) (*fieldcrypt.DataKey, []byte) {
	t.Helper()
	raw, err := fieldcrypt.NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	k, err := fieldcrypt.OpenDataKey(ws, gen, raw)
	if err != nil {
		t.Fatal(err)
	}
	return k, raw
}

func TestSealOpensOnlyInItsWorkspaceAndField(t *testing.T) {
	k, raw := dataKey(t, "ws-1", 1)
	const marker = "MARKER-7f3a secret plans ✓"
	sealed, err := k.Seal("input", marker)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "MARKER") || !fieldcrypt.IsSealed(sealed) || !strings.HasPrefix(sealed, "lbx1.1.") {
		t.Fatalf("sealed %q", sealed)
	}
	if got, err := k.Open("input", sealed); err != nil || got != marker {
		t.Fatalf("open: %q %v", got, err)
	}
	again, _ := k.Seal("input", marker)
	if again == sealed {
		t.Error("two seals of one value are equal: the nonce is not fresh")
	}
	if _, err := k.Open("output", sealed); !errors.Is(err, fieldcrypt.ErrOpen) {
		t.Errorf("opened as another field: %v", err)
	}
	other, _ := fieldcrypt.OpenDataKey("ws-2", 1, raw)
	if _, err := other.Open("input", sealed); !errors.Is(err, fieldcrypt.ErrOpen) {
		t.Errorf("opened in another workspace with the same key bytes: %v", err)
	}
	wrong, _ := dataKey(t, "ws-1", 1)
	if _, err := wrong.Open("input", sealed); !errors.Is(err, fieldcrypt.ErrOpen) {
		t.Errorf("opened with another key: %v", err)
	}
	next, _ := dataKey(t, "ws-1", 2)
	if _, err := next.Open("input", sealed); err == nil {
		t.Error("opened with another generation")
	}
	// One flipped character of the ciphertext fails to authenticate.
	b := []byte(sealed)
	i := len(b) - 5
	b[i] ^= 1
	if _, err := k.Open("input", string(b)); err == nil {
		t.Error("a changed ciphertext opened")
	}
}

func TestEmptyStaysEmptyAndPlaintextIsNotSealed(t *testing.T) {
	k, _ := dataKey(t, "ws", 1)
	if s, err := k.Seal("input", ""); err != nil || s != "" {
		t.Fatalf("empty sealed to %q %v", s, err)
	}
	for _, v := range []string{"", "plain text", "lbx1.", "lbx1.x.abc", "lbx1.0.abc", "lbx1.01.abc", "lbx1.+1.abc", "lbx1.1.***", "lbx2.1.abc"} {
		if _, err := k.Open("input", v); err == nil {
			t.Errorf("%q opened", v)
		}
	}
}

func TestMasterKeysRotate(t *testing.T) {
	ctx := context.Background()
	old, _ := fieldcrypt.NewMasterKey("2026-01")
	svc, err := fieldcrypt.ParseMasterKeys(old)
	if err != nil {
		t.Fatal(err)
	}
	_, raw := dataKey(t, "ws", 1)
	aad := []byte("ws")
	w, err := svc.Wrap(ctx, raw, aad)
	if err != nil || w.MasterKeyID != "2026-01" {
		t.Fatalf("wrap: %+v %v", w, err)
	}
	// A new current key, the old one kept: old wraps still open, new wraps
	// use the new key.
	nk, _ := fieldcrypt.NewMasterKey("2026-06")
	rotated, err := fieldcrypt.ParseMasterKeys("# current first\n" + nk + "\n" + old + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rotated.Unwrap(ctx, w, aad); err != nil || string(got) != string(raw) {
		t.Fatalf("old wrap under the rotated service: %v", err)
	}
	w2, _ := rotated.Wrap(ctx, raw, aad)
	if w2.MasterKeyID != "2026-06" {
		t.Errorf("rewrapped under %q", w2.MasterKeyID)
	}
	if _, err := rotated.Unwrap(ctx, w, []byte("other")); err == nil {
		t.Error("unwrapped with another aad")
	}
	retired, _ := fieldcrypt.ParseMasterKeys(nk)
	if _, err := retired.Unwrap(ctx, w, aad); !errors.Is(err, fieldcrypt.ErrUnknownMasterKey) {
		t.Errorf("retired key: %v", err)
	}
}

func TestMasterKeyErrorsNeverEchoKeys(t *testing.T) {
	secret := strings.Repeat("ab", 31) // 62 hex digits: one byte short
	for _, text := range []string{"", "# only a comment", "k1:" + secret, "k1:" + secret + "zz", "nocolon" + secret,
		"k1:" + strings.Repeat("ab", 32) + ",k1:" + strings.Repeat("cd", 32),
		strings.Repeat("ab", 32) + ":k1", // written the wrong way round
	} {
		_, err := fieldcrypt.ParseMasterKeys(text)
		if err == nil {
			t.Errorf("%.20q accepted", text)
			continue
		}
		if strings.Contains(err.Error(), "abab") || strings.Contains(err.Error(), "cdcd") {
			t.Errorf("error echoes key material: %v", err)
		}
	}
}

// A comment is a whole line: a comma in it does not make what follows a key.
func TestMasterKeyCommentsStayComments(t *testing.T) {
	cur, _ := fieldcrypt.NewMasterKey("new")
	old, _ := fieldcrypt.NewMasterKey("old")
	svc, err := fieldcrypt.ParseMasterKeys("# retired 2024, " + old + "\n" + cur + "\n")
	if err != nil || svc.Current() != "new" {
		t.Fatalf("current %v, %v", svc, err)
	}
	w := fieldcrypt.Wrapped{MasterKeyID: "old", Ciphertext: make([]byte, 40)}
	if _, err := svc.Unwrap(context.Background(), w, nil); !errors.Is(err, fieldcrypt.ErrUnknownMasterKey) {
		t.Errorf("a key in a comment is held: %v", err)
	}
	both, err := fieldcrypt.ParseMasterKeys(cur + "," + old)
	if err != nil || both.Current() != "new" {
		t.Fatalf("comma-separated: %v", err)
	}
}

func TestLoadMasterKeys(t *testing.T) {
	line, _ := fieldcrypt.NewMasterKey("k1")
	path := filepath.Join(t.TempDir(), "master.keys")
	if err := os.WriteFile(path, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if _, err := fieldcrypt.LoadMasterKeys(env(map[string]string{"LOGBOOK_MASTER_KEY_FILE": path})); err == nil {
		t.Error("a world-readable key file was accepted")
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	svc, err := fieldcrypt.LoadMasterKeys(env(map[string]string{"LOGBOOK_MASTER_KEY_FILE": path, "LOGBOOK_MASTER_KEY": "ignored"}))
	if err != nil || svc.Current() != "k1" {
		t.Fatalf("file: %v", err)
	}
	if fmt.Sprint(svc) != "fieldcrypt.Local{current: k1}" {
		t.Errorf("String shows %q", fmt.Sprint(svc))
	}
	if svc, err := fieldcrypt.LoadMasterKeys(env(map[string]string{"LOGBOOK_MASTER_KEY": line})); err != nil || svc.Current() != "k1" {
		t.Fatalf("env: %v", err)
	}
	if _, err := fieldcrypt.LoadMasterKeys(env(nil)); err == nil {
		t.Error("no key accepted")
	}
}

// The largest field the domain accepts, sealed under a late generation,
// is within the bound the decider accepts for a sealed field.
func TestSealedMaximumFitsTheDomainBound(t *testing.T) {
	raw, _ := fieldcrypt.NewDataKey()
	k, err := fieldcrypt.OpenDataKey("ws", 1_000_000_000, raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, max := range []int{domain.MaxTextLen, domain.MaxReasonLen} {
		s, err := k.Seal("task/t/input", strings.Repeat("\U0001F600", max))
		if err != nil {
			t.Fatal(err)
		}
		if len(s) > domain.MaxSealedLen(max) {
			t.Fatalf("sealed %d characters: %d bytes, domain bound %d", max, len(s), domain.MaxSealedLen(max))
		}
		cmd := domain.Command{ID: "c", Type: domain.CmdTaskCreate, WorkspaceID: "ws", Actor: domain.Actor{ID: "a", Role: domain.RoleAdmin},
			Payload: &domain.TaskCreateCmd{TaskID: "t", Title: "t", Input: s}}
		if max == domain.MaxTextLen {
			if err := domain.Validate(cmd); err != nil {
				t.Fatalf("the domain refuses a sealed maximal input: %v", err)
			}
		}
	}
}
