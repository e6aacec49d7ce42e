package producers

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/auth"
	"github.com/logbook-dev/logbook/internal/httpapi"
	"github.com/logbook-dev/logbook/schemas"
)

// CommandLog appends commands; *Appender satisfies it.
type CommandLog interface {
	Append(ctx context.Context, env schemas.CommandEnvelope) error
}

// OutcomeWatcher tells a waiting request about its outcome: the result of
// commandID that answers the request with digest (see
// schemas.Result.SameRequest); *Outcomes satisfies it.
type OutcomeWatcher interface {
	Watch(commandID, digest string) (<-chan schemas.Result, func())
}

// OutcomeLookup finds a command's recorded outcome (nil when none yet); the
// read models satisfy it.
type OutcomeLookup interface {
	Outcome(ctx context.Context, commandID string) (*schemas.Result, error)
}

// Sealer encrypts a command's sensitive fields before it enters the log,
// under its workspace's data key; *keyring.Ring satisfies it. Domain
// errors it returns (an erased workspace is not found) are answers; any
// other means the key cannot be had now.
type Sealer interface {
	Seal(ctx context.Context, cmd domain.Command) (domain.Command, error)
}

// CommandSigner signs a command envelope in place; *signing.Batcher
// satisfies it.
type CommandSigner interface {
	Sign(ctx context.Context, env *schemas.CommandEnvelope) error
}

// GrantLookup tells a principal's role in a workspace ("" when none; known
// false when the grants cannot be read now); *projections.Grants satisfies
// it.
type GrantLookup interface {
	MemberRole(ctx context.Context, workspace, principal string) (role string, known bool, err error)
	Provisional(workspace, principal, role string)
}

// Config configures the command API.
type Config struct {
	Log     CommandLog
	Watcher OutcomeWatcher
	Lookup  OutcomeLookup
	// Grants lets the API refuse a command its principal may not send
	// before it reaches the log; nil leaves it all to the decider, which
	// checks every command anyway.
	Grants GrantLookup
	// Admission refuses commands with 429 before anything collapses; nil
	// admits everything.
	Admission *Admission
	// Writable reports whether the log was reachable at the last probe;
	// when it was not, commands get 503 at once instead of after a timeout.
	// nil means always try.
	Writable func() bool
	// Keys is this instance's view of the keys; nil: key routes do not
	// wait for it.
	Keys KeyStore
	// Fields seals sensitive fields; nil sends them as they are (tests of
	// other concerns only: logbook always seals).
	Fields Sealer
	// Signer signs every command, last, so the decider can tell it came
	// from this tier with the actor it names; nil sends them unsigned
	// (tests of other concerns only: logbook always signs).
	Signer CommandSigner
	Logger *slog.Logger
	// MaxWait caps Prefer: wait, default 30s.
	MaxWait time.Duration
	// AppendTimeout bounds one append to the log, default 10s.
	AppendTimeout time.Duration
	Now           func() time.Time
}

// API serves the command routes.
type API struct{ cfg Config }

// New builds the command API.
func New(cfg Config) *API {
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 30 * time.Second
	}
	if cfg.AppendTimeout <= 0 {
		cfg.AppendTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &API{cfg: cfg}
}

// Routes mounts the command routes on r (already authenticated).
func (a *API) Routes(r chi.Router) {
	r.Group(func(r chi.Router) {
		// Behind a backlog, or past the commands in flight it takes, a
		// command is refused before its body is read: refusing must cost
		// far less than the work it turns away.
		r.Use(a.shed)
		r.Post("/v1/workspaces", a.createWorkspace)
		r.Post("/v1/workspaces/{ws}/rename", a.renameWorkspace)
		r.Post("/v1/workspaces/{ws}/archive", a.archiveWorkspace)
		r.Post("/v1/workspaces/{ws}/erase", a.eraseWorkspace)
		r.Post("/v1/workspaces/{ws}/members", a.addMember)
		r.Delete("/v1/workspaces/{ws}/members/{principal}", a.removeMember)
		r.Post("/v1/workspaces/{ws}/agents", a.registerAgent)
		r.Put("/v1/workspaces/{ws}/ai-policy", a.setAIPolicy)
		r.Post("/v1/workspaces/{ws}/tasks", a.createTask)
		r.Post("/v1/workspaces/{ws}/tasks/{task}/assign", a.assignTask)
		r.Post("/v1/workspaces/{ws}/tasks/{task}/start", a.startTask)
		r.Post("/v1/workspaces/{ws}/tasks/{task}/result", a.recordResult)
		r.Post("/v1/workspaces/{ws}/tasks/{task}/fail", a.failAttempt)
		r.Post("/v1/workspaces/{ws}/tasks/{task}/retry", a.retryTask)
		r.Post("/v1/workspaces/{ws}/tasks/{task}/complete", a.completeTask)
		r.Post("/v1/workspaces/{ws}/tasks/{task}/cancel", a.cancelTask)
	})
	r.Post("/v1/keys", a.createKey)
	r.Delete("/v1/keys/{id}", a.revokeKey)
}

