/* Store tests, on a real SQLite file in a temporary directory, and again
 * on a PostgreSQL server of the suite's own (a database per test). */
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"
#include "tests/testutil.h"

static char *dir;
static struct store *st;
static char dbpath[600];
static char pg_dsn[256]; /* the test's PostgreSQL database; "": SQLite */

static void open_store(void)
{
	struct store_options o = {.path = dbpath, .synchronous_full = true, .batch_max = 64,
				  .postgres_dsn = *pg_dsn ? pg_dsn : NULL};
	char err[GW_ERRLEN];

	ck_assert_msg(store_open(&o, &st, err) == GW_OK, "open: %s", err);
}

static void setup(void)
{
	dir = tu_tmpdir("store");
	ck_assert_ptr_nonnull(dir);
	snprintf(dbpath, sizeof(dbpath), "%s/test.db", dir);
	/* With the postgres test case's server, a database named for dir. */
	pg_dsn[0] = '\0';
	ck_assert_int_ge(tu_pg_dsn_for(dir, pg_dsn, sizeof(pg_dsn)), 0);
	open_store();
}

/* Runs sql on the store's database from outside the store. */
static void exec_outside(const char *sql)
{
	if (*pg_dsn) {
		PGconn *c = PQconnectdb(pg_dsn);
		PGresult *res = PQexec(c, sql);

		ck_assert_int_eq(PQresultStatus(res), PGRES_COMMAND_OK);
		PQclear(res);
		PQfinish(c);
	} else {
		sqlite3 *db;

		ck_assert_int_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
		ck_assert_int_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
	}
}

static void teardown(void)
{
	store_close(st);
	st = NULL;
	tu_rmtree(dir);
	free(dir);
}

/* Submits a job; returns its id in id_out (may be NULL). */
static enum gw_err submit(const char *name, const char *labels, const char *key,
			  unsigned char hash_byte, struct store_op *op)
{
	memset(op, 0, sizeof(*op));
	op->kind = STORE_OP_SUBMIT;
	op->submit.name = name;
	op->submit.user = "alice";
	op->submit.labels_json = labels;
	op->submit.spec_json = "{\"type\":\"Python\"}";
	op->submit.idempotency_key = key;
	memset(op->submit.body_sha256, hash_byte, 32);
	return store_execute(st, op);
}

static enum gw_err move(const char *id, enum store_state to, const char *reason,
			struct store_op *op)
{
	memset(op, 0, sizeof(*op));
	op->kind = STORE_OP_TRANSITION;
	op->job_id = id;
	op->to = to;
	op->reason = reason;
	return store_execute(st, op);
}

START_TEST(test_submit_and_get)
{
	struct store_op op;
	struct store_job job;
	char err[GW_ERRLEN];

	ck_assert_int_eq(submit("a", "{\"team\":\"x\"}", NULL, 1, &op), GW_OK);
	ck_assert(!op.unchanged);
	ck_assert_int_eq(op.job.state, STORE_QUEUED);
	ck_assert_str_eq(op.job.reason, "Submitted");
	ck_assert_int_eq(strlen(op.job.id), 21);
	ck_assert_int_gt(op.job.rv, 0);
	ck_assert_int_eq(store_job_get(st, op.job.id, &job, err), GW_OK);
	ck_assert_str_eq(job.name, "a");
	ck_assert_str_eq(job.user, "alice");
	ck_assert_str_eq(job.labels_json, "{\"team\":\"x\"}");
	ck_assert_int_eq(job.created_ms, op.job.created_ms);
	store_job_release(&job);
	store_job_release(&op.job);
	ck_assert_int_eq(store_job_get(st, "j00000000000000000000", &job, err), GW_ENOTFOUND);
}
END_TEST

