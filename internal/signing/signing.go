// Package signing proves who asked for a command: the API tier and the
// agent worker sign what they append, the decider refuses what does not
// verify, and events keep the proof, so an auditor holding only the public
// keys can check every change in the log against the actor it names.
//
// One Ed25519 signature covers a batch: its commands are the leaves of a
// Merkle tree (RFC 6962 hashing: 0x00 before a leaf, 0x01 before a pair of
// nodes, so a node cannot pass for a leaf), the root is signed, and each
// command carries the root, the signature and its audit path (log₂ of the
// batch size in hashes). Verifying a command is a few SHA-256 over its
// path plus one Ed25519 verify per batch, which a verifier caches by root;
// verifying every command alone costs an Ed25519 verify each (see
// BENCHMARKS.md for the figures that chose this).
package signing

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"github.com/logbook-dev/logbook/internal/keylist"
)

// signContext separates logbook command roots from anything else a key might
// ever sign.
const signContext = "logbook.commands.v1\x00"

// Proof travels with a signed command (in its envelope) and with the
// events it caused; the envelope field that carries it is versioned with
// the envelope.
type Proof struct {
	KeyID string
	Root  [32]byte
	Sig   []byte
	Index int        // the command's leaf in the batch
	Size  int        // leaves in the batch
	Path  [][32]byte // sibling hashes, leaf to root
}

// Leaf hashes a command's canonical bytes.
func Leaf(canonical []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(canonical)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func node(l, r [32]byte) [32]byte {
	var b [65]byte
	b[0] = 1
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// split is the largest power of two below n (n ≥ 2).
func split(n int) int {
	k := 1
	for k<<1 < n {
		k <<= 1
	}
	return k
}

// build returns the root of leaves and appends to paths[i] the audit path
// of every leaf i (RFC 6962), each node hashed once: O(n log n).
func build(leaves [][32]byte, paths [][][32]byte) [32]byte {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := split(len(leaves))
	l := build(leaves[:k], paths[:k])
	r := build(leaves[k:], paths[k:])
	for i := range paths[:k] {
		paths[i] = append(paths[i], r)
	}
	for i := range paths[k:] {
		paths[k+i] = append(paths[k+i], l)
	}
	return node(l, r)
}

// rootFromPath recomputes the root from a leaf and its audit path (RFC
// 9162 §2.1.3.2), or reports that the path does not fit the index and size.
func rootFromPath(leaf [32]byte, index, size int, p [][32]byte) ([32]byte, bool) {
	if index < 0 || index >= size {
		return [32]byte{}, false
	}
	fn, sn := index, size-1
	r := leaf
	for _, c := range p {
		if sn == 0 {
			return [32]byte{}, false
		}
		if fn&1 == 1 || fn == sn {
			r = node(c, r)
			for fn&1 == 0 && fn != 0 {
				fn >>= 1
				sn >>= 1
			}
		} else {
			r = node(r, c)
		}
		fn >>= 1
		sn >>= 1
	}
	return r, sn == 0
}

// Signer signs batches with one private key.
type Signer struct {
	KeyID string
	key   ed25519.PrivateKey
}

// NewKey returns a fresh key pair as the lines of a private key file
// ("id:hex seed") and of a public key list ("id:hex public key").
func NewKey(id string) (private, public string, err error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	return id + ":" + hex.EncodeToString(priv.Seed()), id + ":" + hex.EncodeToString(pub), nil
}

// ParseSigner reads one private key, "id:hex seed" (32 bytes), as a key
// list (internal/keylist) of one. Errors never echo the key.
func ParseSigner(text string) (*Signer, error) {
	entries, err := keylist.Parse(text, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("signing: private %w", err)
	}
	if len(entries) != 1 {
		return nil, errors.New("signing: want one private key")
	}
	return &Signer{KeyID: entries[0].ID, key: ed25519.NewKeyFromSeed(entries[0].Key)}, nil
}

// Public returns the signer's public key line, for the verifiers' list.
func (s *Signer) Public() string {
	return s.KeyID + ":" + hex.EncodeToString(s.key.Public().(ed25519.PublicKey))
}

// String never shows the key.
func (s *Signer) String() string { return "signing.Signer{" + s.KeyID + "}" }

// SignBatch signs the canonical bytes of a batch of commands and returns
// each command's proof, in order.
func (s *Signer) SignBatch(commands [][]byte) ([]Proof, error) {
	if len(commands) == 0 {
		return nil, nil
	}
	leaves := make([][32]byte, len(commands))
	for i, c := range commands {
		leaves[i] = Leaf(c)
	}
	paths := make([][][32]byte, len(commands))
	r := build(leaves, paths)
	sig := ed25519.Sign(s.key, append([]byte(signContext), r[:]...))
	out := make([]Proof, len(commands))
	for i := range commands {
		out[i] = Proof{KeyID: s.KeyID, Root: r, Sig: sig, Index: i, Size: len(commands), Path: paths[i]}
	}
	return out, nil
}

// Errors of Verify.
var (
	ErrUnknownKey = errors.New("signing: signed by a key this verifier does not accept")
	ErrBadProof   = errors.New("signing: the command is not in the signed batch")
	ErrBadSig     = errors.New("signing: the signature does not verify")
)

// Verifier checks proofs against the public keys it accepts (several, for
// rotation). Roots it has verified are remembered, so a batch costs one
// Ed25519 verify however many of its commands it sees; the memory is
// bounded.
type Verifier struct {
	keys map[string]ed25519.PublicKey

	mu       sync.Mutex
	verified map[verifiedRoot]struct{}
	order    []verifiedRoot
}

type verifiedRoot struct {
	keyID string
	root  [32]byte
	sig   string
}

const maxVerifiedRoots = 4096

// ParseVerifier reads public keys as a key list (internal/keylist: "id:hex"
// with 32 bytes, one per line or comma-separated).
func ParseVerifier(text string) (*Verifier, error) {
	entries, err := keylist.Parse(text, ed25519.PublicKeySize)
	if err != nil {
		return nil, fmt.Errorf("signing: public %w", err)
	}
	v := &Verifier{keys: map[string]ed25519.PublicKey{}, verified: map[verifiedRoot]struct{}{}}
	for _, e := range entries {
		v.keys[e.ID] = e.Key
	}
	return v, nil
}

// Verify checks that canonical (a command's bytes) is in a batch signed by
// an accepted key.
func (v *Verifier) Verify(canonical []byte, p Proof) error {
	pub, ok := v.keys[p.KeyID]
	if !ok && len(p.KeyID) > keylist.MaxIDLen {
		// Named by whoever wrote the record: not echoed into rejections and
		// logs at any length.
		return ErrUnknownKey
	}
	if !ok {
		return fmt.Errorf("%w (%q)", ErrUnknownKey, p.KeyID)
	}
	r, ok := rootFromPath(Leaf(canonical), p.Index, p.Size, p.Path)
	if !ok || r != p.Root {
		return ErrBadProof
	}
	k := verifiedRoot{p.KeyID, p.Root, string(p.Sig)}
	v.mu.Lock()
	_, seen := v.verified[k]
	v.mu.Unlock()
	if seen {
		return nil
	}
	if !ed25519.Verify(pub, append([]byte(signContext), p.Root[:]...), p.Sig) {
		return ErrBadSig
	}
	v.mu.Lock()
	if _, seen := v.verified[k]; !seen {
		if len(v.order) >= maxVerifiedRoots {
			delete(v.verified, v.order[0])
			v.order = v.order[1:]
		}
		v.verified[k] = struct{}{}
		v.order = append(v.order, k)
	}
	v.mu.Unlock()
	return nil
}
