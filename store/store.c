/* Connections, schema migrations and the group-commit writer thread. */
#include "store/store_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

#include "common/log.h"
#include "common/metrics.h"

/* Generated from store/schema/NNNN_*.sql by the Makefile, in order. */
extern const char *const store_migrations[];
extern const size_t store_migration_count;

struct queue_node {
	struct store_op *op;
	bool wait; /* store_execute: signal done_cond instead of op->done */
	bool finished;
	struct queue_node *next;
};

struct store {
	char *path;
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
	int64_t data_version;        /* writer: last seen; moves on others' commits */

	atomic_long queued;          /* jobs in QUEUED */
	_Atomic double commit_ms;    /* moving average of a batch's commit */
	struct gw_metrics *metrics;
};

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
		"INSERT INTO jobs (id, name, user, state, reason, labels, spec, created_ms,"
		" updated_ms, rv, priority, team, pool, cores_milli, memory_mib, gpus, ttl_s, spec_shown)"
		" VALUES (?1, ?2, ?3, 'QUEUED', 'Submitted', ?4, ?5, ?6, ?6, ?15, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
	/* What a team or pool uses: count and sums over its active jobs. */
	[STMT_TEAM_ACTIVE] =
		"SELECT count(*), total(cores_milli), total(memory_mib), total(gpus) FROM jobs"
		" WHERE team = ?1 AND state IN " STORE_ACTIVE_STATES,
	[STMT_TEAM_QUEUED] = "SELECT count(*) FROM jobs WHERE team = ?1 AND state = 'QUEUED'",
	[STMT_POOL_ACTIVE] =
		"SELECT count(*), total(cores_milli), total(memory_mib), total(gpus) FROM jobs"
		" WHERE pool = ?1 AND state IN " STORE_ACTIVE_STATES,
	[STMT_POOL_QUEUED] = "SELECT count(*) FROM jobs WHERE pool = ?1 AND state = 'QUEUED'",
	[STMT_JOB_SET_DEMAND] =
		"UPDATE jobs SET pool = ?2, cores_milli = ?3, memory_mib = ?4, gpus = ?5 WHERE seq = ?1",
	[STMT_JOB_NEW_RUN] =
		"UPDATE jobs SET run = run + 1, attempts = 0, cluster = NULL, namespace = NULL,"
		" driver_pod = NULL, spark_ui = NULL, placement = NULL, not_before_ms = ?2"
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
	/* The writer's transaction and each operation's savepoint, prepared
	 * once rather than parsed for every operation. */
	[STMT_BEGIN] = "BEGIN IMMEDIATE",
	[STMT_COMMIT] = "COMMIT",
	[STMT_SAVEPOINT] = "SAVEPOINT op",
	[STMT_RELEASE] = "RELEASE op",
	[STMT_ROLLBACK_TO] = "ROLLBACK TO op",
	[STMT_DATA_VERSION] = "PRAGMA data_version",
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
		" message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[STMT_JOB_UPDATE] =
		"UPDATE jobs SET state = ?2, reason = ?3, message = ?4,"
		" updated_ms = ?5, rv = ?6 WHERE seq = ?1",
	[STMT_LABELS_UPDATE] = "UPDATE job_labels SET state = ?2 WHERE job_seq = ?1",
	[STMT_IDEM_GET] =
		"SELECT body_sha256, job_seq FROM idempotency_keys"
		" WHERE user = ?1 AND key = ?2",
	[STMT_IDEM_INSERT] =
		"INSERT INTO idempotency_keys (user, key, body_sha256, job_seq,"
		" created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
	[STMT_PING] = "SELECT count(*) FROM sqlite_schema",
	/* Each field is kept when its parameter is NULL. */
	[STMT_JOB_PLACE] =
		"UPDATE jobs SET cluster = coalesce(?2, cluster),"
		" namespace = coalesce(?3, namespace), driver_pod = coalesce(?4, driver_pod),"
		" spark_ui = coalesce(?5, spark_ui), not_before_ms = ?6 WHERE seq = ?1",
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