START_TEST(test_idempotency)
{
	struct store_op a, b, c, d;

	ck_assert_int_eq(submit("a", "{}", "k1", 1, &a), GW_OK);
	ck_assert_int_eq(submit("a", "{}", "k1", 1, &b), GW_OK);
	ck_assert(b.unchanged);
	ck_assert_str_eq(a.job.id, b.job.id);
	ck_assert_int_eq(submit("a", "{}", "k1", 2, &c), GW_ECONFLICT);
	ck_assert_ptr_nonnull(strstr(c.err, "different request body"));
	ck_assert_int_eq(submit("a", "{}", "k2", 1, &d), GW_OK);
	ck_assert_str_ne(a.job.id, d.job.id);
	store_job_release(&a.job);
	store_job_release(&b.job);
	store_job_release(&c.job);
	store_job_release(&d.job);
}
END_TEST

START_TEST(test_state_machine_table)
{
	/* The legal edges, written out independently of the store's table. */
	static const struct {
		enum store_state from, to;
	} legal[] = {
		{STORE_QUEUED, STORE_DISPATCHING}, {STORE_QUEUED, STORE_CANCELLED},
		{STORE_QUEUED, STORE_REJECTED}, {STORE_QUEUED, STORE_FAILED},
		{STORE_DISPATCHING, STORE_SUBMITTED}, {STORE_DISPATCHING, STORE_QUEUED},
		{STORE_DISPATCHING, STORE_FAILED}, {STORE_DISPATCHING, STORE_REJECTED},
		{STORE_DISPATCHING, STORE_CANCELLING},
		{STORE_SUBMITTED, STORE_RUNNING}, {STORE_SUBMITTED, STORE_SUCCEEDED},
		{STORE_SUBMITTED, STORE_FAILED}, {STORE_SUBMITTED, STORE_CANCELLING},
		{STORE_RUNNING, STORE_SUCCEEDED}, {STORE_RUNNING, STORE_FAILED},
		{STORE_RUNNING, STORE_CANCELLING},
		/* A new run after a failed one (restartPolicy OnFailure). */
		{STORE_SUBMITTED, STORE_QUEUED}, {STORE_RUNNING, STORE_QUEUED},
		{STORE_CANCELLING, STORE_CANCELLED}, {STORE_CANCELLING, STORE_SUCCEEDED},
		{STORE_CANCELLING, STORE_FAILED},
	};
	int count = 0;

	for (int f = 0; f < STORE_NSTATES; f++)
		for (int t = 0; t < STORE_NSTATES; t++) {
			bool want = false;

			for (size_t i = 0; i < sizeof(legal) / sizeof(legal[0]); i++)
				want = want || (legal[i].from == (enum store_state)f &&
						legal[i].to == (enum store_state)t);
			ck_assert_msg(store_transition_allowed(f, t) == want, "%s -> %s",
				      store_state_name(f), store_state_name(t));
			count += want;
		}
	ck_assert_int_eq(count, (int)(sizeof(legal) / sizeof(legal[0])));
	ck_assert(store_state_terminal(STORE_SUCCEEDED));
	ck_assert(store_state_terminal(STORE_FAILED));
	ck_assert(store_state_terminal(STORE_CANCELLED));
	ck_assert(store_state_terminal(STORE_REJECTED));
	ck_assert(!store_state_terminal(STORE_CANCELLING));
	ck_assert_int_eq(store_state_parse("RUNNING"), STORE_RUNNING);
	ck_assert_int_eq(store_state_parse("running"), -1);
}
END_TEST