// shed answers 429 + Retry-After while the decider is too far behind or
// the server has as many commands in flight as it takes, ahead of
// decoding, lookups and sealing.
func (a *API) shed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if prob := a.cfg.Admission.Backlog(); prob != nil {
			httpapi.WriteError(w, r, a.cfg.Logger, prob)
			return
		}
		release, prob := a.cfg.Admission.Enter(r.Context())
		if prob != nil {
			httpapi.WriteError(w, r, a.cfg.Logger, prob)
			return
		}
		defer release()
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), inFlightKey{}, release)))
	})
}

type inFlightKey struct{}

// leaveInFlight gives the request's place back early: a command waiting
// for its outcome (Prefer: wait) uses no CPU of the API tier.
func leaveInFlight(ctx context.Context) {
	if release, ok := ctx.Value(inFlightKey{}).(func()); ok {
		release()
	}
}

// submission is one command on its way to the log.
type submission struct {
	typ         string
	workspaceID string
	payload     any
	created     bool              // a create: 201 on acceptance
	ids         map[string]string // ids to echo back (task_id, agent_id…)
	// unconditional commands ignore If-Match: the key routes, whose
	// request names no version.
	unconditional bool
}

// commandID is the idempotency key namespaced by principal and route, or a
// fresh UUIDv7.
func commandID(r *http.Request, p auth.Principal) (id string, keyed bool, err error) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" && len(r.Header.Values("Idempotency-Key")) > 0 {
		return "", false, httpapi.Problemf(httpapi.CodeInvalidHeader, "Idempotency-Key", "must not be empty")
	}
	if key == "" {
		u, err := uuid.NewV7()
		return u.String(), false, err
	}
	if len(key) > 255 {
		return "", false, httpapi.Problemf(httpapi.CodeInvalidHeader, "Idempotency-Key", "at most 255 characters")
	}
	return uuid.NewSHA1(idempotencyNS, []byte(p.ID+"\x00"+r.Method+" "+r.URL.Path+"\x00"+key)).String(), true, nil
}

var idempotencyNS = uuid.MustParse("6f1c4c52-8f43-4a3c-9c58-6a8d1f0f7a11")

// requestDigest identifies the request behind a keyed command, so the same
// key sent with another request is refused: method, path and the canonical
// body, i.e. the decoded body as the command carries it, re-marshalled
// (whitespace, key order and omitted defaults do not count; values do).
// The rest of a payload derives from the path and the command id, which
// are the same for every request under one key.
func requestDigest(r *http.Request, payload any) (string, error) {
	var body []byte
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return "", err
		}
		body = b
	}
	return schemas.RequestDigest(r.Method, r.URL.Path, body), nil
}

// newID returns the id of an entity a command creates. With an idempotency
// key it derives from the command id, so a retried request names the same
// entity (and lands on the same partition).
func newID(commandID string, keyed bool, kind string) string {
	if keyed {
		return uuid.NewSHA1(idempotencyNS, []byte(commandID+"/"+kind)).String()
	}
	return uuid.Must(uuid.NewV7()).String()
}

// submit appends the command and answers: 202 with ids, or the outcome when
// the client sent Prefer: wait=N and it came in time.
func (a *API) submit(w http.ResponseWriter, r *http.Request, cmdID string, keyed bool, s submission) {
	p, _ := auth.FromContext(r.Context())
	wait, err := a.preferWait(r)
	if err != nil {
		httpapi.WriteError(w, r, a.cfg.Logger, err)
		return
	}
	digest := ""
	if keyed {
		if digest, err = requestDigest(r, s.payload); err != nil {
			httpapi.WriteError(w, r, a.cfg.Logger, err)
			return
		}
	}
	if err := a.authorize(r.Context(), p, s); err != nil {
		auth.NoteDenial(r.Context(), s.workspaceID, domain.ErrorCode(err) == domain.CodeNotFound)
		httpapi.WriteError(w, r, a.cfg.Logger, err)
		return
	}
	if keyed && a.cfg.Lookup != nil {
		// A retry of a decided command gets its first outcome, without
		// touching the log; the same key with another request, a refusal.
		if res, err := a.cfg.Lookup.Outcome(r.Context(), cmdID); err == nil && res != nil {
			a.writeOutcome(w, r, s, res.For(digest))
			return
		}
	}
	env, err := a.prepare(r, p, cmdID, digest, s)
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
	if s.typ == domain.CmdWorkspaceCreate && p.Role != auth.RoleAdmin && a.cfg.Grants != nil {
		a.cfg.Grants.Provisional(s.workspaceID, p.ID, domain.RoleAdmin)
	}
	if decided {
		a.writeOutcome(w, r, s, res)
		return
	}
	body := map[string]any{"command_id": cmdID, "status": "pending", "workspace_id": s.workspaceID}
	for k, v := range s.ids {
		body[k] = v
	}
	w.Header().Set("Location", "/v1/commands/"+cmdID)
	httpapi.WriteJSON(w, http.StatusAccepted, body)
}

