-- What each AI agent worker instance last said about its providers, for
-- the API tier's status: one row per (instance, provider).
CREATE TABLE agent_status (
    instance    text        NOT NULL,
    provider    text        NOT NULL,
    state       text        NOT NULL,
    reason      text        NOT NULL DEFAULT '',
    since       timestamptz NOT NULL,
    transitions bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (instance, provider)
);

-- The agent worker's sweep finds tasks left assigned while their workspace
-- was over its daily token budget.
CREATE INDEX tasks_assigned ON tasks (updated_at) WHERE status = 'assigned';