START_TEST(test_transitions_write_events)
{
	struct store_op op, t;
	struct store_event *ev;
	size_t n;
	char err[GW_ERRLEN], id[STORE_ID_LEN];
	int64_t rv;

	ck_assert_int_eq(submit("a", "{}", NULL, 1, &op), GW_OK);
	snprintf(id, sizeof(id), "%s", op.job.id);
	rv = op.job.rv;
	store_job_release(&op.job);
	ck_assert_int_eq(move(id, STORE_DISPATCHING, "Dispatching", &t), GW_OK);
	ck_assert_int_gt(t.job.rv, rv);
	store_job_release(&t.job);
	ck_assert_int_eq(move(id, STORE_SUBMITTED, "DriverCreated", &t), GW_OK);
	store_job_release(&t.job);
	ck_assert_int_eq(move(id, STORE_RUNNING, "DriverRunning", &t), GW_OK);
	store_job_release(&t.job);
	/* Illegal: RUNNING -> QUEUED; nothing is written. */
	ck_assert_int_eq(move(id, STORE_QUEUED, "Nope", &t), GW_ESTATE);
	ck_assert_ptr_nonnull(strstr(t.err, "RUNNING and cannot become QUEUED"));
	store_job_release(&t.job);
	ck_assert_int_eq(move(id, STORE_SUCCEEDED, "Completed", &t), GW_OK);
	ck_assert_str_eq(t.job.reason, "Completed");
	store_job_release(&t.job);
	ck_assert_int_eq(move(id, STORE_FAILED, "Late", &t), GW_ESTATE);
	store_job_release(&t.job);

	ck_assert_int_eq(store_job_events(st, id, &ev, &n, err), GW_OK);
	ck_assert_uint_eq(n, 5);
	ck_assert_int_eq(ev[0].state, STORE_QUEUED);
	ck_assert_int_eq(ev[0].previous, -1);
	ck_assert_str_eq(ev[0].reason, "Submitted");
	ck_assert_int_eq(ev[3].previous, STORE_SUBMITTED);
	ck_assert_int_eq(ev[3].state, STORE_RUNNING);
	ck_assert_int_eq(ev[4].state, STORE_SUCCEEDED);
	for (size_t i = 1; i < n; i++)
		ck_assert_int_gt(ev[i].seq, ev[i - 1].seq);
	store_events_free(ev, n);
	ck_assert_int_eq(store_job_events(st, "j00000000000000000000", &ev, &n, err), GW_ENOTFOUND);
	ck_assert_int_eq(move("j00000000000000000000", STORE_RUNNING, "x", &t), GW_ENOTFOUND);
}
END_TEST

static enum gw_err cancel(const char *id, struct store_op *op)
{
	memset(op, 0, sizeof(*op));
	op->kind = STORE_OP_CANCEL;
	op->job_id = id;
	op->reason = "CancelledByUser";
	return store_execute(st, op);
}

START_TEST(test_cancel_semantics)
{
	struct store_op a, b, c;
	char queued[STORE_ID_LEN], running[STORE_ID_LEN], done[STORE_ID_LEN];

	ck_assert_int_eq(submit("q", "{}", NULL, 1, &a), GW_OK);
	snprintf(queued, sizeof(queued), "%s", a.job.id);
	store_job_release(&a.job);
	ck_assert_int_eq(submit("r", "{}", NULL, 1, &a), GW_OK);
	snprintf(running, sizeof(running), "%s", a.job.id);
	store_job_release(&a.job);
	ck_assert_int_eq(submit("d", "{}", NULL, 1, &a), GW_OK);
	snprintf(done, sizeof(done), "%s", a.job.id);
	store_job_release(&a.job);
	move(running, STORE_DISPATCHING, "x", &a);
	store_job_release(&a.job);
	move(running, STORE_SUBMITTED, "x", &a);
	store_job_release(&a.job);
	move(done, STORE_DISPATCHING, "x", &a);
	store_job_release(&a.job);
	move(done, STORE_SUBMITTED, "x", &a);
	store_job_release(&a.job);
	move(done, STORE_SUCCEEDED, "x", &a);
	store_job_release(&a.job);

	ck_assert_int_eq(cancel(queued, &b), GW_OK);
	ck_assert_int_eq(b.job.state, STORE_CANCELLED);
	ck_assert(!b.unchanged);
	store_job_release(&b.job);
	ck_assert_int_eq(cancel(queued, &b), GW_OK); /* idempotent */
	ck_assert(b.unchanged);
	ck_assert_int_eq(b.job.state, STORE_CANCELLED);
	store_job_release(&b.job);

	ck_assert_int_eq(cancel(running, &c), GW_OK);
	ck_assert_int_eq(c.job.state, STORE_CANCELLING);
	store_job_release(&c.job);
	ck_assert_int_eq(cancel(running, &c), GW_OK);
	ck_assert(c.unchanged);
	store_job_release(&c.job);

	ck_assert_int_eq(cancel(done, &c), GW_ECONFLICT);
	ck_assert_ptr_nonnull(strstr(c.err, "SUCCEEDED"));
	store_job_release(&c.job);
	ck_assert_int_eq(cancel("j00000000000000000000", &c), GW_ENOTFOUND);
}
END_TEST

