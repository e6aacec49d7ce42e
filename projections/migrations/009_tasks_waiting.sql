-- The agent worker's drain reads a workspace's oldest tasks left assigned
-- (its request rate left them waiting).
CREATE INDEX tasks_assigned_by_workspace ON tasks (workspace_id, updated_at) WHERE status = 'assigned';
