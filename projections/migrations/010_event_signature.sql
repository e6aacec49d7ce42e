-- The signed command an event keeps (schemas.SignedCommand), as the event
-- carries it; NULL for events of unsigned commands (before signing). The
-- event hash covers it.
ALTER TABLE events ADD COLUMN signed json;
