-- API keys, stored as SHA-256 hashes. Not a projection: never rebuilt.
CREATE TABLE api_keys (
    id         text        PRIMARY KEY,
    hash       bytea       NOT NULL UNIQUE,
    role       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
