package producers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/auth"
	"github.com/logbook-dev/logbook/internal/httpapi"
	"github.com/logbook-dev/logbook/schemas"
)

// KeyStore is this instance's view of the keys; *auth.Keys satisfies it.
type KeyStore interface {
	// RevokeLocal revokes a key kept outside the log (keys made before
	// keys were events), reporting whether there was one.
	RevokeLocal(ctx context.Context, id string) (bool, error)
	// Active reports whether a key authenticates on this instance now.
	Active(id string) bool
}

// keyWait is how long key routes wait for the decider when the client says
// nothing: a new key is shown once, so the answer should say it works.
const keyWait = 10 * time.Second

// maxGrants bounds the workspaces one key request may grant.
const maxGrants = 100

// KeyRequest is the body of POST /v1/keys.
type KeyRequest struct {
	Role       string   `json:"role"`
	Label      string   `json:"label,omitempty"`
	Workspaces []string `json:"workspaces,omitempty"`
}

// Grant is the outcome of one workspace grant of a new key.
type Grant struct {
	WorkspaceID string `json:"workspace_id"`
	Status      string `json:"status"` // accepted, rejected or pending
	CommandID   string `json:"command_id"`
	Reason      string `json:"reason,omitempty"`
}

// IssuedKey answers POST /v1/keys: the key itself, shown this once.
type IssuedKey struct {
	ID        string  `json:"id"`
	Key       string  `json:"key"`
	Role      string  `json:"role"`
	Label     string  `json:"label,omitempty"`
	Status    string  `json:"status"` // accepted, or pending: the key works once decided
	CommandID string  `json:"command_id"`
	Grants    []Grant `json:"grants"`
}

// keyWaitFor is Prefer: wait when the client sent one, else keyWait.
func (a *API) keyWaitFor(r *http.Request) (time.Duration, error) {
	if len(r.Header.Values("Prefer")) == 0 {
		return min(keyWait, a.cfg.MaxWait), nil
	}
	return a.preferWait(r)
}

// createKey issues a key (key.issue in the key registry) and grants it the
// workspaces asked for (workspace.add_member with the key's role in each).
func (a *API) createKey(w http.ResponseWriter, r *http.Request) {
	var body KeyRequest
	if err := httpapi.DecodeJSON(w, r, &body); err != nil {
		httpapi.WriteError(w, r, a.cfg.Logger, err)
		return
	}
	p, err := auth.RequireAdmin(r.Context())
	if err != nil {
		httpapi.WriteError(w, r, a.cfg.Logger, err)
		return
	}
	if len(r.Header.Values("Idempotency-Key")) > 0 {
		// A retry could only show a new key under the first one's id.
		httpapi.WriteError(w, r, a.cfg.Logger, httpapi.Problemf(httpapi.CodeInvalidHeader, "Idempotency-Key",
			"a key is shown once, so a retried request cannot show it again: leave the header out, and revoke any key whose answer was lost (GET /v1/keys)"))
		return
	}
	if err := checkGrants(body); err != nil {
		httpapi.WriteError(w, r, a.cfg.Logger, err)
		return
	}
	wait, err := a.keyWaitFor(r)
	if err != nil {
		httpapi.WriteError(w, r, a.cfg.Logger, err)
		return
	}
	key := auth.NewKey()
	sum := sha256.Sum256([]byte(key.Reveal()))
	id := "key_" + uuid.Must(uuid.NewV7()).String()
	issue := &domain.KeyIssueCmd{KeyID: id, Role: body.Role, Label: body.Label, Hash: hex.EncodeToString(sum[:])}
	env, err := a.prepare(r, p, uuid.Must(uuid.NewV7()).String(), "", submission{typ: domain.CmdKeyIssue, workspaceID: domain.KeyRegistry, payload: issue, unconditional: true})
	if err != nil {
		httpapi.WriteError(w, r, a.cfg.Logger, err)
		return
	}
	res, decided, err := a.send(r, env, wait)
	if err != nil {
		if r.Context().Err() == nil {
			httpapi.WriteError(w, r, a.cfg.Logger, err)
		}
		return
	}
	if decided && res.Status == schemas.ResultRejected {
		a.writeRejection(w, r, res)
		return
	}
	out := IssuedKey{ID: id, Key: key.Reveal(), Role: body.Role, Label: strings.TrimSpace(issue.Label), Status: "pending",
		CommandID: env.ID, Grants: a.grantKey(r, p, id, body, wait)}
	status := http.StatusAccepted
	if decided && a.keyIs(r.Context(), id, true, wait) {
		out.Status, status = schemas.ResultAccepted, http.StatusCreated
	}
	w.Header().Set("Location", "/v1/commands/"+env.ID)
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteJSON(w, status, out)
}

