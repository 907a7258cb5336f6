-- As SQLite's 0011: jobs by state, pool and team, kept by a trigger.
CREATE TABLE job_counts (
	state TEXT   NOT NULL,
	pool  TEXT   NOT NULL,
	team  TEXT   NOT NULL,
	n     BIGINT NOT NULL,
	PRIMARY KEY (state, pool, team)
);

INSERT INTO job_counts SELECT state, pool, team, count(*) FROM jobs GROUP BY state, pool, team;

CREATE FUNCTION job_counts_keep() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP IN ('UPDATE', 'DELETE') THEN
		UPDATE job_counts SET n = n - 1 WHERE state = OLD.state AND pool = OLD.pool AND team = OLD.team;
	END IF;
	IF TG_OP IN ('INSERT', 'UPDATE') THEN
		INSERT INTO job_counts VALUES (NEW.state, NEW.pool, NEW.team, 1)
			ON CONFLICT (state, pool, team) DO UPDATE SET n = job_counts.n + 1;
	END IF;
	RETURN NULL;
END $$;

CREATE TRIGGER job_counts_insert_delete AFTER INSERT OR DELETE ON jobs
	FOR EACH ROW EXECUTE FUNCTION job_counts_keep();
CREATE TRIGGER job_counts_update AFTER UPDATE OF state, pool, team ON jobs
	FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state OR OLD.pool IS DISTINCT FROM NEW.pool
			   OR OLD.team IS DISTINCT FROM NEW.team)
	EXECUTE FUNCTION job_counts_keep();
