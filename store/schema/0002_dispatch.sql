-- Dispatch: where a job runs, its driver, and the lease of the gateway
-- process dispatching it. A job in DISPATCHING whose lease has expired is
-- taken over, on the same cluster, by any gateway process.
ALTER TABLE jobs ADD COLUMN cluster        TEXT;
ALTER TABLE jobs ADD COLUMN namespace      TEXT;
ALTER TABLE jobs ADD COLUMN driver_pod     TEXT;
ALTER TABLE jobs ADD COLUMN spark_ui       TEXT;
ALTER TABLE jobs ADD COLUMN lease_owner    TEXT;
ALTER TABLE jobs ADD COLUMN lease_until_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN attempts       INTEGER NOT NULL DEFAULT 0;
-- A job back in QUEUED after a failed dispatch waits until then.
ALTER TABLE jobs ADD COLUMN not_before_ms  INTEGER NOT NULL DEFAULT 0;
CREATE INDEX jobs_by_cluster ON jobs (cluster, state);
