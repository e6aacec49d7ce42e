package domain

import (
	"errors"
	"fmt"
)

// Code classifies a domain error. Only the HTTP layer maps codes to statuses.
type Code string

const (
	CodeNotFound Code = "not_found" // the workspace, task or agent does not exist
	// CodeForbidden: a member of the workspace whose roles do not allow the
	// action; a caller with no grant gets CodeNotFound instead.
	CodeForbidden Code = "forbidden"
	CodeConflict  Code = "conflict" // invalid transition or version conflict
	CodeInvalid   Code = "invalid"  // the input breaks a rule; Field names it
	// CodeKeyReused: an idempotency key already named another request (a
	// different method, path or body); the first request's outcome stands.
	CodeKeyReused Code = "idempotency_key_reused"
)

// Error is a domain rejection. Field is the JSON name of the payload field at
// fault, when one is.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%s: %s: %s", e.Code, e.Field, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// NotFound reports a missing entity.
func NotFound(format string, args ...any) *Error {
	return &Error{Code: CodeNotFound, Message: fmt.Sprintf(format, args...)}
}

// ForbiddenError reports an action the caller's roles do not allow.
func ForbiddenError(format string, args ...any) *Error {
	return &Error{Code: CodeForbidden, Message: fmt.Sprintf(format, args...)}
}

// ForbiddenField is ForbiddenError naming the field at fault.
func ForbiddenField(field, format string, args ...any) *Error {
	return &Error{Code: CodeForbidden, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Conflict reports an illegal transition or a version mismatch.
func Conflict(format string, args ...any) *Error {
	return &Error{Code: CodeConflict, Message: fmt.Sprintf(format, args...)}
}

// Invalid reports input that breaks a rule, naming the field at fault.
func Invalid(field, format string, args ...any) *Error {
	return &Error{Code: CodeInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of a domain error, or "" for any other error.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}
