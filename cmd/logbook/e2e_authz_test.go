package main_test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

// routeNeeds is what each route of the command and query APIs needs; the
// matrix test walks the router and fails on a route missing here, so no
// route escapes it.
var routeNeeds = map[string]domain.Permission{
	"POST /v1/workspaces":                            permCreate,
	"POST /v1/workspaces/{ws}/rename":                domain.PermWrite,
	"POST /v1/workspaces/{ws}/archive":               domain.PermManage,
	"POST /v1/workspaces/{ws}/erase":                 domain.PermManage,
	"POST /v1/workspaces/{ws}/members":               domain.PermManage,
	"DELETE /v1/workspaces/{ws}/members/{principal}": domain.PermManage,
	"POST /v1/workspaces/{ws}/agents":                domain.PermWrite,
	"PUT /v1/workspaces/{ws}/ai-policy":              domain.PermWrite,
	"POST /v1/workspaces/{ws}/tasks":                 domain.PermWrite,
	"POST /v1/workspaces/{ws}/tasks/{task}/assign":   domain.PermWrite,
	"POST /v1/workspaces/{ws}/tasks/{task}/start":    domain.PermWrite,
	"POST /v1/workspaces/{ws}/tasks/{task}/result":   domain.PermWrite,
	"POST /v1/workspaces/{ws}/tasks/{task}/fail":     domain.PermWrite,
	"POST /v1/workspaces/{ws}/tasks/{task}/retry":    domain.PermWrite,
	"POST /v1/workspaces/{ws}/tasks/{task}/complete": domain.PermWrite,
	"POST /v1/workspaces/{ws}/tasks/{task}/cancel":   domain.PermWrite,
	"GET /v1/workspaces/{ws}":                        domain.PermRead,
	"GET /v1/workspaces/{ws}/tasks":                  domain.PermRead,
	"GET /v1/workspaces/{ws}/tasks/{task}":           domain.PermRead,
	"GET /v1/workspaces/{ws}/events":                 domain.PermAudit,
	"GET /v1/workspaces/{ws}/events/export":          domain.PermAudit,
	"GET /v1/commands/{id}":                          permSender,
	"GET /v1/workspaces":                             permList,
	"GET /v1/keys":                                   permKeys,
	"GET /v1/audit/access":                           permAccess,
	"GET /v1/audit/keys":                             permKeys,
	"POST /v1/keys":                                  permKeys,
	"DELETE /v1/keys/{id}":                           permKeys,
}

const (
	permCreate domain.Permission = "create workspaces"
	permSender domain.Permission = "be the sender"
	permList   domain.Permission = "list own workspaces"
	permKeys   domain.Permission = "manage keys"
	permAccess domain.Permission = "audit, with ?workspace="
)

// principal is one key of the matrix and its grant in workspace A.
type principal struct {
	id, keyRole, memberRole string
	c                       *client
}

