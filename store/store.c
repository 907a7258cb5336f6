/* Connections, schema migrations and the group-commit writer thread. */
#include "store/store_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"

/* Generated from store/schema/NNNN_*.sql and store/schema/pg/NNNN_*.sql
 * by the Makefile, in order. */
extern const char *const store_migrations[];
extern const size_t store_migrations_count;
extern const char *const store_pg_migrations[];
extern const size_t store_pg_migrations_count;

/* PostgreSQL: the advisory lock every write transaction of every replica
 * takes first. One writer at a time keeps the rvs (change counters) in
 * commit order, which pollers of changes rely on, and makes the checks
 * of quotas and idempotency keys exact across replicas; each holder
 * commits a whole batch, so the lock is taken once per batch. */
#define STORE_PG_WRITE_LOCK 1936747367 /* "spkg" */
#define GW_STR_(x) #x
#define GW_STR(x) GW_STR_(x)
/* Where writers tell other replicas that jobs changed. */
#define STORE_PG_CHANNEL "sparkgw_jobs"

struct queue_node {
	struct store_op *op;
	bool wait; /* store_execute: signal done_cond instead of op->done */
	bool finished;
	bool aborted; /* PostgreSQL: it failed in SQL, which aborted the batch's run */
	struct queue_node *next;
};

struct store {
	enum db_driver driver;
	char *target;          /* SQLite file, or PostgreSQL connection string */
	char version[32];      /* the engine's */
	bool sync_full;
	size_t batch_max;

	struct store_conn *writer; /* owned by the writer thread once started */
	pthread_t writer_thread;

	pthread_mutex_t lock; /* guards head, tail, closing */
	pthread_cond_t wake;      /* writer: work arrived or closing */
	pthread_cond_t done_cond; /* store_execute waiters: a batch finished */
	struct queue_node *head, *tail;
	bool closing;

	pthread_mutex_t pool_lock; /* guards free_readers */
	struct store_conn *free_readers;

	void (*commit_hook)(void *arg); /* set before writes begin */
	void *commit_hook_arg;

	void (*jobs_changed)(void *arg, const int64_t *seqs, size_t n);
	void *jobs_changed_arg;
	int64_t *changed;            /* writer: seqs of the jobs written in the batch */
	size_t nchanged, changed_cap;
	bool changed_oom;            /* one was not noted: report "any" */

	atomic_long queued;          /* jobs in QUEUED */
	_Atomic double commit_ms;    /* moving average of a batch's commit */
	struct gw_metrics *metrics;
};

const char *store_engine(const struct store *s, const char **version)
{
	*version = s->version;
	return s->driver == DB_POSTGRES ? "postgres" : "sqlite";
}

enum db_driver store_driver(const struct store *s)
{
	return s->driver;
}

void store_load(struct store *s, long *queued, double *commit_ms)
{
	*queued = atomic_load(&s->queued);
	*commit_ms = atomic_load(&s->commit_ms);
}

void store_set_commit_hook(struct store *s, void (*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&s->lock);
	s->commit_hook = fn;
	s->commit_hook_arg = arg;
	pthread_mutex_unlock(&s->lock);
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
		" VALUES (?1, ?2, ?3, 'QUEUED', 'Submitted', ?4, ?5, ?6, ?6, ?15, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
		" RETURNING seq",
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
	/* Oldest first, through the partial index of finished jobs; the
	 * foreign keys take labels, events and idempotency keys along. */
	[STMT_JOBS_PRUNE] =
		"DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs"
		" WHERE state IN ('SUCCEEDED', 'FAILED', 'CANCELLED', 'REJECTED')"
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
		" AND state IN ('SUCCEEDED', 'FAILED', 'CANCELLED')"
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
		" message) VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING seq",
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

static void conn_close(struct store_conn *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < STMT_COUNT; i++)
		db_finalize(c->stmts[i]);
	db_close(c->db);
	free(c);
}

static enum gw_err conn_open(const struct store *s, bool reader, struct store_conn **out, char *err)
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

