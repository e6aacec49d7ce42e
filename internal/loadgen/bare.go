package loadgen

import (
	"encoding/json"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
)

// BareHandler answers loadgen's requests the way logbook's API is shaped
// and does nothing else: it decodes each command's JSON body and answers
// with JSON. Driven by the same client in the same run, it is the ceiling
// of HTTP on this machine that logbook's figures are measured against.
func BareHandler() http.Handler {
	r := chi.NewRouter()
	r.Post("/v1/workspaces", func(w http.ResponseWriter, r *http.Request) {
		if decodeBody(w, r) {
			writeJSON(w, http.StatusCreated, map[string]any{"command_id": uuid.NewString(), "workspace_id": uuid.NewString(), "status": "accepted"})
		}
	})
	r.Post("/v1/workspaces/{ws}/members", func(w http.ResponseWriter, r *http.Request) {
		if decodeBody(w, r) {
			writeJSON(w, http.StatusOK, map[string]any{"command_id": uuid.NewString(), "status": "accepted"})
		}
	})
	r.Post("/v1/workspaces/{ws}/tasks", func(w http.ResponseWriter, r *http.Request) {
		if decodeBody(w, r) {
			writeJSON(w, http.StatusAccepted, map[string]any{"command_id": uuid.NewString(), "task_id": uuid.NewString()})
		}
	})
	command := func(w http.ResponseWriter, r *http.Request) {
		if decodeBody(w, r) {
			writeJSON(w, http.StatusAccepted, map[string]any{"command_id": uuid.NewString()})
		}
	}
	r.Post("/v1/workspaces/{ws}/{op}", command)
	r.Post("/v1/workspaces/{ws}/tasks/{task}/{op}", command)
	// Everything is decided and projected at once.
	r.Get("/v1/commands/{id}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "accepted", "events": []any{}})
	})
	r.Get("/v1/workspaces/{ws}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"last_seq": 0})
	})
	return r
}

// decodeBody reads a command body as logbook would, bounded; a body that is
// not JSON gets a 400.
func decodeBody(w http.ResponseWriter, r *http.Request) bool {
	var body map[string]any
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"title": "Bad Request", "detail": err.Error()})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
