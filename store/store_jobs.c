/* Job writes: the state machine and the write operations (submit, claim,
 * transitions, cancel, prune, leases, fleet settings) the writer thread
 * applies. */
#include "store/store_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "common/timeutil.h"

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

bool store_state_terminal(enum store_state st)
{
	return (unsigned)st < STORE_NSTATES && allowed[st] == 0;
}

bool store_transition_allowed(enum store_state from, enum store_state to)
{
	return (unsigned)from < STORE_NSTATES && (unsigned)to < STORE_NSTATES &&
	       (allowed[from] & BIT(to)) != 0;
}

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

/* Steps an INSERT into *seq, the new row's seq: SQLite's rowid, which
 * costs nothing, where RETURNING would gather its rows in a temporary
 * b-tree; PostgreSQL's statement has RETURNING. */
static enum gw_err store_step_insert(struct store_conn *c, struct db_stmt *st, int64_t *seq, char *err)
{
	enum gw_err rc;

	if (db_driver(c->db) == DB_POSTGRES)
		return store_step_returning(c, st, seq, err);
	*seq = 0;
	if ((rc = store_step_done(c, st, err)) == GW_OK)
		*seq = db_last_insert_id(c->db);
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
	db_bind_text(st, 3, store_state_name(to));
	db_bind_text(st, 4, store_state_name(previous));
	db_bind_text(st, 5, reason);
	if (message)
		db_bind_text(st, 6, message);
	if ((rc = store_step_insert(c, st, &rv, err)))
		return rc;

	st = store_conn_stmt(c, STMT_JOB_UPDATE, err);
	if (!st)
		return GW_EIO;
	db_bind_int64(st, 1, job_seq);
	db_bind_text(st, 2, store_state_name(to));
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
	db_bind_text(st, 2, store_state_name(to));
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
			return store_load_job(c, STMT_JOB_BY_SEQ, NULL, job_seq, &op->job, op->err);
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
	if ((rc = store_step_insert(c, st, &job_seq, op->err)))
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
			  store_state_name(from), store_state_name(to), op->new_run ? " for a new run" : "");
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
	return store_load_job(c, STMT_JOB_BY_SEQ, NULL, seq, &op->job, op->err);
}

static enum gw_err apply_claim(struct store_conn *c, struct store_op *op)
{
	int64_t now = gw_now_ms(), seq;
	enum gw_err rc = store_load_job(c, STMT_JOB_BY_ID, op->job_id, 0, &op->job, op->err);

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
		gw_seterr(op->err, "job %s is %s%s", op->job.id, store_state_name(op->job.state),
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
	return store_load_job(c, STMT_JOB_BY_SEQ, NULL, seq, &op->job, op->err);
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
	enum gw_err rc = store_load_job(c, STMT_JOB_BY_ID, op->job_id, 0, &op->job, op->err);

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
			  store_state_name(op->job.state));
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


/* ---- reads ---- */

enum gw_err store_apply_job_op(struct store_conn *c, struct store_op *op)
{
	enum gw_err rc = GW_EINVAL;

	switch (op->kind) {
	case STORE_OP_SUBMIT:
		rc = apply_submit(c, op);
		break;
	case STORE_OP_CANCEL:
		rc = apply_cancel(c, op);
		break;
	case STORE_OP_TRANSITION:
		rc = store_load_job(c, STMT_JOB_BY_ID, op->job_id, 0, &op->job, op->err);
		if (rc == GW_OK)
			rc = transition(c, op, op->to);
		break;
	case STORE_OP_CLAIM:
		rc = apply_claim(c, op);
		break;
	case STORE_OP_CLUSTER_SETTINGS:
		rc = apply_cluster_settings(c, op);
		break;
	case STORE_OP_RENEW:
		rc = update_job(c, op, STMT_JOB_RENEW);
		break;
	case STORE_OP_CLEANED:
		rc = update_job(c, op, STMT_JOB_CLEANED);
		break;
	case STORE_OP_PRUNE:
		rc = apply_prune(c, op);
		break;
	case STORE_OP_WATCH_LEASE:
	case STORE_OP_WATCH_RELEASE:
		rc = apply_watch_lease(c, op);
		break;
	case STORE_OP_CLUSTER_USAGE:
		rc = put_row(c, STMT_CLUSTER_USAGE_PUT, (const char *const[]){op->cluster, op->document}, 2,
				 (const int64_t[]){gw_now_ms()}, 1, op->err);
		break;
	case STORE_OP_REPLICA_ALIVE:
		rc = put_row(c, STMT_REPLICA_ALIVE, &op->lease_owner, 1, &op->lease_until_ms, 1, op->err);
		if (rc == GW_OK)
			rc = put_row(c, STMT_REPLICAS_FORGET, NULL, 0, (const int64_t[]){gw_now_ms()}, 1, op->err);
		break;
	case STORE_OP_POLICY_OVERLAY:
		rc = put_row(c, STMT_OVERLAY_PUT, &op->document, 1, NULL, 0, op->err);
		break;
	default:
		gw_seterr(op->err, "not a job write");
		break;
	}
	return rc;
}
