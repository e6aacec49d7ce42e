package projections

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDBTextRoundTrips(t *testing.T) {
	for _, s := range []string{"", "plain", "x\x00y", "\x00", "\x01", "\x01{\"a\"}", "\x01\"quoted\"", "a\x01b", "<&>", "日本\x00語"} {
		stored := dbText(s)
		if strings.IndexByte(stored, 0) >= 0 || !utf8.ValidString(stored) {
			t.Errorf("%q is stored as %q, which Postgres text cannot hold", s, stored)
		}
		if got := fromDBText(stored); got != s {
			t.Errorf("%q → %q → %q", s, stored, got)
		}
	}
	if dbText("plain text") != "plain text" {
		t.Error("acceptable text must be stored as it is")
	}
}

func FuzzDBText(f *testing.F) {
	for _, s := range []string{"", "a", "\x00", "\x01", "\x01\"\\u0000\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return // events are JSON: their strings are valid UTF-8
		}
		stored := dbText(s)
		if strings.IndexByte(stored, 0) >= 0 {
			t.Fatalf("%q stored with NUL", s)
		}
		if got := fromDBText(stored); got != s {
			t.Fatalf("%q → %q → %q", s, stored, got)
		}
	})
}
