-- tokenvend schema, version 2: the app user an outbox row deletes for.
-- A repeated DELETE of an app user whose mapping is already gone must answer 202 while the
-- outbox still owes ACS the delete (README "Public API", "Internal API"), so the row remembers whose identity it was.
-- NULL for rows written before this migration and for identities without an app user
-- (standalone identities, orphans of a lost create race).
ALTER TABLE outbox ADD COLUMN app_user_id TEXT
    CHECK (app_user_id IS NULL OR length(app_user_id) BETWEEN 1 AND 256);
CREATE INDEX outbox_by_app_user_id ON outbox (app_user_id) WHERE app_user_id IS NOT NULL;
