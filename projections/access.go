package projections

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/auth"
	"github.com/logbook-dev/logbook/internal/httpapi"
	"github.com/logbook-dev/logbook/schemas"
)

// ProjectionAccess projects the access topic.
const ProjectionAccess = "access_log"

// AccessLog projects the access topic into access_log, a batch per
// statement. A record this version cannot read is set aside, not applied.
type AccessLog struct{}

// Apply implements Applier.
func (AccessLog) Apply(ctx context.Context, tx pgx.Tx, partition int32, recs []*kgo.Record) error {
	var (
		ids, outcomes, codes, methods, routes, sources, reqs []string
		principals, roles, spaces                            []*string
		ats                                                  []time.Time
		statuses                                             []int32
		offsets                                              []int64
	)
	for _, r := range recs {
		a, err := schemas.DecodeAccess(r.Value)
		if err != nil {
			return &decodeError{fmt.Errorf("access record at %d/%d: %w", r.Partition, r.Offset, err)}
		}
		ids, outcomes, codes = append(ids, dbText(a.ID)), append(outcomes, dbText(a.Outcome)), append(codes, dbText(a.Code))
		methods, routes = append(methods, dbText(a.Method)), append(routes, dbText(a.Route))
		sources, reqs = append(sources, dbText(a.Source)), append(reqs, dbText(a.RequestID))
		principals, roles, spaces = append(principals, dbTextPtr(a.PrincipalID)), append(roles, dbTextPtr(a.Role)), append(spaces, dbTextPtr(a.WorkspaceID))
		ats, statuses, offsets = append(ats, a.At), append(statuses, int32(a.Status)), append(offsets, r.Offset)
	}
	_, err := tx.Exec(ctx, `INSERT INTO access_log (id, at, outcome, status, code, principal_id, role, method, route,
			workspace_id, source, request_id, log_partition, log_offset)
		SELECT id, at, outcome, status, code, principal_id, role, method, route, workspace_id, source, request_id, $14, off
		FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[],
			$9::text[], $10::text[], $11::text[], $12::text[], $13::bigint[])
			AS u(id, at, outcome, status, code, principal_id, role, method, route, workspace_id, source, request_id, off)
		ORDER BY off
		ON CONFLICT (id) DO NOTHING`,
		ids, ats, outcomes, statuses, codes, principals, roles, methods, routes, spaces, sources, reqs, offsets, partition)
	return err
}

// AccessView is one row of the access audit.
type AccessView struct {
	schemas.AccessRecord
	Seq int64 `json:"seq"`
}

// AccessPage is a page of the access audit, oldest first.
type AccessPage struct {
	Records    []AccessView `json:"records"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

// listAccess answers GET /v1/audit/access: admins read every record; an
// auditor the records of the workspaces it may audit (one of them with
// ?workspace=, which is then guarded like the event trail).
func (q *Queries) listAccess(w http.ResponseWriter, r *http.Request) {
	pr, _ := auth.FromContext(r.Context())
	limit, err := pageSize(r)
	if err != nil {
		q.fail(w, r, err)
		return
	}
	after, since, ws, err := accessParams(r)
	if err != nil {
		q.fail(w, r, err)
		return
	}
	ctx, cancel := queryCtx(r)
	defer cancel()
	all := pr.Role == auth.RoleAdmin
	if !all && ws != "" {
		role, err := memberRole(ctx, q.pool, ws, pr.ID)
		if err != nil {
			q.fail(w, r, err)
			return
		}
		switch domain.Authorize(pr.Role, role, domain.PermAudit) {
		case domain.Hidden:
			auth.NoteDenial(r.Context(), ws, true)
			q.fail(w, r, notFound("workspace"))
			return
		case domain.Forbidden:
			auth.NoteDenial(r.Context(), ws, false)
			q.fail(w, r, domain.ForbiddenError("key role %q with member role %q in this workspace may not audit it", pr.Role, role))
			return
		}
		all = true // within ws
	}
	// The member roles under which this key may audit a workspace.
	var auditing []string
	for _, m := range []string{domain.RoleAdmin, domain.RoleWriter, domain.RoleReader, domain.RoleAuditor} {
		if domain.Authorize(pr.Role, m, domain.PermAudit) == domain.Allowed {
			auditing = append(auditing, m)
		}
	}
	if !all && len(auditing) == 0 {
		q.fail(w, r, domain.ForbiddenError("key role %q may not read the access audit", pr.Role))
		return
	}
	records, err := collect(ctx, q.pool, `SELECT seq, id, at, outcome, status, code, coalesce(principal_id, ''),
			coalesce(role, ''), method, route, coalesce(workspace_id, ''), source, request_id
		FROM access_log a
		WHERE seq > $1 AND at >= $2 AND ($3 = '' OR workspace_id = $3)
			AND ($4 OR workspace_id IN (SELECT workspace_id FROM members WHERE principal_id = $5 AND role = ANY($6)))
		ORDER BY seq LIMIT $7`, []any{after, since, dbText(ws), all, pr.ID, auditing, limit + 1},
		func(row pgx.Rows) (AccessView, error) {
			var v AccessView
			a := &v.AccessRecord
			err := row.Scan(&v.Seq, &a.ID, &a.At, &a.Outcome, &a.Status, &a.Code, &a.PrincipalID, &a.Role, &a.Method,
				&a.Route, &a.WorkspaceID, &a.Source, &a.RequestID)
			a.V, a.At = schemas.AccessFormat, a.At.UTC()
			for _, s := range []*string{&a.ID, &a.Outcome, &a.Code, &a.PrincipalID, &a.Role, &a.Method, &a.Route, &a.WorkspaceID, &a.Source, &a.RequestID} {
				*s = fromDBText(*s)
			}
			return v, err
		})
	if err != nil {
		q.fail(w, r, err)
		return
	}
	var page AccessPage
	page.Records, page.NextCursor = pageOf(records, limit, func(v AccessView) string { return strconv.FormatInt(v.Seq, 10) })
	httpapi.WriteJSON(w, http.StatusOK, page)
}

// accessParams reads ?cursor= (a seq), ?since= (RFC 3339) and ?workspace=.
func accessParams(r *http.Request) (after int64, since time.Time, ws string, err error) {
	if s, ok, err := queryParam(r, "cursor"); err != nil {
		return 0, since, "", err
	} else if ok {
		if after, err = strconv.ParseInt(s, 10, 64); err != nil || after < 0 {
			return 0, since, "", domain.Invalid("cursor", "malformed cursor")
		}
	}
	if s, ok, err := queryParam(r, "since"); err != nil {
		return 0, since, "", err
	} else if ok {
		if since, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return 0, since, "", domain.Invalid("since", "must be an RFC 3339 time, such as 2026-11-24T10:00:00Z")
		}
	}
	if ws, _, err = queryParam(r, "workspace"); err != nil {
		return 0, since, "", err
	}
	if ws != "" {
		// As in a path: no other text names a workspace that can exist.
		if _, perr := uuid.Parse(ws); perr != nil || len(ws) != 36 {
			return 0, since, "", notFound("workspace")
		}
		ws = strings.ToLower(ws)
	}
	return after, since, ws, nil
}
