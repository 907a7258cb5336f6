/* The store's core, which every part of it builds on: the store's
 * connections and their prepared statements, the pool of readers, and
 * the step helpers. Knows no job semantics beyond the statements' text. */
#include "store/store_int.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

const char *store_engine(const struct store *s, const char **version)
{
	*version = s->version;
	return s->driver == DB_POSTGRES ? "postgres" : "sqlite";
}

enum db_driver store_driver(const struct store *s)
{
	return s->driver;
}

static const char *const stmt_sql[STMT_COUNT] = {
	[STMT_JOB_BY_ID] = "SELECT " STORE_JOB_COLUMNS " FROM jobs WHERE id = ?1",
	[STMT_JOB_BY_SEQ] = "SELECT " STORE_JOB_COLUMNS " FROM jobs WHERE seq = ?1",
	/* seq grows with creation time: the first job created since is the
	 * first of the window, found in the index rather than by a scan. */
	[STMT_FIRST_SEQ_SINCE] = "SELECT seq FROM jobs WHERE created_ms >= ?1 ORDER BY created_ms LIMIT 1",
	[STMT_JOB_EVENTS] =
		"SELECT e.seq, e.time_ms, e.state, e.previous, e.reason, e.message"
		" FROM job_events e JOIN jobs j ON j.seq = e.job_seq"
		" WHERE j.id = ?1 ORDER BY e.seq",
	[STMT_JOB_INSERT] =
		"INSERT INTO jobs (id, name, \"user\", state, reason, labels, spec, created_ms,"
		" updated_ms, rv, priority, team, pool, cores_milli, memory_mib, gpus, ttl_s, spec_shown)"
		" VALUES (?1, ?2, ?3, 'QUEUED', 'Submitted', ?4, ?5, ?6, ?6, ?15, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
	/* What a team or pool uses: count and sums over its active jobs. */
	[STMT_TEAM_ACTIVE] =
		"SELECT count(*), " STORE_SUMS " FROM jobs"
		" WHERE team = ?1 AND state IN " STORE_ACTIVE_STATES,
	[STMT_TEAM_QUEUED] = "SELECT count(*) FROM jobs WHERE team = ?1 AND state = 'QUEUED'",
	[STMT_POOL_ACTIVE] =
		"SELECT count(*), " STORE_SUMS " FROM jobs"
		" WHERE pool = ?1 AND state IN " STORE_ACTIVE_STATES,
	[STMT_POOL_QUEUED] = "SELECT count(*) FROM jobs WHERE pool = ?1 AND state = 'QUEUED'",
	[STMT_JOB_SET_DEMAND] =
		"UPDATE jobs SET pool = ?2, cores_milli = ?3, memory_mib = ?4, gpus = ?5 WHERE seq = ?1",
	[STMT_JOB_NEW_RUN] =
		"UPDATE jobs SET run = run + 1, attempts = 0, cluster = NULL, namespace = NULL,"
		" driver_pod = NULL, spark_ui = NULL, spark_app_id = NULL, placement = NULL, not_before_ms = ?2"
		" WHERE seq = ?1",
	[STMT_JOB_RENEW] =
		"UPDATE jobs SET lease_until_ms = ?3 WHERE id = ?1 AND lease_owner = ?2"
		" AND state = 'DISPATCHING'",
	[STMT_JOB_CLEANED] = "UPDATE jobs SET cleaned_ms = ?2 WHERE id = ?1",
	/* Oldest first, through the partial index of finished jobs (named:
	 * without statistics the planner sorts every finished job); the
	 * foreign keys take labels, events and idempotency keys along. */
	[STMT_JOBS_PRUNE] =
		"DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs INDEXED BY jobs_finished"
		" WHERE (" STORE_FINISHED_CONDITION ")"
		" AND updated_ms < ?1 AND (cleaned_ms > 0 OR cluster IS NULL)"
		" ORDER BY updated_ms LIMIT ?2)",
	/* A new job's first event takes the next seq of the events, which its
	 * row carries as its rv from the start. */
	[STMT_NEXT_EVENT_SEQ] =
		"SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'job_events'), 0) + 1",
	[STMT_FIRST_EVENT_INSERT] =
		"INSERT INTO job_events (seq, job_seq, time_ms, state, reason) VALUES (?1, ?2, ?3, 'QUEUED', 'Submitted')",
	[STMT_AUDIT_INSERT] =
		"INSERT INTO audit (time_ms, token_id, team, action, target, outcome,"
		" status, remote) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[STMT_TOKEN_INSERT] =
		"INSERT INTO tokens (id, secret_sha256, owner, teams, role, created_ms,"
		" expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[STMT_TOKEN_REVOKE] =
		"UPDATE tokens SET revoked_ms = CASE WHEN revoked_ms = 0 THEN ?2"
		" ELSE revoked_ms END WHERE id = ?1",
	/* A pod's first sighting fixes its start; an end is set once. */
	[STMT_POD_USAGE_UPSERT] =
		"INSERT INTO pod_usage (uid, cluster, job_seq, team, pool, role, cores_milli,"
		" memory_mib, gpus, start_ms, end_ms)"
		" SELECT ?1, ?2, seq, team, pool, ?4, ?5, ?6, ?7, ?8, ?9 FROM jobs WHERE id = ?3"
		" ON CONFLICT (uid) DO UPDATE SET end_ms = excluded.end_ms"
		" WHERE pod_usage.end_ms = 0 AND excluded.end_ms > 0",
	/* Pods gone while nobody watched: ended when their job did, if it
	 * did, else now (at most the downtime is counted). */
	[STMT_POD_USAGE_CLOSE] =
		"UPDATE pod_usage SET end_ms = max(start_ms, coalesce((SELECT CASE WHEN"
		" jobs.state IN ('SUCCEEDED', 'FAILED', 'CANCELLED') THEN min(jobs.updated_ms, ?2)"
		" END FROM jobs WHERE jobs.seq = pod_usage.job_seq), ?2))"
		" WHERE cluster = ?1 AND end_ms = 0 AND uid NOT IN (SELECT value FROM json_each(?3))",
	/* The lease changes hands only once its holder's time ran out. */
	[STMT_WATCH_LEASE] =
		"INSERT INTO watch_leases (cluster, owner, until_ms) VALUES (?1, ?2, ?3)"
		" ON CONFLICT (cluster) DO UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms"
		" WHERE watch_leases.owner = excluded.owner OR watch_leases.until_ms < ?4",
	[STMT_WATCH_RELEASE] = "DELETE FROM watch_leases WHERE cluster = ?1 AND owner = ?2",
	[STMT_REPLICA_ALIVE] =
		"INSERT INTO gateway_replicas (instance, until_ms) VALUES (?1, ?2)"
		" ON CONFLICT (instance) DO UPDATE SET until_ms = excluded.until_ms",
	/* Processes silent for an hour are forgotten (pods replaced, hosts gone). */
	[STMT_REPLICAS_FORGET] = "DELETE FROM gateway_replicas WHERE until_ms < ?1 - 3600000",
	[STMT_CLUSTER_USAGE_PUT] =
		"INSERT INTO cluster_usage (cluster, usage, updated_ms) VALUES (?1, ?2, ?3)"
		" ON CONFLICT (cluster) DO UPDATE SET usage = excluded.usage, updated_ms = excluded.updated_ms",
	/* The writer's transaction and each operation's savepoint, prepared
	 * once rather than parsed for every operation. */
	[STMT_BEGIN] = "BEGIN IMMEDIATE",
	[STMT_COMMIT] = "COMMIT",
	[STMT_SAVEPOINT] = "SAVEPOINT op",
	[STMT_RELEASE] = "RELEASE op",
	[STMT_ROLLBACK_TO] = "ROLLBACK TO op",
	/* Brief rows for the loops over many jobs. The partial indexes are
	 * named: without statistics the planner would walk every finished or
	 * every running job. */
	[STMT_JOBS_TO_CLEAN] =
		"SELECT " STORE_JOB_COLUMNS_BRIEF " FROM jobs INDEXED BY jobs_to_clean"
		" WHERE cleaned_ms = 0 AND cluster IS NOT NULL"
		" AND (" STORE_ENDED_CONDITION ")"
		" AND updated_ms + 1000 * (CASE WHEN ttl_s >= 0 THEN ttl_s ELSE ?2 END) <= ?1"
		" ORDER BY updated_ms LIMIT ?3",
	[STMT_JOBS_IN_STATE] =
		"SELECT " STORE_JOB_COLUMNS_BRIEF " FROM jobs WHERE state = ?1 ORDER BY seq LIMIT ?2",
	[STMT_JOBS_IN_STATE_ON] =
		"SELECT " STORE_JOB_COLUMNS_BRIEF " FROM jobs WHERE state = ?1 AND cluster = ?2"
		" ORDER BY seq LIMIT ?3",
	[STMT_JOBS_RUNNING_BEFORE] =
		"SELECT " STORE_JOB_COLUMNS_BRIEF " FROM jobs INDEXED BY jobs_running"
		" WHERE state = 'RUNNING' AND updated_ms < ?1 ORDER BY updated_ms LIMIT ?2",
	[STMT_JOBS_LABELLED_RUNNING] =
		"SELECT " STORE_JOB_COLUMNS_BRIEF " FROM jobs WHERE seq IN (SELECT job_seq"
		" FROM job_labels WHERE key = ?1 AND state = 'RUNNING') ORDER BY seq LIMIT ?2",
	[STMT_LABEL_INSERT] =
		"INSERT INTO job_labels (job_seq, key, value, state)"
		" VALUES (?1, ?2, ?3, 'QUEUED')",
	[STMT_EVENT_INSERT] =
		"INSERT INTO job_events (job_seq, time_ms, state, previous, reason,"
		" message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[STMT_JOB_UPDATE] =
		"UPDATE jobs SET state = ?2, reason = ?3, message = ?4,"
		" updated_ms = ?5, rv = ?6 WHERE seq = ?1",
	[STMT_LABELS_UPDATE] = "UPDATE job_labels SET state = ?2 WHERE job_seq = ?1",
	[STMT_IDEM_GET] =
		"SELECT body_sha256, job_seq FROM idempotency_keys"
		" WHERE \"user\" = ?1 AND key = ?2",
	[STMT_IDEM_INSERT] =
		"INSERT INTO idempotency_keys (\"user\", key, body_sha256, job_seq,"
		" created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
	[STMT_PING] = "SELECT count(*) FROM sqlite_schema",
	/* Each field is kept when its parameter is NULL. */
	[STMT_JOB_PLACE] =
		"UPDATE jobs SET cluster = coalesce(?2, cluster),"
		" namespace = coalesce(?3, namespace), driver_pod = coalesce(?4, driver_pod),"
		" spark_ui = coalesce(?5, spark_ui), not_before_ms = ?6,"
		" spark_app_id = coalesce(?7, spark_app_id) WHERE seq = ?1",
	[STMT_JOB_SET_PLACEMENT] = "UPDATE jobs SET placement = ?2 WHERE seq = ?1",
	[STMT_CLUSTER_SETTINGS_PUT] =
		"INSERT INTO cluster_settings (name, rotation, weight) VALUES (?1, ?2, ?3)"
		" ON CONFLICT (name) DO UPDATE SET rotation = excluded.rotation,"
		" weight = excluded.weight",
	[STMT_OVERLAY_PUT] =
		"INSERT INTO policy_overlay (id, doc) VALUES (1, ?1)"
		" ON CONFLICT (id) DO UPDATE SET doc = excluded.doc",
	[STMT_JOB_LEASE] =
		"UPDATE jobs SET lease_owner = ?2, lease_until_ms = ?3,"
		" attempts = attempts + ?4 WHERE seq = ?1",
};