enum gw_err store_sqlite_err(sqlite3 *db, int rc, char *err)
{
	gw_seterr(err, "sqlite: %s", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	switch (rc & 0xff) {
	case SQLITE_NOMEM:
		return GW_ENOMEM;
	case SQLITE_FULL:
		return GW_EFULL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return GW_EBUSY;
	case SQLITE_CONSTRAINT:
		return GW_ECONFLICT;
	default:
		return GW_EIO;
	}
}

void store_bind_text_or_null(sqlite3_stmt *st, int idx, const char *v)
{
	if (v)
		sqlite3_bind_text(st, idx, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, idx);
}

sqlite3_stmt *store_conn_stmt(struct store_conn *c, enum store_stmt which,
			      char *err)
{
	sqlite3_stmt *st = c->stmts[which];
	int rc;

	if (st) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		return st;
	}
	rc = sqlite3_prepare_v3(c->db, stmt_sql[which], -1,
				SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK) {
		store_sqlite_err(c->db, rc, err);
		return NULL;
	}
	c->stmts[which] = st;
	return st;
}

static void conn_close(struct store_conn *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < STMT_COUNT; i++)
		sqlite3_finalize(c->stmts[i]);
	sqlite3_close(c->db);
	free(c);
}

static enum gw_err exec_sql(sqlite3 *db, const char *sql, char *err)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		enum gw_err e = store_sqlite_err(db, rc, err);

		if (msg)
			gw_seterr(err, "sqlite: %s", msg);
		sqlite3_free(msg);
		return e;
	}
	return GW_OK;
}

static enum gw_err conn_open(const struct store *s, bool reader,
			     struct store_conn **out, char *err)
{
	struct store_conn *c = calloc(1, sizeof(*c));
	char pragmas[256];
	enum gw_err rc;
	int src;

	*out = NULL;
	if (!c)
		return GW_ENOMEM;
	src = sqlite3_open_v2(s->path, &c->db,
			      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				      SQLITE_OPEN_NOMUTEX,
			      NULL);
	if (src != SQLITE_OK) {
		rc = store_sqlite_err(c->db, src, err);
		goto fail;
	}
	sqlite3_busy_timeout(c->db, 5000);
	snprintf(pragmas, sizeof(pragmas),
		 "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s;"
		 " PRAGMA foreign_keys = ON; PRAGMA query_only = %d;",
		 s->sync_full ? "FULL" : "NORMAL", reader ? 1 : 0);
	if ((rc = exec_sql(c->db, pragmas, err)))
		goto fail;
	*out = c;
	return GW_OK;
fail:
	conn_close(c);
	return rc;
}

static enum gw_err migrate(sqlite3 *db, char *err)
{
	sqlite3_stmt *st = NULL;
	enum gw_err rc;
	int version = 0;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return store_sqlite_err(db, sqlite3_errcode(db), err);
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > (int)store_migration_count) {
		gw_seterr(err, "database schema version %d is newer than this build (%zu)",
			  version, store_migration_count);
		return GW_EINVAL;
	}
	for (size_t i = (size_t)version; i < store_migration_count; i++) {
		char bump[64];

		snprintf(bump, sizeof(bump), "PRAGMA user_version = %zu;", i + 1);
		if ((rc = exec_sql(db, "BEGIN IMMEDIATE", err)))
			return rc;
		if ((rc = exec_sql(db, store_migrations[i], err)) ||
		    (rc = exec_sql(db, bump, err)) ||
		    (rc = exec_sql(db, "COMMIT", err))) {
			exec_sql(db, "ROLLBACK", NULL);
			return rc;
		}
		gw_log(GW_LOG_INFO, "store: applied schema migration %zu", i + 1);
	}
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
	if (!c && conn_open(s, true, &c, err))
		return NULL;
	return c;
}

void store_reader_put(struct store *s, struct store_conn *c)
{
	pthread_mutex_lock(&s->pool_lock);
	c->next_free = s->free_readers;
	s->free_readers = c;
	pthread_mutex_unlock(&s->pool_lock);
}

sqlite3_stmt *store_read_begin(struct store *s, const char *sql, struct store_conn **c, char *err)
{
	sqlite3_stmt *st = NULL;
	int src;

	if (!(*c = store_reader_get(s, err)))
		return NULL;
	if ((src = sqlite3_prepare_v2((*c)->db, sql, -1, &st, NULL)) != SQLITE_OK) {
		store_sqlite_err((*c)->db, src, err);
		store_reader_put(s, *c);
		*c = NULL;
		return NULL;
	}
	return st;
}

