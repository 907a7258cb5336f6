/* Job reads: one job, its events, lists by selector and cursor, the
 * queue in dispatch order, and the loops' queries (jobs to clean, in a
 * state, running past a time), each on a pooled reader. */
#include "store/store_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/labels.h"
#include "common/timeutil.h"

enum gw_err store_job_get(struct store *s, const char *id,
			  struct store_job *out, char *err)
{
	struct store_conn *c = store_reader_get(s, err);
	enum gw_err rc;

	if (!c)
		return GW_EIO;
	rc = store_load_job(c, STMT_JOB_BY_ID, id, 0, out, err);
	store_reader_put(s, c);
	return rc;
}

enum gw_err store_job_events(struct store *s, const char *id,
			     struct store_event **items, size_t *n, char *err)
{
	struct store_conn *c = store_reader_get(s, err);
	struct store_event *evs = NULL;
	size_t count = 0, cap = 0;
	struct db_stmt *st;
	enum gw_err rc = GW_OK;
	int src;

	*items = NULL;
	*n = 0;
	if (!c)
		return GW_EIO;
	st = store_conn_stmt(c, STMT_JOB_EVENTS, err);
	if (!st) {
		rc = GW_EIO;
		goto out;
	}
	db_bind_text(st, 1, id);
	while ((src = db_step(st)) == DB_ROW) {
		struct store_event *e;
		const char *prev = db_col_text(st, 3);
		bool oom = false;

		if (count == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct store_event *p = realloc(evs, ncap * sizeof(*p));

			if (!p) {
				rc = GW_ENOMEM;
				goto out;
			}
			evs = p;
			cap = ncap;
		}
		e = &evs[count++];
		e->seq = db_col_int64(st, 0);
		e->time_ms = db_col_int64(st, 1);
		e->state = (enum store_state)store_state_parse(
			db_col_text(st, 2));
		e->previous = prev ? store_state_parse(prev) : -1;
		e->reason = store_column_text(st, 4, &oom);
		e->message = store_column_text(st, 5, &oom);
		if (oom) {
			rc = GW_ENOMEM;
			goto out;
		}
	}
	if (src != DB_DONE) {
		rc = db_error(c->db, err);
	} else if (count == 0) {
		gw_seterr(err, "job %s not found", id);
		rc = GW_ENOTFOUND;
	}
out:
	if (st)
		db_reset(st);
	store_reader_put(s, c);
	if (rc) {
		store_events_free(evs, count);
		return rc;
	}
	*items = evs;
	*n = count;
	return GW_OK;
}

/* Appends to the dynamic SQL; false when the text would not fit. */
static bool sql_add(char *sql, size_t size, size_t *len, const char *text)
{
	size_t n = strlen(text);

	if (*len + n >= size)
		return false;
	memcpy(sql + *len, text, n + 1);
	*len += n;
	return true;
}

/* A label requirement as a subquery probing job_labels' primary key once
 * per candidate row. */
static bool sql_add_requirement(char *sql, size_t size, size_t *len,
				const struct gw_sel_req *r, bool pg)
{
	static const char probe[] =
		"EXISTS (SELECT 1 FROM job_labels l WHERE l.job_seq = jobs.seq AND l.key = ?";
	bool negate = r->op == GW_SEL_NEQ || r->op == GW_SEL_NOTIN ||
		      r->op == GW_SEL_NOT_EXISTS;
	bool ok = sql_add(sql, size, len, negate ? " AND NOT " : " AND ") &&
		  sql_add(sql, size, len, probe);

	switch (r->op) {
	case GW_SEL_EXISTS:
	case GW_SEL_NOT_EXISTS:
		break;
	case GW_SEL_GT:
	case GW_SEL_LT:
		/* Only values that are integers compare (PostgreSQL's cast
		 * would fail on the others, SQLite's give 0). */
		ok = ok && sql_add(sql, size, len,
				   pg ? " AND CASE WHEN l.value ~ '^-?[0-9]{1,18}$' THEN CAST(l.value AS BIGINT) END"
				      : " AND l.value = CAST(CAST(l.value AS INTEGER) AS TEXT)"
					" AND CAST(l.value AS INTEGER)") &&
		     sql_add(sql, size, len, r->op == GW_SEL_GT ? " > ?" : " < ?");
		break;
	default:
		ok = ok && sql_add(sql, size, len, " AND l.value IN (");
		for (size_t i = 0; ok && i < r->nvalues; i++)
			ok = sql_add(sql, size, len, i ? ", ?" : "?");
		ok = ok && sql_add(sql, size, len, ")");
		break;
	}
	return ok && sql_add(sql, size, len, ")");
}

