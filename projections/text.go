package projections

import (
	"encoding/json"
	"strings"
)

// Read-model text columns hold any string an event carries. Postgres text
// cannot hold NUL, which events written before the edge refused it may
// contain; such a value is stored as textMarker followed by its JSON string
// literal. So that the mapping stays reversible, a value that itself starts
// with the marker is stored the same way. Every other value (all text the
// domain accepts, unless it starts with U+0001) is stored as it is.
const textMarker = "\x01"

// dbText is the stored form of s.
func dbText(s string) string {
	if strings.IndexByte(s, 0) < 0 && !strings.HasPrefix(s, textMarker) {
		return s
	}
	b, _ := json.Marshal(s) // escapes U+0000 and U+0001
	return textMarker + string(b)
}

// fromDBText is the value whose stored form is s.
func fromDBText(s string) string {
	if !strings.HasPrefix(s, textMarker) {
		return s
	}
	var v string
	if err := json.Unmarshal([]byte(s[len(textMarker):]), &v); err != nil {
		return s // not written by dbText: shown as stored
	}
	return v
}

// dbTextPtr is dbText for a nullable column: "" is NULL.
func dbTextPtr(s string) *string {
	if s == "" {
		return nil
	}
	v := dbText(s)
	return &v
}

// fromDBTextPtr is fromDBText for a nullable column.
func fromDBTextPtr(s *string) string {
	if s == nil {
		return ""
	}
	return fromDBText(*s)
}
