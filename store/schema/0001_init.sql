-- Jobs, their labels (one row each, for selector queries), their timeline,
-- and idempotency keys. seq orders jobs newest-first and is the list cursor;
-- job_events.seq is a global change counter that also stamps jobs.rv.
CREATE TABLE jobs (
	seq        INTEGER PRIMARY KEY,
	id         TEXT    NOT NULL UNIQUE,
	name       TEXT    NOT NULL,
	user       TEXT    NOT NULL,
	state      TEXT    NOT NULL,
	reason     TEXT,
	message    TEXT,
	labels     TEXT    NOT NULL,
	spec       TEXT    NOT NULL,
	created_ms INTEGER NOT NULL,
	updated_ms INTEGER NOT NULL,
	rv         INTEGER NOT NULL
);
CREATE INDEX jobs_by_state   ON jobs (state, seq);
CREATE INDEX jobs_by_user    ON jobs (user, seq);
CREATE INDEX jobs_by_created ON jobs (created_ms);
CREATE INDEX jobs_by_rv      ON jobs (rv);

-- state is a copy of jobs.state, so that "team=X, state=RUNNING" is one
-- index range; the writer keeps it in step on every transition.
CREATE TABLE job_labels (
	job_seq INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
	key     TEXT    NOT NULL,
	value   TEXT    NOT NULL,
	state   TEXT    NOT NULL,
	PRIMARY KEY (job_seq, key)
) WITHOUT ROWID;
CREATE INDEX job_labels_by_value       ON job_labels (key, value, job_seq);
CREATE INDEX job_labels_by_value_state ON job_labels (key, value, state, job_seq);

CREATE TABLE job_events (
	seq      INTEGER PRIMARY KEY AUTOINCREMENT,
	job_seq  INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
	time_ms  INTEGER NOT NULL,
	state    TEXT    NOT NULL,
	previous TEXT,
	reason   TEXT    NOT NULL,
	message  TEXT
);
CREATE INDEX job_events_by_job ON job_events (job_seq, seq);

CREATE TABLE idempotency_keys (
	user        TEXT    NOT NULL,
	key         TEXT    NOT NULL,
	body_sha256 BLOB    NOT NULL,
	job_seq     INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
	created_ms  INTEGER NOT NULL,
	PRIMARY KEY (user, key)
) WITHOUT ROWID;
