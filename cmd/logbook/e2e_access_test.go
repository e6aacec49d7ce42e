package main_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
)

// TestAccessAuditRecordsFailuresAndDenialsWithoutKeys fails an
// authentication, is hidden another tenant's workspace and is forbidden the
// key routes, then reads the access audit as an admin and as the
// workspace's auditor, and searches it, and the access topic, for key
// material.
func TestAccessAuditRecordsFailuresAndDenialsWithoutKeys(t *testing.T) {
	dir := t.TempDir()
	p := startDev(t, dir)
	admin := newClient(t, p.URL, p.Key)
	ws := admin.must(201, "POST", "/v1/workspaces", map[string]any{"name": "audited"}, wait, "wait=10").str("workspace_id")
	outsiderID, outsiderKey := createKey(t, p, "writer")
	auditorID, auditorKey := createKey(t, p, "auditor", ws)
	outsider, auditor := newClient(t, p.URL, outsiderKey), newClient(t, p.URL, auditorKey)

	const wrong = "lbk_not-a-key-0123456789abcdefghijklmnopqrstuv"
	newClient(t, p.URL, wrong).must(401, "GET", "/v1/workspaces/"+ws+"/tasks", nil)
	outsider.must(404, "GET", "/v1/workspaces/"+ws, nil)
	outsider.must(404, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "x"})
	outsider.must(403, "GET", "/v1/keys", nil)
	auditor.must(403, "GET", "/v1/workspaces/"+ws+"/tasks", nil)

	type row struct{ outcome, principal, route, ws string }
	want := []row{
		{"unauthenticated", "", "/v1/workspaces/{ws}/tasks", ws},
		{"hidden", outsiderID, "/v1/workspaces/{ws}", ws},
		{"hidden", outsiderID, "/v1/workspaces/{ws}/tasks", ws},
		{"forbidden", outsiderID, "/v1/keys", ""},
		{"forbidden", auditorID, "/v1/workspaces/{ws}/tasks", ws},
	}
	read := func(c *client, query string) ([]row, string) {
		r := c.must(200, "GET", "/v1/audit/access?limit=100"+query, nil)
		var got []row
		for _, it := range r.Body["records"].([]any) {
			m := it.(map[string]any)
			pr, _ := m["principal_id"].(string)
			w, _ := m["workspace_id"].(string)
			if m["source"] != "127.0.0.1" || m["at"] == "" {
				t.Errorf("record without its source or time: %v", m)
			}
			got = append(got, row{m["outcome"].(string), pr, m["route"].(string), w})
		}
		return got, string(r.Raw)
	}
	var all []row
	var raw string
	eventually(t, 30*time.Second, "access records projected", func() bool {
		all, raw = read(admin, "")
		return len(all) >= len(want)
	})
	for i, w := range want {
		if i >= len(all) || all[i] != w {
			t.Errorf("record %d = %+v, want %+v (all: %+v)", i, all[i:min(i+1, len(all))], w, all)
		}
	}
	// The auditor reads its workspace's records, not the rest.
	mine, _ := read(auditor, "")
	if len(mine) != 4 {
		t.Errorf("the auditor reads %+v, want the 4 records of its workspace", mine)
	}
	for _, r := range mine {
		if r.ws != ws {
			t.Errorf("the auditor reads another workspace's record: %+v", r)
		}
	}
	narrowed, _ := read(auditor, "&workspace="+ws+"&since="+time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	if len(narrowed) != 4 {
		t.Errorf("?workspace=&since= reads %+v", narrowed)
	}
	outsider.must(404, "GET", "/v1/audit/access?workspace="+ws, nil)
	outsider.must(403, "GET", "/v1/audit/access", nil)

	// No key material anywhere: not in the answers, not in the topic.
	secrets := []string{wrong, outsiderKey, auditorKey, p.Key}
	cl, err := kgo.NewClient(devKafka(t, p, dir)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var topic strings.Builder
	err = kafka.ReadToEnd(ctx, cl, "logbook.access", map[int32]int64{0: 0}, func(r *kgo.Record) error {
		topic.Write(r.Key)
		topic.Write(r.Value)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(topic.String(), outsiderID) {
		t.Fatalf("the access topic lacks the records: %s", topic.String())
	}
	for _, s := range secrets {
		for _, part := range []string{s, s[4:16], s[len(s)-12:]} {
			if strings.Contains(raw, part) || strings.Contains(topic.String(), part) {
				t.Errorf("key material %q… found in the access audit", part[:6])
			}
		}
	}
}