static int bind_requirement(struct db_stmt *st, int idx,
			    const struct gw_sel_req *r)
{
	db_bind_text(st, idx++, r->key);
	switch (r->op) {
	case GW_SEL_EXISTS:
	case GW_SEL_NOT_EXISTS:
		break;
	case GW_SEL_GT:
	case GW_SEL_LT:
		db_bind_int64(st, idx++, strtoll(r->values[0], NULL, 10));
		break;
	default:
		for (size_t i = 0; i < r->nvalues; i++)
			db_bind_text(st, idx++, r->values[i]);
		break;
	}
	return idx;
}

/* The first key=value (or key in (value)) requirement, if any: the query
 * walks that label's index newest first (with the state, when one is asked
 * for, in the same index), so a page costs what it returns, even on
 * millions of jobs. */
static const struct gw_sel_req *driving_requirement(const struct gw_selector *sel)
{
	/* "team in (x)", a one-team token's scope, is "team=x". */
	for (size_t i = 0; sel && i < sel->n; i++)
		if (sel->reqs[i].op == GW_SEL_EQ || (sel->reqs[i].op == GW_SEL_IN && sel->reqs[i].nvalues == 1))
			return &sel->reqs[i];
	return NULL;
}

/* The list's query; counting, the number of rows it would give in all. */
static bool build_list_sql(const struct store_list_query *q, const struct gw_sel_req *drive,
			   bool counting, bool pg, char *sql, size_t size)
{
	const char *columns = counting ? "SELECT count(*)" : "SELECT " STORE_JOB_COLUMNS;
	size_t len = 0;
	bool ok;

	if (drive) {
		ok = sql_add(sql, size, &len, columns) &&
		     sql_add(sql, size, &len,
			     " FROM job_labels d"
			     " JOIN jobs ON jobs.seq = d.job_seq"
			     " WHERE d.key = ? AND d.value = ?");
		if (q->state >= 0)
			ok = ok && sql_add(sql, size, &len, " AND d.state = ?");
		if (q->before_seq)
			ok = ok && sql_add(sql, size, &len, " AND d.job_seq < ?");
		if (q->from_seq)
			ok = ok && sql_add(sql, size, &len, " AND d.job_seq >= ?");
	} else {
		ok = sql_add(sql, size, &len, columns) &&
		     sql_add(sql, size, &len, " FROM jobs WHERE 1 = 1");
		if (q->changes)
			ok = ok && sql_add(sql, size, &len, " AND jobs.rv > ?");
		if (q->state >= 0)
			ok = ok && sql_add(sql, size, &len, " AND jobs.state = ?");
		if (q->before_seq)
			ok = ok && sql_add(sql, size, &len, " AND jobs.seq < ?");
		if (q->from_seq)
			ok = ok && sql_add(sql, size, &len, " AND jobs.seq >= ?");
	}
	if (q->user)
		ok = ok && sql_add(sql, size, &len, " AND jobs.user = ?");
	if (q->created_after_ms)
		ok = ok && sql_add(sql, size, &len, " AND jobs.created_ms >= ?");
	if (q->created_before_ms)
		ok = ok && sql_add(sql, size, &len, " AND jobs.created_ms < ?");
	for (size_t i = 0; q->selector && i < q->selector->n; i++)
		if (&q->selector->reqs[i] != drive)
			ok = ok && sql_add_requirement(sql, size, &len, &q->selector->reqs[i], pg);
	if (counting)
		return ok;
	if (q->oldest_first)
		return ok && sql_add(sql, size, &len,
				     /* By creation, through its index: the rows skipped
				      * are read from the index alone. */
				     drive ? " ORDER BY d.job_seq LIMIT ? OFFSET ?"
					   : " ORDER BY jobs.created_ms, jobs.seq LIMIT ? OFFSET ?");
	return ok && sql_add(sql, size, &len,
			     drive       ? " ORDER BY d.job_seq DESC LIMIT ?"
			     : q->changes ? " ORDER BY jobs.rv LIMIT ?"
					  : " ORDER BY jobs.seq DESC LIMIT ?");
}

