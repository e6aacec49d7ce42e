package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/auth"
	"github.com/logbook-dev/logbook/internal/httpapi"
	"github.com/logbook-dev/logbook/producers"
	"github.com/logbook-dev/logbook/projections"
	"github.com/logbook-dev/logbook/schemas"
)

// The OpenAPI document is checked against the routes the command and query
// APIs mount, by walking the router and by calling the command handlers with
// the document's own examples. The routes app.go adds itself (/healthz,
// /readyz, /v1/status, /metrics, /openapi.json) are documented but not
// walked here.

const openAPIURL = "file:///openapi.json"

// appRoutes are documented operations mounted by app.go, not by the two
// Routes methods walked here.
var appRoutes = map[string]bool{
	"GET /healthz": true, "GET /readyz": true, "GET /metrics": true, "GET /openapi.json": true,
	"GET /v1/status": true,
}

type openAPIOp struct {
	Method, Path string
	Op           map[string]any
}

func loadOpenAPI(t *testing.T) (map[string]any, []openAPIOp) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(schemas.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	var ops []openAPIOp
	for path, item := range doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			ops = append(ops, openAPIOp{strings.ToUpper(method), path, op.(map[string]any)})
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].Path+ops[i].Method < ops[j].Path+ops[j].Method })
	return doc, ops
}

// discardLog stands in for the commands topic.
type discardLog struct {
	mu   sync.Mutex
	envs []schemas.CommandEnvelope
}

func (l *discardLog) Append(_ context.Context, env schemas.CommandEnvelope) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.envs = append(l.envs, env)
	return nil
}

func apiRouter(log producers.CommandLog) chi.Router {
	r := chi.NewRouter()
	producers.New(producers.Config{Log: log}).Routes(r)
	projections.NewQueries(nil, nil).Routes(r)
	return r
}

func TestOpenAPIMatchesRouter(t *testing.T) {
	_, ops := loadOpenAPI(t)
	documented := map[string]bool{}
	for _, o := range ops {
		documented[o.Method+" "+o.Path] = true
	}
	routed := map[string]bool{}
	err := chi.Walk(apiRouter(&discardLog{}), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routed[method+" "+route] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(routed) == 0 {
		t.Fatal("chi.Walk found no routes")
	}
	for k := range routed {
		if !documented[k] {
			t.Errorf("route %s is not in openapi.json", k)
		}
	}
	for k := range documented {
		path := strings.SplitN(k, " ", 2)[1]
		if strings.HasPrefix(path, "/v1/") && !appRoutes[k] && !routed[k] {
			t.Errorf("openapi.json documents %s, which the router does not serve", k)
		}
	}
	for k := range appRoutes {
		if !documented[k] {
			t.Errorf("openapi.json does not document %s", k)
		}
	}
}

// schemaCompiler compiles schemas at JSON pointers into the document.
func schemaCompiler(t *testing.T) func(ptr string) *jsonschema.Schema {
	t.Helper()
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemas.OpenAPI()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(openAPIURL, raw); err != nil {
		t.Fatal(err)
	}
	return func(ptr string) *jsonschema.Schema {
		t.Helper()
		s, err := c.Compile(openAPIURL + ptr)
		if err != nil {
			t.Fatalf("compile %s: %v", ptr, err)
		}
		return s
	}
}

func pointerEscape(s string) string { return strings.NewReplacer("~", "~0", "/", "~1").Replace(s) }

func validateJSON(t *testing.T, s *jsonschema.Schema, body []byte, what string) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Errorf("%s: body is not JSON: %v: %s", what, err, body)
		return
	}
	if err := s.Validate(inst); err != nil {
		t.Errorf("%s: body does not match the documented schema: %v\n%s", what, err, body)
	}
}

// resolve follows a local $ref, once.
func resolve(doc map[string]any, v any) map[string]any {
	m, _ := v.(map[string]any)
	ref, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	var cur any = doc
	for _, tok := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		cur = cur.(map[string]any)[strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)]
	}
	m, _ = cur.(map[string]any)
	return m
}

