-- Cluster settings, the policy overlay, tokens, the audit trail and pod usage.
CREATE TABLE cluster_settings (
	name     TEXT PRIMARY KEY,
	rotation TEXT    NOT NULL DEFAULT 'active',
	weight   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE policy_overlay (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	doc TEXT NOT NULL
);

CREATE TABLE tokens (
	id            TEXT   PRIMARY KEY,
	secret_sha256 BYTEA  NOT NULL,
	owner         TEXT   NOT NULL,
	teams         TEXT   NOT NULL,
	role          TEXT   NOT NULL,
	created_ms    BIGINT NOT NULL,
	expires_ms    BIGINT NOT NULL DEFAULT 0,
	revoked_ms    BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE audit (
	seq      BIGSERIAL PRIMARY KEY,
	time_ms  BIGINT  NOT NULL,
	token_id TEXT,
	team     TEXT,
	action   TEXT    NOT NULL,
	target   TEXT,
	outcome  TEXT    NOT NULL,
	status   INTEGER NOT NULL,
	remote   TEXT
);
CREATE INDEX audit_by_time ON audit (time_ms);

CREATE TABLE pod_usage (
	uid         TEXT    PRIMARY KEY,
	cluster     TEXT    NOT NULL,
	job_seq     BIGINT  NOT NULL,
	team        TEXT    NOT NULL,
	pool        TEXT    NOT NULL,
	role        TEXT    NOT NULL,
	cores_milli BIGINT  NOT NULL,
	memory_mib  BIGINT  NOT NULL,
	gpus        BIGINT  NOT NULL,
	start_ms    BIGINT  NOT NULL,
	end_ms      BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX pod_usage_by_start ON pod_usage (start_ms);
CREATE INDEX pod_usage_running ON pod_usage (cluster) WHERE end_ms = 0;