static void bind_list_sql(struct db_stmt *st, const struct store_list_query *q,
			  const struct gw_sel_req *drive, bool counting)
{
	int idx = 1;

	if (drive) {
		db_bind_text(st, idx++, drive->key);
		db_bind_text(st, idx++, drive->values[0]);
	}
	if (!drive && q->changes)
		db_bind_int64(st, idx++, q->after_rv);
	if (q->state >= 0)
		db_bind_text(st, idx++, store_state_name(q->state));
	if (q->before_seq)
		db_bind_int64(st, idx++, q->before_seq);
	if (q->from_seq)
		db_bind_int64(st, idx++, q->from_seq);
	if (q->user)
		db_bind_text(st, idx++, q->user);
	if (q->created_after_ms)
		db_bind_int64(st, idx++, q->created_after_ms);
	if (q->created_before_ms)
		db_bind_int64(st, idx++, q->created_before_ms);
	for (size_t i = 0; q->selector && i < q->selector->n; i++)
		if (&q->selector->reqs[i] != drive)
			idx = bind_requirement(st, idx, &q->selector->reqs[i]);
	if (counting)
		return;
	/* One row more than asked tells whether another page exists. */
	db_bind_int64(st, idx++, (int64_t)q->limit + 1);
	if (q->oldest_first)
		db_bind_int64(st, idx, (int64_t)q->offset);
}

/* Steps st for up to limit rows of the job column list; *more tells
 * whether a further row exists (read but not kept). */
static enum gw_err collect_jobs(struct store_conn *c, struct db_stmt *st, size_t limit,
				struct store_job **items, size_t *n, bool *more,
				char *err)
{
	/* Grown as rows come: a limit is a bound, often far above the rows
	 * there are (an array of it, per watcher thread's malloc arena, was
	 * 25 MiB resident for every cluster). */
	size_t count = 0, cap = limit < 64 ? (limit ? limit : 1) : 64;
	struct store_job *jobs = calloc(cap, sizeof(*jobs));
	enum gw_err rc = GW_OK;
	int src;

	*items = NULL;
	*n = 0;
	*more = false;
	if (!jobs)
		return GW_ENOMEM;
	while ((src = db_step(st)) == DB_ROW) {
		if (count == limit) {
			*more = true;
			break;
		}
		if (count == cap) {
			struct store_job *grown = realloc(jobs, (cap *= 2) * sizeof(*jobs));

			if (!grown) {
				rc = GW_ENOMEM;
				break;
			}
			jobs = grown;
		}
		memset(&jobs[count], 0, sizeof(*jobs));
		if ((rc = store_row_to_job(st, &jobs[count])))
			break;
		count++;
	}
	if (rc == GW_OK && src != DB_ROW && src != DB_DONE)
		rc = db_error(c->db, err);
	if (rc) {
		store_jobs_free(jobs, count);
		return rc;
	}
	*items = jobs;
	*n = count;
	return GW_OK;
}

