/* Job rows: the state machine, the write operations the writer thread
 * applies, and the read queries. */
#include "store/store_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/timeutil.h"

static const char *const state_names[STORE_NSTATES] = {
	[STORE_QUEUED] = "QUEUED",       [STORE_DISPATCHING] = "DISPATCHING",
	[STORE_SUBMITTED] = "SUBMITTED", [STORE_RUNNING] = "RUNNING",
	[STORE_SUCCEEDED] = "SUCCEEDED", [STORE_FAILED] = "FAILED",
	[STORE_CANCELLING] = "CANCELLING", [STORE_CANCELLED] = "CANCELLED",
	[STORE_REJECTED] = "REJECTED",
};

#define BIT(s) (1u << (s))

/* allowed[from] is the set of states a job may move to from `from`. */
static const unsigned allowed[STORE_NSTATES] = {
	[STORE_QUEUED] = BIT(STORE_DISPATCHING) | BIT(STORE_CANCELLED) |
			 BIT(STORE_REJECTED) | BIT(STORE_FAILED),
	/* Back to QUEUED when a dispatch attempt must be retried later. */
	[STORE_DISPATCHING] = BIT(STORE_SUBMITTED) | BIT(STORE_QUEUED) |
			      BIT(STORE_FAILED) | BIT(STORE_REJECTED) |
			      BIT(STORE_CANCELLING),
	/* Back to QUEUED for a new run after a failed one (restartPolicy
	 * OnFailure); only as an op with new_run. */
	[STORE_SUBMITTED] = BIT(STORE_RUNNING) | BIT(STORE_SUCCEEDED) |
			    BIT(STORE_FAILED) | BIT(STORE_CANCELLING) | BIT(STORE_QUEUED),
	[STORE_RUNNING] = BIT(STORE_SUCCEEDED) | BIT(STORE_FAILED) |
			  BIT(STORE_CANCELLING) | BIT(STORE_QUEUED),
	/* A job may finish on its own before the cluster confirms a cancel. */
	[STORE_CANCELLING] = BIT(STORE_CANCELLED) | BIT(STORE_SUCCEEDED) |
			     BIT(STORE_FAILED),
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

bool store_state_terminal(enum store_state st)
{
	return (unsigned)st < STORE_NSTATES && allowed[st] == 0;
}

bool store_transition_allowed(enum store_state from, enum store_state to)
{
	return (unsigned)from < STORE_NSTATES && (unsigned)to < STORE_NSTATES &&
	       (allowed[from] & BIT(to)) != 0;
}

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
static char *column_text(struct db_stmt *st, int col, bool *oom)
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
	job->name = column_text(st, 2, &oom);
	job->user = column_text(st, 3, &oom);
	job->state = (enum store_state)store_state_parse(state ? state : "");
	job->reason = column_text(st, 5, &oom);
	job->message = column_text(st, 6, &oom);
	job->labels_json = column_text(st, 7, &oom);
	job->spec_json = column_text(st, 8, &oom);
	job->created_ms = db_col_int64(st, 9);
	job->updated_ms = db_col_int64(st, 10);
	job->rv = db_col_int64(st, 11);
	job->cluster = column_text(st, 12, &oom);
	job->namespace = column_text(st, 13, &oom);
	job->driver_pod = column_text(st, 14, &oom);
	job->spark_ui = column_text(st, 15, &oom);
	job->lease_owner = column_text(st, 16, &oom);
	job->lease_until_ms = db_col_int64(st, 17);
	job->attempts = db_col_int64(st, 18);
	job->not_before_ms = db_col_int64(st, 19);
	job->placement_json = column_text(st, 20, &oom);
	job->priority = db_col_int64(st, 21);
	job->team = column_text(st, 22, &oom);
	job->pool = column_text(st, 23, &oom);
	job->demand.cores_milli = db_col_int64(st, 24);
	job->demand.memory_mib = db_col_int64(st, 25);
	job->demand.gpus = db_col_int64(st, 26);
	job->run = db_col_int64(st, 27);
	job->ttl_s = db_col_int64(st, 28);
	job->cleaned_ms = db_col_int64(st, 29);
	job->spec_shown_json = column_text(st, 30, &oom);
	job->spark_app_id = column_text(st, 31, &oom);
	if (oom) {
		store_job_release(job);
		return GW_ENOMEM;
	}
	return GW_OK;
}

