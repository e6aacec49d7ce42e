-- task.created v2 adds labels and a due time. Rows projected from v1 events
-- keep what v1 meant: no labels, no due time.
ALTER TABLE tasks ADD COLUMN labels jsonb NOT NULL DEFAULT '[]', ADD COLUMN due_at timestamptz;
-- GET /tasks?label=… finds a workspace's tasks by label.
CREATE INDEX tasks_labels ON tasks USING gin (labels);
-- The agent worker's sweep finds attempts started and left without an
-- outcome.
CREATE INDEX tasks_in_progress_by_update ON tasks (updated_at) WHERE status = 'in_progress';
