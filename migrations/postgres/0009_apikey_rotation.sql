-- tokenvend schema, version 9, PostgreSQL dialect of migrations/0009_apikey_rotation.sql: the
-- previous key of a rotated API key name, valid until prev_expires_ms.
ALTER TABLE api_keys
    ADD COLUMN prev_key_id TEXT NOT NULL DEFAULT '' CHECK (length(prev_key_id) <= 32),
    ADD COLUMN prev_hash BYTEA NOT NULL DEFAULT ''::bytea CHECK (octet_length(prev_hash) IN (0, 32)),
    ADD COLUMN prev_expires_ms BIGINT NOT NULL DEFAULT 0,
    ADD COLUMN prev_last_used_ms BIGINT NOT NULL DEFAULT 0;
CREATE INDEX api_keys_by_prev_key_id ON api_keys (prev_key_id);