/* Time-ordered, unguessable id: 'j', 10 base32 digits of the millisecond
 * clock, 10 of randomness. Lower case and starting with a letter, so that
 * Kubernetes object names can derive from it. */
static void new_job_id(int64_t now_ms, char out[STORE_ID_LEN])
{
	static const char digits[] = "0123456789abcdefghjkmnpqrstvwxyz";
	unsigned char rnd[8] = {0};
	uint64_t r, t = (uint64_t)now_ms;

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		abort(); /* no entropy is not a state to carry on from */
	memcpy(&r, rnd, sizeof(r));
	out[0] = 'j';
	for (int i = 10; i >= 1; i--, t >>= 5)
		out[i] = digits[t & 31];
	for (int i = 11; i <= 20; i++, r >>= 5)
		out[i] = digits[r & 31];
	out[21] = '\0';
}

enum gw_err store_step_done(struct store_conn *c, struct db_stmt *st, char *err)
{
	return db_step(st) == DB_DONE ? GW_OK : db_error(c->db, err);
}

/* Steps a statement that returns one number (an INSERT's RETURNING, a
 * sequence's next value) into *v. */
static enum gw_err store_step_returning(struct store_conn *c, struct db_stmt *st, int64_t *v, char *err)
{
	enum gw_err rc = GW_OK;

	*v = 0;
	if (db_step(st) == DB_ROW)
		*v = db_col_int64(st, 0);
	else
		rc = db_error(c->db, err);
	db_reset(st);
	return rc;
}


