package main_test

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fromSource is a client whose connections leave from the loopback address
// ip, so the server sees another source than 127.0.0.1.
func fromSource(t *testing.T, base, key, ip string) *client {
	c := newClient(t, base, key)
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c.http.Transport = &http.Transport{DialContext: d.DialContext}
	return c
}

// TestFailedAuthenticationsThrottledPerSource: past
// LOGBOOK_AUTH_FAILURES_PER_MINUTE bad keys from one address, every request
// from it gets 429 + Retry-After, the admin key's too, while the same key
// from another address still works.
func TestFailedAuthenticationsThrottledPerSource(t *testing.T) {
	const limit = 5
	env := append(devEnv(), "LOGBOOK_AUTH_FAILURES_PER_MINUTE="+strconv.Itoa(limit))
	p := start(t, env, "dev", "--data", t.TempDir(), "--http", "127.0.0.1:0")
	admin := fromSource(t, p.URL, p.Key, "127.0.0.1")
	other := fromSource(t, p.URL, p.Key, "127.0.0.2")
	admin.must(200, "GET", "/v1/workspaces", nil)
	problem := schemaCompiler(t)("#/components/schemas/Problem")

	bad := fromSource(t, p.URL, "lbk_guessed-key-0123456789abcdefghijklmnop", "127.0.0.1")
	for i := range limit {
		if r := bad.do("GET", "/v1/workspaces", nil); r.Status != 401 {
			t.Fatalf("bad key %d of %d: %d, want 401: %s", i+1, limit, r.Status, r.Raw)
		}
	}
	for _, c := range []struct {
		who string
		c   *client
	}{{"the bad key", bad}, {"the admin key", admin}} {
		r := c.c.do("POST", "/v1/workspaces", map[string]any{"name": "x"})
		ra, err := strconv.Atoi(r.Header.Get("Retry-After"))
		if r.Status != 429 || err != nil || ra < 1 || ra > 60 {
			t.Fatalf("%s from 127.0.0.1 past the limit: %d, Retry-After %q; want 429, 1..60: %s", c.who, r.Status, r.Header.Get("Retry-After"), r.Raw)
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" || r.str("code") != "too_many_auth_failures" {
			t.Fatalf("%s: %s %s", c.who, ct, r.Raw)
		}
		validateJSON(t, problem, r.Raw, c.who+" 429")
	}

	// Another source: the admin key works, a bad key is a plain 401.
	other.must(200, "GET", "/v1/workspaces", nil)
	other.must(201, "POST", "/v1/workspaces", map[string]any{"name": "from 127.0.0.2"}, wait, "wait=10")
	fromSource(t, p.URL, "lbk_another-guess", "127.0.0.2").must(401, "GET", "/v1/workspaces", nil)
	other.must(200, "GET", "/v1/workspaces", nil)

	// Routes without a key are not throttled.
	admin.must(200, "GET", "/healthz", nil)
	metrics := admin.must(200, "GET", "/metrics", nil)
	if !strings.Contains(string(metrics.Raw), "logbook_auth_throttled_requests_total 2\n") {
		t.Errorf("metrics do not count the 2 refused requests:\n%s", grepLines(string(metrics.Raw), "logbook_auth_"))
	}
	if strings.Contains(p.stderr.String(), p.Key) {
		t.Fatal("the admin key reached a log line")
	}
	p.stop()
}
