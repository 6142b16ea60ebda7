-- Browsers' Web Push subscriptions, by the client app's recipient id (no
-- recipient row is required). An endpoint is unique per tenant: a browser
-- that subscribes again replaces its keys and owner.
CREATE TABLE push_subscriptions (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    recipient_id TEXT NOT NULL,
    endpoint     TEXT NOT NULL,
    p256dh       TEXT NOT NULL,
    auth         TEXT NOT NULL,
    user_agent   TEXT,
    created_at   BIGINT NOT NULL,
    UNIQUE (tenant_id, endpoint)
);
CREATE INDEX push_subscriptions_recipient ON push_subscriptions (tenant_id, recipient_id);