/* PostgreSQL's text where it differs from SQLite's. */
static const char *const stmt_sql_pg[STMT_COUNT] = {
	/* The job is born with the rv of its first event, whose seq is taken
	 * under the write lock. */
	[STMT_SUBMIT_PG] =
		"WITH r AS (SELECT nextval('job_events_seq_seq') AS rv),"
		" j AS (INSERT INTO jobs (id, name, \"user\", state, reason, labels, spec, created_ms, updated_ms, rv,"
		"  priority, team, pool, cores_milli, memory_mib, gpus, ttl_s, spec_shown)"
		"  SELECT ?1::text, ?2::text, ?3::text, 'QUEUED', 'Submitted', ?4::text, ?5::text, ?6, ?6, r.rv,"
		"  ?7, ?8::text, ?9::text, ?10, ?11, ?12, ?13, ?14::text FROM r RETURNING seq, rv),"
		" l AS (INSERT INTO job_labels (job_seq, key, value, state)"
		"  SELECT j.seq, e.key, e.value, 'QUEUED' FROM j, json_each_text(?4::text::json) e),"
		" e AS (INSERT INTO job_events (seq, job_seq, time_ms, state, reason)"
		"  SELECT j.rv, j.seq, ?6, 'QUEUED', 'Submitted' FROM j),"
		" i AS (INSERT INTO idempotency_keys (\"user\", key, body_sha256, job_seq, created_ms)"
		"  SELECT ?3::text, ?15::text, ?16, j.seq, ?6 FROM j WHERE ?15::text IS NOT NULL)"
		" SELECT seq, rv FROM j",
	[STMT_POD_USAGE_CLOSE] =
		"UPDATE pod_usage SET end_ms = greatest(start_ms, coalesce((SELECT CASE WHEN"
		" jobs.state IN ('SUCCEEDED', 'FAILED', 'CANCELLED') THEN least(jobs.updated_ms, ?2)"
		" END FROM jobs WHERE jobs.seq = pod_usage.job_seq), ?2))"
		" WHERE cluster = ?1 AND end_ms = 0 AND uid NOT IN (SELECT json_array_elements_text(?3::json))",
	[STMT_BEGIN] = "BEGIN",
	[STMT_WRITE_LOCK] = "SELECT pg_advisory_xact_lock(" GW_STR(STORE_PG_WRITE_LOCK) ")",
	[STMT_NOTIFY] = "SELECT pg_notify('" STORE_PG_CHANNEL "', '')",
	[STMT_EVENT_INSERT] =
		"INSERT INTO job_events (job_seq, time_ms, state, previous, reason,"
		" message) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING seq",
	[STMT_JOBS_PRUNE] =
		"DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs"
		" WHERE state IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'REJECTED')"
		" AND updated_ms < ?1 AND (cleaned_ms > 0 OR cluster IS NULL)"
		" ORDER BY updated_ms LIMIT ?2)",
	[STMT_JOBS_TO_CLEAN] =
		"SELECT " STORE_JOB_COLUMNS_BRIEF " FROM jobs"
		" WHERE cleaned_ms = 0 AND cluster IS NOT NULL"
		" AND state IN ('SUCCEEDED', 'FAILED', 'CANCELLED')"
		" AND updated_ms + 1000 * (CASE WHEN ttl_s >= 0 THEN ttl_s ELSE ?2 END) <= ?1"
		" ORDER BY updated_ms LIMIT ?3",
	[STMT_JOBS_RUNNING_BEFORE] =
		"SELECT " STORE_JOB_COLUMNS_BRIEF " FROM jobs"
		" WHERE state = 'RUNNING' AND updated_ms < ?1 ORDER BY updated_ms LIMIT ?2",
	[STMT_PING] = "SELECT 1",
};

