// Package httpapi is the HTTP plumbing shared by the command and query APIs:
// problem+json errors, strict JSON bodies, paging and authentication.
package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

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
	// CommandID names the command a problem is about, when there is one;
	// its outcome is then at Location.
	CommandID string `json:"command_id,omitempty"`
}

func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

// Problem codes of the HTTP layer; the domain's codes (domain.Code) are
// problem codes too. Each code has one status, in statuses.
const (
	CodeNotFound             = string(domain.CodeNotFound)
	CodeForbidden            = string(domain.CodeForbidden)
	CodeConflict             = string(domain.CodeConflict)
	CodeInvalid              = string(domain.CodeInvalid)
	CodeKeyReused            = string(domain.CodeKeyReused)
	CodeMalformedJSON        = "malformed_json"
	CodeUnknownField         = "unknown_field"
	CodeInvalidHeader        = "invalid_header"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeBodyTooLarge         = "body_too_large"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeUnauthenticated      = "unauthenticated"
	CodeInvalidKey           = "invalid_key"
	CodeBacklog              = "backlog"
	CodeRateLimited          = "rate_limited"
	CodeOverloaded           = "overloaded"
	CodeTooManyAuthFailures  = "too_many_auth_failures"
	CodeReadOnly             = "read_only"
	CodeAppendUnconfirmed    = "append_unconfirmed"
	CodeQueriesDegraded      = "queries_degraded"
	CodeKeysUnavailable      = "keys_unavailable"
	CodeProjectionStalled    = "projection_stalled"
	CodeEmergency            = "emergency"
	CodeDraining             = "draining"
	CodeInternal             = "internal"
)

var statuses = map[string]int{
	CodeNotFound:             http.StatusNotFound,
	CodeForbidden:            http.StatusForbidden,
	CodeConflict:             http.StatusConflict,
	CodeInvalid:              http.StatusUnprocessableEntity,
	CodeKeyReused:            http.StatusUnprocessableEntity,
	CodeMalformedJSON:        http.StatusBadRequest,
	CodeUnknownField:         http.StatusUnprocessableEntity,
	CodeInvalidHeader:        http.StatusBadRequest,
	CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	CodeBodyTooLarge:         http.StatusRequestEntityTooLarge,
	CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	CodeUnauthenticated:      http.StatusUnauthorized,
	CodeInvalidKey:           http.StatusUnauthorized,
	CodeBacklog:              http.StatusTooManyRequests,
	CodeRateLimited:          http.StatusTooManyRequests,
	CodeOverloaded:           http.StatusTooManyRequests,
	CodeTooManyAuthFailures:  http.StatusTooManyRequests,
	CodeReadOnly:             http.StatusServiceUnavailable,
	CodeAppendUnconfirmed:    http.StatusServiceUnavailable,
	CodeQueriesDegraded:      http.StatusServiceUnavailable,
	CodeKeysUnavailable:      http.StatusServiceUnavailable,
	CodeProjectionStalled:    http.StatusServiceUnavailable,
	CodeEmergency:            http.StatusServiceUnavailable,
	CodeDraining:             http.StatusServiceUnavailable,
	CodeInternal:             http.StatusInternalServerError,
}

// Problemf builds the problem of a code, with the code's status.
func Problemf(code, field, detail string) *Problem {
	status, ok := statuses[code]
	if !ok {
		status = http.StatusInternalServerError
	}
	return &Problem{Type: "https://logbook.dev/problems/" + code, Title: http.StatusText(status),
		Status: status, Detail: detail, Code: code, Field: field}
}

// Unavailable is a problem that tells the client when to come back (a 503
// or 429 code).
func Unavailable(code, detail string, retryAfter int) *Problem {
	p := Problemf(code, "", detail)
	p.RetryAfter = retryAfter
	return p
}

// StatusOf maps a domain error code to an HTTP status.
func StatusOf(c domain.Code) int {
	if s, ok := statuses[string(c)]; ok {
		return s
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
		p = Problemf(string(de.Code), de.Field, de.Message)
	default:
		log.ErrorContext(r.Context(), "internal error", "method", r.Method, "route", r.URL.Path, "err", err)
		p = Problemf(CodeInternal, "", "internal error")
	}
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.RetryAfter))
	}
	if p.CommandID != "" {
		w.Header().Set("Location", "/v1/commands/"+p.CommandID)
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

// PathID reads a path parameter that must be a UUID, lower-cased; anything
// else names no entity that can exist, so it is a 404, never a 400.
func PathID(r *http.Request, name string) (string, error) {
	v := chi.URLParam(r, name)
	if len(v) != 36 {
		return "", domain.NotFound("%s not found", name)
	}
	if _, err := uuid.Parse(v); err != nil {
		return "", domain.NotFound("%s not found", name)
	}
	return strings.ToLower(v), nil
}