// prepare checks what the API tier checks of a command before the log (the
// log is writable, admission, the fields) and builds its envelope.
func (a *API) prepare(r *http.Request, p auth.Principal, cmdID, digest string, s submission) (schemas.CommandEnvelope, error) {
	if a.cfg.Writable != nil && !a.cfg.Writable() {
		return schemas.CommandEnvelope{}, readOnly()
	}
	if prob := a.cfg.Admission.Admit(p.ID); prob != nil {
		return schemas.CommandEnvelope{}, prob
	}
	cmd, err := domain.Normalize(domain.Command{ID: cmdID, Type: s.typ, WorkspaceID: s.workspaceID,
		Actor: domain.Actor{ID: p.ID, Role: p.Role}, IssuedAt: a.cfg.Now(), Payload: s.payload})
	if err != nil {
		return schemas.CommandEnvelope{}, err
	}
	corr, err := correlationID(r)
	if err != nil {
		return schemas.CommandEnvelope{}, err
	}
	if a.cfg.Fields != nil {
		ctx, cancel := context.WithTimeout(r.Context(), a.cfg.AppendTimeout)
		cmd, err = a.cfg.Fields.Seal(ctx, cmd)
		cancel()
		if err != nil {
			if domain.ErrorCode(err) != "" {
				return schemas.CommandEnvelope{}, err
			}
			a.cfg.Logger.Warn("workspace data key unavailable", "command_type", s.typ, "err", err)
			return schemas.CommandEnvelope{}, httpapi.Unavailable(httpapi.CodeKeysUnavailable,
				"the workspace's data key cannot be read right now; retry", 5)
		}
	}
	env, err := schemas.EncodeCommand(cmd, corr)
	if err != nil {
		return env, err
	}
	if len(r.Header.Values("If-Match")) > 0 && !s.unconditional {
		v, err := ifMatch(r.Header.Get("If-Match"))
		if err != nil {
			return env, err
		}
		env.ExpectedVersion = &v
	}
	env.RequestDigest = digest
	if a.cfg.Signer != nil {
		if err := a.cfg.Signer.Sign(r.Context(), &env); err != nil {
			return env, err
		}
	}
	return env, nil
}

// send appends env and, for wait > 0, waits that long for its outcome:
// decided reports whether it came. An append the log did not confirm is a
// 503 problem naming the command, which may still be decided.
func (a *API) send(r *http.Request, env schemas.CommandEnvelope, wait time.Duration) (res schemas.Result, decided bool, err error) {
	var outcome <-chan schemas.Result
	if wait > 0 && a.cfg.Watcher != nil {
		ch, cancel := a.cfg.Watcher.Watch(env.ID, env.RequestDigest)
		defer cancel()
		outcome = ch
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.cfg.AppendTimeout)
	err = a.cfg.Log.Append(ctx, env)
	cancel()
	if err != nil {
		if r.Context().Err() != nil {
			return res, false, r.Context().Err() // the client left
		}
		// The append may still land: give the client the command id to
		// look up, and say the outcome is unknown rather than refused.
		a.cfg.Logger.Warn("append not confirmed", "command_type", env.Type, "err", err)
		prob := httpapi.Unavailable(httpapi.CodeAppendUnconfirmed, "the log did not confirm the command in time; it may still be decided: check Location, or retry with the same Idempotency-Key", 5)
		prob.CommandID = env.ID
		return res, false, prob
	}
	if outcome == nil {
		return res, false, nil
	}
	leaveInFlight(r.Context())
	res, decided = a.await(r.Context(), env.ID, env.RequestDigest, outcome, wait)
	return res, decided, nil
}