/* Jobs by state and the queue by pool and team, as /metrics reads them,
 * follow every submission, transition and removal. */
START_TEST(test_state_counts_follow_every_change)
{
	struct store_op a;
	char ids[4][STORE_ID_LEN], err[GW_ERRLEN], sql[200];
	json_t *counts, *queued;

	for (int i = 0; i < 4; i++) {
		memset(&a, 0, sizeof(a));
		a.kind = STORE_OP_SUBMIT;
		a.submit.name = "c";
		a.submit.user = "alice";
		a.submit.labels_json = "{}";
		a.submit.spec_json = "{\"type\":\"Python\"}";
		a.submit.team = i < 3 ? "ads" : "search";
		ck_assert_int_eq(store_execute(st, &a), GW_OK);
		snprintf(ids[i], sizeof(ids[i]), "%s", a.job.id);
		store_job_release(&a.job);
	}
	ck_assert_int_eq(move(ids[0], STORE_DISPATCHING, "x", &a), GW_OK);
	store_job_release(&a.job);
	ck_assert_int_eq(move(ids[0], STORE_SUBMITTED, "x", &a), GW_OK);
	store_job_release(&a.job);
	ck_assert_int_eq(move(ids[0], STORE_SUCCEEDED, "x", &a), GW_OK);
	store_job_release(&a.job);
	ck_assert_int_eq(cancel(ids[1], &a), GW_OK);
	store_job_release(&a.job);
	snprintf(sql, sizeof(sql), "DELETE FROM jobs WHERE id = '%s'", ids[0]);
	exec_outside(sql);

	ck_assert_int_eq(store_state_counts(st, &counts, &queued, err), GW_OK);
	ck_assert_int_eq(json_integer_value(json_object_get(counts, "QUEUED")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(counts, "CANCELLED")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(counts, "SUCCEEDED")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(counts, "DISPATCHING")), 0);
	ck_assert_int_eq(json_array_size(queued), 2);
	for (size_t i = 0; i < 2; i++) {
		json_t *q = json_array_get(queued, i);

		ck_assert_int_eq(json_integer_value(json_object_get(q, "count")), 1);
		ck_assert(!strcmp(json_string_value(json_object_get(q, "team")), "ads") ||
			  !strcmp(json_string_value(json_object_get(q, "team")), "search"));
	}
	json_decref(counts);
	json_decref(queued);
}
END_TEST

/* Lists with the selector text; returns the names, newest first. */
static void list_names(const char *selector, int state, size_t limit, int64_t before,
		       char *out, size_t outlen, int64_t *next)
{
	struct gw_selector *sel = NULL;
	struct store_list_query q = {.state = state, .limit = limit, .before_seq = before};
	struct store_job *jobs;
	size_t n;
	char err[GW_ERRLEN];

	if (selector)
		ck_assert_int_eq(gw_selector_parse(selector, &sel, err), GW_OK);
	q.selector = sel;
	ck_assert_msg(store_job_list(st, &q, &jobs, &n, next, err) == GW_OK, "%s", err);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		snprintf(out + strlen(out), outlen - strlen(out), "%s%s", i ? "," : "", jobs[i].name);
	store_jobs_free(jobs, n);
	gw_selector_free(sel);
}

