-- tokenvend schema, version 10: refresh tokens of local-account sessions (issue 12). One row per
-- refresh token: its random id, SHA-256 of its random secret (never the secret), the family
-- (every token descended from one login), the account and its session epoch at that login,
-- when it was made, when it stops working (idle lifetime) and when its family does (absolute
-- lifetime), and used_ms once it has been rotated: presenting a used token again is a reuse,
-- which revokes (deletes) its whole family. Expired rows are pruned by the maintenance task.
CREATE TABLE session_refresh (
    id                TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),
    family            TEXT NOT NULL CHECK (length(family) BETWEEN 1 AND 64),
    account           TEXT NOT NULL CHECK (length(account) BETWEEN 1 AND 64),
    session_epoch     INTEGER NOT NULL,
    hash              BLOB NOT NULL CHECK (length(hash) = 32),
    created_ms        INTEGER NOT NULL,
    expires_ms        INTEGER NOT NULL,
    family_expires_ms INTEGER NOT NULL,
    used_ms           INTEGER
) STRICT;
CREATE INDEX session_refresh_by_family ON session_refresh (family);
CREATE INDEX session_refresh_by_account ON session_refresh (account);
CREATE INDEX session_refresh_by_expiry ON session_refresh (expires_ms);
