-- Which gateway process watches each cluster, until when: replicas sharing
-- a database take a cluster's lease before watching it, so that one
-- watches it at a time, and another takes over when the lease runs out.
CREATE TABLE watch_leases (
	cluster  TEXT    PRIMARY KEY,
	owner    TEXT    NOT NULL,
	until_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- The gateway processes alive (each says so while it runs): a process
-- takes at most its share of the clusters' leases, so that watching is
-- spread over the replicas.
CREATE TABLE gateway_replicas (
	instance TEXT    PRIMARY KEY,
	until_ms INTEGER NOT NULL
) WITHOUT ROWID;

-- What runs in each namespace of a cluster, as the replica watching it
-- sees it, for the replicas placing jobs there without watching it:
-- {ns: [pods, cores, memory bytes, gpus]}.
CREATE TABLE cluster_usage (
	cluster    TEXT    PRIMARY KEY,
	usage      TEXT    NOT NULL,
	updated_ms INTEGER NOT NULL
) WITHOUT ROWID;
