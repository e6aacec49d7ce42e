-- Records a projection could not apply, and the later events of the same
-- workspace held behind them: nothing is skipped and nothing is applied out
-- of order. `logbook dlq replay` applies them, in log order, once the cause
-- is fixed. value is the record exactly as it was in the log.
CREATE TABLE projection_quarantine (
    projection     text        NOT NULL,
    log_partition  int         NOT NULL,
    log_offset     bigint      NOT NULL,
    workspace_id   text        NOT NULL,
    seq            bigint,
    hash           text,
    held           boolean     NOT NULL,
    error          text        NOT NULL,
    value          bytea       NOT NULL,
    quarantined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, log_partition, log_offset)
);
CREATE INDEX projection_quarantine_by_workspace
    ON projection_quarantine (projection, workspace_id, log_partition, log_offset);