enum gw_err store_job_list(struct store *s, const struct store_list_query *q,
			   struct store_job **items, size_t *n,
			   int64_t *next_seq, char *err)
{
	/* Changes are read in rv order, through the rv index. */
	const struct gw_sel_req *drive = q->changes ? NULL : driving_requirement(q->selector);
	char sql[8192];
	struct store_conn *c = NULL;
	struct db_stmt *st = NULL;
	enum gw_err rc = GW_OK;
	bool more = false;

	*items = NULL;
	*n = 0;
	*next_seq = 0;
	if (q->limit == 0) {
		gw_seterr(err, "limit must be at least 1");
		return GW_EINVAL;
	}
	if (!build_list_sql(q, drive, false, store_driver(s) == DB_POSTGRES, sql, sizeof(sql))) {
		gw_seterr(err, "query too complex");
		return GW_EINVAL;
	}
	c = store_reader_get(s, err);
	if (!c)
		return GW_EIO;
	if (!(st = db_prepare(c->db, sql, -1, err))) {
		rc = GW_EIO;
		goto out;
	}
	bind_list_sql(st, q, drive, false);
	if ((rc = collect_jobs(c, st, q->limit, items, n, &more, err)) == GW_OK && more && !q->oldest_first)
		*next_seq = (*items)[*n - 1].seq;
out:
	db_finalize(st);
	store_reader_put(s, c);
	return rc;
}

enum gw_err store_job_count(struct store *s, const struct store_list_query *q, int64_t *total, char *err)
{
	const struct gw_sel_req *drive = driving_requirement(q->selector);
	char sql[8192];
	struct store_conn *c;
	struct db_stmt *st = NULL;
	enum gw_err rc = GW_OK;

	*total = 0;
	if (q->changes || q->before_seq || !build_list_sql(q, drive, true, store_driver(s) == DB_POSTGRES, sql, sizeof(sql))) {
		gw_seterr(err, "not a countable query");
		return GW_EINVAL;
	}
	if (!(c = store_reader_get(s, err)))
		return GW_EIO;
	if (!(st = db_prepare(c->db, sql, -1, err))) {
		rc = GW_EIO;
	} else {
		bind_list_sql(st, q, drive, true);
		if (db_step(st) == DB_ROW)
			*total = db_col_int64(st, 0);
		else
			rc = db_error(c->db, err);
	}
	db_finalize(st);
	store_reader_put(s, c);
	return rc;
}

enum gw_err store_first_seq_since(struct store *s, int64_t since_ms, int64_t *seq, char *err)
{
	struct store_conn *c = store_reader_get(s, err);
	struct db_stmt *st;
	enum gw_err rc = GW_OK;
	int src;

	*seq = INT64_MAX;
	if (!c)
		return GW_EIO;
	if (!(st = store_conn_stmt(c, STMT_FIRST_SEQ_SINCE, err))) {
		store_reader_put(s, c);
		return GW_EIO;
	}
	db_bind_int64(st, 1, since_ms);
	if ((src = db_step(st)) == DB_ROW)
		*seq = db_col_int64(st, 0);
	else if (src != DB_DONE)
		rc = db_error(c->db, err);
	db_reset(st);
	store_reader_put(s, c);
	return rc;
}

enum gw_err store_job_get_seq(struct store *s, int64_t seq, struct store_job *out, char *err)
{
	struct store_conn *c = store_reader_get(s, err);
	enum gw_err rc;

	if (!c)
		return GW_EIO;
	rc = store_load_job(c, STMT_JOB_BY_SEQ, NULL, seq, out, err);
	store_reader_put(s, c);
	return rc;
}

/* Runs one of the job-row queries (a statement kept by the reader), with
 * the parameters given bound in order (text1, text2, ints), then limit. */
static enum gw_err query_jobs(struct store *s, enum store_stmt which, const char *text1,
			      const char *text2, const int64_t *ints, size_t nints, size_t limit,
			      struct store_job **items, size_t *n, char *err)
{
	struct store_conn *c = store_reader_get(s, err);
	struct db_stmt *st;
	enum gw_err rc = GW_EIO;
	bool more;
	int idx = 1;

	*items = NULL;
	*n = 0;
	if (!c)
		return GW_EIO;
	if ((st = store_conn_stmt(c, which, err))) {
		if (text1)
			db_bind_text(st, idx++, text1);
		if (text2)
			db_bind_text(st, idx++, text2);
		for (size_t i = 0; i < nints; i++)
			db_bind_int64(st, idx++, ints[i]);
		db_bind_int64(st, idx, (int64_t)limit);
		rc = collect_jobs(c, st, limit, items, n, &more, err);
		db_reset(st);
	}
	store_reader_put(s, c);
	return rc;
}

