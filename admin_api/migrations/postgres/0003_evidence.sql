-- Evidence: transparency log (seq numbers leaves across logs in commit order for the event dispatcher), retention, event cursors, webhooks, SCIM tokens, users and groups, notifications, trust scores.

CREATE TABLE tlog_leaves (
    log_id     TEXT NOT NULL,
    leaf_index INTEGER NOT NULL,
    event_id   TEXT NOT NULL UNIQUE,
    seq        BIGINT NOT NULL UNIQUE,
    leaf_hash  BYTEA NOT NULL,
    purged_at  TIMESTAMPTZ,
    PRIMARY KEY (log_id, leaf_index)
);

CREATE TABLE tlog_heads (
    id         TEXT PRIMARY KEY,
    log_id     TEXT NOT NULL,
    tree_size  INTEGER NOT NULL,
    root_hash  BYTEA NOT NULL,
    signed_ms  BIGINT NOT NULL,
    key_id     TEXT NOT NULL,
    signature  BYTEA NOT NULL
);
CREATE INDEX tlog_heads_log ON tlog_heads (log_id, tree_size, id);

CREATE TABLE retention_policies (
    tenant_id        TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    audit_days       INTEGER,
    request_log_days INTEGER,
    updated_by       TEXT,
    updated_at       TIMESTAMPTZ NOT NULL
);

CREATE TABLE event_cursors (
    name       TEXT PRIMARY KEY,
    last_id    TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE webhooks (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    url         TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    event_types JSONB NOT NULL DEFAULT '[]'::jsonb,
    secret_enc  BYTEA NOT NULL,
    status      TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_by  TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id, id);

CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    payload          JSONB NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ,
    last_status_code INTEGER,
    last_error       TEXT,
    latency_ms       DOUBLE PRECISION,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
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
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ
);
CREATE INDEX scim_tokens_tenant ON scim_tokens (tenant_id, id);

CREATE TABLE scim_users (
    user_id     TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    external_id TEXT,
    attributes  JSONB NOT NULL DEFAULT '{}'::jsonb,
    version     INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE scim_groups (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    display_name TEXT NOT NULL,
    external_id  TEXT,
    members      JSONB NOT NULL DEFAULT '[]'::jsonb,
    version      INTEGER NOT NULL DEFAULT 1,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, display_name)
);

CREATE TABLE notification_integrations (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    channel    TEXT NOT NULL CHECK (channel IN ('email', 'slack')),
    config     JSONB NOT NULL DEFAULT '{}'::jsonb,
    secret_enc BYTEA,
    enabled    BOOLEAN NOT NULL DEFAULT TRUE,
    updated_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, channel)
);

CREATE TABLE notification_subscriptions (
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    topic          TEXT NOT NULL,
    channels       JSONB NOT NULL DEFAULT '[]'::jsonb,
    min_interval_s DOUBLE PRECISION NOT NULL DEFAULT 300,
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, topic)
);

CREATE TABLE notification_optouts (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    topic      TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, topic, recipient)
);

CREATE TABLE notification_outbox (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    topic      TEXT NOT NULL,
    channel    TEXT NOT NULL,
    event_id   TEXT NOT NULL,
    event      JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at TIMESTAMPTZ NOT NULL,
    sent_at    TIMESTAMPTZ,
    UNIQUE (tenant_id, channel, event_id)
);
CREATE INDEX notification_outbox_unsent ON notification_outbox (sent_at, tenant_id, topic, channel);

CREATE TABLE notification_state (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    topic        TEXT NOT NULL,
    channel      TEXT NOT NULL,
    last_sent_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, topic, channel)
);

CREATE TABLE trust_settings (
    tenant_id    TEXT PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    weights      JSONB NOT NULL DEFAULT '{}'::jsonb,
    half_life_h  DOUBLE PRECISION NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE trust_scores (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    ts         TIMESTAMPTZ NOT NULL,
    score      DOUBLE PRECISION NOT NULL,
    raw_score  DOUBLE PRECISION NOT NULL,
    grade      TEXT NOT NULL,
    pillars    JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX trust_scores_tenant ON trust_scores (tenant_id, id);
