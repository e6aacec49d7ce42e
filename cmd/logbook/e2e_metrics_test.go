package main_test

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/internal/aifake"
)

// scrape is one /metrics page, parsed.
type scrape []metricSample

type metricSample struct {
	name   string
	labels map[string]string
	value  float64
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"`)
)

func scrapeMetrics(t testing.TB, c *client) scrape {
	t.Helper()
	r := c.do("GET", "/metrics", nil)
	if r.Status != 200 {
		t.Fatalf("GET /metrics: %d", r.Status)
	}
	var out scrape
	for _, line := range strings.Split(string(r.Raw), "\n") {
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		s := metricSample{name: m[1], labels: map[string]string{}, value: v}
		for _, p := range labelPair.FindAllStringSubmatch(m[2], -1) {
			s.labels[p[1]] = p[2]
		}
		out = append(out, s)
	}
	return out
}

// sum adds the samples of name whose labels include want ("!" before a
// value: any other value).
func (s scrape) sum(name string, want ...string) float64 {
	var total float64
	for _, x := range s {
		if x.name == name && x.matches(want) {
			total += x.value
		}
	}
	return total
}

func (s scrape) has(name string) bool {
	for _, x := range s {
		if x.name == name || strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(x.name, "_bucket"), "_count"), "_sum") == name {
			return true
		}
	}
	return false
}

func (x metricSample) matches(want []string) bool {
	for i := 0; i+1 < len(want); i += 2 {
		v, not := strings.CutPrefix(want[i+1], "!")
		if (x.labels[want[i]] == v) == not {
			return false
		}
	}
	return true
}

// TestMetricsMoveUnderLoadWithAnAIOutage scrapes /metrics while AI tasks
// arrive, before and during a provider outage and after it ends, and checks
// that each family an operator watches moves as it should: HTTP by route
// and status, decisions by type, transaction and projector batches,
// provider calls by result and tokens, breaker state, degradation level,
// consumer lag per group and the Kafka client metrics. Every logbook metric
// the alert rules use is among them.
func TestMetricsMoveUnderLoadWithAnAIOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("boots logbook dev")
	}
	fake := aifake.Start()
	defer fake.Close()
	p := start(t, agentEnv(fake, "LOGBOOK_AGENT_WINDOW=8"), "dev", "--data", t.TempDir(), "--http", "127.0.0.1:0")
	c := newClient(t, p.URL, p.Key)
	ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "observed"}, wait, "wait=10").str("workspace_id")
	ag := c.must(201, "POST", "/v1/workspaces/"+ws+"/agents", map[string]any{"name": "writer",
		"model": "gpt-4o-mini", "instructions": "Answer briefly."}, wait, "wait=10").str("agent_id")
	create := func(n int) {
		for i := 0; i < n; i++ {
			c.must(202, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": fmt.Sprintf("t%d", i),
				"input": "summarise the incident", "assignee": ag})
		}
	}
	tasks := `/v1/workspaces/{ws}/tasks`

	create(10)
	eventually(t, 30*time.Second, "the first AI answers", func() bool { return fake.Calls(aifake.Healthy) >= 5 })
	var before scrape
	eventually(t, 30*time.Second, "the lag measured", func() bool {
		before = scrapeMetrics(t, c)
		return before.sum("logbook_consumer_lag_up") == 1
	})

	fake.SetMode(aifake.ServerError)
	create(30)
	c.must(422, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": ""})
	c.must(404, "GET", "/v1/no-such-route", nil)
	var during scrape
	eventually(t, 60*time.Second, "the breaker open and the agent's backlog in the lag", func() bool {
		during = scrapeMetrics(t, c)
		return during.sum("logbook_ai_provider_state", "provider", "openai") >= 1 &&
			during.sum("logbook_degradation_level") == 1 &&
			during.sum("logbook_consumer_lag", "group", "logbook-agent") >= 10
	})

	grew := func(name string, labels ...string) {
		t.Helper()
		if b, d := before.sum(name, labels...), during.sum(name, labels...); d <= b {
			t.Errorf("%s%v did not grow: %v then %v", name, labels, b, d)
		}
	}
	grew("logbook_http_requests_total", "route", tasks, "method", "POST", "status", "202")
	grew("logbook_http_request_duration_seconds_count", "route", tasks, "method", "POST")
	grew("logbook_decider_decisions_total", "type", "task.create", "status", "accepted")
	grew("logbook_decider_transaction_seconds_count")
	grew("logbook_decider_transaction_commands_sum")
	grew("logbook_projector_batch_records_sum", "projection", "read_models")
	grew("logbook_projector_apply_seconds_count", "projection", "command_results")
	grew("logbook_ai_provider_calls_total", "provider", "openai", "result", "!ok")
	grew("logbook_kafka_produce_bytes_total")
	grew("logbook_kafka_fetch_bytes_total")
	if n := during.sum("logbook_http_requests_total", "route", tasks, "status", "422"); n != 1 {
		t.Errorf("one 422 answered, metric says %v", n)
	}
	if n := during.sum("logbook_http_requests_total", "route", "unmatched", "status", "404"); n != 1 {
		t.Errorf("one unmatched route asked, metric says %v", n)
	}
	if during.sum("logbook_ai_provider_calls_total", "provider", "openai", "result", "ok") < 5 ||
		during.sum("logbook_ai_tokens_total", "provider", "openai", "kind", "prompt") <= 0 {
		t.Errorf("calls answered before the outage and their tokens are missing")
	}
	if n := during.sum("logbook_consumer_group_members", "group", "logbook-decider"); n != 1 {
		t.Errorf("decider group members: %v, want 1", n)
	}

	// The alert rules and the dashboard only use metrics that exist.
	for _, file := range []string{"../../deploy/prometheus/alerts.yml", "../../deploy/grafana/logbook.json"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		// Created on their first occurrence (a connection error).
		lazy := map[string]bool{"logbook_kafka_connect_errors_total": true}
		for _, name := range regexp.MustCompile(`\blogbook_[a-z_]+`).FindAllString(string(b), -1) {
			if !lazy[name] && !during.has(name) {
				t.Errorf("%s uses %s, which /metrics does not show", file, name)
			}
		}
	}

	// The provider is back: the breaker closes, the level and the agent's
	// lag come down.
	fake.SetMode(aifake.Healthy)
	eventually(t, 90*time.Second, "level full and the agent's backlog drained", func() bool {
		after := scrapeMetrics(t, c)
		parts := 0
		for _, x := range after {
			if x.name == "logbook_consumer_lag" && x.labels["group"] == "logbook-agent" {
				parts++
			}
		}
		// At rest each partition shows 1 at most: the last commit marker.
		return after.sum("logbook_degradation_level") == 0 && after.sum("logbook_ai_provider_state", "provider", "openai") == 0 &&
			after.sum("logbook_consumer_lag", "group", "logbook-agent") <= float64(parts)
	})
}
