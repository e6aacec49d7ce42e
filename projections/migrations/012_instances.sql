-- The service registry: every logbook process says here, every few
-- seconds, who it is and what it runs; GET /v1/status lists those seen
-- lately beside the consumer groups' members.
CREATE TABLE instances (
    id              text        PRIMARY KEY,
    roles           text[]      NOT NULL,
    version         text        NOT NULL,
    host            text        NOT NULL,
    pid             integer     NOT NULL,
    http_addr       text        NOT NULL DEFAULT '',
    kafka_client_id text        NOT NULL,
    level           text        NOT NULL,
    started_at      timestamptz NOT NULL,
    seen_at         timestamptz NOT NULL
);
