-- tokenvend schema, version 5: an index on audit(ts_ms) for the retention pruning.
-- The service deletes audit rows older than audit_retention_days in small batches. Without
-- this index each batch (and the last, which finds nothing) scans the whole table while it
-- holds the single writer; with it a batch is a range seek over the oldest rows. Rows are
-- appended with the current time, so the index grows at its right edge and keeps appends
-- cheap. (0003 and 0004 belong to other changes; the runner accepts gaps.)
CREATE INDEX audit_by_ts ON audit (ts_ms);
