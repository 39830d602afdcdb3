-- tokenvend schema, version 4: session epochs and failed-login counters for local accounts.
-- (The runner applies every version a database lacks, in order, so one that got 4 before 3
-- gets 3 at its next migrate; this file does not depend on 3.)
-- session_epoch: a random number every session token of the account carries as a claim;
-- replacing the password gives it a new one (removing the account removes it), which ends
-- the sessions issued before. 0 for accounts made before this migration.
ALTER TABLE accounts ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;

-- Failed logins per user name (accounts or not, so a 429 tells nothing about which names
-- exist), as the GCRA state of TOKENVEND_LOGIN_LIMIT: tat_ms is the theoretical arrival time.
-- A row whose tat_ms has passed is a full bucket and is pruned.
CREATE TABLE login_failures (
    name   TEXT PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 64),
    tat_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX login_failures_by_tat ON login_failures (tat_ms);
