-- Scheduling: the job's priority rank (0 critical, 1 high, 2 normal,
-- 3 low), for dispatch order; aging is applied when reading the queue.
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 2;
CREATE INDEX jobs_by_state_priority ON jobs (state, priority, seq);
