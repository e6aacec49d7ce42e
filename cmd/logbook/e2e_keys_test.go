package main_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestKeysAreEventsAndRevocationReachesEveryInstance issues a key with a
// grant through one API instance, uses it on another, lists it, revokes it
// and measures how long until both instances refuse it.
func TestKeysAreEventsAndRevocationReachesEveryInstance(t *testing.T) {
	env := clusterEnv(t, 3)
	api1 := start(t, env, "serve", "--roles", "api,decider,projector", "--http", "127.0.0.1:0")
	api2 := start(t, env, "serve", "--roles", "api", "--http", "127.0.0.1:0")
	admin := newClient(t, api1.URL, testKey)

	ws := admin.must(201, "POST", "/v1/workspaces", map[string]any{"name": "granted"}, wait, "wait=30").str("workspace_id")
	other := admin.must(201, "POST", "/v1/workspaces", map[string]any{"name": "not granted"}, wait, "wait=30").str("workspace_id")
	unknown := uuid.NewString()

	issued := admin.must(201, "POST", "/v1/keys", map[string]any{"role": "writer", "label": " ci ", "workspaces": []string{ws, unknown}})
	id, key := issued.str("id"), issued.str("key")
	if !strings.HasPrefix(key, "lbk_") || len(key) < 4+43 || issued.str("label") != "ci" || issued.str("status") != "accepted" {
		t.Fatalf("issued key: %s", issued.Raw)
	}
	grants, _ := issued.Body["grants"].([]any)
	if len(grants) != 2 || grants[0].(map[string]any)["status"] != "accepted" || grants[1].(map[string]any)["status"] != "rejected" {
		t.Fatalf("grants: %s", issued.Raw)
	}

	// The key works on both instances, in its workspace only, as a writer.
	for _, base := range []string{api1.URL, api2.URL} {
		c := newClient(t, base, key)
		if base == api1.URL { // 201: the instance that answered takes it at once
			c.must(200, "GET", "/v1/workspaces/"+ws, nil)
		}
		eventually(t, 5*time.Second, "the new key works on "+base, func() bool {
			return c.do("GET", "/v1/workspaces/"+ws, nil).Status == 200
		})
		c.must(404, "GET", "/v1/workspaces/"+other, nil)
		c.must(403, "GET", "/v1/keys", nil)
		c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "by the new key"}, wait, "wait=30")
	}

	// Listed, never with its secret or hash; the trail holds its issue.
	list := admin.must(200, "GET", "/v1/keys?limit=100", nil)
	if strings.Contains(string(list.Raw), key) || strings.Contains(string(list.Raw), key[4:20]) || !strings.Contains(string(list.Raw), id) {
		t.Fatalf("GET /v1/keys: %s", list.Raw)
	}
	for _, k := range list.Body["keys"].([]any) {
		m := k.(map[string]any)
		if m["id"] == id && (m["role"] != "writer" || m["origin"] != "log" || m["issued_by"] != "bootstrap-admin" || m["revoked_at"] != nil) {
			t.Errorf("listed key: %v", m)
		}
		if _, ok := m["hash"]; ok {
			t.Errorf("a listed key shows its hash: %v", m)
		}
	}

	// A cursor no key id can be (not UTF-8, too long) is refused, never a 500.
	admin.must(422, "GET", "/v1/keys?cursor=%FF", nil)
	admin.must(422, "GET", "/v1/keys?cursor="+strings.Repeat("k", 401), nil)

	// Revoked through one instance: refused by both within 5 s.
	began := time.Now()
	admin.must(204, "DELETE", "/v1/keys/"+id, nil)
	// The instance that answered already refuses it.
	newClient(t, api1.URL, key).must(401, "GET", "/v1/workspaces/"+ws, nil)
	for _, base := range []string{api1.URL, api2.URL} {
		c := newClient(t, base, key)
		eventually(t, 5*time.Second-time.Since(began), "the revoked key refused on "+base, func() bool {
			return c.do("GET", "/v1/workspaces/"+ws, nil).Status == 401
		})
	}
	t.Logf("figures: revocation refused on both API instances %v after DELETE was sent", time.Since(began).Round(time.Millisecond))
	admin.must(409, "DELETE", "/v1/keys/"+id, nil)
	admin.must(404, "DELETE", "/v1/keys/key_"+uuid.NewString(), nil)
	admin.must(409, "DELETE", "/v1/keys/bootstrap-admin", nil)

	// An agent key acts on tasks assigned to an agent, in any workspace,
	// and on nothing else.
	agentKey := admin.must(201, "POST", "/v1/keys", map[string]any{"role": "agent", "label": "ai worker"}).str("key")
	bot := admin.must(201, "POST", "/v1/workspaces/"+other+"/agents", map[string]any{"name": "bot", "role": "writer",
		"model": "m", "instructions": "be brief"}, wait, "wait=30").str("agent_id")
	task := admin.must(201, "POST", "/v1/workspaces/"+other+"/tasks", map[string]any{"title": "t", "assignee": bot}, wait, "wait=30").str("task_id")
	byHand := admin.must(201, "POST", "/v1/workspaces/"+other+"/tasks", map[string]any{"title": "t"}, wait, "wait=30").str("task_id")
	worker := newClient(t, api2.URL, agentKey)
	eventually(t, 5*time.Second, "the agent key works on the other instance", func() bool {
		return worker.do("GET", "/v1/workspaces/"+other, nil).Status == 403
	})
	worker.must(200, "POST", "/v1/workspaces/"+other+"/tasks/"+task+"/start", nil, wait, "wait=30")
	worker.must(200, "POST", "/v1/workspaces/"+other+"/tasks/"+task+"/result", map[string]any{"attempt": 1, "output": "done",
		"usage": map[string]any{"prompt_tokens": 3, "completion_tokens": 2}}, wait, "wait=30")
	worker.must(403, "POST", "/v1/workspaces/"+other+"/tasks/"+byHand+"/start", nil, wait, "wait=30")
	worker.must(403, "POST", "/v1/workspaces/"+other+"/tasks", map[string]any{"title": "t"}, wait, "wait=30")
	worker.must(403, "GET", "/v1/workspaces/"+other+"/tasks/"+task, nil)

	// The key's issue and revocation are in the key registry's trail.
	trail := admin.must(200, "GET", "/v1/audit/keys", nil)
	if !strings.Contains(string(trail.Raw), `"key.issued"`) || !strings.Contains(string(trail.Raw), `"key.revoked"`) {
		t.Errorf("key registry trail: %s", trail.Raw)
	}
}
