-- Running jobs by start (a RUNNING job is not written again until it
-- ends): the deadline check reads only the overdue ones.
CREATE INDEX jobs_running ON jobs (updated_ms) WHERE state = 'RUNNING';

-- What each pool's teams hold, for the scheduler's every read of the
-- queue: the active jobs alone, covering the sums, in group order.
CREATE INDEX jobs_active_usage ON jobs (pool, team, cores_milli, memory_mib, gpus)
	WHERE state IN ('DISPATCHING', 'SUBMITTED', 'RUNNING', 'CANCELLING');
