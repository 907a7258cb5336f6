-- What each pod of a job held, and for how long: the watchers record a pod
-- once it runs and close it when it ends. Keyed by the pod's uid, so a
-- pod seen again (a re-list, a restart) is never counted twice. Team and
-- pool are copied, so usage outlives the job rows' retention.
CREATE TABLE pod_usage (
	uid         TEXT    PRIMARY KEY,
	cluster     TEXT    NOT NULL,
	job_seq     INTEGER NOT NULL,
	team        TEXT    NOT NULL,
	pool        TEXT    NOT NULL,
	role        TEXT    NOT NULL,
	cores_milli INTEGER NOT NULL,
	memory_mib  INTEGER NOT NULL,
	gpus        INTEGER NOT NULL,
	start_ms    INTEGER NOT NULL,
	end_ms      INTEGER NOT NULL DEFAULT 0 -- 0 while it runs
) WITHOUT ROWID;
CREATE INDEX pod_usage_by_start ON pod_usage (start_ms);
CREATE INDEX pod_usage_running ON pod_usage (cluster) WHERE end_ms = 0;
