package main_test

import (
	"strings"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/internal/pgtest"
)

// A task takes labels and a due time over HTTP (task.created v2), reads
// them back, is found by label, and bad values are refused naming the field.
func TestTaskLabelsAndDueTime(t *testing.T) {
	cfg := kafkatest.Config(t, 3)
	p := start(t, serveEnv(cfg.Brokers, cfg.Prefix, pgtest.URL(t), 3, saslEnv(cfg)...), "serve", "--http", "127.0.0.1:0")
	c := newClient(t, p.URL, testKey)
	ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "labels"}, wait, "wait=10").str("workspace_id")
	tagged := c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "tagged",
		"labels": []string{" bug ", "customer:acme"}, "due_at": "2026-12-01t17:00:00.123456789+01:00"}, wait, "wait=10").str("task_id")
	plain := c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "plain"}, wait, "wait=10").str("task_id")

	var got response
	eventually(t, 10*time.Second, "both tasks in the read models", func() bool {
		got = c.do("GET", "/v1/workspaces/"+ws+"/tasks/"+plain, nil)
		return got.Status == 200
	})
	got = c.must(200, "GET", "/v1/workspaces/"+ws+"/tasks/"+tagged, nil)
	labels, _ := got.Body["labels"].([]any)
	if len(labels) != 2 || labels[0] != "bug" || labels[1] != "customer:acme" || got.str("due_at") != "2026-12-01T16:00:00.123456Z" {
		t.Fatalf("tagged task: %s", got.Raw)
	}
	if got := c.must(200, "GET", "/v1/workspaces/"+ws+"/tasks/"+plain, nil); !strings.Contains(string(got.Raw), `"labels":[]`) ||
		got.Body["due_at"] != nil {
		t.Fatalf("plain task: %s", got.Raw)
	}
	page := c.must(200, "GET", "/v1/workspaces/"+ws+"/tasks?label=bug", nil)
	if tasks, _ := page.Body["tasks"].([]any); len(tasks) != 1 || tasks[0].(map[string]any)["id"] != tagged {
		t.Fatalf("?label=bug: %s", page.Raw)
	}
	for body, field := range map[string]string{
		`{"title":"t","due_at":"tomorrow"}`:             "due_at",
		`{"title":"t","due_at":17}`:                     "due_at",
		`{"title":"t","labels":["a","a"]}`:              "labels",
		`{"title":"t","labels":[""]}`:                   "labels",
		`{"title":"t","labels":"bug"}`:                  "labels",
		`{"title":"t","labels":[1]}`:                    "labels",
		`{"title":"t","due_at":"0000-01-01T00:00:00Z"}`: "due_at",
	} {
		r := c.do("POST", "/v1/workspaces/"+ws+"/tasks", body, wait, "wait=10")
		if r.Status < 400 || r.Status >= 500 || !strings.HasPrefix(r.str("field"), field) {
			t.Errorf("%s: %d %s, want a refusal naming %s", body, r.Status, r.Raw, field)
		}
	}
}
