package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestAPIClientTurnsProblemsIntoErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Authorization") != "Bearer k1":
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/problem":
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"type":"about:blank","title":"Not Found","status":404,"detail":"workspace not found","code":"not_found"}`)
		case r.URL.Path == "/text":
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "upstream down\n")
		default:
			_, _ = io.WriteString(w, "ok")
		}
	}))
	defer srv.Close()
	cl, err := newAPIClient(srv.URL+"/", "k1", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	resp, err := cl.do(ctx, http.MethodGet, "/fine", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "ok" {
		t.Fatalf("2xx body %q, %v", body, err)
	}
	for path, want := range map[string]string{
		"/problem": "GET /problem: 404 Not Found: workspace not found (not_found)",
		"/text":    "GET /text: 502 Bad Gateway: upstream down",
	} {
		_, err := cl.do(ctx, http.MethodGet, path, nil)
		var ae *apiError
		if !errors.As(err, &ae) || err.Error() != want {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
	other, _ := newAPIClient(srv.URL, "k2", 5*time.Second)
	if _, err := other.do(ctx, http.MethodGet, "/fine", nil); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a wrong key: %v, want a 401 error", err)
	}
}

func TestAPIClientRefusesBadSettings(t *testing.T) {
	for _, tc := range []struct{ url, key string }{
		{"127.0.0.1:8080", "k"}, {"ftp://host", "k"}, {"http://", "k"}, {"http://127.0.0.1:8080", ""},
	} {
		if _, err := newAPIClient(tc.url, tc.key, time.Second); err == nil {
			t.Errorf("newAPIClient(%q, %q) accepted", tc.url, tc.key)
		}
	}
}

// A stream that stops sending fails after the timeout, however long it
// ran before; one that keeps sending is not cut.
func TestAPIClientFailsAStalledStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range 6 { // 500 ms in all, 100 ms between writes
			_, _ = io.WriteString(w, "line\n")
			w.(http.Flusher).Flush()
			pause := 100 * time.Millisecond
			if i == 5 {
				if r.URL.Path != "/stall" {
					return
				}
				pause = time.Minute
			}
			select {
			case <-time.After(pause):
			case <-r.Context().Done():
				return
			}
		}
	}))
	defer srv.Close()
	cl, err := newAPIClient(srv.URL, "k", 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cl.do(context.Background(), http.MethodGet, "/steady", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || strings.Count(string(body), "line") != 6 {
		t.Fatalf("a steady stream: %d lines, %v", strings.Count(string(body), "line"), err)
	}
	resp, err = cl.do(context.Background(), http.MethodGet, "/stall", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || !strings.Contains(err.Error(), "nothing received for 300ms") {
		t.Fatalf("a stalled stream: %v", err)
	}
}
