-- Why an integration was disabled by Herald itself (a webhook endpoint
-- answered 410 Gone, or failed every attempt for too long); NULL when
-- enabled, or disabled by an admin. Cleared when it is enabled again.
ALTER TABLE integrations ADD COLUMN disabled_reason TEXT;
-- Since when every attempt to a webhook integration has failed (unix ms);
-- NULL after a success. Kept in the database, not in memory, so every node
-- and a restart see the same clock.
ALTER TABLE integrations ADD COLUMN failing_since BIGINT;