func checkGrants(body KeyRequest) error {
	if (body.Role == domain.RoleAdmin || body.Role == domain.RoleAgent) && len(body.Workspaces) > 0 {
		return httpapi.Problemf(string(domain.CodeInvalid), "workspaces", "an "+body.Role+" key acts in every workspace: grant none")
	}
	if len(body.Workspaces) > maxGrants {
		return httpapi.Problemf(string(domain.CodeInvalid), "workspaces", fmt.Sprintf("at most %d workspaces per request; grant more with POST /v1/workspaces/{ws}/members", maxGrants))
	}
	seen := map[string]bool{}
	for i, ws := range body.Workspaces {
		if _, err := uuid.Parse(ws); err != nil || len(ws) != 36 || seen[ws] {
			return httpapi.Problemf(string(domain.CodeInvalid), fmt.Sprintf("workspaces[%d]", i), "must be a workspace id, each once")
		}
		seen[ws] = true
	}
	return nil
}

// grantKey sends a membership per workspace for the new key, all at once,
// and reports each one's outcome as far as it came within wait.
func (a *API) grantKey(r *http.Request, p auth.Principal, keyID string, body KeyRequest, wait time.Duration) []Grant {
	grants := make([]Grant, len(body.Workspaces))
	done := make(chan int, len(body.Workspaces))
	for i, ws := range body.Workspaces {
		go func() {
			defer func() { done <- i }()
			g := &grants[i]
			g.WorkspaceID, g.Status = ws, "pending"
			env, err := a.prepare(r, p, uuid.Must(uuid.NewV7()).String(), "", submission{typ: domain.CmdWorkspaceAddMember,
				workspaceID: ws, payload: &domain.WorkspaceAddMemberCmd{PrincipalID: keyID, Role: body.Role}, unconditional: true})
			g.CommandID = env.ID
			if err != nil {
				g.Status, g.Reason = schemas.ResultRejected, err.Error()
				return
			}
			res, decided, err := a.send(r, env, wait)
			var prob *httpapi.Problem
			switch {
			case errors.As(err, &prob):
				g.Reason = prob.Detail
			case err != nil:
				g.Reason = "the request ended before the grant was sent"
			case decided:
				g.Status, g.Reason = res.Status, res.Reason
			}
		}()
	}
	for range body.Workspaces {
		<-done
	}
	return grants
}

// revokeKey revokes a key: key.revoke in the registry, or in place for a
// key kept outside the log.
func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) {
	p, err := auth.RequireAdmin(r.Context())
	if err != nil {
		httpapi.WriteError(w, r, a.cfg.Logger, err)
		return
	}
	id := chi.URLParam(r, "id")
	s := submission{typ: domain.CmdKeyRevoke, workspaceID: domain.KeyRegistry, payload: &domain.KeyRevokeCmd{KeyID: id}, unconditional: true}
	if err := domain.Validate(domain.Command{Type: s.typ, WorkspaceID: s.workspaceID, Payload: s.payload}); err != nil {
		httpapi.WriteError(w, r, a.cfg.Logger, err)
		return
	}
	if a.cfg.Keys != nil {
		found, err := a.cfg.Keys.RevokeLocal(r.Context(), id)
		switch {
		case errors.Is(err, auth.ErrBootstrapKey):
			httpapi.WriteError(w, r, a.cfg.Logger, domain.Conflict("%s", err.Error()))
			return
		case err != nil:
			httpapi.WriteError(w, r, a.cfg.Logger, err)
			return
		case found:
			w.WriteHeader(http.StatusNoContent)
			return
		}
	}
	wait, err := a.keyWaitFor(r)
	if err != nil {
		httpapi.WriteError(w, r, a.cfg.Logger, err)
		return
	}
	env, err := a.prepare(r, p, uuid.Must(uuid.NewV7()).String(), "", s)
	if err != nil {
		httpapi.WriteError(w, r, a.cfg.Logger, err)
		return
	}
	res, decided, err := a.send(r, env, wait)
	switch {
	case err != nil:
		if r.Context().Err() == nil {
			httpapi.WriteError(w, r, a.cfg.Logger, err)
		}
	case !decided:
		w.Header().Set("Location", "/v1/commands/"+env.ID)
		httpapi.WriteJSON(w, http.StatusAccepted, map[string]any{"command_id": env.ID, "status": "pending"})
	case res.Status == schemas.ResultRejected:
		a.writeRejection(w, r, res)
	default:
		// Answered once this instance refuses the key; the others follow
		// the keys read model as often.
		a.keyIs(r.Context(), id, false, wait)
		w.Header().Set("X-Command-ID", res.CommandID)
		w.WriteHeader(http.StatusNoContent)
	}
}

// keyIs waits up to wait for the key to be active (or not) on this
// instance, reporting whether it is.
func (a *API) keyIs(ctx context.Context, id string, active bool, wait time.Duration) bool {
	if a.cfg.Keys == nil {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for a.cfg.Keys.Active(id) != active {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}
