-- Running jobs by start (a RUNNING job is not written again until it
-- ends): the deadline check reads only the overdue ones.
CREATE INDEX jobs_running ON jobs (updated_ms) WHERE state = 'RUNNING';
