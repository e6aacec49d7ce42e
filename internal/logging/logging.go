// Package logging builds the process logger: JSON lines, with a redacting
// handler so no secret or sensitive field reaches a log line even when a
// caller passes one by mistake.
package logging

import (
	"context"
	"io"
	"log/slog"
	"strings"
)

// sensitive are attribute keys whose values are never logged.
var sensitive = []string{"authorization", "api_key", "apikey", "password", "secret", "token",
	"input", "output", "instructions", "admin_key", "database_url", "dsn", "cookie"}

func isSensitive(key string) bool {
	k := strings.ToLower(key)
	for _, s := range sensitive {
		if k == s || strings.HasSuffix(k, "_"+s) || strings.HasSuffix(k, "."+s) {
			return true
		}
	}
	return false
}

// New returns a JSON logger at level writing to w.
func New(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(Redact(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})))
}

// Redact wraps h so sensitive attributes, at any depth, print as [redacted].
func Redact(h slog.Handler) slog.Handler { return redactor{h} }

type redactor struct{ next slog.Handler }

func (r redactor) Enabled(ctx context.Context, l slog.Level) bool { return r.next.Enabled(ctx, l) }

func (r redactor) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, rec.Message, rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(clean(a))
		return true
	})
	return r.next.Handle(ctx, out)
}

func (r redactor) WithAttrs(as []slog.Attr) slog.Handler {
	cleaned := make([]slog.Attr, len(as))
	for i, a := range as {
		cleaned[i] = clean(a)
	}
	return redactor{r.next.WithAttrs(cleaned)}
}

func (r redactor) WithGroup(name string) slog.Handler { return redactor{r.next.WithGroup(name)} }

func clean(a slog.Attr) slog.Attr {
	if isSensitive(a.Key) {
		return slog.String(a.Key, "[redacted]")
	}
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		attrs := v.Group()
		out := make([]any, len(attrs))
		for i, g := range attrs {
			out[i] = clean(g)
		}
		return slog.Group(a.Key, out...)
	}
	return slog.Attr{Key: a.Key, Value: v}
}
