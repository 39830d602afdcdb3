-- tokenvend schema, version 3, PostgreSQL dialect of migrations/0003_user_namespace.sql (read
-- it for the why): a local account's app user id becomes "local:NAME"; OIDC ids that already
-- start with "local:" become standalone identities first. The statements are the SQLite ones:
-- substr and || mean the same in both.
UPDATE mappings SET app_user_id = NULL WHERE substr(app_user_id, 1, 6) = 'local:';
UPDATE outbox SET app_user_id = NULL WHERE substr(app_user_id, 1, 6) = 'local:';
UPDATE mappings SET app_user_id = 'local:' || app_user_id
    WHERE app_user_id IN (SELECT name FROM accounts);
UPDATE outbox SET app_user_id = 'local:' || app_user_id
    WHERE app_user_id IN (SELECT name FROM accounts);
