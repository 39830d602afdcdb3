-- tokenvend schema, version 2, PostgreSQL dialect of migrations/0002_outbox_app_user.sql:
-- the app user an outbox row deletes for (NULL for older rows and standalone identities).
ALTER TABLE outbox ADD COLUMN app_user_id TEXT
    CHECK (app_user_id IS NULL OR length(app_user_id) BETWEEN 1 AND 256);
CREATE INDEX outbox_by_app_user_id ON outbox (app_user_id) WHERE app_user_id IS NOT NULL;
