-- Labels, timeline and idempotency keys of jobs.
CREATE TABLE job_labels (
	job_seq BIGINT NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
	key     TEXT   NOT NULL,
	value   TEXT   NOT NULL,
	state   TEXT   NOT NULL,
	PRIMARY KEY (job_seq, key)
);
CREATE INDEX job_labels_by_value       ON job_labels (key, value, job_seq);
CREATE INDEX job_labels_by_value_state ON job_labels (key, value, state, job_seq);

-- seq is taken from its sequence before the insert of a job's first
-- event (the job's rv), under the write lock: rvs commit in order.
CREATE TABLE job_events (
	seq      BIGSERIAL PRIMARY KEY,
	job_seq  BIGINT NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
	time_ms  BIGINT NOT NULL,
	state    TEXT   NOT NULL,
	previous TEXT,
	reason   TEXT   NOT NULL,
	message  TEXT
);
CREATE INDEX job_events_by_job ON job_events (job_seq, seq);

CREATE TABLE idempotency_keys (
	"user"      TEXT   NOT NULL,
	key         TEXT   NOT NULL,
	body_sha256 BYTEA  NOT NULL,
	job_seq     BIGINT NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
	created_ms  BIGINT NOT NULL,
	PRIMARY KEY ("user", key)
);
CREATE INDEX idempotency_keys_by_job ON idempotency_keys (job_seq);
