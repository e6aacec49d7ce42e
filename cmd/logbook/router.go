package main

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/logbook-dev/logbook/internal/auth"
	"github.com/logbook-dev/logbook/internal/httpapi"
	"github.com/logbook-dev/logbook/internal/metrics"
	"github.com/logbook-dev/logbook/producers"
	"github.com/logbook-dev/logbook/projections"
	"github.com/logbook-dev/logbook/schemas"
)

func (m *Main) router(api *producers.API, queries *projections.Queries, throttle *auth.Throttle, access auth.AccessSink) http.Handler {
	r := chi.NewRouter()
	r.Use(m.tracing.HTTP, metrics.NewHTTP(m.reg).Middleware, middleware.RequestID, m.recoverer)
	m.opsRoutes(r)
	r.Group(func(r chi.Router) {
		// The throttle goes first: a refused source never reaches the key lookup.
		r.Use(throttle.Middleware(m.Log), auth.AccessAudit(access, nil), m.keys.Middleware(m.Log))
		api.Routes(r)
		queries.Routes(r)
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		httpapi.WriteError(w, r, m.Log, httpapi.Problemf(httpapi.CodeNotFound, "", "no such route"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		// RFC 9110: a 405 lists the methods the resource allows.
		path := req.URL.RawPath
		if path == "" {
			path = req.URL.Path
		}
		var allow []string
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if r.Match(chi.NewRouteContext(), method, path) {
				allow = append(allow, method)
			}
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		httpapi.WriteError(w, req, m.Log, httpapi.Problemf(httpapi.CodeMethodNotAllowed, "", httpapi.Truncate(req.Method)+" is not allowed here"))
	})
	return r
}

// opsRoutes are what operators and orchestrators read, unauthenticated:
// liveness, readiness, status and metrics.
func (m *Main) opsRoutes(r chi.Router) {
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		httpapi.WriteJSON(w, 200, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if m.draining.Load() {
			httpapi.WriteError(w, r, m.Log, httpapi.Unavailable(httpapi.CodeDraining, "this instance is stopping", 1))
			return
		}
		if l := m.health.level(); l == levelEmergency {
			httpapi.WriteError(w, r, m.Log, httpapi.Unavailable(httpapi.CodeEmergency, "neither the log nor Postgres is reachable", 5))
			return
		}
		httpapi.WriteJSON(w, 200, map[string]string{"status": "ready"})
	})
	r.Get("/v1/status", func(w http.ResponseWriter, _ *http.Request) { httpapi.WriteJSON(w, 200, m.health.status()) })
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	r.Get("/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(schemas.OpenAPI())
	})
}

// recoverer turns a panic into a logged 500 problem instead of a dropped
// connection.
func (m *Main) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				httpapi.WriteError(w, r, m.Log, fmt.Errorf("panic: %v", v))
			}
		}()
		next.ServeHTTP(w, r)
	})
}
