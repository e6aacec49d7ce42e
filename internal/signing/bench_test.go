package signing

import "testing"

// The decider's cost per command: every command signed alone (one Ed25519
// verify each) against commands signed in batches (one verify per batch,
// cached by root, plus a path of SHA-256 per command).
func benchVerify(b *testing.B, batch int) {
	s, pub := signer(b, "k")
	v, _ := ParseVerifier(pub)
	cmds := commands(4096)
	var proofs []Proof
	for i := 0; i < len(cmds); i += batch {
		p, _ := s.SignBatch(cmds[i : i+batch])
		proofs = append(proofs, p...)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(cmds) {
			i = 0
			v, _ = ParseVerifier(pub) // roots seen again must cost again
		}
		if err := v.Verify(cmds[i], proofs[i]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkVerifyEachSignedAlone(b *testing.B) { benchVerify(b, 1) }
func BenchmarkVerifyInBatchesOf64(b *testing.B)   { benchVerify(b, 64) }
func BenchmarkVerifyInBatchesOf512(b *testing.B)  { benchVerify(b, 512) }

// The API tier's cost per command of signing a batch.
func benchSign(b *testing.B, batch int) {
	s, _ := signer(b, "k")
	cmds := commands(batch)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.SignBatch(cmds); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/command")
}

func BenchmarkSignAlone(b *testing.B)      { benchSign(b, 1) }
func BenchmarkSignBatchOf64(b *testing.B)  { benchSign(b, 64) }
func BenchmarkSignBatchOf512(b *testing.B) { benchSign(b, 512) }
