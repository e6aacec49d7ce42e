package schemas

import (
	"strings"
	"testing"
)

// Every published step between versions of an event schema is compatible:
// make test refuses a new version that breaks one.
func TestEventSchemaVersionsAreCompatible(t *testing.T) {
	breaks, err := CheckEventSchemaVersions()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range breaks {
		t.Error(b)
	}
}

const compatBase = `{
  "type": "object",
  "properties": {
    "task_id": {"type": "string", "minLength": 1, "maxLength": 200},
    "priority": {"type": "integer", "minimum": 0, "maximum": 9},
    "kind": {"type": "string", "enum": ["a", "b"]},
    "usage": {"type": "object", "properties": {"tokens": {"type": "integer", "minimum": 0}},
      "required": ["tokens"], "additionalProperties": false},
    "note": {"type": "string"}
  },
  "required": ["task_id", "priority", "usage"],
  "additionalProperties": false
}`

// The checker refuses each kind of breaking change, naming the field, and
// accepts additive ones.
func TestCompatibilityJudgesEachKindOfChange(t *testing.T) {
	for _, tc := range []struct {
		name, from, to string
		supplied       []string
		refusal        string // "" when the change is accepted
	}{
		{"a field removed", `"note": {"type": "string"}`, `"other": {"type": "string"}`, nil, "note: removed"},
		{"a field retyped", `"note": {"type": "string"}`, `"note": {"type": "integer"}`, nil, "note: type"},
		{"a nested field removed", `"properties": {"tokens": {"type": "integer", "minimum": 0}}`, `"properties": {"t": {"type": "integer"}}`, nil, "usage.tokens: removed"},
		{"maxLength lowered", `"maxLength": 200`, `"maxLength": 100`, nil, "task_id: maxLength lowered"},
		{"minLength raised", `"minLength": 1,`, `"minLength": 2,`, nil, "task_id: minLength raised"},
		{"maximum lowered", `"maximum": 9`, `"maximum": 5`, nil, "priority: maximum lowered"},
		{"an enum narrowed", `["a", "b"]`, `["a"]`, nil, "kind: enum"},
		{"a pattern added", `"note": {"type": "string"}`, `"note": {"type": "string", "pattern": "^x"}`, nil, "note: pattern"},
		{"no longer required", `"required": ["task_id", "priority", "usage"]`, `"required": ["task_id", "usage"]`, nil, "priority: no longer required"},
		{"an unknown keyword changed", `"note": {"type": "string"}`, `"note": {"type": "string", "multipleOf": 2}`, nil, "note: keyword multipleOf"},
		{"additional properties opened", `"required": ["tokens"], "additionalProperties": false}`, `"required": ["tokens"]}`, nil, ""},
		{"a new optional field", `"note": {"type": "string"}`, `"note": {"type": "string"}, "labels": {"type": "array", "items": {"type": "string"}}`, nil, ""},
		{"maxLength raised", `"maxLength": 200`, `"maxLength": 400`, nil, ""},
		{"an enum widened", `["a", "b"]`, `["a", "b", "c"]`, nil, ""},
		{"integer widened to number", `"type": "integer", "minimum": 0, "maximum": 9`, `"type": "number", "minimum": 0, "maximum": 9`, nil, ""},
		{"a description changed", `"note": {"type": "string"}`, `"note": {"type": "string", "description": "free text"}`, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(compatBase, tc.from) {
				t.Fatalf("fixture: %q not in the base schema", tc.from)
			}
			next := strings.Replace(compatBase, tc.from, tc.to, 1)
			supplied := map[string]bool{}
			for _, s := range tc.supplied {
				supplied[s] = true
			}
			breaks, err := Compatible([]byte(compatBase), []byte(next), supplied)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tc.refusal == "" && len(breaks) > 0:
				t.Fatalf("refused an additive change: %v", breaks)
			case tc.refusal != "" && (len(breaks) == 0 || !strings.HasPrefix(breaks[0], tc.refusal)):
				t.Fatalf("breaks %v, want one starting %q", breaks, tc.refusal)
			}
		})
	}
}

// Closing a payload to properties it allowed, or constraining them, is
// refused; so is requiring a field no version declares.
func TestClosingAdditionalPropertiesIsRefused(t *testing.T) {
	for next, want := range map[string]string{
		`{"type": "object", "additionalProperties": false}`:              "additional properties are no longer allowed",
		`{"type": "object", "additionalProperties": {"type": "string"}}`: "additional properties constrained",
		`{"type": "object", "required": ["x"]}`:                          "x: now required",
	} {
		breaks, err := Compatible([]byte(`{"type": "object"}`), []byte(next), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(breaks) != 1 || !strings.Contains(breaks[0], want) {
			t.Errorf("%s: breaks %v, want %q", next, breaks, want)
		}
	}
}

// A field added as required is accepted only when the upcaster supplies it.
func TestANewRequiredFieldNeedsItsDefault(t *testing.T) {
	next := strings.Replace(compatBase, `"note": {"type": "string"}`, `"note": {"type": "string"}, "due": {"type": "string"}`, 1)
	next = strings.Replace(next, `"required": ["task_id", "priority", "usage"]`, `"required": ["task_id", "priority", "usage", "due"]`, 1)
	breaks, err := Compatible([]byte(compatBase), []byte(next), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(breaks) != 1 || !strings.HasPrefix(breaks[0], "due: added as required") {
		t.Fatalf("without a default: %v", breaks)
	}
	if breaks, _ := Compatible([]byte(compatBase), []byte(next), map[string]bool{"due": true}); len(breaks) != 0 {
		t.Fatalf("with the upcaster's default: %v", breaks)
	}
}

// The published steps' upcasters supply what their new versions require.
func TestSuppliedReadsTheUpcasters(t *testing.T) {
	got := supplied("task.result_recorded", 1)
	if !got["provider"] || !got["model"] || len(got) != 2 {
		t.Fatalf("supplied by task.result_recorded v1 -> v2: %v", got)
	}
}