/* Applies the migrations past the recorded version, all in one
 * transaction that also reads the version, so that processes starting
 * together on one database migrate one after the other (SQLite's write
 * lock; on PostgreSQL the writers' advisory lock). */
static enum gw_err migrate(struct db_conn *db, char *err)
{
	bool pg = db_driver(db) == DB_POSTGRES;
	const char *const *steps = pg ? store_pg_migrations : store_migrations;
	size_t count = pg ? store_pg_migrations_count : store_migrations_count;
	struct db_stmt *st;
	enum gw_err rc;
	int64_t version = 0;

	if (pg && (rc = db_exec(db, "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)", err)))
		return rc;
	if ((rc = db_exec(db, pg ? "BEGIN; SELECT pg_advisory_xact_lock(" GW_STR(STORE_PG_WRITE_LOCK) ")"
				 : "BEGIN IMMEDIATE",
			  err)))
		return rc;
	if (!(st = db_prepare(db, pg ? "SELECT max(version) FROM schema_version" : "PRAGMA user_version", -1, err))) {
		rc = GW_EIO;
		goto out;
	}
	if (db_step(st) == DB_ROW)
		version = db_col_int64(st, 0);
	db_finalize(st);
	if (version > (int64_t)count) {
		gw_seterr(err, "database schema version %lld is newer than this build (%zu)", (long long)version,
			  count);
		rc = GW_EINVAL;
		goto out;
	}
	for (size_t i = (size_t)version; i < count; i++) {
		char bump[96];

		if (pg)
			snprintf(bump, sizeof(bump), "DELETE FROM schema_version; INSERT INTO schema_version VALUES (%zu)",
				 i + 1);
		else
			snprintf(bump, sizeof(bump), "PRAGMA user_version = %zu;", i + 1);
		if ((rc = db_exec(db, steps[i], err)) || (rc = db_exec(db, bump, err)))
			goto out;
		gw_log(GW_LOG_INFO, "store: applying schema migration %zu", i + 1);
	}
out:
	if (rc) {
		db_exec(db, "ROLLBACK", NULL);
		return rc;
	}
	return db_exec(db, "COMMIT", err);
}

struct store_conn *store_reader_get(struct store *s, char *err)
{
	struct store_conn *c;

