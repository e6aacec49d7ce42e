package signing

import (
	"fmt"
	"strings"
	"testing"
)

func signer(t testing.TB, id string) (*Signer, string) {
	t.Helper()
	priv, pub, err := NewKey(id)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	if s.Public() != pub {
		t.Fatalf("public key line %q, want %q", s.Public(), pub)
	}
	return s, pub
}

func commands(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"id":"c%d","actor":{"id":"k1","role":"writer"}}`, i)
	}
	return out
}

// Every command of every batch size verifies, with the batch's one
// signature and its own path; the path is as long as the tree is deep.
func TestEveryCommandOfABatchVerifies(t *testing.T) {
	s, pub := signer(t, "api-1")
	v, err := ParseVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 33; n++ {
		cmds := commands(n)
		proofs, err := s.SignBatch(cmds)
		if err != nil {
			t.Fatal(err)
		}
		depth := 0
		for 1<<depth < n {
			depth++
		}
		for i, c := range cmds {
			if err := v.Verify(c, proofs[i]); err != nil {
				t.Fatalf("batch %d, command %d: %v", n, i, err)
			}
			if len(proofs[i].Path) > depth {
				t.Fatalf("batch %d: path of %d hashes, depth %d", n, len(proofs[i].Path), depth)
			}
		}
		if n > 1 && root(leavesOf(cmds)) != proofs[0].Root {
			t.Fatal("root differs")
		}
	}
}

// root is RFC 6962's Merkle tree hash as the RFC defines it: the
// reference build is checked against.
func root(leaves [][32]byte) [32]byte {
	if len(leaves) == 1 {
		return leaves[0]
	}
	k := split(len(leaves))
	return node(root(leaves[:k]), root(leaves[k:]))
}

func leavesOf(cmds [][]byte) [][32]byte {
	out := make([][32]byte, len(cmds))
	for i, c := range cmds {
		out[i] = Leaf(c)
	}
	return out
}

// What a forger with write access to the broker can try: change the
// command (a different actor), move a proof to another command, alter the
// path or the index, sign with a key nobody accepts, or alter the
// signature. None verifies.
func TestForgeriesFail(t *testing.T) {
	s, pub := signer(t, "api-1")
	v, _ := ParseVerifier(pub)
	cmds := commands(8)
	proofs, _ := s.SignBatch(cmds)
	changed := []byte(strings.Replace(string(cmds[3]), `"role":"writer"`, `"role":"admin"`, 1))
	if err := v.Verify(changed, proofs[3]); err != ErrBadProof {
		t.Errorf("changed actor: %v", err)
	}
	if err := v.Verify(cmds[2], proofs[3]); err != ErrBadProof {
		t.Errorf("proof of another command: %v", err)
	}
	p := proofs[5]
	p.Path = append([][32]byte(nil), p.Path...)
	p.Path[0][0] ^= 1
	if err := v.Verify(cmds[5], p); err != ErrBadProof {
		t.Errorf("altered path: %v", err)
	}
	p = proofs[5]
	p.Index = 4
	if err := v.Verify(cmds[5], p); err != ErrBadProof {
		t.Errorf("altered index: %v", err)
	}
	p.Index, p.Size = 5, 100
	if err := v.Verify(cmds[5], p); err != ErrBadProof {
		t.Errorf("altered size: %v", err)
	}

	other, _ := signer(t, "api-1") // same id, another key
	forged, _ := other.SignBatch(cmds)
	if err := v.Verify(cmds[1], forged[1]); err != ErrBadSig {
		t.Errorf("another key under an accepted id: %v", err)
	}
	stranger, _ := signer(t, "stranger")
	forged, _ = stranger.SignBatch(cmds)
	if err := v.Verify(cmds[1], forged[1]); err == nil {
		t.Error("a key nobody accepts verified")
	}
	p = proofs[6]
	p.Sig = append([]byte(nil), p.Sig...)
	p.Sig[0] ^= 1
	fresh, _ := ParseVerifier(pub) // nothing cached
	if err := fresh.Verify(cmds[6], p); err != ErrBadSig {
		t.Errorf("altered signature: %v", err)
	}
	// A cached root does not excuse an altered signature either.
	if err := v.Verify(cmds[6], p); err != ErrBadSig {
		t.Errorf("altered signature of a verified root: %v", err)
	}
}

// Verifiers accept several keys, so signers rotate without a flag day.
func TestKeyRotation(t *testing.T) {
	oldS, oldPub := signer(t, "2026-01")
	newS, newPub := signer(t, "2026-06")
	v, err := ParseVerifier("# both during the rotation\n" + newPub + "," + oldPub)
	if err != nil {
		t.Fatal(err)
	}
	cmds := commands(3)
	for _, s := range []*Signer{oldS, newS} {
		proofs, _ := s.SignBatch(cmds)
		if err := v.Verify(cmds[0], proofs[0]); err != nil {
			t.Errorf("%s: %v", s.KeyID, err)
		}
	}
	retired, _ := ParseVerifier(newPub)
	proofs, _ := oldS.SignBatch(cmds)
	if err := retired.Verify(cmds[0], proofs[0]); err == nil {
		t.Error("a retired key still verifies")
	}
}

func TestKeyParsingNeverEchoesKeys(t *testing.T) {
	priv, _, _ := NewKey("k")
	secret := priv[len("k:"):]
	for _, bad := range []string{"", "k", "k:" + secret[:10], secret + ":k", "k:" + secret + "00"} {
		_, err := ParseSigner(bad)
		if err == nil {
			t.Errorf("%.12q accepted", bad)
		} else if strings.Contains(err.Error(), secret[:16]) {
			t.Errorf("error echoes the key: %v", err)
		}
	}
	s, _ := ParseSigner(priv)
	if got := fmt.Sprint(s); strings.Contains(got, secret[:16]) || got != "signing.Signer{k}" {
		t.Errorf("String shows %q", got)
	}
	if _, err := ParseVerifier("k:abcd"); err == nil {
		t.Error("a short public key accepted")
	}
}

// The verified-root memory stays bounded.
func TestVerifiedRootsBounded(t *testing.T) {
	s, pub := signer(t, "k")
	v, _ := ParseVerifier(pub)
	for i := range maxVerifiedRoots + 10 {
		c := fmt.Appendf(nil, "c%d", i)
		p, _ := s.SignBatch([][]byte{c})
		if err := v.Verify(c, p[0]); err != nil {
			t.Fatal(err)
		}
	}
	if len(v.verified) != maxVerifiedRoots || len(v.order) != maxVerifiedRoots {
		t.Fatalf("%d roots kept", len(v.verified))
	}
}