// authorize applies the decider's rule (domain.Authorize) from the grants
// read model: no grant answers 404 exactly like an unknown workspace, a
// grant whose roles do not allow the command 403. When the grants cannot be
// read the command goes on: the decider is the authority.
func (a *API) authorize(ctx context.Context, p auth.Principal, s submission) error {
	actor := domain.Actor{ID: p.ID, Role: p.Role}
	if p.Role == auth.RoleAdmin || s.typ == domain.CmdWorkspaceCreate {
		return domain.AuthorizeCommand(actor, "", s.typ, s.workspaceID)
	}
	if a.cfg.Grants == nil {
		return nil
	}
	role, known, err := a.cfg.Grants.MemberRole(ctx, s.workspaceID, p.ID)
	if err != nil || !known {
		a.cfg.Logger.Warn("grants unreadable; the decider alone authorizes", "err", err)
		return nil
	}
	return domain.AuthorizeCommand(actor, role, s.typ, s.workspaceID)
}

// await waits for the outcome of the request with digest from the results
// stream, checking the recorded outcomes now and then in case the stream
// started after it.
func (a *API) await(ctx context.Context, cmdID, digest string, ch <-chan schemas.Result, wait time.Duration) (schemas.Result, bool) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	poll := time.NewTicker(500 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case res := <-ch:
			return res, true
		case <-poll.C:
			if a.cfg.Lookup == nil {
				continue
			}
			if res, err := a.cfg.Lookup.Outcome(ctx, cmdID); err == nil && res != nil {
				return res.For(digest), true
			}
		case <-deadline.C:
			return schemas.Result{}, false
		case <-ctx.Done():
			return schemas.Result{}, false
		}
	}
}

func (a *API) writeOutcome(w http.ResponseWriter, r *http.Request, s submission, res schemas.Result) {
	if res.Status == schemas.ResultRejected {
		a.writeRejection(w, r, res)
		return
	}
	body := map[string]any{"command_id": res.CommandID, "status": res.Status, "workspace_id": res.WorkspaceID, "events": res.Events}
	for k, v := range s.ids {
		body[k] = v
	}
	status := http.StatusOK
	if s.created {
		status = http.StatusCreated
	}
	httpapi.WriteJSON(w, status, body)
}

// writeRejection answers a rejected outcome with its problem.
func (a *API) writeRejection(w http.ResponseWriter, r *http.Request, res schemas.Result) {
	w.Header().Set("X-Command-ID", res.CommandID)
	httpapi.WriteError(w, r, a.cfg.Logger, httpapi.Problemf(string(res.Code), res.Field, res.Reason))
}

// preferWait parses Prefer: wait=N (RFC 7240), capped at MaxWait. A wait
// that is not a non-negative integer is a preference not understood: it is
// ignored, as RFC 7240 asks.
func (a *API) preferWait(r *http.Request) (time.Duration, error) {
	for _, h := range r.Header.Values("Prefer") {
		for _, part := range strings.Split(h, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || !strings.EqualFold(strings.TrimSpace(k), "wait") {
				continue
			}
			n, err := strconv.ParseUint(strings.Trim(strings.TrimSpace(v), `"`), 10, 16)
			if err != nil {
				continue
			}
			return min(time.Duration(n)*time.Second, a.cfg.MaxWait), nil
		}
	}
	return 0, nil
}

// ifMatchVersion is If-Match as the document states it: 1 to 18 digits,
// optionally quoted (an ETag), so every value fits an int64.
var ifMatchVersion = regexp.MustCompile(`^"?[0-9]{1,18}"?$`)

func ifMatch(v string) (int64, error) {
	if !ifMatchVersion.MatchString(v) {
		return 0, httpapi.Problemf(httpapi.CodeInvalidHeader, "If-Match", "expected version: 1 to 18 digits, optionally quoted")
	}
	return strconv.ParseInt(strings.Trim(v, `"`), 10, 64)
}

func readOnly() *httpapi.Problem {
	return httpapi.Unavailable(httpapi.CodeReadOnly, "the log cannot be written right now; queries still serve", 5)
}

// correlationID reads X-Correlation-ID: it is hashed into events, so only
// short printable ASCII is taken.
func correlationID(r *http.Request) (string, error) {
	v := r.Header.Get("X-Correlation-ID")
	if len(v) > 128 {
		return "", httpapi.Problemf(httpapi.CodeInvalidHeader, "X-Correlation-ID", "at most 128 characters")
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return "", httpapi.Problemf(httpapi.CodeInvalidHeader, "X-Correlation-ID", "printable ASCII only")
		}
	}
	return v, nil
}