/* Appends the rows of st to the queue's jobs. */
static enum gw_err read_queued(struct store_conn *c, struct db_stmt *st, struct store_queue *q,
			       char *err)
{
	size_t cap = q->njobs;
	int src;

	while ((src = db_step(st)) == DB_ROW) {
		struct store_queued *e;
		const char *id = db_col_text(st, 1);

		if (q->njobs == cap) {
			struct store_queued *more = realloc(q->jobs, (cap = cap ? cap * 2 : 64) * sizeof(*more));

			if (!more)
				return GW_ENOMEM;
			q->jobs = more;
		}
		e = &q->jobs[q->njobs];
		memset(e, 0, sizeof(*e));
		e->seq = db_col_int64(st, 0);
		snprintf(e->id, sizeof(e->id), "%s", id ? id : "");
		e->state = (enum store_state)store_state_parse(db_col_text(st, 2));
		e->team = strdup(db_col_text(st, 3));
		e->pool = strdup(db_col_text(st, 4));
		e->rank = db_col_int64(st, 5);
		e->created_ms = db_col_int64(st, 6);
		e->demand.cores_milli = db_col_int64(st, 7);
		e->demand.memory_mib = db_col_int64(st, 8);
		e->demand.gpus = db_col_int64(st, 9);
		e->priority = db_col_int64(st, 10);
		e->name = strdup(db_col_text(st, 11));
		q->njobs++;
		if (!e->team || !e->pool || !e->name)
			return GW_ENOMEM;
	}
	return src == DB_DONE ? GW_OK : db_error(c->db, err);
}

static enum gw_err read_usage(struct store_conn *c, struct db_stmt *st, struct store_queue *q,
			      char *err)
{
	int src;

	while ((src = db_step(st)) == DB_ROW) {
		struct store_usage *more = realloc(q->usage, (q->nusage + 1) * sizeof(*more)), *u;

		if (!more)
			return GW_ENOMEM;
		q->usage = more;
		u = &q->usage[q->nusage++];
		u->pool = strdup(db_col_text(st, 0));
		u->team = strdup(db_col_text(st, 1));
		u->running = (unsigned)db_col_int64(st, 2);
		u->used.cores_milli = db_col_int64(st, 3);
		u->used.memory_mib = db_col_int64(st, 4);
		u->used.gpus = db_col_int64(st, 5);
		if (!u->pool || !u->team)
			return GW_ENOMEM;
	}
	return src == DB_DONE ? GW_OK : db_error(c->db, err);
}

enum gw_err store_queue_read(struct store *s, int64_t now_ms, int64_t aging_ms, size_t per_team,
			     struct store_queue *q, char *err)
{
	struct store_conn *c = store_reader_get(s, err);
	long long aging = aging_ms > 0 ? aging_ms : INT64_MAX;
	char sql[2048];
	struct db_stmt *st = NULL;
	enum gw_err rc = GW_OK;

