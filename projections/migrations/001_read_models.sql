-- Offsets of the projections live here, written in the same transaction as
-- the rows they produced.
CREATE TABLE projection_checkpoints (
    projection  text        NOT NULL,
    partition   int         NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, partition)
);

CREATE TABLE workspaces (
    id                 text        PRIMARY KEY,
    name               text        NOT NULL,
    status             text        NOT NULL,
    version            bigint      NOT NULL,
    last_seq           bigint      NOT NULL,
    ai_daily_budget    bigint      NOT NULL DEFAULT 0,
    ai_fallback_mode   text        NOT NULL DEFAULT 'none',
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL
);

CREATE TABLE members (
    workspace_id text NOT NULL REFERENCES workspaces (id),
    principal_id text NOT NULL,
    role         text NOT NULL,
    PRIMARY KEY (workspace_id, principal_id)
);

CREATE TABLE agents (
    workspace_id text        NOT NULL REFERENCES workspaces (id),
    id           text        NOT NULL,
    name         text        NOT NULL,
    role         text        NOT NULL,
    model        text        NOT NULL,
    instructions text,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, id)
);

CREATE TABLE tasks (
    workspace_id      text        NOT NULL,
    id                text        NOT NULL,
    title             text        NOT NULL,
    input             text,
    priority          int         NOT NULL,
    assignee          text,
    status            text        NOT NULL,
    attempt           int         NOT NULL,
    output            text,
    failure_reason    text,
    prompt_tokens     bigint      NOT NULL DEFAULT 0,
    completion_tokens bigint      NOT NULL DEFAULT 0,
    version           bigint      NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX tasks_by_status ON tasks (workspace_id, status, id);

-- The trail auditors read. Payload is json (not jsonb) so the stored text is
-- the hashed text.
CREATE TABLE events (
    workspace_id      text        NOT NULL,
    seq               bigint      NOT NULL,
    id                text        NOT NULL UNIQUE,
    type              text        NOT NULL,
    version           int         NOT NULL,
    aggregate_type    text        NOT NULL,
    aggregate_id      text        NOT NULL,
    aggregate_version bigint      NOT NULL,
    command_id        text        NOT NULL,
    correlation_id    text,
    actor_id          text        NOT NULL,
    actor_role        text        NOT NULL,
    occurred_at       timestamptz NOT NULL,
    payload           json        NOT NULL,
    prev_hash         text        NOT NULL,
    hash              text        NOT NULL,
    log_partition     int         NOT NULL,
    log_offset        bigint      NOT NULL,
    PRIMARY KEY (workspace_id, seq)
);

CREATE FUNCTION events_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event trail is append-only';
END $$;
CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_immutable();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_immutable();

CREATE TABLE ai_usage (
    workspace_id      text   NOT NULL,
    day               date   NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    PRIMARY KEY (workspace_id, day)
);

-- One outcome per command, from the results topic.
CREATE TABLE commands (
    id           text        PRIMARY KEY,
    workspace_id text        NOT NULL,
    type         text        NOT NULL,
    status       text        NOT NULL,
    code         text,
    reason       text,
    field        text,
    aggregate_id text,
    events       jsonb,
    decided_at   timestamptz NOT NULL
);
CREATE INDEX commands_by_workspace ON commands (workspace_id);
