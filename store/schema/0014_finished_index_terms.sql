-- The partial indexes of finished jobs again, their states as a chain of
-- equalities: SQLite evaluates an IN list of more than two constants by
-- building a temporary b-tree, and it evaluates a partial index's
-- condition for the old and the new row of every UPDATE of jobs: four
-- temporary b-trees (each with its own page cache, allocated and freed)
-- for every state change. The queries that use these indexes repeat the
-- conditions word for word (STORE_FINISHED_CONDITION, STORE_ENDED_CONDITION).
DROP INDEX jobs_to_clean;
CREATE INDEX jobs_to_clean ON jobs (updated_ms) WHERE cleaned_ms = 0 AND cluster IS NOT NULL
	AND (state = 'SUCCEEDED' OR state = 'FAILED' OR state = 'CANCELLED');
DROP INDEX jobs_finished;
CREATE INDEX jobs_finished ON jobs (updated_ms)
	WHERE state = 'SUCCEEDED' OR state = 'FAILED' OR state = 'CANCELLED' OR state = 'REJECTED';