START_TEST(test_list_filters_and_pages)
{
	static const struct {
		const char *name, *labels;
	} jobs[] = {
		{"a1", "{\"team\":\"search\",\"priority\":\"high\",\"gen\":\"3\"}"},
		{"a2", "{\"team\":\"ads\",\"priority\":\"low\"}"},
		{"a3", "{\"team\":\"search\",\"priority\":\"low\",\"experimental\":\"yes\"}"},
		{"a4", "{\"team\":\"ml\",\"priority\":\"critical\",\"gen\":\"12\"}"},
		{"a5", "{}"},
	};
	struct store_op op;
	char names[256];
	int64_t next;

	for (size_t i = 0; i < sizeof(jobs) / sizeof(jobs[0]); i++) {
		ck_assert_int_eq(submit(jobs[i].name, jobs[i].labels, NULL, 1, &op), GW_OK);
		if (i == 1) {
			struct store_op t;

			move(op.job.id, STORE_DISPATCHING, "x", &t);
			store_job_release(&t.job);
		}
		store_job_release(&op.job);
	}
	list_names(NULL, -1, 50, 0, names, sizeof(names), &next);
	ck_assert_str_eq(names, "a5,a4,a3,a2,a1");
	ck_assert_int_eq(next, 0);
	list_names("team=search", -1, 50, 0, names, sizeof(names), &next);
	ck_assert_str_eq(names, "a3,a1");
	list_names("team!=search", -1, 50, 0, names, sizeof(names), &next);
	ck_assert_str_eq(names, "a5,a4,a2");
	list_names("priority in (high,critical)", -1, 50, 0, names, sizeof(names), &next);
	ck_assert_str_eq(names, "a4,a1");
	list_names("priority notin (low)", -1, 50, 0, names, sizeof(names), &next);
	ck_assert_str_eq(names, "a5,a4,a1");
	list_names("team,!experimental", -1, 50, 0, names, sizeof(names), &next);
	ck_assert_str_eq(names, "a4,a2,a1");
	list_names("gen>5", -1, 50, 0, names, sizeof(names), &next);
	ck_assert_str_eq(names, "a4");
	list_names("gen<5", -1, 50, 0, names, sizeof(names), &next);
	ck_assert_str_eq(names, "a1");
	list_names(NULL, STORE_DISPATCHING, 50, 0, names, sizeof(names), &next);
	ck_assert_str_eq(names, "a2");
	list_names("team=search", STORE_QUEUED, 50, 0, names, sizeof(names), &next);
	ck_assert_str_eq(names, "a3,a1");
	/* The label index follows the job's state changes. */
	list_names("team=ads", STORE_DISPATCHING, 50, 0, names, sizeof(names), &next);
	ck_assert_str_eq(names, "a2");
	list_names("team=ads", STORE_QUEUED, 50, 0, names, sizeof(names), &next);
	ck_assert_str_eq(names, "");
	list_names("team=search,priority=low,!experimental", -1, 50, 0, names, sizeof(names), &next);
	ck_assert_str_eq(names, "");
	list_names("priority=low,team in (ads,ml)", -1, 50, 0, names, sizeof(names), &next);
	ck_assert_str_eq(names, "a2");

	/* Pages of two, following the cursor to the end. */
	list_names(NULL, -1, 2, 0, names, sizeof(names), &next);
	ck_assert_str_eq(names, "a5,a4");
	ck_assert_int_gt(next, 0);
	list_names(NULL, -1, 2, next, names, sizeof(names), &next);
	ck_assert_str_eq(names, "a3,a2");
	ck_assert_int_gt(next, 0);
	list_names(NULL, -1, 2, next, names, sizeof(names), &next);
	ck_assert_str_eq(names, "a1");
	ck_assert_int_eq(next, 0);
}
END_TEST

