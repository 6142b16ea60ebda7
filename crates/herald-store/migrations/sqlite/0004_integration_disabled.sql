-- Why an integration was disabled by Herald itself (a webhook endpoint
-- answered 410 Gone); NULL when enabled, or disabled by an admin. Cleared
-- when the integration is enabled again.
ALTER TABLE integrations ADD COLUMN disabled_reason TEXT;
