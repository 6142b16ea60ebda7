-- Herald's spine: tenants, keys, events, integrations, rules, deliveries, attempts.
-- Times are unix milliseconds (BIGINT) on both engines: one representation,
-- no precision drift between SQLite's text and PostgreSQL's timestamptz.

CREATE TABLE server_settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- config_version changes with every rule or integration change of the
-- tenant, in the same transaction: routers cache a tenant's rules and check
-- the version once per ingest batch.
CREATE TABLE tenants (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    config_version BIGINT NOT NULL DEFAULT 0
);
INSERT INTO tenants (id, name, created_at) VALUES ('default', 'Default', 0);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    name         TEXT NOT NULL,
    scope        TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    key_prefix   TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id);

CREATE TABLE events (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    type            TEXT NOT NULL,
    severity        TEXT NOT NULL,
    data            TEXT NOT NULL,
    idempotency_key TEXT,
    request_hash    TEXT NOT NULL,
    deliver_at      BIGINT,
    created_at      BIGINT NOT NULL
);
-- Partial: events without a key (most of them) stay out of this index.
CREATE UNIQUE INDEX events_idempotency ON events (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_tenant ON events (tenant_id, id);

CREATE TABLE integrations (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    type       TEXT NOT NULL,
    config     TEXT NOT NULL,
    enabled    BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX integrations_tenant ON integrations (tenant_id, id);

CREATE TABLE rules (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    name            TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL,
    event_types     TEXT NOT NULL,
    condition       TEXT,
    integration_ids TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX rules_tenant ON rules (tenant_id, id);

-- The queue. A pending row is claimable when due_at <= now; a claim moves
-- due_at to the lease's end and sets lease_token, so a crashed worker's rows
-- become due again by themselves when the lease runs out.
CREATE TABLE deliveries (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    integration_id TEXT NOT NULL,
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
    sent_at        BIGINT
);
CREATE INDEX deliveries_due ON deliveries (due_at) WHERE status = 'pending';
CREATE INDEX deliveries_tenant ON deliveries (tenant_id, id);
CREATE INDEX deliveries_event ON deliveries (event_id);

CREATE TABLE attempts (
    id            BIGSERIAL PRIMARY KEY,
    delivery_id   TEXT NOT NULL,
    tenant_id     TEXT NOT NULL,
    attempt       BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    duration_ms   BIGINT NOT NULL,
    outcome       TEXT NOT NULL,
    status_code   BIGINT,
    error         TEXT,
    response      TEXT
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, id);