struct db_stmt *store_conn_stmt(struct store_conn *c, enum store_stmt which,
			       char *err)
{
	struct db_stmt *st = c->stmts[which];
	const char *sql = stmt_sql[which];

	if (st) {
		db_reset(st);
		return st;
	}
	if (db_driver(c->db) == DB_POSTGRES && stmt_sql_pg[which])
		sql = stmt_sql_pg[which];
	if (!sql) {
		gw_seterr(err, "statement %d is not for this database", (int)which);
		return NULL;
	}
	if (!(st = db_prepare(c->db, sql, (int)which, err)))
		return NULL;
	c->stmts[which] = st;
	return st;
}

void store_conn_close(struct store_conn *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < STMT_COUNT; i++)
		db_finalize(c->stmts[i]);
	db_close(c->db);
	free(c);
}

enum gw_err store_conn_open(const struct store *s, bool reader, struct store_conn **out, char *err)
{
	struct store_conn *c = calloc(1, sizeof(*c));
	enum gw_err rc;

	*out = NULL;
	if (!c)
		return GW_ENOMEM;
	if ((rc = db_connect(s->driver, s->target, reader, s->sync_full, &c->db, err))) {
		free(c);
		return rc;
	}
	*out = c;
	return GW_OK;
}

struct store_conn *store_reader_get(struct store *s, char *err)
{
	struct store_conn *c;