var pathArgs = strings.NewReplacer(
	"{ws}", "0190f7a2-0000-7000-8000-000000000001",
	"{task}", "0190f7a2-0000-7000-8000-000000000002",
	"{principal}", "key_writer_1",
)

// TestOpenAPICommandExamples sends every documented command, with its
// documented example body, to the command API: the example must be
// accepted (so every documented field is one the handler knows), the answer
// must match the documented 202 schema, and an undocumented field must be
// refused with a problem as documented.
func TestOpenAPICommandExamples(t *testing.T) {
	doc, ops := loadOpenAPI(t)
	compile := schemaCompiler(t)
	log := &discardLog{}
	r := apiRouter(log)
	problem := compile("#/components/schemas/Problem")
	n := 0
	for _, o := range ops {
		if o.Method == http.MethodGet {
			continue
		}
		n++
		where := o.Method + " " + o.Path
		opPtr := "#/paths/" + pointerEscape(o.Path) + "/" + strings.ToLower(o.Method)
		target := pathArgs.Replace(o.Path)

		var body []byte
		var example map[string]any
		if rb, ok := o.Op["requestBody"].(map[string]any); ok {
			media := rb["content"].(map[string]any)["application/json"].(map[string]any)
			example, _ = media["example"].(map[string]any)
			if example == nil {
				t.Errorf("%s: request body has no example", where)
				continue
			}
			// The example names every documented field.
			props := resolve(doc, media["schema"])["properties"].(map[string]any)
			for p := range props {
				if _, ok := example[p]; !ok {
					t.Errorf("%s: example lacks documented field %q", where, p)
				}
			}
			body, _ = json.Marshal(example)
		}

		req := httptest.NewRequest(o.Method, target, bytes.NewReader(body))
		req = req.WithContext(auth.WithPrincipal(req.Context(), auth.Principal{ID: "key_admin_1", Role: auth.RoleAdmin}))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Correlation-ID", "openapi-test")
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code != http.StatusAccepted {
			t.Errorf("%s with the documented example: %d %s", where, rec.Code, rec.Body)
			continue
		}
		if _, ok := o.Op["responses"].(map[string]any)["202"]; !ok {
			t.Errorf("%s: 202 is not documented", where)
			continue
		}
		if loc := rec.Header().Get("Location"); !strings.HasPrefix(loc, "/v1/commands/") {
			t.Errorf("%s: Location = %q", where, loc)
		}
		validateJSON(t, compile(opPtr+"/responses/202/content/application~1json/schema"), rec.Body.Bytes(), where+" 202")

		if example == nil {
			continue
		}
		example["undocumented_field"] = true
		body, _ = json.Marshal(example)
		req = httptest.NewRequest(o.Method, target, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec = httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnprocessableEntity {
			t.Errorf("%s with an undocumented field: %d, want 422", where, rec.Code)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s: problem Content-Type = %q", where, ct)
		}
		validateJSON(t, problem, rec.Body.Bytes(), where+" 422")
		if _, ok := o.Op["responses"].(map[string]any)["422"]; !ok {
			t.Errorf("%s: 422 is not documented", where)
		}
	}
	if n == 0 {
		t.Fatal("no command operations documented")
	}
	if len(log.envs) != n {
		t.Errorf("%d commands appended, want %d", len(log.envs), n)
	}
}

// jsonFields returns the JSON names of a struct's fields, embedded structs
// flattened, and which of them are omitempty.
func jsonFields(t reflect.Type) (names []string, optional map[string]bool) {
	optional = map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			n, o := jsonFields(f.Type)
			names = append(names, n...)
			for k, v := range o {
				optional[k] = v
			}
			continue
		}
		if name == "" {
			name = f.Name
		}
		names = append(names, name)
		if strings.Contains(opts, "omitempty") {
			optional[name] = true
		}
	}
	return names, optional
}

