// Package auth authenticates API keys. Keys are random, shown once and
// stored only as SHA-256 hashes; the hashes are cached in memory so commands
// keep being accepted while Postgres is unreachable.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/httpapi"
	"github.com/logbook-dev/logbook/internal/pg"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Roles.
const (
	RoleAdmin   = "admin"
	RoleWriter  = "writer"
	RoleReader  = "reader"
	RoleAuditor = "auditor"
)

// Secret is a string that never reaches a log line.
type Secret string

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// String keeps the secret out of fmt output too.
func (Secret) String() string { return "[redacted]" }

// Reveal returns the secret's text, for the one place that must show it.
func (s Secret) Reveal() string { return string(s) }

// Principal is an authenticated caller.
type Principal struct {
	ID   string
	Role string
}

type ctxKey struct{}

// FromContext returns the authenticated principal of a request.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// RequireAdmin returns the request's principal, or a forbidden error
// unless it holds an admin key: keys are the admin's alone.
func RequireAdmin(ctx context.Context) (Principal, error) {
	p, _ := FromContext(ctx)
	if p.Role != RoleAdmin {
		return p, domain.ForbiddenError("key role %q may not manage keys", p.Role)
	}
	return p, nil
}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// KeyChange is a key issued through the log, as the log last left it.
type KeyChange struct {
	ID      string
	Hash    []byte // SHA-256 of the key
	Role    string
	Revoked bool
	Seq     int64 // the registry event that last changed it
}

// Registry is where keys issued through the log are read from: the keys
// read model.
type Registry interface {
	// KeyChanges returns, in order, at most limit keys changed after seq.
	KeyChanges(ctx context.Context, after int64, limit int) ([]KeyChange, error)
}

// Keys is the key store: the bootstrap admin key (and keys created before
// keys were events) in its own table, every other key from the registry.
type Keys struct {
	pool     *pgxpool.Pool
	registry Registry
	log      *slog.Logger

	// refreshing serialises refreshes, so a slow one never replaces a
	// newer table with an older one.
	refreshing sync.Mutex

	mu     sync.RWMutex
	cache  map[[32]byte]Principal
	ids    map[string]bool      // ids of the keys in cache
	issued map[string]KeyChange // live issued keys by id
	seq    int64                // registry position of issued
}

// Open migrates the key table and loads the keys. registry may be nil: only
// the local keys then authenticate.
func Open(ctx context.Context, pool *pgxpool.Pool, registry Registry, log *slog.Logger) (*Keys, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if err := pg.Migrate(ctx, pool, sub, "auth_schema_version"); err != nil {
		return nil, err
	}
	k := &Keys{pool: pool, registry: registry, log: log, cache: map[[32]byte]Principal{}, issued: map[string]KeyChange{}}
	return k, k.refresh(ctx)
}

// NewKey returns a fresh random API key.
func NewKey() Secret {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return Secret("lbk_" + base64.RawURLEncoding.EncodeToString(b))
}

func hash(key string) [32]byte { return sha256.Sum256([]byte(key)) }

// MinAdminKeyLen is the shortest LOGBOOK_ADMIN_KEY accepted: 32 characters,
// so a random one carries at least the 256 bits of a generated key.
const MinAdminKeyLen = 32

// CheckAdminKey refuses a given bootstrap admin key that is too short to be
// a random secret; an empty one means "generate it".
func CheckAdminKey(k Secret) error {
	if k != "" && len(k) < MinAdminKeyLen {
		return fmt.Errorf("LOGBOOK_ADMIN_KEY is %d characters; it must be at least %d, random (for example: openssl rand -base64 32)", len(k), MinAdminKeyLen)
	}
	return nil
}

