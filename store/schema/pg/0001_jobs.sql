-- The PostgreSQL schema: the same tables, columns and meaning as SQLite's
-- migrations 0001 to 0009 (see those for what each is for), in three steps
-- that do not follow SQLite's history, since no PostgreSQL store predates
-- them. Times are milliseconds. This step: jobs.
CREATE TABLE jobs (
	seq            BIGSERIAL PRIMARY KEY,
	id             TEXT    NOT NULL UNIQUE,
	name           TEXT    NOT NULL,
	"user"         TEXT    NOT NULL,
	state          TEXT    NOT NULL,
	reason         TEXT,
	message        TEXT,
	labels         TEXT    NOT NULL,
	spec           TEXT    NOT NULL,
	created_ms     BIGINT  NOT NULL,
	updated_ms     BIGINT  NOT NULL,
	rv             BIGINT  NOT NULL,
	cluster        TEXT,
	namespace      TEXT,
	driver_pod     TEXT,
	spark_ui       TEXT,
	lease_owner    TEXT,
	lease_until_ms BIGINT  NOT NULL DEFAULT 0,
	attempts       INTEGER NOT NULL DEFAULT 0,
	not_before_ms  BIGINT  NOT NULL DEFAULT 0,
	placement      TEXT,
	priority       INTEGER NOT NULL DEFAULT 2,
	team           TEXT    NOT NULL DEFAULT '',
	pool           TEXT    NOT NULL DEFAULT '',
	cores_milli    BIGINT  NOT NULL DEFAULT 0,
	memory_mib     BIGINT  NOT NULL DEFAULT 0,
	gpus           BIGINT  NOT NULL DEFAULT 0,
	run            INTEGER NOT NULL DEFAULT 1,
	ttl_s          INTEGER NOT NULL DEFAULT -1,
	cleaned_ms     BIGINT  NOT NULL DEFAULT 0,
	spec_shown     TEXT
);
CREATE INDEX jobs_by_state   ON jobs (state, seq);
CREATE INDEX jobs_by_user    ON jobs ("user", seq);
CREATE INDEX jobs_by_created ON jobs (created_ms, seq);
CREATE INDEX jobs_by_rv      ON jobs (rv);
CREATE INDEX jobs_by_cluster ON jobs (cluster, state);
CREATE INDEX jobs_by_team_state ON jobs (team, state, cores_milli, memory_mib, gpus);
CREATE INDEX jobs_by_pool_state ON jobs (pool, state, cores_milli, memory_mib, gpus);
CREATE INDEX jobs_queue ON jobs (state, team, priority, seq, created_ms, not_before_ms);
CREATE INDEX jobs_to_clean ON jobs (updated_ms) WHERE cleaned_ms = 0
	AND cluster IS NOT NULL AND state IN ('SUCCEEDED', 'FAILED', 'CANCELLED');
CREATE INDEX jobs_finished ON jobs (updated_ms)
	WHERE state IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'REJECTED');
CREATE INDEX jobs_running ON jobs (updated_ms) WHERE state = 'RUNNING';
CREATE INDEX jobs_active_usage ON jobs (pool, team, cores_milli, memory_mib, gpus)
	WHERE state = 'DISPATCHING' OR state = 'SUBMITTED' OR state = 'RUNNING' OR state = 'CANCELLING';
