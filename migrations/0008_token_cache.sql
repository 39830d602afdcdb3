-- tokenvend schema, version 8: the token cache kept in the store (TOKENVEND_CACHE_KEY), so a
-- restart or another replica serves a token without asking ACS again. A row is one token ACS
-- issued for (acs_id, scopes, minutes), sealed with AES-256-GCM under the cache key (sealed:
-- version || nonce || ciphertext || tag); the associated data binds the row's identity,
-- resource, scopes, minutes, issued_ms and expires_ms, so a row moved or edited never opens.
-- issued_ms (when the ACS call started) is compared with mappings.revoked_ms on every read; a
-- revoke or delete removes the identity's rows. Rows are a cache: `store copy` skips them.
CREATE TABLE token_cache (
    acs_id     TEXT NOT NULL CHECK (length(acs_id) BETWEEN 1 AND 256),
    scopes     TEXT NOT NULL CHECK (length(scopes) <= 127),
    minutes    INTEGER NOT NULL,
    resource   TEXT NOT NULL CHECK (length(resource) BETWEEN 1 AND 256),
    issued_ms  INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL,
    sealed     BLOB NOT NULL CHECK (length(sealed) BETWEEN 1 AND 20000),
    PRIMARY KEY (acs_id, scopes, minutes)
) STRICT;
-- The running service prunes expired rows oldest first, in small batches.
CREATE INDEX token_cache_expires ON token_cache (expires_ms);
