-- People: recipients (by the client app's own ids), what they prefer, the
-- catalogue of notification types, templates, and the in-app inbox.

CREATE TABLE recipients (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    email       TEXT,
    phone       TEXT,
    name        TEXT,
    locale      TEXT,
    timezone    TEXT,
    -- JSON object: role, tier, … (audiences match on these).
    attributes  TEXT NOT NULL,
    -- JSON object: channel → address (telegram chat id, slack member id…).
    addresses   TEXT NOT NULL,
    -- JSON preferences document, NULL until the recipient (or the app) sets one.
    preferences TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- One row per scalar attribute value (each element of an array value), the
-- value as canonical JSON text: an audience {"role": "admin"} is an index
-- lookup, not a scan of every recipient. Rewritten with the recipient.
CREATE TABLE recipient_attributes (
    tenant_id    TEXT NOT NULL,
    name         TEXT NOT NULL,
    value        TEXT NOT NULL,
    recipient_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, name, value, recipient_id)
);
CREATE INDEX recipient_attributes_recipient ON recipient_attributes (tenant_id, recipient_id);

-- Types a recipient turned on in their own preferences: they hear about
-- such events even when nobody names them. Rewritten with the preferences.
CREATE TABLE recipient_subscriptions (
    tenant_id    TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    recipient_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, event_type, recipient_id)
);
CREATE INDEX recipient_subscriptions_recipient ON recipient_subscriptions (tenant_id, recipient_id);

-- Tenant-wide preference defaults per role (attributes.role).
CREATE TABLE role_preferences (
    tenant_id   TEXT NOT NULL,
    role        TEXT NOT NULL,
    preferences TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, role)
);

CREATE TABLE notification_types (
    tenant_id       TEXT NOT NULL,
    type            TEXT NOT NULL,
    label           TEXT NOT NULL,
    description     TEXT,
    category        TEXT,
    default_enabled BOOLEAN NOT NULL,
    -- JSON array of channel names.
    channels        TEXT NOT NULL,
    severity        TEXT,
    required        BOOLEAN NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, type)
);

-- locale '' is the default variant.
CREATE TABLE templates (
    tenant_id  TEXT NOT NULL,
    type       TEXT NOT NULL,
    channel    TEXT NOT NULL,
    locale     TEXT NOT NULL,
    subject    TEXT,
    text_body  TEXT,
    html_body  TEXT,
    title      TEXT,
    body       TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, type, channel, locale)
);

-- One item per in_app delivery (delivery_id unique: a retried job never
-- writes a second item).
CREATE TABLE inbox_items (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    recipient_id TEXT NOT NULL,
    delivery_id  TEXT NOT NULL UNIQUE,
    event_id     TEXT NOT NULL,
    type         TEXT NOT NULL,
    severity     TEXT NOT NULL,
    title        TEXT NOT NULL,
    body         TEXT NOT NULL,
    link         TEXT,
    data         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    read_at      BIGINT,
    archived_at  BIGINT
);
CREATE INDEX inbox_items_recipient ON inbox_items (tenant_id, recipient_id, id);

-- The people an event names (JSON array of recipient ids), NULL when none.
ALTER TABLE events ADD COLUMN recipients TEXT;
-- A rule may name an audience of recipients as well as integrations.
ALTER TABLE rules ADD COLUMN audience TEXT;
-- The integration a person's channel uses when several of its kind exist.
ALTER TABLE integrations ADD COLUMN is_default BOOLEAN NOT NULL DEFAULT FALSE;
-- Signs recipient tokens (sealed under the master key like any secret).
ALTER TABLE tenants ADD COLUMN signing_secret TEXT;

-- Deliveries to people: the recipient, and no integration for in_app.
-- SQLite cannot drop a NOT NULL in place: the table is rebuilt.
CREATE TABLE deliveries_new (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    integration_id TEXT,
    rule_id        TEXT,
    channel        TEXT NOT NULL,
    status         TEXT NOT NULL,
    attempts       BIGINT NOT NULL DEFAULT 0,
    due_at         BIGINT NOT NULL,
    lease_token    TEXT,
    last_error     TEXT,
    skip_reason    TEXT,
    created_at     BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    sent_at        BIGINT,
    recipient_id   TEXT,
    -- A person's address on the channel (email, number, chat id).
    address        TEXT
);
INSERT INTO deliveries_new (id, tenant_id, event_id, event_type, integration_id, rule_id, channel, status, attempts,
                            due_at, lease_token, last_error, skip_reason, created_at, updated_at, sent_at)
    SELECT id, tenant_id, event_id, event_type, integration_id, rule_id, channel, status, attempts,
           due_at, lease_token, last_error, skip_reason, created_at, updated_at, sent_at FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE status = 'pending';
CREATE INDEX deliveries_tenant ON deliveries (tenant_id, id);
CREATE INDEX deliveries_event ON deliveries (event_id);
CREATE INDEX deliveries_recipient ON deliveries (tenant_id, recipient_id) WHERE recipient_id IS NOT NULL;