	pthread_mutex_lock(&s->pool_lock);
	c = s->free_readers;
	if (c)
		s->free_readers = c->next_free;
	pthread_mutex_unlock(&s->pool_lock);
	if (!c && store_conn_open(s, true, &c, err))
		return NULL;
	if (db_reconnect(c->db, err)) {
		store_conn_close(c);
		return NULL;
	}
	return c;
}

void store_reader_put(struct store *s, struct store_conn *c)
{
	pthread_mutex_lock(&s->pool_lock);
	c->next_free = s->free_readers;
	s->free_readers = c;
	pthread_mutex_unlock(&s->pool_lock);
}

struct db_stmt *store_read_begin(struct store *s, const char *sql, struct store_conn **c, char *err)
{
	struct db_stmt *st;

	if (!(*c = store_reader_get(s, err)))
		return NULL;
	if (!(st = db_prepare((*c)->db, sql, -1, err))) {
		store_reader_put(s, *c);
		*c = NULL;
	}
	return st;
}

enum gw_err store_read_end(struct store *s, struct store_conn *c, struct db_stmt *st, int src, char *err)
{
	enum gw_err rc = src == DB_DONE || src == DB_ROW ? GW_OK : db_error(c->db, err);

	db_finalize(st);
	store_reader_put(s, c);
	return rc;
}

