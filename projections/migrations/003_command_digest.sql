-- The digest of the request behind a command sent with an Idempotency-Key
-- (schemas.RequestDigest): the same key with another request is refused
-- with idempotency_key_reused. NULL for commands without a key and for
-- outcomes recorded before the column existed (no comparison then).
ALTER TABLE commands ADD COLUMN request_digest text;
