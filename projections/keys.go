package projections

import (
	"context"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/auth"
	"github.com/logbook-dev/logbook/internal/httpapi"
)

// applyKeys keeps the keys read model: one row per issued key, stamped with
// the registry event that last changed it.
func applyKeys(ctx context.Context, tx pgx.Tx, evs []decoded) error {
	b := &pgx.Batch{}
	for _, d := range evs {
		e := d.env
		if e.WorkspaceID != domain.KeyRegistry {
			continue
		}
		switch p := d.ev.Payload.(type) {
		case *domain.KeyIssued:
			// The decider checked the hash; an unreadable one authenticates
			// nobody rather than stall the projection.
			h, err := hex.DecodeString(p.Hash)
			if err != nil {
				h = []byte{}
			}
			b.Queue(`INSERT INTO keys (id, hash, role, label, issued_by, issued_at, seq) VALUES ($1, $2, $3, $4, $5, $6, $7)
				ON CONFLICT (id) DO NOTHING`, dbText(p.KeyID), h, dbText(p.Role), dbText(p.Label), dbText(e.Actor.ID), e.OccurredAt, e.Seq)
		case *domain.KeyRevoked:
			b.Queue(`UPDATE keys SET revoked_by = $2, revoked_at = $3, seq = $4 WHERE id = $1 AND revoked_at IS NULL`,
				dbText(p.KeyID), dbText(e.Actor.ID), e.OccurredAt, e.Seq)
		}
	}
	if b.Len() == 0 {
		return nil
	}
	return tx.SendBatch(ctx, b).Close()
}

// KeyRegistry reads the keys read model for the API tier's key cache.
type KeyRegistry struct{ pool *pgxpool.Pool }

// NewKeyRegistry returns a reader of the keys read model.
func NewKeyRegistry(pool *pgxpool.Pool) *KeyRegistry { return &KeyRegistry{pool: pool} }

// KeyChanges returns, in registry order, every key changed by a registry
// event after seq after, at most limit of them.
func (r *KeyRegistry) KeyChanges(ctx context.Context, after int64, limit int) ([]auth.KeyChange, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	rows, err := r.pool.Query(ctx, `SELECT id, hash, role, revoked_at IS NOT NULL, seq FROM keys
		WHERE seq > $1 ORDER BY seq LIMIT $2`, after, limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (auth.KeyChange, error) {
		var c auth.KeyChange
		err := row.Scan(&c.ID, &c.Hash, &c.Role, &c.Revoked, &c.Seq)
		c.ID, c.Role = fromDBText(c.ID), fromDBText(c.Role)
		return c, err
	})
}

// KeySummary is one key in GET /v1/keys: never the key, never its hash.
type KeySummary struct {
	ID    string `json:"id"`
	Role  string `json:"role"`
	Label string `json:"label"`
	// Origin is "log" for keys issued through the log, "local" for the
	// bootstrap admin key and keys made before keys were events.
	Origin    string     `json:"origin"`
	IssuedBy  string     `json:"issued_by,omitempty"`
	IssuedAt  time.Time  `json:"issued_at"`
	RevokedBy string     `json:"revoked_by,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}

// KeyPage is a page of keys in id order.
type KeyPage struct {
	Keys       []KeySummary `json:"keys"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

// listKeys pages every key, revoked ones included, for admins. Local keys
// live in the auth package's api_keys table, read here so one list shows
// every key that may authenticate.
func (q *Queries) listKeys(w http.ResponseWriter, r *http.Request) {
	if _, err := auth.RequireAdmin(r.Context()); err != nil {
		q.fail(w, r, err)
		return
	}
	limit, err := pageSize(r)
	if err != nil {
		q.fail(w, r, err)
		return
	}
	cursor, _, err := queryParam(r, "cursor")
	if err == nil && len(cursor) > 2*domain.MaxIDLen {
		err = domain.Invalid("cursor", "malformed cursor")
	}
	if err != nil {
		q.fail(w, r, err)
		return
	}
	ctx, cancel := queryCtx(r)
	defer cancel()
	keys, err := collect(ctx, q.pool, `SELECT id, role, label, origin, issued_by, issued_at, revoked_by, revoked_at FROM (
			SELECT id, role, label, 'log' AS origin, issued_by, issued_at, revoked_by, revoked_at FROM keys
			UNION ALL
			SELECT id, role, '', 'local', '', created_at, NULL, revoked_at FROM api_keys) k
		WHERE id > $1 ORDER BY id LIMIT $2`, []any{dbText(cursor), limit + 1}, func(row pgx.Rows) (KeySummary, error) {
		var k KeySummary
		var revokedBy *string
		err := row.Scan(&k.ID, &k.Role, &k.Label, &k.Origin, &k.IssuedBy, &k.IssuedAt, &revokedBy, &k.RevokedAt)
		k.ID, k.Role, k.Label = fromDBText(k.ID), fromDBText(k.Role), fromDBText(k.Label)
		k.IssuedBy, k.RevokedBy = fromDBText(k.IssuedBy), fromDBTextPtr(revokedBy)
		return k, err
	})
	if err != nil {
		q.fail(w, r, err)
		return
	}
	var page KeyPage
	page.Keys, page.NextCursor = pageOf(keys, limit, func(k KeySummary) string { return k.ID })
	httpapi.WriteJSON(w, http.StatusOK, page)
}