// Bootstrap makes sure an admin key exists. A given key (LOGBOOK_ADMIN_KEY)
// is registered as the bootstrap admin; otherwise, when no admin key exists
// yet, one is generated and returned so the caller can show it once.
func (k *Keys) Bootstrap(ctx context.Context, given Secret) (generated Secret, err error) {
	if given != "" {
		if err := CheckAdminKey(given); err != nil {
			return "", err
		}
		h := hash(given.Reveal())
		_, err := k.pool.Exec(ctx, `INSERT INTO api_keys (id, hash, role) VALUES ($2, $1, 'admin')
			ON CONFLICT (id) DO UPDATE SET hash = EXCLUDED.hash, revoked_at = NULL`, h[:], BootstrapKeyID)
		if err != nil {
			return "", fmt.Errorf("auth: bootstrap key: %w", err)
		}
		return "", k.refresh(ctx)
	}
	var n int
	if err := k.pool.QueryRow(ctx, `SELECT count(*) FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL`).Scan(&n); err != nil {
		return "", fmt.Errorf("auth: count admin keys: %w", err)
	}
	if n > 0 {
		return "", nil
	}
	key := NewKey()
	h := hash(key.Reveal())
	tag, err := k.pool.Exec(ctx, `INSERT INTO api_keys (id, hash, role) VALUES ($2, $1, 'admin')
		ON CONFLICT (id) DO NOTHING`, h[:], BootstrapKeyID)
	if err != nil {
		return "", fmt.Errorf("auth: bootstrap key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return "", k.refresh(ctx) // another process bootstrapped first
	}
	return key, k.refresh(ctx)
}

// BootstrapKeyID is the id of the bootstrap admin key.
const BootstrapKeyID = "bootstrap-admin"

// ErrBootstrapKey refuses to revoke the bootstrap admin key, which is
// configuration (LOGBOOK_ADMIN_KEY), not an issued key.
var ErrBootstrapKey = errors.New("the bootstrap admin key is configuration: set another LOGBOOK_ADMIN_KEY and restart the API instances to replace it")

// RevokeLocal revokes a key kept in the local table (made before keys were
// events), reporting whether there was one to revoke.
func (k *Keys) RevokeLocal(ctx context.Context, id string) (bool, error) {
	if id == BootstrapKeyID {
		return false, ErrBootstrapKey
	}
	tag, err := k.pool.Exec(ctx, `UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`, id)
	if err != nil {
		return false, fmt.Errorf("auth: revoke key: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	return true, k.refresh(ctx)
}

func (k *Keys) refresh(ctx context.Context) error {
	k.refreshing.Lock()
	defer k.refreshing.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := k.pool.Query(ctx, `SELECT id, hash, role FROM api_keys WHERE revoked_at IS NULL`)
	if err != nil {
		return fmt.Errorf("auth: load keys: %w", err)
	}
	defer rows.Close()
	next := map[[32]byte]Principal{}
	for rows.Next() {
		var id, role string
		var h []byte
		if err := rows.Scan(&id, &h, &role); err != nil {
			return err
		}
		if len(h) == sha256.Size {
			next[[32]byte(h)] = Principal{ID: id, Role: role}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	k.mu.RLock()
	issued, seq := k.issued, k.seq
	k.mu.RUnlock()
	if k.registry != nil {
		if issued, seq, err = k.follow(ctx, issued, seq); err != nil {
			return fmt.Errorf("auth: load issued keys: %w", err)
		}
	}
	for _, c := range issued {
		if len(c.Hash) == sha256.Size {
			next[[32]byte(c.Hash)] = Principal{ID: c.ID, Role: c.Role}
		}
	}
	ids := make(map[string]bool, len(next))
	for _, p := range next {
		ids[p.ID] = true
	}
	k.mu.Lock()
	k.cache, k.ids, k.issued, k.seq = next, ids, issued, seq
	k.mu.Unlock()
	return nil
}

// follow returns issued with the registry's changes after seq applied, and
// the new position. The map is copied before the first change.
func (k *Keys) follow(ctx context.Context, issued map[string]KeyChange, seq int64) (map[string]KeyChange, int64, error) {
	const page = 1000
	copied := false
	for {
		changes, err := k.registry.KeyChanges(ctx, seq, page)
		if err != nil {
			return nil, 0, err
		}
		if len(changes) > 0 && !copied {
			issued, copied = maps.Clone(issued), true
		}
		for _, c := range changes {
			if c.Revoked {
				delete(issued, c.ID)
			} else {
				issued[c.ID] = c
			}
			seq = c.Seq
		}
		if len(changes) < page {
			return issued, seq, nil
		}
	}
}

// Refresh reloads the keys every interval until ctx ends; while Postgres is
// unreachable the last loaded keys keep working.
func (k *Keys) Refresh(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := k.refresh(ctx); err != nil && ctx.Err() == nil {
				k.log.Warn("auth: key refresh failed; keeping the cached keys", "err", err)
			}
		}
	}
}

// Active reports whether the key with this id authenticates here now.
func (k *Keys) Active(id string) bool {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.ids[id]
}

// Authenticate resolves a bearer token.
func (k *Keys) Authenticate(token string) (Principal, bool) {
	h := hash(token)
	k.mu.RLock()
	defer k.mu.RUnlock()
	// The lookup is keyed by a SHA-256 of a 256-bit random key: its timing
	// tells an attacker nothing about any stored key.
	p, ok := k.cache[h]
	return p, ok
}

// Middleware rejects requests without a valid bearer key.
func (k *Keys) Middleware(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := r.Header.Get("Authorization")
			token, ok := strings.CutPrefix(h, "Bearer ")
			note := noteFrom(r.Context())
			if !ok || token == "" {
				if note != nil {
					note.code = httpapi.CodeUnauthenticated
				}
				w.Header().Set("WWW-Authenticate", `Bearer realm="logbook"`)
				httpapi.WriteError(w, r, log, httpapi.Problemf(httpapi.CodeUnauthenticated, "Authorization", "send Authorization: Bearer <api key>"))
				return
			}
			p, ok := k.Authenticate(token)
			if !ok {
				if note != nil {
					note.code = httpapi.CodeInvalidKey
				}
				w.Header().Set("WWW-Authenticate", `Bearer realm="logbook", error="invalid_token"`)
				httpapi.WriteError(w, r, log, httpapi.Problemf(httpapi.CodeInvalidKey, "Authorization", "unknown or revoked API key"))
				return
			}
			if note != nil {
				note.principal = &p
			}
			next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
		})
	}
}
