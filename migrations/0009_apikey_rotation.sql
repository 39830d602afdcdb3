-- tokenvend schema, version 9: API key rotation (`tokenvend apikey rotate NAME`). A rotated
-- name's row holds the new key in key_id/hash and the key it replaced in prev_key_id/prev_hash,
-- which authenticates until prev_expires_ms (the grace period) and never after; a revoke of the
-- name ends both. '' / x'' / 0: no previous key. A second rotation replaces the previous key.
ALTER TABLE api_keys ADD COLUMN prev_key_id TEXT NOT NULL DEFAULT ''
    CHECK (length(prev_key_id) <= 32);
ALTER TABLE api_keys ADD COLUMN prev_hash BLOB NOT NULL DEFAULT x''
    CHECK (length(prev_hash) IN (0, 32));
ALTER TABLE api_keys ADD COLUMN prev_expires_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN prev_last_used_ms INTEGER NOT NULL DEFAULT 0;
-- Every authentication looks a key id up in both columns.
CREATE INDEX api_keys_by_prev_key_id ON api_keys (prev_key_id);
