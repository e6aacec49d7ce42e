// Package httpapi is the HTTP plumbing shared by the command and query APIs:
// problem+json errors, strict JSON bodies, paging and authentication.
package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/logbook-dev/logbook/domain"
)

// Problem is an RFC 9457 problem detail. Field names the request field at
// fault, when there is one.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Code   string `json:"code,omitempty"`
	Field  string `json:"field,omitempty"`
	// RetryAfter, in seconds, is also sent as the Retry-After header.
	RetryAfter int `json:"retry_after,omitempty"`
	// CommandID names the command a problem is about, when there is one.
	CommandID string `json:"command_id,omitempty"`
}

func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

// NewProblem builds a problem for a status.
func NewProblem(status int, code, field, detail string) *Problem {
	return &Problem{Type: "https://logbook.dev/problems/" + code, Title: http.StatusText(status),
		Status: status, Detail: detail, Code: code, Field: field}
}

// Unavailable is a 503 that tells the client when to come back.
func Unavailable(code, detail string, retryAfter int) *Problem {
	p := NewProblem(http.StatusServiceUnavailable, code, "", detail)
	p.RetryAfter = retryAfter
	return p
}

// StatusOf maps a domain error code to an HTTP status; this is the only
// place that mapping lives.
func StatusOf(c domain.Code) int {
	switch c {
	case domain.CodeNotFound:
		return http.StatusNotFound
	case domain.CodeConflict:
		return http.StatusConflict
	case domain.CodeInvalid:
		return http.StatusUnprocessableEntity
	}
	return http.StatusInternalServerError
}

// WriteError answers with problem+json. Domain errors and problems are the
// client's; anything else is logged once here and answered as a 500 without
// its text.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var p *Problem
	var de *domain.Error
	switch {
	case errors.As(err, &p):
	case errors.As(err, &de):
		p = NewProblem(StatusOf(de.Code), string(de.Code), de.Field, de.Message)
	default:
		log.Error("internal error", "method", r.Method, "route", r.URL.Path, "err", err)
		p = NewProblem(http.StatusInternalServerError, "internal", "", "internal error")
	}
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// WriteJSON answers with a JSON body.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