	pthread_mutex_lock(&s->pool_lock);
	c = s->free_readers;
	if (c)
		s->free_readers = c->next_free;
	pthread_mutex_unlock(&s->pool_lock);
	if (!c && conn_open(s, true, &c, err))
		return NULL;
	if (db_reconnect(c->db, err)) {
		conn_close(c);
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

/* Notes a job the writer changed. */
static void note_change(void *arg, int64_t seq)
{
	struct store *s = arg;

	if (s->nchanged == s->changed_cap) {
		size_t cap = s->changed_cap ? s->changed_cap * 2 : 256;
		int64_t *more = realloc(s->changed, cap * sizeof(*more));

		if (!more) {
			s->changed_oom = true;
			return;
		}
		s->changed = more;
		s->changed_cap = cap;
	}
	s->changed[s->nchanged++] = seq;
}

/* PostgreSQL has no hook on row changes: the jobs an op wrote are the one
 * it returns, or any, for ops that may write several. */
static void note_op_changes(struct store *s, const struct store_op *op)
{
	if (s->driver != DB_POSTGRES || op->rc)
		return;
	if (op->kind == STORE_OP_PRUNE && op->pruned)
		s->changed_oom = true;
	else if (op->job.seq)
		note_change(s, op->job.seq);
}

/* After a commit (committed: its jobs changed) or a rollback. */
static void report_changes(struct store *s, bool committed)
{
	if (committed && s->jobs_changed && (s->nchanged || s->changed_oom))
		s->jobs_changed(s->jobs_changed_arg, s->changed, s->changed_oom ? 0 : s->nchanged);
	s->nchanged = 0;
	s->changed_oom = false;
}

static enum gw_err count_queued(struct store_conn *c, long *queued, char *err)
{
	struct db_stmt *st = db_prepare(c->db, "SELECT count(*) FROM jobs WHERE state = 'QUEUED'", -1, err);
	int src;

	if (!st)
		return GW_EIO;
	if ((src = db_step(st)) == DB_ROW)
		*queued = (long)db_col_int64(st, 0);
	db_finalize(st);
	return src == DB_ROW ? GW_OK : db_error(c->db, err);
}

/* Whether another process (a replica, or another process on the SQLite
 * file) wrote: then any job may have changed, and the queue depth this
 * process keeps is counted again. */
static void check_foreign_writes(struct store *s)
{
	char err[GW_ERRLEN];
	long queued;

	if (!db_notified(s->writer->db))
		return;
	if (s->jobs_changed)
		s->jobs_changed(s->jobs_changed_arg, NULL, 0);
	if (s->driver == DB_POSTGRES && count_queued(s->writer, &queued, err) == GW_OK)
		atomic_store(&s->queued, queued);
}

/* Runs one of the writer's transaction statements; err may be NULL. */
static enum gw_err writer_step(struct store_conn *c, enum store_stmt which, char *err)
{
	char ignored[GW_ERRLEN];
	struct db_stmt *st = store_conn_stmt(c, which, err ? err : ignored);
	enum gw_err rc;

	if (!st)
		return GW_EIO;
	/* The lock and the notice are SELECTs: a row is their success. */
	rc = db_step(st) == DB_ERROR ? db_error(c->db, err ? err : ignored) : GW_OK;
	db_reset(st);
	return rc;
}

/* Opens the batch's transaction: on PostgreSQL after the session is
 * restored if it was lost, and under the replicas' write lock. */
static enum gw_err writer_begin(struct store *s, char *err)
{
	enum gw_err rc;

	if (s->driver == DB_SQLITE)
		return writer_step(s->writer, STMT_BEGIN, err);
	if ((rc = db_reconnect(s->writer->db, err)))
		return rc;
	if ((rc = writer_step(s->writer, STMT_BEGIN, err)))
		return rc;
	return writer_step(s->writer, STMT_WRITE_LOCK, err);
}

/* Clears what a run of the op set, for a run of the batch again. */
static void op_clear(struct store_op *op)
{
	store_job_release(&op->job);
	op->rc = GW_OK;
	op->unchanged = false;
	op->err[0] = '\0';
	op->queued_delta = 0;
	op->pruned = 0;
}

/* Applies the batch's ops in the open transaction. SQLite: each in a
 * savepoint, so that one op's failure does not undo the others.
 * PostgreSQL, where a savepoint costs two round trips and a
 * subtransaction: without; an op that fails in SQL aborts the run, which
 * is rolled back and run again without it (an op that fails its own
 * checks has written nothing). Returns the op that aborted the run, or
 * NULL. */
static struct queue_node *apply_batch(struct store *s, struct queue_node *batch)
{
	bool pg = s->driver == DB_POSTGRES;

	for (struct queue_node *n = batch; n; n = n->next) {
		if (n->aborted)
			continue;
		op_clear(n->op);
		if (!pg)
			writer_step(s->writer, STMT_SAVEPOINT, NULL);
		store_apply_op(s->writer, n->op);
		if (pg && db_txn_failed(s->writer->db)) {
			n->aborted = true;
			return n;
		}
		if (!pg && n->op->rc)
			writer_step(s->writer, STMT_ROLLBACK_TO, NULL);
		if (!pg)
			writer_step(s->writer, STMT_RELEASE, NULL);
	}
	return NULL;
}

/* Runs a batch in one transaction, and reports each op's result only
 * once it is durable. */
static void run_batch(struct store *s, struct queue_node *batch)
{
	enum gw_err rc;
	char err[GW_ERRLEN];
	struct timespec t0, t1;
	long delta = 0, nops = 0;
	double ms;
	int reruns = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct queue_node *failed;
		bool transient;

		if ((rc = writer_begin(s, err)))
			goto fail;
		if (!(failed = apply_batch(s, batch)))
			break;
		transient = db_transient(s->writer->db);
		db_exec(s->writer->db, "ROLLBACK", NULL);
		report_changes(s, false);
		/* Not the op's doing (the session was lost before the commit, or
		 * the server broke a deadlock): nothing of the run was committed,
		 * and all of it runs again, on a new session if need be, a few
		 * times at most. Otherwise the op's error stays and the others
		 * run again without it. */
		if (transient && reruns++ < 3)
			failed->aborted = false;
	}
	for (struct queue_node *n = batch; n; n = n->next) {
		nops++;
		if (n->op->rc == GW_OK)
			delta += n->op->queued_delta;
		note_op_changes(s, n->op);
	}
	/* Delivered to the other replicas when (and only if) this commits. */
	if (s->driver == DB_POSTGRES && (s->nchanged || s->changed_oom))
		writer_step(s->writer, STMT_NOTIFY, NULL);
	if ((rc = writer_step(s->writer, STMT_COMMIT, err)) == GW_OK) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
		atomic_store(&s->commit_ms, 0.8 * atomic_load(&s->commit_ms) + 0.2 * ms);
		atomic_fetch_add(&s->queued, delta);
		gw_metrics_observe(s->metrics, "sparkgw_store_commit_seconds", "", ms / 1e3);
		gw_metrics_add(s->metrics, "sparkgw_store_operations_total", "", (double)nops);
		report_changes(s, true);
		return;
	}
	db_exec(s->writer->db, "ROLLBACK", NULL);
	report_changes(s, false);
fail:
	/* Not known to be written: each caller answers that nothing was (a
	 * lost COMMIT may yet have landed; a retry with the same
	 * Idempotency-Key then finds the job). */
	gw_log(GW_LOG_ERROR, "store: commit failed: %s", err);
	for (struct queue_node *n = batch; n; n = n->next) {
		store_job_release(&n->op->job);
		n->op->rc = rc;
		memcpy(n->op->err, err, sizeof(err));
	}
}

