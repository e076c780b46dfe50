-- Evidence: transparency log (seq numbers leaves across logs in commit order for the event dispatcher), retention, event cursors, webhooks, SCIM tokens, users and groups, notifications, trust scores.

CREATE TABLE tlog_leaves (
    log_id     TEXT NOT NULL,
    leaf_index INTEGER NOT NULL,
    event_id   TEXT NOT NULL UNIQUE,
    seq        INTEGER NOT NULL UNIQUE,
    leaf_hash  BLOB NOT NULL,
    purged_at  TEXT,
    PRIMARY KEY (log_id, leaf_index)
);

CREATE TABLE tlog_heads (
    id         TEXT PRIMARY KEY,
    log_id     TEXT NOT NULL,
    tree_size  INTEGER NOT NULL,
    root_hash  BLOB NOT NULL,
    signed_ms  INTEGER NOT NULL,
    key_id     TEXT NOT NULL,
    signature  BLOB NOT NULL
);
CREATE INDEX tlog_heads_log ON tlog_heads (log_id, tree_size, id);

CREATE TABLE retention_policies (
    tenant_id        TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    audit_days       INTEGER,
    request_log_days INTEGER,
    updated_by       TEXT,
    updated_at       TEXT NOT NULL
);

CREATE TABLE event_cursors (
    name       TEXT PRIMARY KEY,
    last_id    TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url         TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    event_types TEXT NOT NULL DEFAULT '[]',
    secret_enc  BLOB NOT NULL,
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_by  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id, id);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    payload          TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT,
    last_status_code INTEGER,
    last_error       TEXT,
    latency_ms       REAL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_hook ON webhook_deliveries (tenant_id, webhook_id, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);

CREATE TABLE scim_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,
    name         TEXT NOT NULL,
    created_by   TEXT,
    created_at   TEXT NOT NULL,
    last_used_at TEXT
);
CREATE INDEX scim_tokens_tenant ON scim_tokens (tenant_id, id);

CREATE TABLE scim_users (
    user_id     TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    external_id TEXT,
    attributes  TEXT NOT NULL DEFAULT '{}',
    version     INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE scim_groups (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    display_name TEXT NOT NULL,
    external_id  TEXT,
    members      TEXT NOT NULL DEFAULT '[]',
    version      INTEGER NOT NULL DEFAULT 1,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (tenant_id, display_name)
);

CREATE TABLE notification_integrations (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel    TEXT NOT NULL CHECK (channel IN ('email', 'slack')),
    config     TEXT NOT NULL DEFAULT '{}',
    secret_enc BLOB,
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, channel)
);

CREATE TABLE notification_subscriptions (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    topic          TEXT NOT NULL,
    channels       TEXT NOT NULL DEFAULT '[]',
    min_interval_s REAL NOT NULL DEFAULT 300,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (tenant_id, topic)
);

CREATE TABLE notification_optouts (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    topic      TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, topic, recipient)
);

CREATE TABLE notification_outbox (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    topic      TEXT NOT NULL,
    channel    TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    event      TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    sent_at    TEXT,
    UNIQUE (tenant_id, channel, event_id)
);
CREATE INDEX notification_outbox_unsent ON notification_outbox (sent_at, tenant_id, topic, channel);

CREATE TABLE notification_state (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    topic        TEXT NOT NULL,
    channel      TEXT NOT NULL,
    last_sent_at TEXT NOT NULL,
    PRIMARY KEY (tenant_id, topic, channel)
);

CREATE TABLE trust_settings (
    tenant_id    TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    weights      TEXT NOT NULL DEFAULT '{}',
    half_life_h  REAL NOT NULL,
    updated_at   TEXT NOT NULL
);

CREATE TABLE trust_scores (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    ts         TEXT NOT NULL,
    score      REAL NOT NULL,
    raw_score  REAL NOT NULL,
    grade      TEXT NOT NULL,
    pillars    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX trust_scores_tenant ON trust_scores (tenant_id, id);
