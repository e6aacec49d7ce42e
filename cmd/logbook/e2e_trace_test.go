package main_test

import (
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/logbook-dev/logbook/internal/aifake"
)

// collector is an OTLP/HTTP trace receiver that keeps every span in memory.
type collector struct {
	mu    sync.Mutex
	spans map[string][]string // trace id → span names
}

func (c *collector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = gz
	}
	b, err := io.ReadAll(body)
	var req coltrace.ExportTraceServiceRequest
	if err == nil {
		err = proto.Unmarshal(b, &req)
	}
	if err != nil || r.URL.Path != "/v1/traces" {
		http.Error(w, "bad export", 400)
		return
	}
	c.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				id := hex.EncodeToString(s.TraceId)
				c.spans[id] = append(c.spans[id], s.Name)
			}
		}
	}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Write(out)
}

func (c *collector) names(trace string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.spans[trace]...)
}

// TestOneTraceFromTheRequestToTheProjectionAndTheProviderCall: with an OTLP
// endpoint set, an AI task's creation is one trace, from the HTTP request
// (its id in X-Trace-Id) through the command's append, the decision, the
// events' append and projection, to the agent's provider call; and the
// agent's log line about that call carries the trace id.
func TestOneTraceFromTheRequestToTheProjectionAndTheProviderCall(t *testing.T) {
	if testing.Short() {
		t.Skip("boots logbook dev")
	}
	col := &collector{spans: map[string][]string{}}
	srv := httptest.NewServer(col)
	defer srv.Close()
	fake := aifake.Start()
	defer fake.Close()
	p := start(t, agentEnv(fake, "LOGBOOK_OTLP_ENDPOINT="+srv.URL, "OTEL_BSP_SCHEDULE_DELAY=100"),
		"dev", "--data", t.TempDir(), "--http", "127.0.0.1:0")
	c := newClient(t, p.URL, p.Key)
	ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "traced"}, wait, "wait=10").str("workspace_id")
	ag := c.must(201, "POST", "/v1/workspaces/"+ws+"/agents", map[string]any{"name": "writer",
		"model": "gpt-4o-mini", "instructions": "Answer briefly."}, wait, "wait=10").str("agent_id")
	r := c.must(202, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "traced task",
		"input": "summarise the incident", "assignee": ag})
	trace := r.Header.Get("X-Trace-Id")
	if len(trace) != 32 {
		t.Fatalf("X-Trace-Id %q", trace)
	}
	want := []string{"POST /v1/workspaces/{ws}/tasks", "logbook.commands publish", "decide", "logbook.events publish",
		"project read_models", "project command_results", "ai complete"}
	var got []string
	t.Cleanup(func() {
		if t.Failed() {
			col.mu.Lock()
			t.Logf("trace %s has %v; the collector holds %d traces: %v", trace, got, len(col.spans), col.spans)
			col.mu.Unlock()
		}
	})
	eventually(t, 60*time.Second, "every span of the task's trace exported", func() bool {
		got = col.names(trace)
		for _, w := range want {
			found := false
			for _, g := range got {
				found = found || g == w
			}
			if !found {
				return false
			}
		}
		return true
	})
	t.Logf("trace %s: %v", trace, got)
	eventually(t, 10*time.Second, "the provider call's log line with the trace id", func() bool {
		for _, line := range strings.Split(p.stderr.String(), "\n") {
			if strings.Contains(line, "agent: provider call") && strings.Contains(line, `"trace_id":"`+trace+`"`) {
				return true
			}
		}
		return false
	})
}