START_TEST(test_persists_across_reopen)
{
	struct store_op op;
	struct store_job job;
	char err[GW_ERRLEN], id[STORE_ID_LEN];

	ck_assert_int_eq(submit("keep", "{\"team\":\"x\"}", "k", 9, &op), GW_OK);
	snprintf(id, sizeof(id), "%s", op.job.id);
	store_job_release(&op.job);
	store_close(st);
	open_store();
	ck_assert_int_eq(store_job_get(st, id, &job, err), GW_OK);
	ck_assert_str_eq(job.name, "keep");
	store_job_release(&job);
	/* The idempotency key survives too. */
	ck_assert_int_eq(submit("keep", "{\"team\":\"x\"}", "k", 9, &op), GW_OK);
	ck_assert(op.unchanged);
	ck_assert_str_eq(op.job.id, id);
	store_job_release(&op.job);
}
END_TEST

START_TEST(test_refuses_newer_schema)
{
	struct store_options o = {.path = dbpath, .synchronous_full = true, .postgres_dsn = *pg_dsn ? pg_dsn : NULL};
	struct store *s2;
	char err[GW_ERRLEN];

	store_close(st);
	st = NULL;
	exec_outside(*pg_dsn ? "UPDATE schema_version SET version = 999" : "PRAGMA user_version = 999");
	ck_assert_int_eq(store_open(&o, &s2, err), GW_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "newer than this build"));
}
END_TEST

#define THREADS 16
#define PER_THREAD 50

static void *submit_many(void *arg)
{
	char **ids = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		struct store_op op;

		if (submit("c", "{\"team\":\"t\"}", NULL, 1, &op) == GW_OK)
			ids[i] = strdup(op.job.id);
		store_job_release(&op.job);
	}
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

START_TEST(test_concurrent_submits_group_commit)
{
	pthread_t th[THREADS];
	char *ids[THREADS * PER_THREAD] = {0};
	struct gw_selector *sel;
	struct store_list_query q = {.state = -1, .limit = 1000};
	struct store_job *jobs;
	size_t n;
	int64_t next;
	char err[GW_ERRLEN];

	for (int t = 0; t < THREADS; t++)
		pthread_create(&th[t], NULL, submit_many, &ids[t * PER_THREAD]);
	for (int t = 0; t < THREADS; t++)
		pthread_join(th[t], NULL);
	for (int i = 0; i < THREADS * PER_THREAD; i++)
		ck_assert_ptr_nonnull(ids[i]);
	qsort(ids, THREADS * PER_THREAD, sizeof(ids[0]), cmp_str);
	for (int i = 1; i < THREADS * PER_THREAD; i++)
		ck_assert_str_ne(ids[i - 1], ids[i]);
	ck_assert_int_eq(gw_selector_parse("team=t", &sel, err), GW_OK);
	q.selector = sel;
	ck_assert_int_eq(store_job_list(st, &q, &jobs, &n, &next, err), GW_OK);
	ck_assert_uint_eq(n, THREADS * PER_THREAD);
	store_jobs_free(jobs, n);
	gw_selector_free(sel);
	for (int i = 0; i < THREADS * PER_THREAD; i++)
		free(ids[i]);
}
END_TEST

struct waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int left;
};

