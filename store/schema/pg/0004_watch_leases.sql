-- As SQLite's 0010: the lease of the gateway process watching each cluster.
CREATE TABLE watch_leases (
	cluster  TEXT   PRIMARY KEY,
	owner    TEXT   NOT NULL,
	until_ms BIGINT NOT NULL
);
CREATE TABLE gateway_replicas (
	instance TEXT   PRIMARY KEY,
	until_ms BIGINT NOT NULL
);
CREATE TABLE cluster_usage (
	cluster    TEXT   PRIMARY KEY,
	usage      TEXT   NOT NULL,
	updated_ms BIGINT NOT NULL
);
