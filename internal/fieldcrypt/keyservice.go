package fieldcrypt

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/logbook-dev/logbook/internal/keylist"
)

// KeyService wraps and unwraps data keys with a master key it never
// hands out. A cloud KMS implements it as well as Local does.
type KeyService interface {
	// Wrap encrypts a data key under the current master key.
	Wrap(ctx context.Context, dataKey []byte, aad []byte) (Wrapped, error)
	// Unwrap decrypts a data key wrapped by any master key the service
	// still holds.
	Unwrap(ctx context.Context, w Wrapped, aad []byte) ([]byte, error)
	// Current names the master key Wrap uses now.
	Current() string
}

// Wrapped is a data key encrypted under a master key.
type Wrapped struct {
	MasterKeyID string `json:"master_key_id"`
	Ciphertext  []byte `json:"ciphertext"` // nonce ‖ sealed key ‖ tag
}

// ErrUnknownMasterKey means a wrapped key names a master key the service
// does not hold (retired too early, or a wrong key file).
var ErrUnknownMasterKey = errors.New("fieldcrypt: unknown master key")

// Local holds master keys in memory: the current one wraps, every listed
// one unwraps. Build it with ParseMasterKeys or LoadMasterKeys.
type Local struct {
	current string
	keys    map[string]cipher.AEAD
}

// ParseMasterKeys reads master keys as a key list (internal/keylist:
// "id:hex" with 32 bytes, one per line or comma-separated); the first is
// current, the others are older keys kept to unwrap what they wrapped.
func ParseMasterKeys(text string) (*Local, error) {
	entries, err := keylist.Parse(text, 32)
	if err != nil {
		return nil, fmt.Errorf("fieldcrypt: master %w", err)
	}
	l := &Local{current: entries[0].ID, keys: map[string]cipher.AEAD{}}
	for _, e := range entries {
		if l.keys[e.ID], err = newAEAD(e.Key); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// LoadMasterKeys reads the master keys from the file named by
// LOGBOOK_MASTER_KEY_FILE or, without it, from LOGBOOK_MASTER_KEY. A key
// file readable by other users is refused.
func LoadMasterKeys(getenv func(string) string) (*Local, error) {
	if path := getenv("LOGBOOK_MASTER_KEY_FILE"); path != "" {
		return LoadMasterKeyFile(path)
	}
	if v := getenv("LOGBOOK_MASTER_KEY"); v != "" {
		return ParseMasterKeys(v)
	}
	return nil, errors.New("fieldcrypt: set LOGBOOK_MASTER_KEY_FILE or LOGBOOK_MASTER_KEY")
}

// LoadMasterKeyFile reads master keys from a file readable by its owner
// only.
func LoadMasterKeyFile(path string) (*Local, error) {
	text, err := keylist.ReadPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("fieldcrypt: master key file: %w", err)
	}
	return ParseMasterKeys(text)
}

// NewMasterKey returns a fresh master key line, "id:hex", for a key file.
func NewMasterKey(id string) (string, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return "", err
	}
	return id + ":" + hex.EncodeToString(k), nil
}

func (l *Local) Current() string { return l.current }

func (l *Local) Wrap(_ context.Context, dataKey, aad []byte) (Wrapped, error) {
	ct, err := seal(l.keys[l.current], dataKey, aad)
	if err != nil {
		return Wrapped{}, err
	}
	return Wrapped{MasterKeyID: l.current, Ciphertext: ct}, nil
}

func (l *Local) Unwrap(_ context.Context, w Wrapped, aad []byte) ([]byte, error) {
	aead, ok := l.keys[w.MasterKeyID]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownMasterKey, w.MasterKeyID)
	}
	k, err := open(aead, w.Ciphertext, aad)
	if err != nil {
		return nil, fmt.Errorf("fieldcrypt: unwrap under %q: %w", w.MasterKeyID, err)
	}
	return k, nil
}

// String never shows key material.
func (l *Local) String() string { return "fieldcrypt.Local{current: " + l.current + "}" }

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func seal(aead cipher.AEAD, plain, aad []byte) ([]byte, error) {
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plain)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, plain, aad), nil
}

// ErrOpen means a sealed value did not authenticate: the wrong key, the
// wrong workspace or field, or changed bytes.
var ErrOpen = errors.New("fieldcrypt: cannot open")

func open(aead cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrOpen
	}
	n := aead.NonceSize()
	p, err := aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return p, nil
}

var b64 = base64.RawURLEncoding