static enum gw_err load_job(struct store_conn *c, enum store_stmt which,
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

/* Moves the job to `to`, records the event and stamps the new rv. */
static enum gw_err write_state(struct store_conn *c, int64_t job_seq,
			       enum store_state previous, enum store_state to,
			       const char *reason, const char *message,
			       int64_t now, char *err)
{
	struct db_stmt *st = store_conn_stmt(c, STMT_EVENT_INSERT, err);
	int64_t rv;
	enum gw_err rc;

	if (!st)
		return GW_EIO;
	db_bind_int64(st, 1, job_seq);
	db_bind_int64(st, 2, now);
	db_bind_text(st, 3, state_names[to]);
	db_bind_text(st, 4, state_names[previous]);
	db_bind_text(st, 5, reason);
	if (message)
		db_bind_text(st, 6, message);
	if ((rc = store_step_returning(c, st, &rv, err)))
		return rc;

	st = store_conn_stmt(c, STMT_JOB_UPDATE, err);
	if (!st)
		return GW_EIO;
	db_bind_int64(st, 1, job_seq);
	db_bind_text(st, 2, state_names[to]);
	db_bind_text(st, 3, reason);
	if (message)
		db_bind_text(st, 4, message);
	db_bind_int64(st, 5, now);
	db_bind_int64(st, 6, rv);
	if ((rc = store_step_done(c, st, err)))
		return rc;

	st = store_conn_stmt(c, STMT_LABELS_UPDATE, err);
	if (!st)
		return GW_EIO;
	db_bind_int64(st, 1, job_seq);
	db_bind_text(st, 2, state_names[to]);
	return store_step_done(c, st, err);
}

static enum gw_err insert_labels(struct store_conn *c, int64_t job_seq,
				 const char *labels_json, char *err)
{
	json_t *labels = json_loads(labels_json, 0, NULL);
	const char *key;
	json_t *value;
	enum gw_err rc = GW_OK;

	if (!json_is_object(labels)) {
		json_decref(labels);
		gw_seterr(err, "labels are not a JSON object");
		return GW_EINVAL;
	}
	json_object_foreach(labels, key, value) {
		struct db_stmt *st = store_conn_stmt(c, STMT_LABEL_INSERT, err);

		if (!st) {
			rc = GW_EIO;
			break;
		}
		db_bind_int64(st, 1, job_seq);
		db_bind_text(st, 2, key);
		db_bind_text(st, 3, json_string_value(value));
		if ((rc = store_step_done(c, st, err)))
			break;
	}
	json_decref(labels);
	return rc;
}

/* Jobs of one team or pool (the statement's ?1) in the states it counts,
 * and, for the active ones, what they ask for together. */
static enum gw_err usage_of(struct store_conn *c, enum store_stmt which, const char *name,
			    unsigned *count, struct store_demand *used, char *err)
{
	struct db_stmt *st = store_conn_stmt(c, which, err);
	int src;

	*count = 0;
	if (used)
		memset(used, 0, sizeof(*used));
	if (!st)
		return GW_EIO;
	db_bind_text(st, 1, name);
	src = db_step(st);
	if (src == DB_ROW) {
		*count = (unsigned)db_col_int64(st, 0);
		if (used) {
			used->cores_milli = (int64_t)db_col_double(st, 1);
			used->memory_mib = (int64_t)db_col_double(st, 2);
			used->gpus = (int64_t)db_col_double(st, 3);
		}
	}
	db_reset(st);
	return src == DB_ROW ? GW_OK : db_error(c->db, err);
}

bool store_limits_exceeded(const struct store_limits *lim, const char *kind, const char *name,
			   unsigned running, const struct store_demand *used,
			   const struct store_demand *demand, char *why, size_t len)
{
	if (lim->running && running + 1 > lim->running) {
		snprintf(why, len, "QuotaExceeded: %s %s at %u/%u running jobs", kind, name, running,
			 lim->running);
		return true;
	}
	if (lim->cores_milli && used->cores_milli + demand->cores_milli > lim->cores_milli) {
		snprintf(why, len, "QuotaExceeded: %s %s at %g/%g cores, the job asks for %g", kind, name,
			 (double)used->cores_milli / 1000, (double)lim->cores_milli / 1000,
			 (double)demand->cores_milli / 1000);
		return true;
	}
	if (lim->memory_mib && used->memory_mib + demand->memory_mib > lim->memory_mib) {
		snprintf(why, len, "QuotaExceeded: %s %s at %g/%g GiB of memory, the job asks for %g", kind,
			 name, (double)used->memory_mib / 1024, (double)lim->memory_mib / 1024,
			 (double)demand->memory_mib / 1024);
		return true;
	}
	if (lim->gpus && used->gpus + demand->gpus > lim->gpus) {
		snprintf(why, len, "QuotaExceeded: %s %s at %lld/%lld GPUs, the job asks for %lld", kind, name,
			 (long long)used->gpus, (long long)lim->gpus, (long long)demand->gpus);
		return true;
	}
	return false;
}

/* EBUSY when the job does not fit in what the team or pool has left. */
static enum gw_err check_room(struct store_conn *c, enum store_stmt which, const char *kind,
			      const char *name, const struct store_limits *lim,
			      const struct store_demand *demand, char *err)
{
	struct store_demand used;
	unsigned running;
	char why[GW_ERRLEN];
	enum gw_err rc;

	if (!name || !*name || (!lim->running && !lim->cores_milli && !lim->memory_mib && !lim->gpus))
		return GW_OK;
	if ((rc = usage_of(c, which, name, &running, &used, err)))
		return rc;
	if (!store_limits_exceeded(lim, kind, name, running, &used, demand, why, sizeof(why)))
		return GW_OK;
	gw_seterr(err, "%s", why);
	return GW_EBUSY;
}

/* EBUSY when the team's or pool's queue is full. */
static enum gw_err check_queue_room(struct store_conn *c, enum store_stmt which, const char *kind,
				    const char *name, unsigned max_queued, char *err)
{
	unsigned queued;
	enum gw_err rc;

	if (!name || !*name || !max_queued)
		return GW_OK;
	if ((rc = usage_of(c, which, name, &queued, NULL, err)))
		return rc;
	if (queued < max_queued)
		return GW_OK;
	gw_seterr(err, "QueueFull: %s %s has %u jobs queued, the most it may", kind, name, queued);
	return GW_EBUSY;
}

/* Looks up an idempotency key: GW_OK with *job_seq 0 when unused. */
static enum gw_err find_idempotent(struct store_conn *c,
				   const struct store_submission *sub,
				   int64_t *job_seq, bool *same_body, char *err)
{
	struct db_stmt *st = store_conn_stmt(c, STMT_IDEM_GET, err);
	enum gw_err rc = GW_OK;
	int src;

	*job_seq = 0;
	if (!st)
		return GW_EIO;
	db_bind_text(st, 1, sub->user);
	db_bind_text(st, 2, sub->idempotency_key);
	src = db_step(st);
	if (src == DB_ROW) {
		size_t len;
		const void *hash = db_col_blob(st, 0, &len);

		*same_body = hash && len == 32 &&
			     memcmp(hash, sub->body_sha256, 32) == 0;
		*job_seq = db_col_int64(st, 1);
	} else if (src != DB_DONE) {
		rc = db_error(c->db, err);
	}
	db_reset(st);
	return rc;
}

/* The job just inserted, as store_row_to_job would read it back. */
static enum gw_err submitted_job(const struct store_submission *sub, int64_t seq, const char *id,
				 int64_t now, int64_t rv, struct store_job *job)
{
	memset(job, 0, sizeof(*job));
	job->seq = seq;
	snprintf(job->id, sizeof(job->id), "%s", id);
	job->state = STORE_QUEUED;
	job->created_ms = job->updated_ms = now;
	job->rv = rv;
	job->priority = sub->priority;
	job->demand = sub->demand;
	job->run = 1;
	job->ttl_s = sub->ttl_s;
	if (!(job->name = strdup(sub->name)) || !(job->user = strdup(sub->user)) ||
	    !(job->reason = strdup("Submitted")) || !(job->labels_json = strdup(sub->labels_json)) ||
	    !(job->spec_json = strdup(sub->spec_json)) ||
	    (sub->spec_shown_json && !(job->spec_shown_json = strdup(sub->spec_shown_json))) ||
	    !(job->team = strdup(sub->team ? sub->team : "")) || !(job->pool = strdup(sub->pool ? sub->pool : ""))) {
		store_job_release(job);
		return GW_ENOMEM;
	}
	return GW_OK;
}

/* The new job's row: parameters 1 to 14 of the statements that insert it. */
static void bind_job_row(struct db_stmt *st, const struct store_submission *sub, const char *id, int64_t now)
{
	db_bind_text(st, 1, id);
	db_bind_text(st, 2, sub->name);
	db_bind_text(st, 3, sub->user);
	db_bind_text(st, 4, sub->labels_json);
	db_bind_text(st, 5, sub->spec_json);
	db_bind_int64(st, 6, now);
	db_bind_int64(st, 7, sub->priority);
	db_bind_text(st, 8, sub->team ? sub->team : "");
	db_bind_text(st, 9, sub->pool ? sub->pool : "");
	db_bind_int64(st, 10, sub->demand.cores_milli);
	db_bind_int64(st, 11, sub->demand.memory_mib);
	db_bind_int64(st, 12, sub->demand.gpus);
	db_bind_int64(st, 13, sub->ttl_s);
	db_bind_text(st, 14, sub->spec_shown_json);
}

/* PostgreSQL: the job, its labels, first event and idempotency key in one
 * statement, as each statement is a round trip to the server. */
static enum gw_err insert_job_pg(struct store_conn *c, const struct store_submission *sub, const char *id,
				 int64_t now, int64_t *job_seq, int64_t *rv, char *err)
{
	struct db_stmt *st = store_conn_stmt(c, STMT_SUBMIT_PG, err);
	enum gw_err rc = GW_OK;

	if (!st)
		return GW_EIO;
	bind_job_row(st, sub, id, now);
	db_bind_text(st, 15, sub->idempotency_key);
	db_bind_blob(st, 16, sub->body_sha256, 32);
	if (db_step(st) == DB_ROW) {
		*job_seq = db_col_int64(st, 0);
		*rv = db_col_int64(st, 1);
	} else {
		rc = db_error(c->db, err);
	}
	db_reset(st);
	return rc;
}

static enum gw_err apply_submit(struct store_conn *c, struct store_op *op)
{
	const struct store_submission *sub = &op->submit;
	int64_t now = gw_now_ms(), job_seq = 0, rv = 0;
	char id[STORE_ID_LEN];
	struct db_stmt *st;
	enum gw_err rc;

	if (sub->idempotency_key) {
		bool same_body = false;

		if ((rc = find_idempotent(c, sub, &job_seq, &same_body, op->err)))
			return rc;
		if (job_seq && !same_body) {
			gw_seterr(op->err, "Idempotency-Key '%s' was used with a different request body",
				  sub->idempotency_key);
			return GW_ECONFLICT;
		}
		if (job_seq) {
			op->unchanged = true;
			return load_job(c, STMT_JOB_BY_SEQ, NULL, job_seq, &op->job, op->err);
		}
	}

	/* Checked in the same transaction as the insert: never over. */
	if ((rc = check_queue_room(c, STMT_TEAM_QUEUED, "team", sub->team, sub->team_limits.queued,
				   op->err)) ||
	    (rc = check_queue_room(c, STMT_POOL_QUEUED, "pool", sub->pool, sub->pool_limits.queued,
				   op->err)))
		return rc;
	new_job_id(now, id);
	if (db_driver(c->db) == DB_POSTGRES) {
		if ((rc = insert_job_pg(c, sub, id, now, &job_seq, &rv, op->err)))
			return rc;
		op->queued_delta = 1;
		return submitted_job(sub, job_seq, id, now, rv, &op->job);
	}
	/* The job is born with the rv of its first event, whose seq is taken
	 * now (the transaction holds the write lock): no update of its row. */
	if (!(st = store_conn_stmt(c, STMT_NEXT_EVENT_SEQ, op->err)))
		return GW_EIO;
	if ((rc = store_step_returning(c, st, &rv, op->err)))
		return rc;
	st = store_conn_stmt(c, STMT_JOB_INSERT, op->err);
	if (!st)
		return GW_EIO;
	bind_job_row(st, sub, id, now);
	db_bind_int64(st, 15, rv);
	if ((rc = store_step_returning(c, st, &job_seq, op->err)))
		return rc;

	if ((rc = insert_labels(c, job_seq, sub->labels_json, op->err)))
		return rc;
	if (!(st = store_conn_stmt(c, STMT_FIRST_EVENT_INSERT, op->err)))
		return GW_EIO;
	db_bind_int64(st, 1, rv);
	db_bind_int64(st, 2, job_seq);
	db_bind_int64(st, 3, now);
	if ((rc = store_step_done(c, st, op->err)))
		return rc;
	op->queued_delta = 1;
	if (sub->idempotency_key) {
		st = store_conn_stmt(c, STMT_IDEM_INSERT, op->err);
		if (!st)
			return GW_EIO;
		db_bind_text(st, 1, sub->user);
		db_bind_text(st, 2, sub->idempotency_key);
		db_bind_blob(st, 3, sub->body_sha256, 32);
		db_bind_int64(st, 4, job_seq);
		db_bind_int64(st, 5, now);
		if ((rc = store_step_done(c, st, op->err)))
			return rc;
	}
	return submitted_job(sub, job_seq, id, now, rv, &op->job);
}

/* Sets the op's placement and driver fields that are given. */
static enum gw_err write_placement(struct store_conn *c, int64_t seq,
				   const struct store_op *op, char *err)
{
	struct db_stmt *st = store_conn_stmt(c, STMT_JOB_PLACE, err);

	if (!st)
		return GW_EIO;
	db_bind_int64(st, 1, seq);
	db_bind_text(st, 2, op->cluster);
	db_bind_text(st, 3, op->namespace);
	db_bind_text(st, 4, op->driver_pod);
	db_bind_text(st, 5, op->spark_ui);
	db_bind_int64(st, 6, op->not_before_ms);
	db_bind_text(st, 7, op->spark_app_id);
	return store_step_done(c, st, err);
}

static enum gw_err write_lease(struct store_conn *c, int64_t seq, const char *owner,
			       int64_t until, int attempts_added, char *err)
{
	struct db_stmt *st = store_conn_stmt(c, STMT_JOB_LEASE, err);

	if (!st)
		return GW_EIO;
	db_bind_int64(st, 1, seq);
	db_bind_text(st, 2, owner);
	db_bind_int64(st, 3, until);
	db_bind_int64(st, 4, attempts_added);
	return store_step_done(c, st, err);
}

static enum gw_err transition(struct store_conn *c, struct store_op *op,
			      enum store_state to)
{
	int64_t now = gw_now_ms();
	int64_t seq = op->job.seq;
	enum store_state from = op->job.state;
	enum gw_err rc;

	bool rerun = to == STORE_QUEUED && (from == STORE_SUBMITTED || from == STORE_RUNNING);

	if (!store_transition_allowed(from, to) || rerun != op->new_run) {
		gw_seterr(op->err, "job %s is %s and cannot become %s%s", op->job.id,
			  state_names[from], state_names[to], op->new_run ? " for a new run" : "");
		return GW_ESTATE;
	}
	store_job_release(&op->job);
	if ((rc = write_state(c, seq, from, to, op->reason, op->message, now,
			      op->err)))
		return rc;
	if (op->new_run) {
		struct db_stmt *st = store_conn_stmt(c, STMT_JOB_NEW_RUN, op->err);

		if (!st)
			return GW_EIO;
		db_bind_int64(st, 1, seq);
		db_bind_int64(st, 2, op->not_before_ms);
		rc = store_step_done(c, st, op->err);
	} else {
		rc = write_placement(c, seq, op, op->err);
	}
	if (rc)
		return rc;
	op->queued_delta += (to == STORE_QUEUED) - (from == STORE_QUEUED);
	/* Leaving DISPATCHING ends the lease. */
	if (from == STORE_DISPATCHING && (rc = write_lease(c, seq, NULL, 0, 0, op->err)))
		return rc;
	return load_job(c, STMT_JOB_BY_SEQ, NULL, seq, &op->job, op->err);
}

static enum gw_err apply_claim(struct store_conn *c, struct store_op *op)
{
	int64_t now = gw_now_ms(), seq;
	enum gw_err rc = load_job(c, STMT_JOB_BY_ID, op->job_id, 0, &op->job, op->err);

	if (rc)
		return rc;
	seq = op->job.seq;
	if (op->job.state == STORE_QUEUED) {
		/* In the claim's transaction, so that workers (of this process or
		 * another) racing for the same team or pool cannot both take the
		 * last place. The job is QUEUED, so not counted yet. */
		if ((rc = check_room(c, STMT_TEAM_ACTIVE, "team", op->job.team, &op->team_limits,
				     &op->demand, op->err)) ||
		    (rc = check_room(c, STMT_POOL_ACTIVE, "pool", op->pool, &op->pool_limits,
				     &op->demand, op->err)))
			return rc;
		if (op->pool) {
			struct db_stmt *st = store_conn_stmt(c, STMT_JOB_SET_DEMAND, op->err);

			if (!st)
				return GW_EIO;
			db_bind_int64(st, 1, seq);
			db_bind_text(st, 2, op->pool);
			db_bind_int64(st, 3, op->demand.cores_milli);
			db_bind_int64(st, 4, op->demand.memory_mib);
			db_bind_int64(st, 5, op->demand.gpus);
			if ((rc = store_step_done(c, st, op->err)))
				return rc;
		}
	}
	if (op->job.state == STORE_QUEUED) {
		if ((rc = transition(c, op, STORE_DISPATCHING)))
			return rc;
	} else if (op->job.state == STORE_DISPATCHING && op->job.lease_until_ms < now) {
		/* A dead owner's job: same placement, a new lease, no event. */
	} else {
		gw_seterr(op->err, "job %s is %s%s", op->job.id, state_names[op->job.state],
			  op->job.state == STORE_DISPATCHING ? " under another lease" : "");
		return GW_ECONFLICT;
	}
	store_job_release(&op->job);
	if ((rc = write_lease(c, seq, op->lease_owner, op->lease_until_ms, 1, op->err)))
		return rc;
	if (op->placement_json) {
		struct db_stmt *st = store_conn_stmt(c, STMT_JOB_SET_PLACEMENT, op->err);

		if (!st)
			return GW_EIO;
		db_bind_int64(st, 1, seq);
		db_bind_text(st, 2, op->placement_json);
		if ((rc = store_step_done(c, st, op->err)))
			return rc;
	}
	return load_job(c, STMT_JOB_BY_SEQ, NULL, seq, &op->job, op->err);
}

static enum gw_err apply_cluster_settings(struct store_conn *c, struct store_op *op)
{
	struct db_stmt *st = store_conn_stmt(c, STMT_CLUSTER_SETTINGS_PUT, op->err);

	if (!st)
		return GW_EIO;
	db_bind_text(st, 1, op->cluster);
	db_bind_text(st, 2, op->rotation);
	db_bind_int64(st, 3, op->weight);
	return store_step_done(c, st, op->err);
}

static enum gw_err apply_cancel(struct store_conn *c, struct store_op *op)
{
	enum gw_err rc = load_job(c, STMT_JOB_BY_ID, op->job_id, 0, &op->job, op->err);

	if (rc)
		return rc;
	switch (op->job.state) {
	case STORE_QUEUED: /* nothing exists on a cluster yet */
		return transition(c, op, STORE_CANCELLED);
	case STORE_DISPATCHING:
	case STORE_SUBMITTED:
	case STORE_RUNNING:
		return transition(c, op, STORE_CANCELLING);
	case STORE_CANCELLING:
	case STORE_CANCELLED:
		op->unchanged = true;
		return GW_OK;
	default:
		gw_seterr(op->err, "job %s already finished as %s", op->job.id,
			  state_names[op->job.state]);
		return GW_ECONFLICT;
	}
}

/* One UPDATE by job id; ENOTFOUND (or ECONFLICT for a lease) when it
 * matched no row. */
static enum gw_err update_job(struct store_conn *c, struct store_op *op, enum store_stmt which)
{
	struct db_stmt *st = store_conn_stmt(c, which, op->err);
	enum gw_err rc;

	if (!st)
		return GW_EIO;
	db_bind_text(st, 1, op->job_id);
	if (which == STMT_JOB_RENEW) {
		db_bind_text(st, 2, op->lease_owner);
		db_bind_int64(st, 3, op->lease_until_ms);
	} else {
		db_bind_int64(st, 2, gw_now_ms());
	}
	if ((rc = store_step_done(c, st, op->err)))
		return rc;
	if (db_changes(c->db) == 1)
		return GW_OK;
	if (which == STMT_JOB_RENEW) {
		gw_seterr(op->err, "job %s is no longer dispatched under this lease", op->job_id);
		return GW_ECONFLICT;
	}
	gw_seterr(op->err, "job %s not found", op->job_id);
	return GW_ENOTFOUND;
}

static enum gw_err apply_prune(struct store_conn *c, struct store_op *op)
{
	struct db_stmt *st = store_conn_stmt(c, STMT_JOBS_PRUNE, op->err);
	enum gw_err rc;

	if (!st)
		return GW_EIO;
	db_bind_int64(st, 1, op->before_ms);
	db_bind_int64(st, 2, (int)op->limit);
	if ((rc = store_step_done(c, st, op->err)))
		return rc;
	op->pruned = (unsigned)db_changes(c->db);
	return GW_OK;
}

/* Runs a statement that writes with its parameters: the texts, then the
 * numbers. */
static enum gw_err put_row(struct store_conn *c, enum store_stmt which, const char *const *texts, size_t ntexts,
			   const int64_t *numbers, size_t nnumbers, char *err)
{
	struct db_stmt *st = store_conn_stmt(c, which, err);
	int idx = 1;

	if (!st)
		return GW_EIO;
	for (size_t i = 0; i < ntexts; i++)
		db_bind_text(st, idx++, texts[i]);
	for (size_t i = 0; i < nnumbers; i++)
		db_bind_int64(st, idx++, numbers[i]);
	return store_step_done(c, st, err);
}

static enum gw_err apply_watch_lease(struct store_conn *c, struct store_op *op)
{
	bool take = op->kind == STORE_OP_WATCH_LEASE;
	struct db_stmt *st = store_conn_stmt(c, take ? STMT_WATCH_LEASE : STMT_WATCH_RELEASE, op->err);
	enum gw_err rc;

	if (!st)
		return GW_EIO;
	db_bind_text(st, 1, op->cluster);
	db_bind_text(st, 2, op->lease_owner);
	if (take) {
		db_bind_int64(st, 3, op->lease_until_ms);
		db_bind_int64(st, 4, gw_now_ms());
	}
	if ((rc = store_step_done(c, st, op->err)) || !take)
		return rc;
	if (db_changes(c->db) == 1)
		return GW_OK;
	gw_seterr(op->err, "cluster %s is watched by another process", op->cluster);
	return GW_ECONFLICT;
}

void store_apply_op(struct store_conn *c, struct store_op *op)
{
	switch (op->kind) {
	case STORE_OP_SUBMIT:
		op->rc = apply_submit(c, op);
		break;
	case STORE_OP_CANCEL:
		op->rc = apply_cancel(c, op);
		break;
	case STORE_OP_TRANSITION:
		op->rc = load_job(c, STMT_JOB_BY_ID, op->job_id, 0, &op->job, op->err);
		if (op->rc == GW_OK)
			op->rc = transition(c, op, op->to);
		break;
	case STORE_OP_CLAIM:
		op->rc = apply_claim(c, op);
		break;
	case STORE_OP_CLUSTER_SETTINGS:
		op->rc = apply_cluster_settings(c, op);
		break;
	case STORE_OP_RENEW:
		op->rc = update_job(c, op, STMT_JOB_RENEW);
		break;
	case STORE_OP_CLEANED:
		op->rc = update_job(c, op, STMT_JOB_CLEANED);
		break;
	case STORE_OP_PRUNE:
		op->rc = apply_prune(c, op);
		break;
	case STORE_OP_TOKEN_CREATE:
	case STORE_OP_TOKEN_REVOKE:
	case STORE_OP_AUDIT:
		op->rc = store_apply_auth_op(c, op);
		break;
	case STORE_OP_POD_USAGE:
	case STORE_OP_POD_USAGE_CLOSE:
		op->rc = store_apply_usage_op(c, op);
		break;
	case STORE_OP_WATCH_LEASE:
	case STORE_OP_WATCH_RELEASE:
		op->rc = apply_watch_lease(c, op);
		break;
	case STORE_OP_CLUSTER_USAGE:
		op->rc = put_row(c, STMT_CLUSTER_USAGE_PUT, (const char *const[]){op->cluster, op->document}, 2,
				 (const int64_t[]){gw_now_ms()}, 1, op->err);
		break;
	case STORE_OP_REPLICA_ALIVE:
		op->rc = put_row(c, STMT_REPLICA_ALIVE, &op->lease_owner, 1, &op->lease_until_ms, 1, op->err);
		if (op->rc == GW_OK)
			op->rc = put_row(c, STMT_REPLICAS_FORGET, NULL, 0, (const int64_t[]){gw_now_ms()}, 1, op->err);
		break;
	case STORE_OP_POLICY_OVERLAY:
		op->rc = put_row(c, STMT_OVERLAY_PUT, &op->document, 1, NULL, 0, op->err);
		break;
	}
	/* A failed op keeps the job as it was for the caller's message. */
	if (op->rc && op->rc != GW_ECONFLICT && op->rc != GW_ESTATE)
		store_job_release(&op->job);
}

/* ---- reads ---- */

enum gw_err store_job_get(struct store *s, const char *id,
			  struct store_job *out, char *err)
{
	struct store_conn *c = store_reader_get(s, err);
	enum gw_err rc;

	if (!c)
		return GW_EIO;
	rc = load_job(c, STMT_JOB_BY_ID, id, 0, out, err);
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
		e->reason = column_text(st, 4, &oom);
		e->message = column_text(st, 5, &oom);
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
		db_bind_text(st, idx++, state_names[q->state]);
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
	rc = load_job(c, STMT_JOB_BY_SEQ, NULL, seq, out, err);
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
	return query_jobs(s, cluster ? STMT_JOBS_IN_STATE_ON : STMT_JOBS_IN_STATE, state_names[state], cluster,
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
		json_object_set_new(*counts, state_names[i], json_integer(0));
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
