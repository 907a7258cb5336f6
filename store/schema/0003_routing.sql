-- Routing: the placement explanation of each dispatched job (pool, group,
-- node role, reasons, final Spark conf with the layer of each value), and
-- what operators set on clusters (rotation, weight), kept across restarts.
ALTER TABLE jobs ADD COLUMN placement TEXT;
CREATE TABLE cluster_settings (
	name     TEXT PRIMARY KEY,
	rotation TEXT    NOT NULL DEFAULT 'active',
	weight   INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
-- Clusters added and removed through the API, applied over the file's
-- policy: {"added": [cluster...], "removed": [name...]}.
CREATE TABLE policy_overlay (
	id  INTEGER PRIMARY KEY CHECK (id = 1),
	doc TEXT NOT NULL
);
