-- API keys issued through the log (key.issued and key.revoked in the _keys
-- stream): hashes, never keys. seq is the registry event that last changed
-- a row, so each API instance fetches only what changed since it last
-- looked. No uniqueness on hash: a projection must apply every event.
CREATE TABLE keys (
    id         text        PRIMARY KEY,
    hash       bytea       NOT NULL,
    role       text        NOT NULL,
    label      text        NOT NULL DEFAULT '',
    issued_by  text        NOT NULL,
    issued_at  timestamptz NOT NULL,
    revoked_by text,
    revoked_at timestamptz,
    seq        bigint      NOT NULL
);
CREATE INDEX keys_seq ON keys (seq);
