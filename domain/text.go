package domain

import (
	"strings"
	"unicode/utf8"
)

// The strings logbook accepts, defined once. Every string field of a
// command passes through these checks in Validate and again in Decide, and
// the OpenAPI document states the same rules as patterns (TextPattern,
// RequiredTextPattern; a test in schemas keeps them equal), so a client, the
// edge and the decider agree on what can become an event.
//
// Acceptable text is valid UTF-8 without NUL (U+0000): every read model can
// store it and give it back unchanged (Postgres text cannot hold NUL, and
// invalid UTF-8 would be silently replaced by JSON decoding). Required text
// has at least one character that is not white space; white space is what
// unicode.IsSpace reports, listed in SpaceChars so a regular expression in
// any engine can say the same.

// SpaceChars lists every character unicode.IsSpace reports, as a regular
// expression character-class body made of literal characters and ranges.
const SpaceChars = "\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

// TextPattern matches acceptable text.
const TextPattern = "^[^\u0000]*$"

// RequiredTextPattern matches acceptable text that is not blank.
const RequiredTextPattern = "^[^\u0000]*[^\u0000" + SpaceChars + "][^\u0000]*$"

// checkText checks that v is acceptable text of at most max characters.
// Lengths count characters (code points), as JSON Schema maxLength does.
func checkText(field, v string, max int) error {
	if !utf8.ValidString(v) {
		return Invalid(field, "must be valid UTF-8")
	}
	if strings.IndexByte(v, 0) >= 0 {
		return Invalid(field, "must not contain NUL (U+0000)")
	}
	if n := utf8.RuneCountInString(v); n > max {
		return Invalid(field, "must be at most %d characters, got %d", max, n)
	}
	return nil
}

// blank reports whether v holds nothing but white space.
func blank(v string) bool { return strings.TrimSpace(v) == "" }

// checkID checks a client-chosen id: required text, kept as sent.
func checkID(field, v string) error {
	if err := checkText(field, v, MaxIDLen); err != nil {
		return err
	}
	if blank(v) {
		return Invalid(field, "is required")
	}
	return nil
}

// required returns v trimmed, checking it is acceptable, not blank and at
// most max characters.
func required(field, v string, max int) (string, error) {
	if err := checkText(field, v, max); err != nil {
		return v, err
	}
	if blank(v) {
		return v, Invalid(field, "is required")
	}
	return strings.TrimSpace(v), nil
}

// optional returns v trimmed, checking it is acceptable and at most max
// characters.
func optional(field, v string, max int) (string, error) {
	if err := checkText(field, v, max); err != nil {
		return v, err
	}
	return strings.TrimSpace(v), nil
}
