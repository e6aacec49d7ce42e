package schemas_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

func openAPIDoc(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(schemas.OpenAPI()))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	return doc
}

func TestOpenAPIVersion(t *testing.T) {
	doc := openAPIDoc(t)
	v, _ := doc["openapi"].(string)
	if !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(v) {
		t.Fatalf("openapi = %q, want 3.1.x", v)
	}
	for _, k := range []string{"info", "paths", "components"} {
		if _, ok := doc[k].(map[string]any); !ok {
			t.Errorf("document has no %s object", k)
		}
	}
}

// resolvePointer follows a JSON pointer ("#/a/b") inside doc.
func resolvePointer(doc any, ref string) (any, bool) {
	ptr, ok := strings.CutPrefix(ref, "#")
	if !ok {
		return nil, false
	}
	cur := doc
	if ptr == "" {
		return cur, true
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil, false
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch c := cur.(type) {
		case map[string]any:
			if cur, ok = c[tok]; !ok {
				return nil, false
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// walkRefs calls f with the location and value of every $ref in v.
func walkRefs(v any, at string, f func(at, ref string)) {
	switch c := v.(type) {
	case map[string]any:
		for k, e := range c {
			if s, ok := e.(string); ok && k == "$ref" {
				f(at, s)
				continue
			}
			walkRefs(e, at+"/"+k, f)
		}
	case []any:
		for i, e := range c {
			walkRefs(e, at+"/"+strconv.Itoa(i), f)
		}
	}
}

func TestOpenAPIRefsResolve(t *testing.T) {
	doc := openAPIDoc(t)
	n := 0
	walkRefs(doc, "#", func(at, ref string) {
		n++
		if _, ok := resolvePointer(doc, ref); !ok {
			t.Errorf("%s: $ref %q does not resolve inside the document", at, ref)
		}
	})
	if n == 0 {
		t.Fatal("no $ref found; the walk is broken")
	}
}

// TestOpenAPIOperations checks the shape every operation shares: a unique
// operationId, path parameters declared exactly once per template variable,
// and responses, with 401 and 429 on every operation that needs a key.
func TestOpenAPIOperations(t *testing.T) {
	doc := openAPIDoc(t)
	paths := doc["paths"].(map[string]any)
	ids := map[string]string{}
	vars := regexp.MustCompile(`\{([^}]+)\}`)
	for path, item := range paths {
		for method, o := range item.(map[string]any) {
			op := o.(map[string]any)
			where := strings.ToUpper(method) + " " + path
			id, _ := op["operationId"].(string)
			if id == "" {
				t.Errorf("%s has no operationId", where)
			} else if prev, dup := ids[id]; dup {
				t.Errorf("operationId %q used by %s and %s", id, prev, where)
			}
			ids[id] = where
			if rs, _ := op["responses"].(map[string]any); len(rs) == 0 {
				t.Errorf("%s has no responses", where)
			}
			var declared []string
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				if m, ok := p.(map[string]any); ok {
					if r, ok := m["$ref"].(string); ok {
						rp, _ := resolvePointer(doc, r)
						m, _ = rp.(map[string]any)
					}
					if m["in"] == "path" {
						declared = append(declared, m["name"].(string))
						if m["required"] != true {
							t.Errorf("%s: path parameter %v is not required", where, m["name"])
						}
					}
				}
			}
			var want []string
			for _, m := range vars.FindAllStringSubmatch(path, -1) {
				want = append(want, m[1])
			}
			sort.Strings(declared)
			sort.Strings(want)
			if strings.Join(declared, ",") != strings.Join(want, ",") {
				t.Errorf("%s declares path parameters %v, want %v", where, declared, want)
			}
			// Everything under /v1 but /v1/status needs the API key.
			sec, hasSec := op["security"]
			open := hasSec && len(sec.([]any)) == 0
			if wantOpen := !strings.HasPrefix(path, "/v1/") || path == "/v1/status"; open != wantOpen {
				t.Errorf("%s: open (no security) = %v, want %v", where, open, wantOpen)
			}
			// Any keyed operation can meet a bad key (401) and the
			// failed-authentication throttle (429).
			if !open {
				rs, _ := op["responses"].(map[string]any)
				for code, want := range map[string]string{"401": "Unauthorized", "429": "TooManyRequests"} {
					r, _ := rs[code].(map[string]any)
					if r["$ref"] != "#/components/responses/"+want {
						t.Errorf("%s: response %s is %v, want the shared %s", where, code, r, want)
					}
				}
			}
		}
	}
}

// TestOpenAPISchemasCompile compiles every component schema and every
// inline schema of a parameter, header or media type as JSON Schema 2020-12,
// and checks the request examples against their schemas.
func TestOpenAPISchemasCompile(t *testing.T) {
	const url = "file:///openapi.json"
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemas.OpenAPI()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(url, raw); err != nil {
		t.Fatal(err)
	}
	doc := openAPIDoc(t)
	compile := func(ptr string) *jsonschema.Schema {
		t.Helper()
		s, err := c.Compile(url + ptr)
		if err != nil {
			t.Errorf("schema %s does not compile: %v", ptr, err)
		}
		return s
	}
	comps := doc["components"].(map[string]any)["schemas"].(map[string]any)
	if len(comps) == 0 {
		t.Fatal("no component schemas")
	}
	for name := range comps {
		compile("#/components/schemas/" + name)
	}
	checked := 0
	var visit func(v any, ptr string)
	visit = func(v any, ptr string) {
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		for k, e := range m {
			p := ptr + "/" + strings.NewReplacer("~", "~0", "/", "~1").Replace(k)
			if k == "schema" {
				s := compile(p)
				if ex, ok := m["example"]; ok && s != nil {
					checked++
					inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(mustJSON(t, ex)))
					if err != nil {
						t.Fatal(err)
					}
					if err := s.Validate(inst); err != nil {
						t.Errorf("example at %s does not match its schema: %v", ptr, err)
					}
				}
				continue
			}
			if k == "examples" || k == "example" {
				continue
			}
			if arr, ok := e.([]any); ok {
				for i, x := range arr {
					visit(x, p+"/"+strconv.Itoa(i))
				}
				continue
			}
			visit(e, p)
		}
	}
	visit(doc["paths"], "#/paths")
	for _, k := range []string{"parameters", "headers", "responses"} {
		visit(doc["components"].(map[string]any)[k], "#/components/"+k)
	}
	if checked == 0 {
		t.Error("no request example was checked")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The document states the domain's one definition of acceptable text: every
// free string a request carries has its pattern.
func TestOpenAPIStringsStateTheDomainTextRule(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Type      any    `json:"type"`
					Enum      []any  `json:"enum"`
					Pattern   string `json:"pattern"`
					MinLength int    `json:"minLength"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(schemas.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for name, s := range doc.Components.Schemas {
		if !strings.HasSuffix(name, "Request") {
			continue
		}
		for field, p := range s.Properties {
			if typ, _ := p.Type.(string); typ != "string" || p.Enum != nil {
				continue
			}
			n++
			want := domain.TextPattern
			switch {
			case p.MinLength >= 1:
				want = domain.RequiredTextPattern
			case p.Pattern == "^$|"+domain.RequiredTextPattern:
				want = p.Pattern
			}
			if p.Pattern != want {
				t.Errorf("%s.%s: pattern %q, want %q", name, field, p.Pattern, want)
			}
		}
	}
	if n < 10 {
		t.Fatalf("only %d request strings checked", n)
	}
}