static void op_done(struct store_op *op, void *arg)
{
	struct waiter *w = arg;

	(void)op;
	pthread_mutex_lock(&w->lock);
	w->left--;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Creating token tok1 (the op's strings are borrowed). */
static void token_op(struct store_op *op)
{
	static char owner[] = "o", teams[] = "[]", role[] = "viewer";

	op->kind = STORE_OP_TOKEN_CREATE;
	snprintf(op->token.id, sizeof(op->token.id), "tok1");
	op->token.owner = owner;
	op->token.teams_json = teams;
	op->token.role = role;
}

/* An op that fails in SQL (a token id taken) fails alone: the other
 * writes queued with it, in the same group commit, are made. */
START_TEST(test_failed_op_spares_its_batch)
{
	struct waiter w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
	struct store_op ops[9];
	char err[GW_ERRLEN];

	memset(ops, 0, sizeof(ops));
	token_op(&ops[0]);
	ck_assert_int_eq(store_execute(st, &ops[0]), GW_OK);
	memset(ops, 0, sizeof(ops));
	w.left = 9;
	for (int i = 0; i < 9; i++) {
		ops[i].done = op_done;
		ops[i].arg = &w;
		if (i == 4) { /* the same id again, amid submissions */
			token_op(&ops[i]);
		} else {
			ops[i].kind = STORE_OP_SUBMIT;
			ops[i].submit.name = "batch";
			ops[i].submit.user = "alice";
			ops[i].submit.labels_json = "{\"team\":\"b\"}";
			ops[i].submit.spec_json = "{}";
		}
	}
	for (int i = 0; i < 9; i++)
		ck_assert_int_eq(store_enqueue(st, &ops[i]), GW_OK);
	pthread_mutex_lock(&w.lock);
	while (w.left > 0)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	for (int i = 0; i < 9; i++) {
		struct store_job job;

		if (i == 4) {
			ck_assert_int_eq(ops[i].rc, GW_ECONFLICT);
			continue;
		}
		ck_assert_msg(ops[i].rc == GW_OK, "op %d: %s", i, ops[i].err);
		ck_assert_int_eq(store_job_get(st, ops[i].job.id, &job, err), GW_OK);
		ck_assert_str_eq(job.name, "batch");
		store_job_release(&job);
		store_job_release(&ops[i].job);
	}
}
END_TEST

/* PostgreSQL: the store's sessions ended by the server (a restart, a
 * proxy's idle timeout) are opened again at their next use, and no write
 * or read fails for it. */
START_TEST(test_lost_sessions_are_opened_again)
{
	struct store_op op;
	struct store_job job;
	char err[GW_ERRLEN];
	PGconn *c;
	PGresult *res;

	ck_assert_int_eq(submit("before", "{\"team\":\"x\"}", NULL, 1, &op), GW_OK);
	ck_assert_int_eq(store_job_get(st, op.job.id, &job, err), GW_OK); /* a reader session too */
	store_job_release(&job);
	store_job_release(&op.job);
	c = PQconnectdb(pg_dsn);
	res = PQexec(c, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
			" WHERE datname = current_database() AND pid <> pg_backend_pid()");
	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	ck_assert_int_ge(strtol(PQgetvalue(res, 0, 0), NULL, 10), 2);
	PQclear(res);
	PQfinish(c);
	ck_assert_msg(submit("after", "{\"team\":\"x\"}", NULL, 1, &op) == GW_OK, "%s", op.err);
	ck_assert_msg(store_job_get(st, op.job.id, &job, err) == GW_OK, "%s", err);
	ck_assert_str_eq(job.name, "after");
	store_job_release(&job);
	store_job_release(&op.job);
}
END_TEST

Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("sqlite"), *pg = tcase_create("postgres");

	tcase_add_unchecked_fixture(pg, tu_pg_suite_setup, tu_pg_suite_teardown);
	for (int i = 0; i < 2; i++) {
		TCase *c = i ? pg : tc;

		tcase_add_checked_fixture(c, setup, teardown);
		tcase_set_timeout(c, 30);
		tcase_add_test(c, test_submit_and_get);
		tcase_add_test(c, test_idempotency);
		tcase_add_test(c, test_state_machine_table);
		tcase_add_test(c, test_transitions_write_events);
		tcase_add_test(c, test_cancel_semantics);
		tcase_add_test(c, test_state_counts_follow_every_change);
		tcase_add_test(c, test_list_filters_and_pages);
		tcase_add_test(c, test_persists_across_reopen);
		tcase_add_test(c, test_refuses_newer_schema);
		tcase_add_test(c, test_concurrent_submits_group_commit);
		tcase_add_test(c, test_failed_op_spares_its_batch);
	}
	tcase_add_test(pg, test_lost_sessions_are_opened_again);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, pg);
	return s;
}
