-- tokenvend schema, version 1. Applied once by the store inside a BEGIN IMMEDIATE transaction
-- and recorded in schema_migrations. Times are milliseconds since the epoch; 0 means "never".
-- No token is ever stored: API keys only as SHA-256 hashes, passwords only as Argon2id strings.

-- An app user's ACS identity, or a standalone (guest) identity with app_user_id NULL.
-- The UNIQUE constraints are the backstop that keeps concurrent first requests to one row.
-- The mapping's state is its presence: a delete removes the row and queues an outbox row.
CREATE TABLE mappings (
    id             INTEGER PRIMARY KEY,
    app_user_id    TEXT UNIQUE CHECK (app_user_id IS NULL OR length(app_user_id) BETWEEN 1 AND 256),
    acs_id         TEXT NOT NULL UNIQUE CHECK (length(acs_id) BETWEEN 1 AND 256),
    resource       TEXT NOT NULL CHECK (length(resource) BETWEEN 1 AND 256),
    created_ms     INTEGER NOT NULL,
    last_issued_ms INTEGER NOT NULL DEFAULT 0,
    revoked_ms     INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Upstream operations that must eventually succeed (ACS deletes), retried with backoff.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    acs_id          TEXT NOT NULL CHECK (length(acs_id) BETWEEN 1 AND 256),
    resource        TEXT NOT NULL CHECK (length(resource) BETWEEN 1 AND 256),
    op              TEXT NOT NULL CHECK (op IN ('delete', 'revoke')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    created_ms      INTEGER NOT NULL
) STRICT;
CREATE INDEX outbox_by_due ON outbox (next_attempt_ms);
CREATE INDEX outbox_by_acs_id ON outbox (acs_id);

-- API keys for the internal listener: only the SHA-256 of the secret part is kept.
CREATE TABLE api_keys (
    name         TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    key_id       TEXT NOT NULL UNIQUE CHECK (length(key_id) BETWEEN 1 AND 32),
    hash         BLOB NOT NULL CHECK (length(hash) = 32),
    created_ms   INTEGER NOT NULL,
    last_used_ms INTEGER NOT NULL DEFAULT 0,
    revoked_ms   INTEGER NOT NULL DEFAULT 0
) STRICT;

-- Local accounts: Argon2id encoded strings, never passwords.
CREATE TABLE accounts (
    name          TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    password_hash TEXT NOT NULL CHECK (length(password_hash) BETWEEN 1 AND 255),
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL
) STRICT;

-- Who did what to which identity, and the outcome. Never a token. No secondary indexes, so
-- appends stay cheap under load; filtered reads are for tests and the CLI.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    ts_ms       INTEGER NOT NULL,
    request_id  TEXT NOT NULL DEFAULT '',
    caller      TEXT NOT NULL DEFAULT '',
    action      TEXT NOT NULL,
    app_user_id TEXT NOT NULL DEFAULT '',
    acs_id      TEXT NOT NULL DEFAULT '',
    outcome     TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT ''
) STRICT;

-- Service-wide blobs such as the session signing key.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 64),
    value BLOB NOT NULL
) STRICT;
