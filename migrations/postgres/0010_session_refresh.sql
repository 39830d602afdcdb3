-- tokenvend schema, version 10, PostgreSQL dialect of migrations/0010_session_refresh.sql:
-- refresh tokens of local-account sessions (hash of the secret only), rotated once each.
CREATE TABLE session_refresh (
    id                TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    family            TEXT NOT NULL CHECK (length(family) BETWEEN 1 AND 64),
    account           TEXT NOT NULL CHECK (length(account) BETWEEN 1 AND 64),
    session_epoch     BIGINT NOT NULL,
    hash              BYTEA NOT NULL CHECK (octet_length(hash) = 32),
    created_ms        BIGINT NOT NULL,
    expires_ms        BIGINT NOT NULL,
    family_expires_ms BIGINT NOT NULL,
    used_ms           BIGINT
);
CREATE INDEX session_refresh_by_family ON session_refresh (family);
CREATE INDEX session_refresh_by_account ON session_refresh (account);
CREATE INDEX session_refresh_by_expiry ON session_refresh (expires_ms);
