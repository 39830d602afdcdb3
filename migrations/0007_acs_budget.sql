-- tokenvend schema, version 7: the upstream budget (SPEC section 10, README "Upstream budget").
-- Each ACS operation has N slots (N of TOKENVEND_ACS_BUDGET); used_ms is when a slot was last
-- used, in ms since the epoch, stamped a little ahead of the grant to cover its way to ACS. A
-- slot is free again once W has passed since then, so every process sharing this file takes at
-- most N in any W between them. Slots are made on first use (0 is "never used"). Transient
-- state: `tokenvend store copy` does not carry it.
CREATE TABLE acs_budget (
    op      TEXT NOT NULL CHECK (length(op) BETWEEN 1 AND 32),
    slot    INTEGER NOT NULL CHECK (slot >= 0),
    used_ms INTEGER NOT NULL,
    PRIMARY KEY (op, slot)
) WITHOUT ROWID;
-- Oldest slots first, and the count of those used within a window, without a table scan.
CREATE INDEX acs_budget_by_used ON acs_budget (op, used_ms);
