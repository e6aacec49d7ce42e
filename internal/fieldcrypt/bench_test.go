package fieldcrypt_test

import (
	"strings"
	"testing"
)

// The per-field cost encryption adds to a command (seal, at the API tier)
// and to a read (open, where a read model serves the field).
func benchField(b *testing.B, size int, open bool) {
	k, _ := dataKey(b, "ws-bench", 1)
	plain := strings.Repeat("x", size)
	sealed, err := k.Seal("input", plain)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		if open {
			_, err = k.Open("input", sealed)
		} else {
			_, err = k.Seal("input", plain)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeal256B(b *testing.B)  { benchField(b, 256, false) }
func BenchmarkOpen256B(b *testing.B)  { benchField(b, 256, true) }
func BenchmarkSeal64KiB(b *testing.B) { benchField(b, 64<<10, false) }
func BenchmarkOpen64KiB(b *testing.B) { benchField(b, 64<<10, true) }
