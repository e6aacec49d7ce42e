package projections

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Instance is one logbook process as it reports itself to the registry.
type Instance struct {
	ID            string    `json:"id"`
	Roles         []string  `json:"roles"`
	Version       string    `json:"version"`
	Host          string    `json:"host"`
	PID           int       `json:"pid"`
	HTTPAddr      string    `json:"url,omitempty"` // where its API or metrics answer
	KafkaClientID string    `json:"-"`
	Level         string    `json:"level"`
	StartedAt     time.Time `json:"started_at"`
	SeenAt        time.Time `json:"seen_at"`
}

// Registry is the table of running instances.
type Registry struct{ pool *pgxpool.Pool }

// NewRegistry reads and writes the registry in pool.
func NewRegistry(pool *pgxpool.Pool) *Registry { return &Registry{pool: pool} }

// Heartbeat records that in is alive now, and forgets instances silent for
// longer than keep, so the table stays as small as the fleet.
func (r *Registry) Heartbeat(ctx context.Context, in Instance, keep time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO instances (id, roles, version, host, pid, http_addr, kafka_client_id, level, started_at, seen_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
		ON CONFLICT (id) DO UPDATE SET roles = EXCLUDED.roles, version = EXCLUDED.version, http_addr = EXCLUDED.http_addr,
			level = EXCLUDED.level, seen_at = EXCLUDED.seen_at`,
		in.ID, in.Roles, in.Version, in.Host, in.PID, in.HTTPAddr, in.KafkaClientID, in.Level, in.StartedAt)
	b.Queue(`DELETE FROM instances WHERE seen_at < now() - make_interval(secs => $1)`, keep.Seconds())
	return r.pool.SendBatch(ctx, b).Close()
}

// Forget removes an instance that stops cleanly.
func (r *Registry) Forget(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := r.pool.Exec(ctx, `DELETE FROM instances WHERE id = $1`, id)
	return err
}

// Live lists the instances heard from within fresh, oldest first.
func (r *Registry) Live(ctx context.Context, fresh time.Duration) ([]Instance, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	rows, err := r.pool.Query(ctx, `SELECT id, roles, version, host, pid, http_addr, kafka_client_id, level, started_at, seen_at
		FROM instances WHERE seen_at > now() - make_interval(secs => $1) ORDER BY started_at, id`, fresh.Seconds())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Instance, error) {
		var in Instance
		err := row.Scan(&in.ID, &in.Roles, &in.Version, &in.Host, &in.PID, &in.HTTPAddr, &in.KafkaClientID, &in.Level,
			&in.StartedAt, &in.SeenAt)
		return in, err
	})
}
