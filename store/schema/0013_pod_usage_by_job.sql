-- A job's page lists the pods it held: by job, not a scan of all usage.
CREATE INDEX pod_usage_by_job ON pod_usage (job_seq, start_ms);
