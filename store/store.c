/* The store's front: opening (schema migrations), the group-commit
 * writer thread that runs every write, and the routing of each write to
 * the part of the store it belongs to (jobs, auth, usage). Connections,
 * statements and readers are the core's (core.c). */
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


struct queue_node {
	struct store_op *op;
	bool wait; /* store_execute: signal done_cond instead of op->done */
	bool finished;
	bool aborted; /* PostgreSQL: it failed in SQL, which aborted the batch's run */
	struct queue_node *next;
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

/* Runs one write inside the writer's open transaction, by its part of
 * the store. */
static void apply_op(struct store_conn *c, struct store_op *op)
{
	switch (op->kind) {
	case STORE_OP_TOKEN_CREATE:
	case STORE_OP_TOKEN_REVOKE:
	case STORE_OP_AUDIT:
		op->rc = store_apply_auth_op(c, op);
		break;
	case STORE_OP_POD_USAGE:
	case STORE_OP_POD_USAGE_CLOSE:
		op->rc = store_apply_usage_op(c, op);
		break;
	default:
		op->rc = store_apply_job_op(c, op);
		break;
	}
	/* A failed op keeps the job as it was for the caller's message. */
	if (op->rc && op->rc != GW_ECONFLICT && op->rc != GW_ESTATE)
		store_job_release(&op->job);
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
		apply_op(s->writer, n->op);
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
		store_conn_close(c);
	}
	store_conn_close(s->writer);
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
	if ((rc = store_conn_open(s, false, &s->writer, err)) || (rc = migrate(s->writer->db, err)) ||
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
