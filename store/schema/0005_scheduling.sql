-- Fair share, quotas and lifecycle. A job counts against its team and its
-- pool with what it asks for (set at submission, refreshed when claimed);
-- run counts the runs of a job retried under restartPolicy OnFailure;
-- ttl_s is its spec's timeToLiveSeconds (-1: the configured default) and
-- cleaned_ms when its cluster objects were deleted (0: not yet).
ALTER TABLE jobs ADD COLUMN team        TEXT    NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN pool        TEXT    NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN cores_milli INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN memory_mib  INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN gpus        INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN run         INTEGER NOT NULL DEFAULT 1;
ALTER TABLE jobs ADD COLUMN ttl_s       INTEGER NOT NULL DEFAULT -1;
ALTER TABLE jobs ADD COLUMN cleaned_ms  INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET team = coalesce((SELECT value FROM job_labels
	WHERE job_seq = jobs.seq AND key = 'team'), '');

-- Usage of a team or a pool is a sum over its active jobs, read from
-- these indexes alone.
CREATE INDEX jobs_by_team_state ON jobs (team, state, cores_milli, memory_mib, gpus);
CREATE INDEX jobs_by_pool_state ON jobs (pool, state, cores_milli, memory_mib, gpus);
-- The queue, per team, in priority then arrival order.
DROP INDEX jobs_by_state_priority;
CREATE INDEX jobs_queue ON jobs (state, team, priority, seq, created_ms, not_before_ms);
-- Finished jobs whose cluster objects are still to be deleted, and
-- finished jobs by age for the retention pruner.
CREATE INDEX jobs_to_clean ON jobs (updated_ms) WHERE cleaned_ms = 0
	AND cluster IS NOT NULL AND state IN ('SUCCEEDED', 'FAILED', 'CANCELLED');
CREATE INDEX jobs_finished ON jobs (updated_ms)
	WHERE state IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'REJECTED');
-- Pruning a job deletes its idempotency key through the foreign key.
CREATE INDEX idempotency_keys_by_job ON idempotency_keys (job_seq);