	memset(q, 0, sizeof(*q));
	if (!c)
		return GW_EIO;
	/* One read transaction: the queue and the usage agree, so a job claimed
	 * meanwhile is counted once, in one or the other. */
	if ((rc = db_exec(c->db, store_sql(c, "BEGIN", "BEGIN ISOLATION LEVEL REPEATABLE READ"), err)))
		goto out;
	/* The first per_team jobs of each team and priority level, by index
	 * seeks alone: teams are found by skipping from one to the next
	 * (min(team) > the last), so a deep queue costs no more than a short
	 * one. Aging is integer division of the wait by aging_ms (the text is
	 * built, the values are numbers); the caller orders by it. */
	snprintf(sql, sizeof(sql),
		 "WITH RECURSIVE"
		 " t(team) AS (SELECT min(team) FROM jobs WHERE state = 'QUEUED'"
		 "  UNION ALL SELECT (SELECT min(team) FROM jobs WHERE state = 'QUEUED' AND team > t.team)"
		 "  FROM t WHERE t.team IS NOT NULL),"
		 " p(level) AS (SELECT 0 UNION ALL SELECT level + 1 FROM p WHERE level < %d)"
		 " SELECT seq, id, state, team, pool, priority, created_ms, cores_milli, memory_mib, gpus,"
		 " priority, name FROM jobs WHERE state = 'DISPATCHING' AND lease_until_ms < ?1"
		 " UNION ALL"
		 " SELECT j.seq, j.id, j.state, j.team, j.pool, j.priority - (?1 - j.created_ms) / %lld,"
		 " j.created_ms, j.cores_milli, j.memory_mib, j.gpus, j.priority, j.name"
		 " FROM t CROSS JOIN p %s",
		 STORE_PRIORITY_LEVELS - 1, aging,
		 /* PostgreSQL reads each group's first rows as a lateral subquery;
		  * SQLite, which has none, by rowid from an IN list. */
		 store_sql(c,
			   "JOIN jobs j ON j.seq IN (SELECT seq FROM jobs WHERE state = 'QUEUED'"
			   " AND team = t.team AND priority = p.level AND not_before_ms <= ?1 ORDER BY seq LIMIT ?2)",
			   "CROSS JOIN LATERAL (SELECT * FROM jobs WHERE state = 'QUEUED'"
			   " AND team = t.team AND priority = p.level AND not_before_ms <= ?1 ORDER BY seq LIMIT ?2) j"));
	if (!(st = db_prepare(c->db, sql, -1, err))) {
		rc = GW_EIO;
		goto done;
	}
	db_bind_int64(st, 1, now_ms);
	db_bind_int64(st, 2, (int64_t)per_team);
	if ((rc = read_queued(c, st, q, err)))
		goto done;
	db_finalize(st);
	st = db_prepare(c->db,
			store_sql(c,
				  "SELECT pool, team, count(*), " STORE_SUMS
				  " FROM jobs INDEXED BY jobs_active_usage WHERE " STORE_ACTIVE_CONDITION
				  " GROUP BY pool, team",
				  "SELECT pool, team, count(*), " STORE_SUMS " FROM jobs WHERE " STORE_ACTIVE_CONDITION
				  " GROUP BY pool, team"),
			-1, err);
	rc = st ? read_usage(c, st, q, err) : GW_EIO;
done:
	db_finalize(st);
	st = NULL;
	db_exec(c->db, "COMMIT", NULL);
out:
	store_reader_put(s, c);
	if (rc)
		store_queue_release(q);
	return rc;
}

void store_queue_release(struct store_queue *q)
{
	for (size_t i = 0; i < q->njobs; i++) {
		free(q->jobs[i].name);
		free(q->jobs[i].team);
		free(q->jobs[i].pool);
	}
	for (size_t i = 0; i < q->nusage; i++) {
		free(q->usage[i].pool);
		free(q->usage[i].team);
	}
	free(q->jobs);
	free(q->usage);
	memset(q, 0, sizeof(*q));
}

enum gw_err store_jobs_to_clean(struct store *s, int64_t now_ms, int default_ttl_s, size_t limit,
				struct store_job **items, size_t *n, char *err)
{
	const int64_t ints[] = {now_ms, default_ttl_s};

	return query_jobs(s, STMT_JOBS_TO_CLEAN, NULL, NULL, ints, 2, limit, items, n, err);
}

enum gw_err store_jobs_in_state(struct store *s, enum store_state state,
				const char *cluster, size_t limit,
				struct store_job **items, size_t *n, char *err)
{
	return query_jobs(s, cluster ? STMT_JOBS_IN_STATE_ON : STMT_JOBS_IN_STATE, store_state_name(state), cluster,
			  NULL, 0, limit, items, n, err);
}

enum gw_err store_jobs_running_before(struct store *s, int64_t before_ms, const char *label, size_t limit,
				      struct store_job **items, size_t *n, char *err)
{
	if (label)
		return query_jobs(s, STMT_JOBS_LABELLED_RUNNING, label, NULL, NULL, 0, limit, items, n, err);
	return query_jobs(s, STMT_JOBS_RUNNING_BEFORE, NULL, NULL, &before_ms, 1, limit, items, n, err);
}

enum gw_err store_cluster_settings(struct store *s, json_t **out, char *err)
{
	struct store_conn *c;
	struct db_stmt *st = store_read_begin(s, "SELECT name, rotation, weight FROM cluster_settings", &c, err);
	int src;

