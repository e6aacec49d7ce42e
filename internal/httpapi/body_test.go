package httpapi_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/logbook-dev/logbook/internal/httpapi"
)

type body struct {
	Name     string `json:"name"`
	Priority int    `json:"priority"`
	Usage    struct {
		Tokens int64 `json:"tokens"`
	} `json:"usage"`
	Retry bool `json:"retry"`
}

func decode(t *testing.T, raw string) (body, *httpapi.Problem) {
	t.Helper()
	r := httptest.NewRequest("POST", "/", strings.NewReader(raw))
	r.Header.Set("Content-Type", "application/json")
	var b body
	err := httpapi.DecodeJSON(httptest.NewRecorder(), r, &b)
	if err == nil {
		return b, nil
	}
	var p *httpapi.Problem
	if !errors.As(err, &p) {
		t.Fatalf("%s: not a problem: %v", raw, err)
	}
	return b, p
}

func TestDecodeJSONRefuses(t *testing.T) {
	for _, tc := range []struct {
		name, raw string
		status    int
		field     string
		detail    string
	}{
		{"empty", "", 400, "", "empty"},
		{"array", `[{"name":"a"}]`, 400, "", "JSON object"},
		{"string", `"x"`, 400, "", "JSON object"},
		{"two objects", `{"name":"a"} {"name":"b"}`, 400, "", "single"},
		{"duplicate key", `{"name":"a","name":"b"}`, 400, "name", "duplicate"},
		{"nested duplicate", `{"usage":{"tokens":1,"tokens":2}}`, 400, "tokens", "duplicate"},
		{"invalid UTF-8", "{\"name\":\"a\xffb\"}", 400, "", "UTF-8"},
		{"lone high surrogate", `{"name":"\ud800"}`, 400, "", "surrogate"},
		{"lone low surrogate", `{"name":"a\udc00"}`, 400, "", "surrogate"},
		{"reversed pair", `{"name":"\udc00\ud800"}`, 400, "", "surrogate"},
		{"syntax", `{"name":}`, 400, "", "malformed"},
		{"truncated", `{"name":"a"`, 400, "", "malformed"},
		{"unknown field", `{"nope":1}`, 422, "nope", "unknown field"},
		{"long unknown field", `{"` + strings.Repeat("k", 10000) + `":1}`, 422, strings.Repeat("k", 64) + "…", "unknown field"},
		{"fraction for integer", `{"priority":1.5}`, 422, "priority", "must be an integer"},
		{"string for integer", `{"priority":"1"}`, 422, "priority", "must be an integer"},
		{"integer out of range", `{"usage":{"tokens":1e30}}`, 422, "usage.tokens", "out of range"},
		{"integer past int64", `{"priority":9223372036854775808}`, 422, "priority", "out of range"},
		{"null", `{"name":null}`, 422, "name", "must not be null"},
		{"nested null", `{"usage":{"tokens":null}}`, 422, "usage.tokens", "must not be null"},
		{"object for string", `{"name":{}}`, 422, "name", "must be a string"},
		{"number for bool", `{"retry":1}`, 422, "retry", "must be a boolean"},
		{"array for object", `{"usage":[]}`, 422, "usage", "must be an object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, p := decode(t, tc.raw)
			if p == nil {
				t.Fatal("accepted")
			}
			if p.Status != tc.status || p.Field != tc.field || !strings.Contains(p.Detail, tc.detail) {
				t.Fatalf("got %d field %q detail %q; want %d field %q detail containing %q", p.Status, p.Field, p.Detail, tc.status, tc.field, tc.detail)
			}
			if strings.Contains(p.Detail, "httpapi_test.") || strings.Contains(p.Detail, "int64") || strings.Contains(p.Detail, "struct") {
				t.Fatalf("the detail speaks Go: %q", p.Detail)
			}
			if len(p.Detail) > 200 {
				t.Fatalf("the detail echoes too much: %d bytes", len(p.Detail))
			}
		})
	}
}

func TestDecodeJSONAccepts(t *testing.T) {
	for raw, want := range map[string]body{
		`{"name":"a","priority":1}`:   {Name: "a", Priority: 1},
		`{"priority":1.0}`:            {Priority: 1},
		`{"priority":2e0,"name":"x"}`: {Name: "x", Priority: 2},
		`{"usage":{"tokens":1E3}}`: {Usage: struct {
			Tokens int64 `json:"tokens"`
		}{1000}},
		`{"name":"\ud83d\ude00"}`:              {Name: "😀"},
		`{"name":"a\\ud800"}`:                  {Name: `a\ud800`},
		` {"name":"é"} `:                       {Name: "é"},
		`{"name":"x","usage":{},"retry":true}`: {Name: "x", Retry: true},
	} {
		got, p := decode(t, raw)
		if p != nil {
			t.Errorf("%s: refused: %+v", raw, p)
			continue
		}
		if got != want {
			t.Errorf("%s: got %+v, want %+v", raw, got, want)
		}
	}
}

func TestDecodeJSONContentTypeAndSize(t *testing.T) {
	r := httptest.NewRequest("POST", "/", strings.NewReader(`{}`))
	r.Header.Set("Content-Type", "text/plain")
	var p *httpapi.Problem
	if err := httpapi.DecodeJSON(httptest.NewRecorder(), r, &body{}); !errors.As(err, &p) || p.Status != http.StatusUnsupportedMediaType {
		t.Fatalf("text/plain: %v", err)
	}
	r = httptest.NewRequest("POST", "/", strings.NewReader(`{"name":"`+strings.Repeat("a", httpapi.MaxBody)+`"}`))
	if err := httpapi.DecodeJSON(httptest.NewRecorder(), r, &body{}); !errors.As(err, &p) || p.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized: %v", err)
	}
}

// Whatever the bytes, the decoder answers a client problem or a value, and
// what it accepts is valid UTF-8.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"name":"a","priority":1}`, `{"priority":1.0}`, `[]`, `{"name":"\ud800"}`,
		`{"a":1,"a":2}`, "{\"name\":\"\xff\"}", `{"usage":{"tokens":1e400}}`, `{"name":"\u0000"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var b body
		err := httpapi.Unmarshal(raw, &b)
		if err == nil {
			if !utf8.ValidString(b.Name) {
				t.Fatalf("accepted invalid UTF-8: %q", b.Name)
			}
			return
		}
		var p *httpapi.Problem
		if !errors.As(err, &p) || p.Status < 400 || p.Status >= 500 {
			t.Fatalf("%q: %v is not a client problem", raw, err)
		}
	})
}