enum gw_err store_read_end(struct store *s, struct store_conn *c, sqlite3_stmt *st, int src, char *err)
{
	enum gw_err rc = src == SQLITE_DONE || src == SQLITE_ROW ? GW_OK : store_sqlite_err(c->db, src, err);

	sqlite3_finalize(st);
	store_reader_put(s, c);
	return rc;
}

/* SQLite calls this for each row the writer changes: jobs are noted. */
static void on_row_change(void *arg, int op, const char *db, const char *table, sqlite3_int64 rowid)
{
	struct store *s = arg;

	(void)op;
	(void)db;
	if (strcmp(table, "jobs"))
		return;
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
	s->changed[s->nchanged++] = rowid;
}

/* After a commit (committed: its jobs changed) or a rollback. */
static void report_changes(struct store *s, bool committed)
{
	if (committed && s->jobs_changed && (s->nchanged || s->changed_oom))
		s->jobs_changed(s->jobs_changed_arg, s->changed, s->changed_oom ? 0 : s->nchanged);
	s->nchanged = 0;
	s->changed_oom = false;
}

/* Whether another connection committed since the last look: another
 * process sharing the file. */
static void check_foreign_writes(struct store *s)
{
	char err[GW_ERRLEN];
	sqlite3_stmt *st;
	int64_t v;

	if (!s->jobs_changed || !(st = store_conn_stmt(s->writer, STMT_DATA_VERSION, err)))
		return;
	if (sqlite3_step(st) == SQLITE_ROW) {
		v = sqlite3_column_int64(st, 0);
		if (s->data_version && v != s->data_version)
			s->jobs_changed(s->jobs_changed_arg, NULL, 0);
		s->data_version = v;
	}
	sqlite3_reset(st);
}

/* Runs one of the writer's transaction statements; err may be NULL. */
static enum gw_err writer_step(struct store_conn *c, enum store_stmt which, char *err)
{
	char ignored[GW_ERRLEN];
	sqlite3_stmt *st = store_conn_stmt(c, which, err ? err : ignored);
	enum gw_err rc;

	if (!st)
		return GW_EIO;
	rc = store_step_done(c, st, err ? err : ignored);
	sqlite3_reset(st);
	return rc;
}

/* Runs a batch in one transaction; each op in a savepoint so that one
 * op's failure does not undo the others. */
static void run_batch(struct store *s, struct queue_node *batch)
{
	sqlite3 *db = s->writer->db;
	enum gw_err rc;
	char err[GW_ERRLEN];
	struct timespec t0, t1;
	long delta = 0, nops = 0;
	double ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((rc = writer_step(s->writer, STMT_BEGIN, err)))
		goto fail;
	for (struct queue_node *n = batch; n; n = n->next) {
		nops++;
		writer_step(s->writer, STMT_SAVEPOINT, NULL);
		n->op->queued_delta = 0;
		store_apply_op(s->writer, n->op);
		if (n->op->rc)
			writer_step(s->writer, STMT_ROLLBACK_TO, NULL);
		else
			delta += n->op->queued_delta;
		writer_step(s->writer, STMT_RELEASE, NULL);
	}
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
	exec_sql(db, "ROLLBACK", NULL);
	report_changes(s, false);
fail:
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
	free(s->path);
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
	s->path = strdup(opts->path);
	if (!s->path)
		goto fail;
	if ((rc = conn_open(s, false, &s->writer, err)) ||
	    (rc = migrate(s->writer->db, err)))
		goto fail;
	{
		sqlite3_stmt *st = NULL;

		atomic_init(&s->commit_ms, 0.0);
		atomic_init(&s->queued, 0);
		if (sqlite3_prepare_v2(s->writer->db, "SELECT count(*) FROM jobs WHERE state = 'QUEUED'",
				       -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
			atomic_store(&s->queued, (long)sqlite3_column_int64(st, 0));
		sqlite3_finalize(st);
	}
	sqlite3_update_hook(s->writer->db, on_row_change, s);
	check_foreign_writes(s);
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
	sqlite3_stmt *st;
	enum gw_err rc = GW_OK;
	int src;

	if (!c)
		return GW_EIO;
	st = store_conn_stmt(c, STMT_PING, err);
	if (!st) {
		rc = GW_EIO;
	} else if ((src = sqlite3_step(st)) != SQLITE_ROW) {
		rc = store_sqlite_err(c->db, src, err);
	}
	if (st)
		sqlite3_reset(st);
	store_reader_put(s, c);
	return rc;
}
