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
	// misses are read in batches: at thousands of workspaces each entry
	// expires every few seconds, and one query per miss would be one per
	// command.
	misses *batcher[grantKey, string]

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
	g := &Grants{pool: pool, now: time.Now, cache: map[grantKey]grantEntry{}}
	g.misses = newBatcher(func(ctx context.Context, keys []grantKey) (map[grantKey]string, error) {
		return memberRoles(ctx, pool, keys)
	}, 0, 0)
	return g
}

// Close stops the batching of cache misses.
func (g *Grants) Close() { g.misses.close() }

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
	role, _, err = g.misses.get(ctx, k) // not found: no member, role ""
	if err != nil {
		if ok {
			return e.role, true, nil // stale beats nothing while Postgres is away
		}
		return "", false, err
	}
	g.put(k, grantEntry{role: role, expires: now.Add(grantTTL)})
	return role, true, nil
}

// memberRoles reads principals' roles in workspaces from the members read
// model, in one query; a pair it does not return is no member.
func memberRoles(ctx context.Context, pool *pgxpool.Pool, keys []grantKey) (map[grantKey]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	spaces, principals := make([]string, len(keys)), make([]string, len(keys))
	for i, k := range keys {
		spaces[i], principals[i] = k.workspace, k.principal
	}
	rows, err := pool.Query(ctx, `SELECT m.workspace_id, m.principal_id, m.role
		FROM unnest($1::text[], $2::text[]) AS k(workspace_id, principal_id)
		JOIN members m ON m.workspace_id = k.workspace_id AND m.principal_id = k.principal_id`, spaces, principals)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[grantKey]string, len(keys))
	for rows.Next() {
		var k grantKey
		var role string
		if err := rows.Scan(&k.workspace, &k.principal, &role); err != nil {
			return nil, err
		}
		out[k] = role
	}
	return out, rows.Err()
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