enum gw_err store_step_done(struct store_conn *c, struct db_stmt *st, char *err)
{
	return db_step(st) == DB_DONE ? GW_OK : db_error(c->db, err);
}

/* Steps a statement that returns one number (an INSERT's RETURNING, a
 * sequence's next value) into *v. */

/* The job row, as every part reads it. */
void store_job_release(struct store_job *job)
{
	free(job->name);
	free(job->user);
	free(job->reason);
	free(job->message);
	free(job->labels_json);
	free(job->spec_json);
	free(job->spec_shown_json);
	free(job->cluster);
	free(job->namespace);
	free(job->driver_pod);
	free(job->spark_ui);
	free(job->spark_app_id);
	free(job->lease_owner);
	free(job->placement_json);
	free(job->team);
	free(job->pool);
	memset(job, 0, sizeof(*job));
}

void store_jobs_free(struct store_job *jobs, size_t n)
{
	for (size_t i = 0; jobs && i < n; i++)
		store_job_release(&jobs[i]);
	free(jobs);
}

void store_events_free(struct store_event *events, size_t n)
{
	for (size_t i = 0; events && i < n; i++) {
		free(events[i].reason);
		free(events[i].message);
	}
	free(events);
}

/* Copy of a text column, NULL for SQL NULL; *oom set on allocation failure. */
char *store_column_text(struct db_stmt *st, int col, bool *oom)
{
	const char *t = db_col_text(st, col);
	char *copy;

	if (!t)
		return NULL;
	copy = strdup(t);
	if (!copy)
		*oom = true;
	return copy;
}

enum gw_err store_row_to_job(struct db_stmt *st, struct store_job *job)
{
	const char *id = db_col_text(st, 1);
	const char *state = db_col_text(st, 4);
	bool oom = false;

