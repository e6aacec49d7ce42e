package fieldcrypt

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/logbook-dev/logbook/domain"
)

// Prefix starts every sealed field of format 1; the domain accepts a
// sealed field by it.
const Prefix = domain.SealedPrefix

// ErrNotSealed means a value is not a sealed field (plaintext written
// before encryption, or another format).
var ErrNotSealed = errors.New("fieldcrypt: not a sealed field")

// DataKey is one generation of a workspace's data key.
type DataKey struct {
	Workspace  string
	Generation int
	aead       cipher.AEAD
}

// NewDataKey returns fresh key bytes for a workspace's data key.
func NewDataKey() ([]byte, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, nil
}

// OpenDataKey makes a DataKey from key bytes (32).
func OpenDataKey(workspace string, generation int, key []byte) (*DataKey, error) {
	if len(key) != 32 {
		return nil, errors.New("fieldcrypt: a data key is 32 bytes")
	}
	if generation < 1 {
		return nil, errors.New("fieldcrypt: data key generations count from 1")
	}
	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	return &DataKey{Workspace: workspace, Generation: generation, aead: aead}, nil
}

// fieldAAD binds a sealed value to its workspace and field.
func fieldAAD(workspace, field string) []byte {
	return []byte("logbook.field.v1\x00" + workspace + "\x00" + field)
}

// Seal encrypts a field's plaintext. field names the slot the value lives
// in, record included ("task/<id>/input"), so a sealed value does not open
// in another record's slot either. The empty string stays empty: it says
// nothing, and readers need not tell "no input" from a sealed one.
func (k *DataKey) Seal(field, plain string) (string, error) {
	if plain == "" {
		return "", nil
	}
	ct, err := seal(k.aead, []byte(plain), fieldAAD(k.Workspace, field))
	if err != nil {
		return "", err
	}
	return Prefix + strconv.Itoa(k.Generation) + "." + b64.EncodeToString(ct), nil
}

// Open decrypts a sealed field with this key; the generation must match.
func (k *DataKey) Open(field, sealed string) (string, error) {
	gen, ct, err := Parse(sealed)
	if err != nil {
		return "", err
	}
	if gen != k.Generation {
		return "", fmt.Errorf("fieldcrypt: sealed under generation %d, key is %d", gen, k.Generation)
	}
	p, err := open(k.aead, ct, fieldAAD(k.Workspace, field))
	if err != nil {
		return "", err
	}
	return string(p), nil
}

// IsSealed reports whether v looks like a sealed field.
func IsSealed(v string) bool { return strings.HasPrefix(v, Prefix) }

// Parse splits a sealed field into its data key generation and ciphertext.
func Parse(sealed string) (generation int, ciphertext []byte, err error) {
	rest, ok := strings.CutPrefix(sealed, Prefix)
	if !ok {
		return 0, nil, ErrNotSealed
	}
	g, enc, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, nil, ErrNotSealed
	}
	generation, err = strconv.Atoi(g)
	if err != nil || generation < 1 || strconv.Itoa(generation) != g {
		return 0, nil, ErrNotSealed // one spelling per generation: no 01, no +1
	}
	ciphertext, err = b64.DecodeString(enc)
	if err != nil {
		return 0, nil, ErrNotSealed
	}
	return generation, ciphertext, nil
}
