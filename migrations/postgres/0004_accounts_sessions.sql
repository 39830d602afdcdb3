-- tokenvend schema, version 4, PostgreSQL dialect of migrations/0004_accounts_sessions.sql:
-- session epochs of local accounts, and failed-login counters (GCRA state) per user name.
ALTER TABLE accounts ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;

CREATE TABLE login_failures (
    name   TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    tat_ms BIGINT NOT NULL
);
CREATE INDEX login_failures_by_tat ON login_failures (tat_ms);
