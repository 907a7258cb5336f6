-- API tokens: the secret is kept only as its SHA-256; teams is a JSON
-- array of team names; expires_ms and revoked_ms are 0 when not set.
CREATE TABLE tokens (
	id            TEXT    PRIMARY KEY,
	secret_sha256 BLOB    NOT NULL,
	owner         TEXT    NOT NULL,
	teams         TEXT    NOT NULL,
	role          TEXT    NOT NULL,
	created_ms    INTEGER NOT NULL,
	expires_ms    INTEGER NOT NULL DEFAULT 0,
	revoked_ms    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Every mutating call and every denied one.
CREATE TABLE audit (
	seq      INTEGER PRIMARY KEY,
	time_ms  INTEGER NOT NULL,
	token_id TEXT,
	team     TEXT,
	action   TEXT    NOT NULL,
	target   TEXT,
	outcome  TEXT    NOT NULL,
	status   INTEGER NOT NULL,
	remote   TEXT
);
CREATE INDEX audit_by_time ON audit (time_ms);