	*out = json_object();
	if (!st)
		return GW_EIO;
	while ((src = db_step(st)) == DB_ROW)
		json_object_set_new(*out, db_col_text(st, 0),
				    json_pack("{s:s, s:i}", "rotation", db_col_text(st, 1),
					      "weight", (int)db_col_int64(st, 2)));
	return store_read_end(s, c, st, src, err);
}

enum gw_err store_cluster_usage(struct store *s, int64_t since_ms, json_t **out, char *err)
{
	struct store_conn *c;
	struct db_stmt *st = store_read_begin(s, "SELECT cluster, usage FROM cluster_usage WHERE updated_ms >= ?1", &c, err);
	int src;

	*out = json_object();
	if (!st)
		return GW_EIO;
	db_bind_int64(st, 1, since_ms);
	while ((src = db_step(st)) == DB_ROW) {
		json_t *usage = json_loads(db_col_text(st, 1), 0, NULL);

		if (json_is_object(usage))
			json_object_set_new(*out, db_col_text(st, 0), usage);
		else
			json_decref(usage);
	}
	return store_read_end(s, c, st, src, err);
}

enum gw_err store_replicas_alive(struct store *s, int64_t now_ms, long *count, char *err)
{
	struct store_conn *c;
	struct db_stmt *st = store_read_begin(s, "SELECT count(*) FROM gateway_replicas WHERE until_ms > ?1", &c, err);
	int src;

	*count = 0;
	if (!st)
		return GW_EIO;
	db_bind_int64(st, 1, now_ms);
	if ((src = db_step(st)) == DB_ROW)
		*count = (long)db_col_int64(st, 0);
	return store_read_end(s, c, st, src, err);
}

enum gw_err store_count_active(struct store *s, const char *cluster, long *count, char *err)
{
	struct store_conn *c;
	struct db_stmt *st = store_read_begin(s, "SELECT count(*) FROM jobs WHERE cluster = ?1 AND state IN "
					       STORE_ACTIVE_STATES, &c, err);
	int src;

	*count = 0;
	if (!st)
		return GW_EIO;
	db_bind_text(st, 1, cluster);
	if ((src = db_step(st)) == DB_ROW)
		*count = db_col_int64(st, 0);
	return store_read_end(s, c, st, src, err);
}

enum gw_err store_policy_overlay(struct store *s, json_t **out, char *err)
{
	struct store_conn *c;
	struct db_stmt *st = store_read_begin(s, "SELECT doc FROM policy_overlay WHERE id = 1", &c, err);
	enum gw_err rc;
	int src;

	*out = NULL;
	if (!st)
		return GW_EIO;
	if ((src = db_step(st)) == DB_ROW)
		*out = json_loads(db_col_text(st, 0), 0, NULL);
	rc = store_read_end(s, c, st, src, err);
	if (!*out)
		*out = json_object();
	return rc;
}

enum gw_err store_state_counts(struct store *s, json_t **counts, json_t **queued, char *err)
{
	struct store_conn *c;
	struct db_stmt *st;
	int src;

	*counts = json_object();
	*queued = json_array();
	for (int i = 0; i < STORE_NSTATES; i++)
		json_object_set_new(*counts, store_state_name(i), json_integer(0));
	/* Kept by triggers (migration 0011): a few rows, not the jobs. */
	if (!(st = store_read_begin(s, "SELECT state, pool, team, n FROM job_counts WHERE n > 0", &c, err)))
		return GW_EIO;
	while ((src = db_step(st)) == DB_ROW) {
		const char *state = db_col_text(st, 0);
		json_int_t n = (json_int_t)db_col_int64(st, 3);

		json_object_set_new(*counts, state, json_integer(json_integer_value(json_object_get(*counts, state)) + n));
		if (!strcmp(state, "QUEUED"))
			json_array_append_new(*queued, json_pack("{s:s, s:s, s:I}", "pool", db_col_text(st, 1),
								 "team", db_col_text(st, 2), "count", n));
	}
	return store_read_end(s, c, st, src, err);
}