// TestAuthorizationMatrix sends every route, as every role, at a workspace
// the caller holds a grant in and at one it does not. Commands go with
// If-Match: "999" and Prefer: wait, so nothing changes: one the API lets
// through reaches the decider, which must authorize it too and then refuse
// the version (409). Denials are 404 without a grant (exactly as for an
// unknown workspace) and 403 with one.
func TestAuthorizationMatrix(t *testing.T) {
	dir := t.TempDir()
	p := startDev(t, dir)
	admin := principal{id: "bootstrap-admin", keyRole: domain.RoleAdmin, c: newClient(t, p.URL, p.Key)}
	key := func(role string) principal {
		id, k := createKey(t, p, role)
		return principal{id: id, keyRole: role, c: newClient(t, p.URL, k)}
	}
	writerA, writerB := key(domain.RoleWriter), key(domain.RoleWriter)
	reader, auditor := key(domain.RoleReader), key(domain.RoleAuditor)
	agent := key(domain.RoleAgent) // a service: its tasks are those assigned to agents, none here
	writerA.memberRole, reader.memberRole, auditor.memberRole = domain.RoleAdmin, domain.RoleReader, domain.RoleAuditor

	// Workspace A: writer A's (its creator), with a reader and an auditor.
	created := writerA.c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "a"}, wait, "wait=10")
	wsA, cmdA := created.str("workspace_id"), created.str("command_id")
	taskA := writerA.c.must(201, "POST", "/v1/workspaces/"+wsA+"/tasks", map[string]any{"title": "t"}, wait, "wait=10").str("task_id")
	for _, m := range []principal{reader, auditor} {
		writerA.c.must(200, "POST", "/v1/workspaces/"+wsA+"/members", map[string]any{"principal_id": m.id, "role": m.memberRole}, wait, "wait=10")
	}
	// Workspace B: writer B's alone.
	createdB := writerB.c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "b"}, wait, "wait=10")
	wsB, cmdB := createdB.str("workspace_id"), createdB.str("command_id")
	taskB := writerB.c.must(201, "POST", "/v1/workspaces/"+wsB+"/tasks", map[string]any{"title": "t"}, wait, "wait=10").str("task_id")
	// Three projections: the grants and tasks, and the command outcomes
	// (Prefer: wait answers from the results topic, not from them).
	eventually(t, 30*time.Second, "grants, tasks and outcomes projected", func() bool {
		a := admin.c.do("GET", "/v1/workspaces/"+wsA, nil)
		members, _ := a.Body["members"].([]any)
		return len(members) == 3 && admin.c.do("GET", "/v1/workspaces/"+wsB+"/tasks/"+taskB, nil).Status == 200 &&
			admin.c.do("GET", "/v1/commands/"+cmdA, nil).str("status") != "pending" &&
			admin.c.do("GET", "/v1/commands/"+cmdB, nil).str("status") != "pending"
	})

	_, ops := loadOpenAPI(t)
	examples := map[string]any{}
	for _, o := range ops {
		if rb, ok := o.Op["requestBody"].(map[string]any); ok {
			examples[o.Method+" "+o.Path] = rb["content"].(map[string]any)["application/json"].(map[string]any)["example"]
		}
	}
	var routes []string
	err := chi.Walk(apiRouter(&discardLog{}), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		routes = append(routes, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	cells := 0
	for _, route := range routes {
		need, ok := routeNeeds[route]
		if !ok {
			t.Errorf("route %s is not in the authorization matrix: add it to routeNeeds", route)
			continue
		}
		method, path, _ := strings.Cut(route, " ")
		for _, pr := range []principal{admin, writerA, reader, auditor, agent} {
			for _, own := range []bool{true, false} {
				ws, task, cmd, sender := wsA, taskA, cmdA, writerA.id
				if !own {
					ws, task, cmd, sender = wsB, taskB, cmdB, writerB.id
				}
				target := strings.NewReplacer("{ws}", ws, "{task}", task, "{principal}", reader.id, "{id}", cmd).Replace(path)
				if need == permAccess {
					target += "?workspace=" + ws
				}
				where := pr.id + " " + method + " " + target
				cells++
				if need == permSender {
					r := pr.c.must(200, method, target, nil)
					shown := r.str("status") != "pending"
					if want := pr.keyRole == domain.RoleAdmin || pr.id == sender; shown != want {
						t.Errorf("%s: outcome shown = %v, want %v: %s", where, shown, want, r.Raw)
					}
					if !shown && (r.str("type") != "" || r.str("workspace_id") != "") {
						t.Errorf("%s: an outcome it may not see tells something: %s", where, r.Raw)
					}
					continue
				}
				if need == permList {
					listed := map[string]string{}
					page := pr.c.must(200, method, target+"?limit=500", nil)
					items, _ := page.Body["workspaces"].([]any)
					for _, it := range items {
						m, _ := it.(map[string]any)
						id, _ := m["id"].(string)
						role, _ := m["role"].(string)
						listed[id] = role
					}
					roleA, inA := listed[wsA]
					_, inB := listed[wsB]
					isAdmin := pr.keyRole == domain.RoleAdmin
					if inA != (isAdmin || pr.memberRole != "") || roleA != pr.memberRole || inB != isAdmin {
						t.Errorf("%s: listed %v, want workspace A (role %q) and B only for admins", where, listed, pr.memberRole)
					}
					if isAdmin && own { // pages: one workspace each, in order, no repeats
						first := pr.c.must(200, method, target+"?limit=1", nil)
						next := first.str("next_cursor")
						second := pr.c.must(200, method, target+"?limit=1&cursor="+next, nil)
						a, _ := first.Body["workspaces"].([]any)
						b, _ := second.Body["workspaces"].([]any)
						if next == "" || len(a) != 1 || len(b) != 1 || a[0].(map[string]any)["id"] == b[0].(map[string]any)["id"] {
							t.Errorf("%s: pages of one: %s then %s", where, first.Raw, second.Raw)
						}
					}
					continue
				}
				var body any
				if ex, ok := examples[route]; ok {
					body = ex
				}
				r := pr.c.do(method, target, body, wait, "wait=10", "If-Match", `"999"`)
				want := expect(pr, own, need, method)
				if r.Status != want {
					t.Errorf("%s: %d, want %d: %s", where, r.Status, want, r.Raw)
				}
			}
		}
	}
	t.Logf("figures: authorization matrix: %d routes × 5 roles × own/other = %d cells", len(routes), cells)

	// A denial reads exactly like an unknown workspace.
	unknown := uuid.NewString()
	for _, path := range []string{"/v1/workspaces/%s", "/v1/workspaces/%s/tasks"} {
		hidden := reader.c.do("GET", strings.Replace(path, "%s", wsB, 1), nil)
		missing := reader.c.do("GET", strings.Replace(path, "%s", unknown, 1), nil)
		if hidden.Status != 404 || string(hidden.Raw) != string(missing.Raw) {
			t.Errorf("GET %s: another tenant's workspace answers %d %s, an unknown one %d %s", path, hidden.Status, hidden.Raw, missing.Status, missing.Raw)
		}
	}
	hidden := writerA.c.do("POST", "/v1/workspaces/"+wsB+"/tasks", map[string]any{"title": "x"}, wait, "wait=10")
	missing := writerA.c.do("POST", "/v1/workspaces/"+unknown+"/tasks", map[string]any{"title": "x"}, wait, "wait=10")
	if hidden.Status != 404 || strings.ReplaceAll(string(hidden.Raw), wsB, unknown) != string(missing.Raw) {
		t.Errorf("task.create: another tenant's workspace answers %d %s, an unknown one %d %s", hidden.Status, hidden.Raw, missing.Status, missing.Raw)
	}

	// Commands written straight to the log, past the API, unsigned: the
	// decider refuses them for their signature before anything else, and
	// no event follows. (Signed commands passed the API's check; the
	// decider's own grant check, for commands the API let through on a
	// stale grant, is the domain's, tested there.)
	before := admin.c.must(200, "GET", "/v1/workspaces/"+wsA, nil).Body["last_seq"]
	cl, err := kgo.NewClient(devKafka(t, p, dir)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for _, actor := range []domain.Actor{
		{ID: "mallory", Role: domain.RoleWriter}, // no grant at all
		{ID: reader.id, Role: domain.RoleWriter}, // a reader member claiming a writer key
	} {
		env, err := schemas.EncodeCommand(domain.Command{ID: uuid.NewString(), Type: domain.CmdTaskCreate, WorkspaceID: wsA,
			Actor: actor, IssuedAt: time.Now(), Payload: domain.TaskCreateCmd{TaskID: uuid.NewString(), Title: "crafted"}}, "")
		if err != nil {
			t.Fatal(err)
		}
		val, _ := json.Marshal(env)
		if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: "logbook.commands", Key: []byte(wsA), Value: val}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		r := outcome(t, admin.c, env.ID)
		if r.str("status") != "rejected" || r.str("code") != "forbidden" || r.str("field") != "signature" {
			t.Errorf("crafted command as %+v: %s, want rejected for its signature", actor, r.Raw)
		}
	}
	if after := admin.c.must(200, "GET", "/v1/workspaces/"+wsA, nil).Body["last_seq"]; after != before {
		t.Errorf("crafted commands changed workspace A: last_seq %v → %v", before, after)
	}
}

// expect is the status a matrix cell must get.
func expect(pr principal, own bool, need domain.Permission, method string) int {
	allowed := http.StatusOK // reads
	if method != http.MethodGet {
		allowed = http.StatusConflict // the decider's answer to If-Match: "999"
	}
	if need == permAccess {
		need = domain.PermAudit
	}
	if need == permKeys {
		switch {
		case pr.keyRole != domain.RoleAdmin:
			return http.StatusForbidden
		case method == http.MethodPost:
			return http.StatusCreated
		case method == http.MethodDelete:
			return http.StatusNotFound // {id} is a command's id: no such key
		}
		return allowed
	}
	if need == permCreate {
		if domain.MayCreateWorkspace(pr.keyRole) {
			return allowed
		}
		return http.StatusForbidden
	}
	member := pr.memberRole
	if !own {
		member = ""
	}
	switch domain.Authorize(pr.keyRole, member, need) {
	case domain.Hidden:
		return http.StatusNotFound
	case domain.Forbidden:
		return http.StatusForbidden
	}
	return allowed
}

// createKey runs `logbook keys create` against a running server as its
// admin and waits until the server accepts the new key.
func createKey(t *testing.T, p *proc, role string, workspaces ...string) (id, key string) {
	t.Helper()
	args := []string{"keys", "create", "--role", role, "--url", p.URL, "--key", p.Key}
	for _, ws := range workspaces {
		args = append(args, "--workspace", ws)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), devEnv()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("keys create: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "id: "); ok {
			id = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "key (shown once): "); ok {
			key = strings.TrimSpace(v)
		}
	}
	if id == "" || key == "" {
		t.Fatalf("keys create printed no id or key: %s", out)
	}
	c := newClient(t, p.URL, key)
	eventually(t, 30*time.Second, "key "+id+" accepted", func() bool {
		return c.do("GET", "/v1/commands/"+uuid.NewString(), nil).Status == 200
	})
	return id, key
}
