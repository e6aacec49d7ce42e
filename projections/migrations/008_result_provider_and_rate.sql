-- task.result_recorded v2 says which provider and model produced a result;
-- workspace.ai_policy_set v2 caps the workspace's AI calls per minute.
-- Rows projected from v1 events keep the values v1 meant: none said, no cap.
ALTER TABLE tasks ADD COLUMN provider text, ADD COLUMN model text;
ALTER TABLE workspaces ADD COLUMN ai_requests_per_minute bigint NOT NULL DEFAULT 0;
