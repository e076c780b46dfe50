-- Agent tool-call gating: pending checks awaiting review, ingested traces, anomaly events (PostgreSQL).

CREATE TABLE tool_checks (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    agent_id         TEXT NOT NULL,
    session_id       TEXT,
    tool_name        TEXT NOT NULL,
    category         TEXT NOT NULL,
    risk_level       TEXT NOT NULL,
    policy_name      TEXT NOT NULL,
    signals          JSONB NOT NULL DEFAULT '[]'::jsonb,
    reasons          JSONB NOT NULL DEFAULT '[]'::jsonb,
    arguments        JSONB,
    anomaly_score    DOUBLE PRECISION NOT NULL DEFAULT 0,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'allowed', 'blocked')),
    timeout_decision TEXT NOT NULL CHECK (timeout_decision IN ('allow', 'block')),
    decided_by       TEXT,
    decision_reason  TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    decided_at       TIMESTAMPTZ
);
CREATE INDEX tool_checks_tenant_status ON tool_checks (tenant_id, status, id);
CREATE INDEX tool_checks_pending_expiry ON tool_checks (status, expires_at);

CREATE TABLE tool_traces (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    agent_id    TEXT NOT NULL,
    session_id  TEXT,
    tool_name   TEXT NOT NULL,
    arguments   JSONB,
    result      JSONB,
    decision    TEXT,
    blocked     BOOLEAN NOT NULL DEFAULT FALSE,
    error       TEXT,
    duration_ms DOUBLE PRECISION,
    check_id    TEXT,
    ts          TIMESTAMPTZ NOT NULL
);
CREATE INDEX tool_traces_tenant ON tool_traces (tenant_id, id);
CREATE INDEX tool_traces_tenant_agent ON tool_traces (tenant_id, agent_id, id);

CREATE TABLE tool_anomalies (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    agent_id   TEXT NOT NULL,
    check_id   TEXT,
    tool_name  TEXT NOT NULL,
    score      DOUBLE PRECISION NOT NULL,
    decision   TEXT NOT NULL,
    components JSONB NOT NULL DEFAULT '{}'::jsonb,
    ts         TIMESTAMPTZ NOT NULL
);
CREATE INDEX tool_anomalies_tenant ON tool_anomalies (tenant_id, id);
