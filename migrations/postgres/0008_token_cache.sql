-- tokenvend schema, version 8, PostgreSQL dialect of migrations/0008_token_cache.sql: the token
-- cache kept in the store, sealed under TOKENVEND_CACHE_KEY, shared by every replica.
CREATE TABLE token_cache (
    acs_id     TEXT NOT NULL CHECK (length(acs_id) BETWEEN 1 AND 256),
    scopes     TEXT NOT NULL CHECK (length(scopes) <= 127),
    minutes    INTEGER NOT NULL,
    resource   TEXT NOT NULL CHECK (length(resource) BETWEEN 1 AND 256),
    issued_ms  BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    sealed     BYTEA NOT NULL CHECK (length(sealed) BETWEEN 1 AND 20000),
    PRIMARY KEY (acs_id, scopes, minutes)
);
CREATE INDEX token_cache_expires ON token_cache (expires_ms);
