-- The access audit: failed authentications and denials from the access
-- topic, never a key. seq orders the rows and is the page cursor.
CREATE TABLE access_log (
    seq           bigserial   PRIMARY KEY,
    id            text        NOT NULL UNIQUE,
    at            timestamptz NOT NULL,
    outcome       text        NOT NULL,
    status        integer     NOT NULL,
    code          text        NOT NULL DEFAULT '',
    principal_id  text,
    role          text,
    method        text        NOT NULL,
    route         text        NOT NULL,
    workspace_id  text,
    source        text        NOT NULL,
    request_id    text        NOT NULL DEFAULT '',
    log_partition integer     NOT NULL,
    log_offset    bigint      NOT NULL
);
CREATE INDEX access_log_workspace ON access_log (workspace_id, seq);
