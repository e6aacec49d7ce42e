package projections

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Grant cache tuning: a membership change reaches the API tier within
// grantTTL of being projected; the cache never holds more than maxGrants.
const (
	grantTTL       = 2 * time.Second
	provisionalTTL = 30 * time.Second
	maxGrants      = 100_000
)

// Grants is the API tier's cached view of the members read model: who
// holds which role in which workspace. The decider checks again from its
// own state, so a stale entry can delay an answer, never let anyone act.
type Grants struct {
	pool *pgxpool.Pool
	now  func() time.Time

	mu    sync.Mutex
	cache map[grantKey]grantEntry
}

type grantKey struct{ workspace, principal string }

type grantEntry struct {
	role    string // "" when not a member
	expires time.Time
}

// NewGrants reads grants from the members read model.
func NewGrants(pool *pgxpool.Pool) *Grants {
	return &Grants{pool: pool, now: time.Now, cache: map[grantKey]grantEntry{}}
}

// MemberRole returns the principal's role in the workspace, "" when it is
// not a member. known is false when the read model could not be asked.
func (g *Grants) MemberRole(ctx context.Context, workspace, principal string) (role string, known bool, err error) {
	k := grantKey{workspace, principal}
	now := g.now()
	g.mu.Lock()
	e, ok := g.cache[k]
	g.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.role, true, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	role, err = memberRole(ctx, g.pool, workspace, principal)
	if err != nil {
		if ok {
			return e.role, true, nil // stale beats nothing while Postgres is away
		}
		return "", false, err
	}
	g.put(k, grantEntry{role: role, expires: now.Add(grantTTL)})
	return role, true, nil
}

// memberRole reads a principal's role in a workspace from the members read
// model, "" when it is no member.
func memberRole(ctx context.Context, pool *pgxpool.Pool, workspace, principal string) (string, error) {
	var role string
	err := pool.QueryRow(ctx, `SELECT role FROM members WHERE workspace_id = $1 AND principal_id = $2`, workspace, principal).Scan(&role)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return role, err
}

// Provisional records a grant this instance saw being asked for (the
// creator of a workspace) before the read model shows it, so the creator's
// next command is not refused while the projection catches up.
func (g *Grants) Provisional(workspace, principal, role string) {
	g.put(grantKey{workspace, principal}, grantEntry{role: role, expires: g.now().Add(provisionalTTL)})
}

func (g *Grants) put(k grantKey, e grantEntry) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.cache) >= maxGrants {
		clear(g.cache)
	}
	g.cache[k] = e
}
