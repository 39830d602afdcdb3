-- tokenvend schema, version 3: local accounts get their own user namespace.
-- Until now a local account NAME and an OIDC user whose claim was NAME were the same app user
-- (one ACS identity, each able to revoke or delete the other's). From now on a local account's
-- app user id is "local:NAME" and an OIDC claim value starting with "local:" is refused.
--
-- The old rows cannot tell the two kinds of user apart, so a mapping (and a pending outbox
-- delete) whose app user id equals the name of an existing local account is taken to be that
-- account's: it becomes "local:NAME", and the account keeps its ACS identity. An OIDC user
-- whose claim value was that same NAME loses the link to it and gets a new identity on its
-- next use (with auto_create on; PUT /internal/users/NAME creates one too).
--
-- App user ids that already start with "local:" can only have come from OIDC claims (accounts
-- used bare names), and such claims are refused from now on. Their mappings become standalone
-- identities (app_user_id NULL) before the renames, so no account inherits one: the ACS
-- identity is kept and still reachable by its id (/internal/identities/{acsId}, tokenvend
-- identity show|delete 8:acs:...). Their pending outbox deletes lose the app user the same way.
-- Every other row is unchanged.
UPDATE mappings SET app_user_id = NULL WHERE substr(app_user_id, 1, 6) = 'local:';
UPDATE outbox SET app_user_id = NULL WHERE substr(app_user_id, 1, 6) = 'local:';
UPDATE mappings SET app_user_id = 'local:' || app_user_id
    WHERE app_user_id IN (SELECT name FROM accounts);
UPDATE outbox SET app_user_id = 'local:' || app_user_id
    WHERE app_user_id IN (SELECT name FROM accounts);
