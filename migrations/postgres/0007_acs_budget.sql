-- tokenvend schema, version 7, PostgreSQL dialect of migrations/0007_acs_budget.sql: the
-- upstream budget's slots, shared by every replica on the database. Takers lock the slots they
-- pick with FOR UPDATE SKIP LOCKED, so replicas never wait for one another's rows.
CREATE TABLE acs_budget (
    op      TEXT NOT NULL CHECK (length(op) BETWEEN 1 AND 32),
    slot    INTEGER NOT NULL CHECK (slot >= 0),
    used_ms BIGINT NOT NULL,
    PRIMARY KEY (op, slot)
);
CREATE INDEX acs_budget_by_used ON acs_budget (op, used_ms);
