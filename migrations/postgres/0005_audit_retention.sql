-- tokenvend schema, version 5, PostgreSQL dialect of migrations/0005_audit_retention.sql: an
-- index on audit(ts_ms), so the retention pruning seeks the oldest rows instead of scanning.
CREATE INDEX audit_by_ts ON audit (ts_ms);
