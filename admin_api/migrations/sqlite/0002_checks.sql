-- Agent tool-call gating: pending checks awaiting review, ingested traces, anomaly events (SQLite).

CREATE TABLE tool_checks (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL,
    agent_id         TEXT NOT NULL,
    session_id       TEXT,
    tool_name        TEXT NOT NULL,
    category         TEXT NOT NULL,
    risk_level       TEXT NOT NULL,
    policy_name      TEXT NOT NULL,
    signals          TEXT NOT NULL DEFAULT '[]',
    reasons          TEXT NOT NULL DEFAULT '[]',
    arguments        TEXT,
    anomaly_score    REAL NOT NULL DEFAULT 0,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'allowed', 'blocked')),
    timeout_decision TEXT NOT NULL CHECK (timeout_decision IN ('allow', 'block')),
    decided_by       TEXT,
    decision_reason  TEXT,
    created_at       TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    decided_at       TEXT
);
CREATE INDEX tool_checks_tenant_status ON tool_checks (tenant_id, status, id);
CREATE INDEX tool_checks_pending_expiry ON tool_checks (status, expires_at);

CREATE TABLE tool_traces (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    agent_id    TEXT NOT NULL,
    session_id  TEXT,
    tool_name   TEXT NOT NULL,
    arguments   TEXT,
    result      TEXT,
    decision    TEXT,
    blocked     INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    duration_ms REAL,
    check_id    TEXT,
    ts          TEXT NOT NULL
);
CREATE INDEX tool_traces_tenant ON tool_traces (tenant_id, id);
CREATE INDEX tool_traces_tenant_agent ON tool_traces (tenant_id, agent_id, id);

CREATE TABLE tool_anomalies (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    agent_id   TEXT NOT NULL,
    check_id   TEXT,
    tool_name  TEXT NOT NULL,
    score      REAL NOT NULL,
    decision   TEXT NOT NULL,
    components TEXT NOT NULL DEFAULT '{}',
    ts         TEXT NOT NULL
);
CREATE INDEX tool_anomalies_tenant ON tool_anomalies (tenant_id, id);
