-- tokenvend schema, version 6, PostgreSQL dialect of migrations/0006_replicas.sql: the create
-- claims, the outbox lease holder, and a counter every revoke and delete advances in its own
-- transaction, so a replica whose LISTEN connection was down can tell whether it missed one.
CREATE TABLE create_claims (
    app_user_id TEXT PRIMARY KEY CHECK (length(app_user_id) BETWEEN 1 AND 256),
    owner       TEXT NOT NULL CHECK (length(owner) BETWEEN 1 AND 64),
    expires_ms  BIGINT NOT NULL
);
ALTER TABLE outbox ADD COLUMN leased_by TEXT NOT NULL DEFAULT '' CHECK (length(leased_by) <= 64);
CREATE SEQUENCE invalidation_seq;