static void *writer_main(void *arg)
{
	struct store *s = arg;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct queue_node *batch, *last, *next;
		void (*hook)(void *);
		void *hook_arg;
		size_t count = 1;

		while (!s->head && !s->closing) {
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += 200 * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			if (pthread_cond_timedwait(&s->wake, &s->lock, &until) && !s->head) {
				pthread_mutex_unlock(&s->lock);
				check_foreign_writes(s);
				pthread_mutex_lock(&s->lock);
			}
		}
		if (!s->head)
			break;
		batch = last = s->head;
		while (last->next && count < s->batch_max) {
			last = last->next;
			count++;
		}
		s->head = last->next;
		if (!s->head)
			s->tail = NULL;
		last->next = NULL;
		hook = s->commit_hook;
		hook_arg = s->commit_hook_arg;
		pthread_mutex_unlock(&s->lock);

		run_batch(s, batch);
		check_foreign_writes(s);
		if (hook)
			hook(hook_arg);

		pthread_mutex_lock(&s->lock);
		for (struct queue_node *n = batch; n; n = next) {
			next = n->next;
			if (n->wait) {
				n->finished = true; /* the waiter frees n */
			} else {
				struct store_op *op = n->op;

				free(n);
				/* Unlocked: done() may enqueue again. */
				pthread_mutex_unlock(&s->lock);
				op->done(op, op->arg);
				pthread_mutex_lock(&s->lock);
			}
		}
		pthread_cond_broadcast(&s->done_cond);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static enum gw_err enqueue_node(struct store *s, struct queue_node *n)
{
	n->op->rc = GW_OK;
	n->op->unchanged = false;
	n->op->err[0] = '\0';
	memset(&n->op->job, 0, sizeof(n->op->job));
	if (s->closing)
		return GW_ECLOSED;
	if (s->tail)
		s->tail->next = n;
	else
		s->head = n;
	s->tail = n;
	pthread_cond_signal(&s->wake);
	return GW_OK;
}

enum gw_err store_enqueue(struct store *s, struct store_op *op)
{
	struct queue_node *n = calloc(1, sizeof(*n));
	enum gw_err rc;

	if (!n)
		return GW_ENOMEM;
	n->op = op;
	pthread_mutex_lock(&s->lock);
	rc = enqueue_node(s, n);
	pthread_mutex_unlock(&s->lock);
	if (rc)
		free(n);
	return rc;
}

enum gw_err store_execute(struct store *s, struct store_op *op)
{
	struct queue_node n = {.op = op, .wait = true};
	enum gw_err rc;

	pthread_mutex_lock(&s->lock);
	rc = enqueue_node(s, &n);
	while (rc == GW_OK && !n.finished)
		pthread_cond_wait(&s->done_cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
	if (rc) {
		op->rc = rc;
		gw_seterr(op->err, "%s", gw_strerror(rc));
	}
	return op->rc;
}

/* Frees s and its connections; the writer thread is gone or never was. */
static void destroy(struct store *s)
{
	while (s->free_readers) {
		struct store_conn *c = s->free_readers;

		s->free_readers = c->next_free;
		conn_close(c);
	}
	conn_close(s->writer);
	free(s->changed);
	free(s->target);
	pthread_cond_destroy(&s->done_cond);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->pool_lock);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

enum gw_err store_open(const struct store_options *opts, struct store **out,
		       char *err)
{
	struct store *s = calloc(1, sizeof(*s));
	enum gw_err rc = GW_ENOMEM;

	*out = NULL;
	if (!s)
		return GW_ENOMEM;
	pthread_mutex_init(&s->lock, NULL);
	pthread_mutex_init(&s->pool_lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	pthread_cond_init(&s->done_cond, NULL);
	s->sync_full = opts->synchronous_full;
	s->batch_max = opts->batch_max ? opts->batch_max : 64;
	s->metrics = opts->metrics;
	s->jobs_changed = opts->jobs_changed;
	s->jobs_changed_arg = opts->jobs_changed_arg;
	gw_metrics_family(s->metrics, "sparkgw_store_commit_seconds", GW_HISTOGRAM,
			  "Time of one group commit (every write of the batch, durable).");
	gw_metrics_family(s->metrics, "sparkgw_store_operations_total", GW_COUNTER,
			  "Write operations committed.");
	s->driver = opts->postgres_dsn ? DB_POSTGRES : DB_SQLITE;
	s->target = strdup(opts->postgres_dsn ? opts->postgres_dsn : opts->path);
	if (!s->target)
		goto fail;
	atomic_init(&s->commit_ms, 0.0);
	atomic_init(&s->queued, 0);
	if ((rc = conn_open(s, false, &s->writer, err)) || (rc = migrate(s->writer->db, err)) ||
	    (rc = db_listen(s->writer->db, STORE_PG_CHANNEL, err)))
		goto fail;
	{
		long queued = 0;

		if ((rc = count_queued(s->writer, &queued, err)))
			goto fail;
		atomic_store(&s->queued, queued);
	}
	db_version(s->writer->db, s->version, sizeof(s->version));
	db_on_row_change(s->writer->db, "jobs", note_change, s);
	db_notified(s->writer->db); /* the baseline for later looks */
	if (pthread_create(&s->writer_thread, NULL, writer_main, s)) {
		gw_seterr(err, "cannot start the store writer thread");
		rc = GW_ENOMEM;
		goto fail;
	}
	*out = s;
	return GW_OK;
fail:
	destroy(s);
	return rc;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->closing = true;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->writer_thread, NULL);
	destroy(s);
}

enum gw_err store_ping(struct store *s, char *err)
{
	struct store_conn *c = store_reader_get(s, err);
	struct db_stmt *st;
	enum gw_err rc = GW_OK;
	int src;

	if (!c)
		return GW_EIO;
	st = store_conn_stmt(c, STMT_PING, err);
	if (!st) {
		rc = GW_EIO;
	} else if ((src = db_step(st)) != DB_ROW) {
		rc = db_error(c->db, err);
	}
	if (st)
		db_reset(st);
	store_reader_put(s, c);
	return rc;
}
