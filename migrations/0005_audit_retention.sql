-- tokenvend schema, version 5: an index on audit(ts_ms) for the retention pruning.
-- The service deletes audit rows older than audit_retention_days in small batches. Without
-- this index each batch (and the last, which finds nothing) scans the whole table while it
-- holds the single writer; with it a batch is a range seek over the oldest rows. Rows are
-- appended with the current time, so the index grows at its right edge and keeps appends
-- cheap. (The runner applies every version a database lacks, in order, so one that got 5
-- before 3 or 4 gets them at its next migrate; this file depends on neither.)
CREATE INDEX audit_by_ts ON audit (ts_ms);
