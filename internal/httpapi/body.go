package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxBody bounds every request body.
const MaxBody = 256 << 10

// DecodeJSON reads a strict JSON object into v. Refused with a problem that
// names what is wrong: a body that is not one JSON object, invalid UTF-8
// (bytes or lone surrogate escapes: encoding/json would silently replace
// them), duplicate keys (which one would win is up to the parser), unknown
// fields, null values, wrong types and oversized bodies. Numbers with an integral value
// are integers whatever their spelling (1.0, 1e2), as in JSON Schema.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return Problemf(CodeUnsupportedMediaType, "Content-Type", "send application/json")
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	var maxErr *http.MaxBytesError
	if errors.As(err, &maxErr) {
		return Problemf(CodeBodyTooLarge, "", fmt.Sprintf("body exceeds %d bytes", maxErr.Limit))
	}
	if err != nil {
		return Problemf(CodeMalformedJSON, "", "the body could not be read")
	}
	return Unmarshal(raw, v)
}

// Unmarshal is DecodeJSON on a body already read.
func Unmarshal(raw []byte, v any) error {
	if len(bytes.TrimSpace(raw)) == 0 {
		return Problemf(CodeMalformedJSON, "", "empty body: send a JSON object")
	}
	if !utf8.Valid(raw) {
		return Problemf(CodeMalformedJSON, "", "the body is not valid UTF-8")
	}
	integral, err := checkJSON(raw)
	if err != nil {
		return err
	}
	if err := checkSurrogates(raw); err != nil {
		return err
	}
	if integral {
		if raw, err = integersSpelledPlain(raw); err != nil {
			return err
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyProblem(err)
	}
	return nil
}

// checkJSON walks the tokens of raw: one value, an object, no duplicate
// keys. It reports whether a number is spelled with a fraction or exponent.
func checkJSON(raw []byte) (fractional bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool   // the next token is a key
		last   string // the key of the value being read
	}
	var stack []*frame
	first := true
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			if len(stack) > 0 {
				return false, Problemf(CodeMalformedJSON, "", "malformed JSON: unexpected end of the body")
			}
			return fractional, nil
		}
		if err != nil {
			return false, Problemf(CodeMalformedJSON, "", "malformed JSON: "+Truncate(err.Error()))
		}
		if first {
			if d, ok := tok.(json.Delim); !ok || d != '{' {
				return false, Problemf(CodeMalformedJSON, "", "the body must be a JSON object")
			}
			first = false
		} else if len(stack) == 0 {
			return false, Problemf(CodeMalformedJSON, "", "the body must hold a single JSON object")
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.key {
			if k, ok := tok.(string); ok {
				if top.keys[k] {
					return false, Problemf(CodeMalformedJSON, k, "duplicate key "+strconv.Quote(Truncate(k)))
				}
				top.keys[k] = true
				top.key = false
				top.last = k
				continue
			}
		}
		switch t := tok.(type) {
		case nil:
			// No field takes null: taking it for "absent" would accept what
			// the document refuses.
			var path []string
			for _, f := range stack {
				if f.object {
					path = append(path, f.last)
				}
			}
			field := strings.Join(path, ".")
			if field == "" || !top.object {
				return false, Problemf(CodeInvalid, field, "null is not a value any field takes")
			}
			return false, Problemf(CodeInvalid, field, Truncate(field)+" must not be null: leave it out instead")
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, &frame{object: true, keys: map[string]bool{}, key: true})
				continue
			case '[':
				stack = append(stack, &frame{})
				continue
			default:
				stack = stack[:len(stack)-1]
			}
		case json.Number:
			if strings.ContainsAny(string(t), ".eE") {
				fractional = true
			}
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true // a value ended: a key comes next
		}
	}
}

// checkSurrogates refuses \u escapes of unpaired UTF-16 surrogates; raw is
// valid JSON.
func checkSurrogates(raw []byte) error {
	bad := Problemf(CodeMalformedJSON, "", "the body holds an unpaired UTF-16 surrogate escape: not valid Unicode")
	in := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case !in:
			in = c == '"'
		case c == '"':
			in = false
		case c == '\\':
			if i+1 < len(raw) && raw[i+1] == 'u' && i+5 < len(raw) {
				r, _ := strconv.ParseUint(string(raw[i+2:i+6]), 16, 32)
				switch {
				case r >= 0xD800 && r <= 0xDBFF:
					if i+11 >= len(raw) || raw[i+6] != '\\' || raw[i+7] != 'u' {
						return bad
					}
					lo, _ := strconv.ParseUint(string(raw[i+8:i+12]), 16, 32)
					if lo < 0xDC00 || lo > 0xDFFF {
						return bad
					}
					i += 11
				case r >= 0xDC00 && r <= 0xDFFF:
					return bad
				default:
					i += 5
				}
				continue
			}
			i++ // skip the escaped character
		}
	}
	return nil
}

// integersSpelledPlain rewrites numbers with an integral value (1.0, 2e3)
// as integers, so they decode into integer fields; other numbers are kept.
func integersSpelledPlain(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, Problemf(CodeMalformedJSON, "", "malformed JSON")
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch t := v.(type) {
		case map[string]any:
			for k, x := range t {
				t[k] = walk(x)
			}
		case []any:
			for i, x := range t {
				t[i] = walk(x)
			}
		case json.Number:
			if f, err := strconv.ParseFloat(string(t), 64); err == nil && f == math.Trunc(f) &&
				math.Abs(f) < 1<<53 && strings.ContainsAny(string(t), ".eE") {
				return json.Number(strconv.FormatInt(int64(f), 10))
			}
		}
		return v
	}
	return json.Marshal(walk(doc))
}

func bodyProblem(err error) *Problem {
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	var own *Problem
	switch {
	case errors.As(err, &own):
		return own // a field's own decoder named the field and what it takes
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return Problemf(CodeMalformedJSON, "", "malformed JSON")
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if isInteger(typeErr.Type) && integralNumber(typeErr.Value) {
			// An integer too large for any field: the field's own range is
			// in the document and in the check after decoding.
			return Problemf(CodeInvalid, field, fieldName(field)+" is out of range")
		}
		return Problemf(CodeInvalid, field, fmt.Sprintf("%s must be %s", fieldName(field), jsonType(typeErr.Type)))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return Problemf(CodeUnknownField, Truncate(f), "unknown field "+strconv.Quote(Truncate(f)))
	}
	return Problemf(CodeMalformedJSON, "", "malformed JSON")
}

func fieldName(f string) string {
	if f == "" {
		return "the body"
	}
	return Truncate(f)
}

// integralNumber reports whether value, as UnmarshalTypeError words it
// ("number 1e30"), is a whole number.
func integralNumber(value string) bool {
	n, ok := strings.CutPrefix(value, "number ")
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(n, 64)
	return err == nil && f == math.Trunc(f)
}

func isInteger(t reflect.Type) bool {
	if t == nil {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return true
	}
	return false
}

// jsonType names what a Go type accepts in JSON words, never Go's.
func jsonType(t reflect.Type) string {
	if t == nil {
		return "of another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "of another type"
}

// maxEcho bounds what a problem repeats of the request.
const maxEcho = 64

// Truncate shortens a value a problem detail repeats back.
func Truncate(s string) string {
	if utf8.RuneCountInString(s) <= maxEcho {
		return s
	}
	r := []rune(s)
	return string(r[:maxEcho]) + "…"
}
