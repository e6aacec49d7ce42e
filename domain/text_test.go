package domain

import (
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// The patterns are what the OpenAPI document publishes: they must say what
// the checks do, character for character.
func TestSpaceCharsIsUnicodeIsSpace(t *testing.T) {
	class := regexp.MustCompile("^[" + SpaceChars + "]$")
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		if got, want := class.MatchString(string(r)), unicode.IsSpace(r); got != want {
			t.Fatalf("U+%04X: pattern says space=%v, unicode.IsSpace says %v", r, got, want)
		}
	}
}

func TestTextPatternsAgreeWithChecks(t *testing.T) {
	text := regexp.MustCompile(TextPattern)
	req := regexp.MustCompile(RequiredTextPattern)
	for _, v := range []string{"", "a", " a ", "\u0085", "\t", "x\x00y", "\x00", "  \u3000", "日本", "a\u2028", "\U0001F600"} {
		textOK := checkText("f", v, 100) == nil
		if text.MatchString(v) != textOK {
			t.Errorf("%q: TextPattern %v, checkText %v", v, text.MatchString(v), textOK)
		}
		_, err := required("f", v, 100)
		if req.MatchString(v) != (err == nil) {
			t.Errorf("%q: RequiredTextPattern %v, required %v", v, req.MatchString(v), err)
		}
		if req.MatchString(v) != (checkID("f", v) == nil) {
			t.Errorf("%q: RequiredTextPattern %v, checkID %v", v, req.MatchString(v), checkID("f", v))
		}
	}
}

func TestCheckTextRefuses(t *testing.T) {
	for name, tc := range map[string]struct {
		v    string
		want string
	}{
		"nul":         {"x\x00y", "NUL"},
		"invalid":     {"x\xffy", "UTF-8"},
		"too long":    {strings.Repeat("é", 11), "at most 10"},
		"lone surrog": {"\xed\xa0\x80", "UTF-8"},
	} {
		err := checkText("title", tc.v, 10)
		if err == nil || !strings.Contains(err.Error(), tc.want) || ErrorCode(err) != CodeInvalid {
			t.Errorf("%s: got %v, want invalid mentioning %q", name, err, tc.want)
		}
	}
}
