package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MaxBody bounds every request body.
const MaxBody = 256 << 10

// DecodeJSON reads a strict JSON object into v: unknown fields, trailing
// data, wrong types and oversized bodies are 4xx problems naming the field.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return NewProblem(http.StatusUnsupportedMediaType, "unsupported_media_type", "", "send application/json")
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return bodyProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return NewProblem(http.StatusBadRequest, "malformed_json", "", "body must hold a single JSON object")
	}
	return nil
}

func bodyProblem(err error) *Problem {
	var maxErr *http.MaxBytesError
	var syntaxErr *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case errors.As(err, &maxErr):
		return NewProblem(http.StatusRequestEntityTooLarge, "body_too_large", "", fmt.Sprintf("body exceeds %d bytes", maxErr.Limit))
	case errors.Is(err, io.EOF):
		return NewProblem(http.StatusBadRequest, "malformed_json", "", "empty body: send a JSON object")
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF):
		return NewProblem(http.StatusBadRequest, "malformed_json", "", "malformed JSON: "+err.Error())
	case errors.As(err, &typeErr):
		return NewProblem(http.StatusUnprocessableEntity, "invalid", typeErr.Field, fmt.Sprintf("%s must be a %s", typeErr.Field, typeErr.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return NewProblem(http.StatusUnprocessableEntity, "unknown_field", f, "unknown field "+f)
	}
	return NewProblem(http.StatusBadRequest, "malformed_json", "", err.Error())
}
