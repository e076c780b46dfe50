-- Casemate control plane, initial schema (PostgreSQL).
-- Every row carries tenant_id; global kill switches and platform audit events use NULL.

CREATE TABLE tenants (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL GENERATED ALWAYS AS (id) STORED,
    name              TEXT NOT NULL UNIQUE,
    status            TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    rpm               INTEGER,
    tpm               INTEGER,
    allowed_models    JSONB,
    allowed_providers JSONB,
    policy_id         TEXT,
    settings          JSONB NOT NULL DEFAULT '{}'::jsonb,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email          TEXT NOT NULL,
    name           TEXT NOT NULL DEFAULT '',
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    mfa_secret_enc BYTEA,
    last_login_at  TIMESTAMPTZ,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, email)
);
CREATE INDEX users_email ON users (email);

CREATE TABLE memberships (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE policies (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    current_version INTEGER NOT NULL,
    created_by      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE policy_versions (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    policy_id  TEXT NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    document   JSONB NOT NULL,
    comment    TEXT NOT NULL DEFAULT '',
    created_by TEXT,
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (policy_id, version)
);

CREATE TABLE api_keys (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key_hash          TEXT NOT NULL UNIQUE,
    prefix            TEXT NOT NULL,
    last4             TEXT NOT NULL,
    name              TEXT NOT NULL,
    source            TEXT NOT NULL DEFAULT 'api',
    status            TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    expires_at        TIMESTAMPTZ,
    role              TEXT NOT NULL DEFAULT 'member',
    scopes            JSONB NOT NULL DEFAULT '[]'::jsonb,
    rpm               INTEGER,
    tpm               INTEGER,
    allowed_models    JSONB,
    allowed_providers JSONB,
    budget_usd        DOUBLE PRECISION,
    policy_id         TEXT REFERENCES policies (id) ON DELETE SET NULL,
    created_by        TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    revoked_by        TEXT,
    revoked_reason    TEXT,
    revoked_at        TIMESTAMPTZ,
    last_used_at      TIMESTAMPTZ,
    usage_requests    BIGINT NOT NULL DEFAULT 0,
    usage_tokens      BIGINT NOT NULL DEFAULT 0,
    usage_cost_usd    DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id);

CREATE TABLE providers (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    base_url        TEXT NOT NULL DEFAULT '',
    models          JSONB NOT NULL DEFAULT '[]'::jsonb,
    settings        JSONB NOT NULL DEFAULT '{}'::jsonb,
    credentials_enc BYTEA,
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE kill_switches (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL CHECK (scope IN ('global', 'tenant', 'key', 'provider', 'model')),
    target     TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    created_by TEXT,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX kill_switches_target ON kill_switches (COALESCE(tenant_id, ''), scope, target);

CREATE TABLE audit_events (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT,
    ts            TIMESTAMPTZ NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT,
    outcome       TEXT NOT NULL,
    request_id    TEXT,
    details       JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX audit_events_tenant_ts ON audit_events (tenant_id, id);

CREATE TABLE gateway_requests (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    key_id            TEXT,
    model             TEXT,
    provider          TEXT,
    status            INTEGER NOT NULL,
    blocked           BOOLEAN NOT NULL DEFAULT FALSE,
    reason            TEXT,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    total_tokens      INTEGER NOT NULL DEFAULT 0,
    cost_usd          DOUBLE PRECISION NOT NULL DEFAULT 0,
    latency_ms        DOUBLE PRECISION NOT NULL DEFAULT 0,
    security          JSONB NOT NULL DEFAULT '{}'::jsonb,
    ts                TIMESTAMPTZ NOT NULL
);
CREATE INDEX gateway_requests_tenant ON gateway_requests (tenant_id, id);
CREATE INDEX gateway_requests_tenant_ts ON gateway_requests (tenant_id, ts);

CREATE TABLE refresh_tokens (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    revoked     BOOLEAN NOT NULL DEFAULT FALSE,
    revoked_at  TIMESTAMPTZ,
    replaced_by TEXT,
    user_agent  TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (tenant_id, user_id);

CREATE TABLE changes (
    seq       BIGSERIAL PRIMARY KEY,
    tenant_id TEXT,
    kind      TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    ts        TIMESTAMPTZ NOT NULL
);