// TestOpenAPIViewSchemas checks that the documented response schemas have
// exactly the Go structs' JSON fields, with every field that is always sent
// required, and that sample values match them.
func TestOpenAPIViewSchemas(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	comps := doc["components"].(map[string]any)["schemas"].(map[string]any)
	compile := schemaCompiler(t)
	for name, v := range map[string]any{
		"WorkspaceView": projections.WorkspaceView{},
		"AgentView":     projections.AgentView{},
		"TaskView":      projections.TaskView{},
		"EventView":     projections.EventView{},
		"ExportHeader":  schemas.ExportHeader{},
		"ExportHead":    schemas.ExportHead{},
		"CommandView":   projections.CommandView{},
		"Problem":       httpapi.Problem{},
		"AIPolicy":      domain.AIPolicy{},
		"Member":        domain.Member{},
		"Actor":         domain.Actor{},
		"AggregateRef":  domain.AggregateRef{},
		"EventRef":      schemas.EventRef{},
		"TokenUsage":    domain.TokenUsage{},
	} {
		s, ok := comps[name].(map[string]any)
		if !ok {
			t.Errorf("schema %s is not documented", name)
			continue
		}
		fields, optional := jsonFields(reflect.TypeOf(v))
		var props []string
		for p := range s["properties"].(map[string]any) {
			props = append(props, p)
		}
		sort.Strings(fields)
		sort.Strings(props)
		if !slices.Equal(fields, props) {
			t.Errorf("schema %s has properties %v, the Go struct sends %v", name, props, fields)
		}
		if name == "TokenUsage" {
			continue // also a request schema, where both counts are optional
		}
		var required []string
		for _, r := range s["required"].([]any) {
			required = append(required, r.(string))
		}
		for _, f := range fields {
			if !optional[f] && !slices.Contains(required, f) {
				t.Errorf("schema %s: %s is always sent but not required", name, f)
			}
			if optional[f] && slices.Contains(required, f) {
				t.Errorf("schema %s: %s is omitempty but required", name, f)
			}
		}
	}

	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	instr := "be brief"
	task := projections.TaskView{ID: "t1", WorkspaceID: "w1", Title: "x", Status: domain.TaskStatusPending,
		CreatedAt: now, UpdatedAt: now, Version: 1}
	ev := projections.EventView{EventEnvelope: schemas.EventEnvelope{ID: "e1", Type: domain.EvTaskCreated,
		Version: 1, WorkspaceID: "w1", Aggregate: domain.AggregateRef{Type: domain.AggregateTask, ID: "t1", Version: 1},
		Seq: 2, CommandID: "c1", Actor: domain.Actor{ID: "k1", Role: "writer"}, OccurredAt: now,
		Payload: json.RawMessage(`{"task_id":"t1"}`), PrevHash: "a", Hash: "b"}}
	for name, v := range map[string]any{
		"WorkspaceView": projections.WorkspaceView{ID: "w1", Name: "n", Status: domain.WorkspaceStatusActive,
			AIPolicy: domain.AIPolicy{FallbackMode: domain.FallbackNone}, Members: []domain.Member{{PrincipalID: "k1", Role: "admin"}},
			Agents:    []projections.AgentView{{ID: "a1", Name: "n", Model: "m", Instructions: &instr, CreatedAt: now}, {ID: "a2", CreatedAt: now}},
			CreatedAt: now, UpdatedAt: now},
		"TaskView":     task,
		"TaskPage":     map[string]any{"tasks": []projections.TaskView{task}, "next_cursor": "0190f7a2-0000-7000-8000-000000000002"},
		"EventPage":    map[string]any{"events": []projections.EventView{ev}, "next_after_seq": 2},
		"CommandView":  projections.CommandView{CommandID: "c1", Status: "rejected", Code: "conflict", DecidedAt: &now},
		"ExportHeader": schemas.ExportHeader{Format: schemas.ExportFormat, WorkspaceID: "w1", ExportedAt: now},
		"ExportHead":   schemas.ExportHead{WorkspaceID: "w1", Seq: 2, Hash: "b", Events: 2},
		"Problem":      httpapi.Unavailable("read_only", "down", 5),
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		validateJSON(t, compile("#/components/schemas/"+name), b, name)
	}
}
