-- Casemate control plane, initial schema (SQLite).
-- Every row carries tenant_id; global kill switches and platform audit events use NULL.

CREATE TABLE tenants (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL GENERATED ALWAYS AS (id) VIRTUAL,
    name              TEXT NOT NULL UNIQUE,
    status            TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    rpm               INTEGER,
    tpm               INTEGER,
    allowed_models    TEXT,
    allowed_providers TEXT,
    policy_id         TEXT,
    settings          TEXT NOT NULL DEFAULT '{}',
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
);

CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    email          TEXT NOT NULL,
    name           TEXT NOT NULL DEFAULT '',
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL,
    status         TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    mfa_secret_enc BLOB,
    last_login_at  TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    UNIQUE (tenant_id, email)
);
CREATE INDEX users_email ON users (email);

CREATE TABLE memberships (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL,
    created_at TEXT NOT NULL,
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
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE policy_versions (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    policy_id  TEXT NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    document   TEXT NOT NULL,
    comment    TEXT NOT NULL DEFAULT '',
    created_by TEXT,
    created_at TEXT NOT NULL,
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
    expires_at        TEXT,
    role              TEXT NOT NULL DEFAULT 'member',
    scopes            TEXT NOT NULL DEFAULT '[]',
    rpm               INTEGER,
    tpm               INTEGER,
    allowed_models    TEXT,
    allowed_providers TEXT,
    budget_usd        REAL,
    policy_id         TEXT REFERENCES policies (id) ON DELETE SET NULL,
    created_by        TEXT,
    created_at        TEXT NOT NULL,
    revoked_by        TEXT,
    revoked_reason    TEXT,
    revoked_at        TEXT,
    last_used_at      TEXT,
    usage_requests    INTEGER NOT NULL DEFAULT 0,
    usage_tokens      INTEGER NOT NULL DEFAULT 0,
    usage_cost_usd    REAL NOT NULL DEFAULT 0
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, id);

CREATE TABLE providers (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    base_url        TEXT NOT NULL DEFAULT '',
    models          TEXT NOT NULL DEFAULT '[]',
    settings        TEXT NOT NULL DEFAULT '{}',
    credentials_enc BLOB,
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE TABLE kill_switches (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT REFERENCES tenants (id) ON DELETE CASCADE,
    scope      TEXT NOT NULL CHECK (scope IN ('global', 'tenant', 'key', 'provider', 'model')),
    target     TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    created_by TEXT,
    created_at TEXT NOT NULL
);
CREATE UNIQUE INDEX kill_switches_target ON kill_switches (COALESCE(tenant_id, ''), scope, target);

CREATE TABLE audit_events (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT,
    ts            TEXT NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id   TEXT,
    outcome       TEXT NOT NULL,
    request_id    TEXT,
    details       TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_tenant_ts ON audit_events (tenant_id, id);

CREATE TABLE gateway_requests (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL,
    key_id            TEXT,
    model             TEXT,
    provider          TEXT,
    status            INTEGER NOT NULL,
    blocked           INTEGER NOT NULL DEFAULT 0,
    reason            TEXT,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    total_tokens      INTEGER NOT NULL DEFAULT 0,
    cost_usd          REAL NOT NULL DEFAULT 0,
    latency_ms        REAL NOT NULL DEFAULT 0,
    security          TEXT NOT NULL DEFAULT '{}',
    ts                TEXT NOT NULL
);
CREATE INDEX gateway_requests_tenant ON gateway_requests (tenant_id, id);
CREATE INDEX gateway_requests_tenant_ts ON gateway_requests (tenant_id, ts);

CREATE TABLE refresh_tokens (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    revoked     INTEGER NOT NULL DEFAULT 0,
    revoked_at  TEXT,
    replaced_by TEXT,
    user_agent  TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (tenant_id, user_id);

CREATE TABLE changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT,
    kind      TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    ts        TEXT NOT NULL
);