	memset(job, 0, sizeof(*job));
	job->seq = db_col_int64(st, 0);
	snprintf(job->id, sizeof(job->id), "%s", id ? id : "");
	job->name = store_column_text(st, 2, &oom);
	job->user = store_column_text(st, 3, &oom);
	job->state = (enum store_state)store_state_parse(state ? state : "");
	job->reason = store_column_text(st, 5, &oom);
	job->message = store_column_text(st, 6, &oom);
	job->labels_json = store_column_text(st, 7, &oom);
	job->spec_json = store_column_text(st, 8, &oom);
	job->created_ms = db_col_int64(st, 9);
	job->updated_ms = db_col_int64(st, 10);
	job->rv = db_col_int64(st, 11);
	job->cluster = store_column_text(st, 12, &oom);
	job->namespace = store_column_text(st, 13, &oom);
	job->driver_pod = store_column_text(st, 14, &oom);
	job->spark_ui = store_column_text(st, 15, &oom);
	job->lease_owner = store_column_text(st, 16, &oom);
	job->lease_until_ms = db_col_int64(st, 17);
	job->attempts = db_col_int64(st, 18);
	job->not_before_ms = db_col_int64(st, 19);
	job->placement_json = store_column_text(st, 20, &oom);
	job->priority = db_col_int64(st, 21);
	job->team = store_column_text(st, 22, &oom);
	job->pool = store_column_text(st, 23, &oom);
	job->demand.cores_milli = db_col_int64(st, 24);
	job->demand.memory_mib = db_col_int64(st, 25);
	job->demand.gpus = db_col_int64(st, 26);
	job->run = db_col_int64(st, 27);
	job->ttl_s = db_col_int64(st, 28);
	job->cleaned_ms = db_col_int64(st, 29);
	job->spec_shown_json = store_column_text(st, 30, &oom);
	job->spark_app_id = store_column_text(st, 31, &oom);
	if (oom) {
		store_job_release(job);
		return GW_ENOMEM;
	}
	return GW_OK;
}

/* Time-ordered, unguessable id: 'j', 10 base32 digits of the millisecond
 * clock, 10 of randomness. Lower case and starting with a letter, so that
 * Kubernetes object names can derive from it. */

static const char *const state_names[STORE_NSTATES] = {
	[STORE_QUEUED] = "QUEUED",       [STORE_DISPATCHING] = "DISPATCHING",
	[STORE_SUBMITTED] = "SUBMITTED", [STORE_RUNNING] = "RUNNING",
	[STORE_SUCCEEDED] = "SUCCEEDED", [STORE_FAILED] = "FAILED",
	[STORE_CANCELLING] = "CANCELLING", [STORE_CANCELLED] = "CANCELLED",
	[STORE_REJECTED] = "REJECTED",
};

const char *store_state_name(enum store_state st)
{
	return (unsigned)st < STORE_NSTATES ? state_names[st] : "UNKNOWN";
}

int store_state_parse(const char *name)
{
	for (int i = 0; i < STORE_NSTATES; i++)
		if (strcmp(name, state_names[i]) == 0)
			return i;
	return -1;
}

enum gw_err store_load_job(struct store_conn *c, enum store_stmt which,
			    const char *id, int64_t seq, struct store_job *job,
			    char *err)
{
	struct db_stmt *st = store_conn_stmt(c, which, err);
	enum gw_err rc;
	int src;

	if (!st)
		return GW_EIO;
	if (which == STMT_JOB_BY_ID)
		db_bind_text(st, 1, id);
	else
		db_bind_int64(st, 1, seq);
	src = db_step(st);
	if (src == DB_ROW) {
		rc = store_row_to_job(st, job);
	} else if (src == DB_DONE) {
		gw_seterr(err, "job %s not found", id ? id : "");
		rc = GW_ENOTFOUND;
	} else {
		rc = db_error(c->db, err);
	}
	db_reset(st);
	return rc;
}
