-- The principal that sent each command (schemas.Result.ActorID): only it,
-- and admins, may read the outcome. NULL for outcomes recorded before the
-- column existed: admins only.
ALTER TABLE commands ADD COLUMN actor_id text;
