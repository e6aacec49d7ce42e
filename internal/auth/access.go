package auth

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"

	"github.com/logbook-dev/logbook/internal/httpapi"
	"github.com/logbook-dev/logbook/schemas"
)

// AccessSink takes the access records of failed authentications and
// denials; it must not block.
type AccessSink interface {
	Record(schemas.AccessRecord)
}

// accessNote is what handlers tell the access audit about a request.
type accessNote struct {
	principal *Principal
	outcome   string // schemas.AccessHidden or AccessForbidden, when denied
	workspace string
	code      string // why authentication failed
}

type noteKey struct{}

func noteFrom(ctx context.Context) *accessNote {
	n, _ := ctx.Value(noteKey{}).(*accessNote)
	return n
}

// NoteDenial tells the access audit that the request was denied in
// workspace ws: hidden (no grant, answered like an unknown workspace) or
// forbidden. Only the handler knows a 404 is a denial.
func NoteDenial(ctx context.Context, ws string, hidden bool) {
	if n := noteFrom(ctx); n != nil {
		n.outcome, n.workspace = schemas.AccessForbidden, ws
		if hidden {
			n.outcome = schemas.AccessHidden
		}
	}
}

// AccessAudit records every failed authentication (401) and every denial
// (403, and a 404 a handler noted as hidden) of the routes it wraps. It goes
// in front of the keys middleware and never sees the key presented.
func AccessAudit(sink AccessSink, now func() time.Time) func(http.Handler) http.Handler {
	if now == nil {
		now = time.Now
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			note := &accessNote{}
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			next.ServeHTTP(ww, r.WithContext(context.WithValue(r.Context(), noteKey{}, note)))
			rec := schemas.AccessRecord{V: schemas.AccessFormat, Status: ww.Status(), Method: r.Method,
				Source: sourceIP(r.RemoteAddr), RequestID: middleware.GetReqID(r.Context()), WorkspaceID: note.workspace}
			switch {
			case rec.Status == http.StatusUnauthorized:
				rec.Outcome, rec.Code = schemas.AccessUnauthenticated, note.code
			case note.outcome == schemas.AccessHidden:
				rec.Outcome, rec.Code = note.outcome, httpapi.CodeNotFound
			case note.outcome != "" || rec.Status == http.StatusForbidden:
				rec.Outcome, rec.Code = schemas.AccessForbidden, httpapi.CodeForbidden
			default:
				return
			}
			if rc := chi.RouteContext(r.Context()); rc != nil {
				rec.Route = rc.RoutePattern()
				if rec.WorkspaceID == "" {
					rec.WorkspaceID = clip(rc.URLParam("ws"))
				}
			}
			if p := note.principal; p != nil {
				rec.PrincipalID, rec.Role = p.ID, p.Role
			}
			rec.ID, rec.At = uuid.Must(uuid.NewV7()).String(), now().UTC()
			sink.Record(rec)
		})
	}
}

// sourceIP is the IP address of a RemoteAddr.
func sourceIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return clip(addr)
	}
	return host
}

// clip bounds text taken from a request for the record.
func clip(s string) string {
	const max = 200
	if len(s) > max {
		return s[:max]
	}
	return s
}
