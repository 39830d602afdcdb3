-- tokenvend schema, version 6: what several processes on one store need to behave as one.
-- create_claims: the process that inserts (or takes over an expired) row for an app user is the
-- one that asks ACS to create that user's identity; the others wait for its mapping. A claim
-- expires (expires_ms, ms since the epoch) so a process that died holding it blocks nobody for
-- longer than the ACS deadline. The row is removed when the mapping is written.
CREATE TABLE create_claims (
    app_user_id TEXT PRIMARY KEY CHECK (length(app_user_id) BETWEEN 1 AND 256),
    owner       TEXT NOT NULL CHECK (length(owner) BETWEEN 1 AND 64),
    expires_ms  INTEGER NOT NULL
);
-- outbox.leased_by: the process whose ACS call for the row is in flight ('' when none), so only
-- it may finish or reschedule the row while its lease (next_attempt_ms) runs.
ALTER TABLE outbox ADD COLUMN leased_by TEXT NOT NULL DEFAULT '' CHECK (length(leased_by) <= 64);
