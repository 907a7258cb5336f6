/* The queue feeder and the dispatcher workers.
 *
 * Exactly once: a job is claimed (QUEUED -> DISPATCHING, with placement
 * and a lease) and committed before any object is created; objects are
 * named after the job id, so a create retried after a crash or a lost
 * answer meets 409 AlreadyExists and adopts what exists; only then does
 * the job become SUBMITTED. A crash anywhere leaves a DISPATCHING job whose
 * lease expires and whose dispatch is redone on the same cluster. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/quantity.h"
#include "common/timeutil.h"
#include "dispatch/dispatch.h"
#include "dispatch/dispatch_int.h"
#include "k8sclient/k8s.h"
#include "pool/pool.h"

#define FEED_PER_TEAM 64
#define IDLE_POLL_MS 250
#define DEFAULT_RESTART_RETRIES 3
#define DEFAULT_RESTART_INTERVAL_S 5
#define WAIT_RETRY_MS 1000
/* A dispatched job's room in its namespace is held until the job leaves
 * the cluster; this bounds it should that never be seen. */
#define RESERVATION_MS (3600 * 1000)
/* Jobs per cluster and state whose room a restart takes again. */
#define RESTORE_MAX 100000

static long retry_delay_ms(long base_ms, int attempts)
{
	long ms = base_ms << (attempts < 10 ? attempts - 1 : 9);

	return ms > 60000 ? 60000 : ms;
}

/* The job's restartPolicy, with the gateway's defaults. */
struct restart_policy dispatch_restart_policy(const struct dispatch *d, const struct store_job *job)
{
	json_t *spec = json_loads(job->spec_json, 0, NULL);
	const json_t *rp = json_object_get(spec, "restartPolicy");
	const json_t *v;
	struct restart_policy p = {
		.on_failure = !strcmp(dispatch_jstr(json_object_get(rp, "type")), "OnFailure"),
		.retries = DEFAULT_RESTART_RETRIES, .interval_s = DEFAULT_RESTART_INTERVAL_S,
		.submit_attempts = (int)d->opts.max_attempts, .submit_base_ms = (long)d->opts.retry_base_ms};

	if (json_is_integer(v = json_object_get(rp, "onFailureRetries")))
		p.retries = (int)json_integer_value(v);
	if (json_is_integer(v = json_object_get(rp, "onFailureRetryInterval")))
		p.interval_s = (int)json_integer_value(v);
	if (json_is_integer(v = json_object_get(rp, "onSubmissionFailureRetries")))
		p.submit_attempts = (int)json_integer_value(v) + 1;
	if (json_is_integer(v = json_object_get(rp, "onSubmissionFailureRetryInterval")))
		p.submit_base_ms = (long)json_integer_value(v) * 1000;
	json_decref(spec);
	return p;
}

/* What the worker dispatching a job is at, for the queue's explanation. */
static void note_phase(struct dispatch *d, const char *job_id, const char *what)
{
	pthread_mutex_lock(&d->lock);
	if (json_object_get(d->inflight, job_id))
		json_object_set_new(d->inflight, job_id, json_string(what));
	pthread_mutex_unlock(&d->lock);
}

/* Keeps the lease while a dispatch takes long (slow or throttling API
 * server): renewed once half of it has passed. False when it was lost:
 * another process owns the job now. */
static bool keep_lease(struct dispatch *d, struct store_job *job)
{
	struct store_op renew = {.kind = STORE_OP_RENEW, .job_id = job->id, .lease_owner = d->owner};
	int64_t now = gw_now_ms();
	bool kept;

	if (job->lease_until_ms - now > (int64_t)d->opts.lease_s * 500)
		return true;
	renew.lease_until_ms = now + (int64_t)d->opts.lease_s * 1000;
	kept = store_execute(d->store, &renew) == GW_OK;
	if (kept)
		job->lease_until_ms = renew.lease_until_ms;
	else
		gw_log(GW_LOG_WARN, "dispatch: job %s: %s", job->id, renew.err);
	store_job_release(&renew.job);
	return kept;
}

/* Places the job with the policy in force and the clusters' live state. */
static enum router_result place(struct dispatch *d, struct router *r, const struct store_job *job,
				struct router_decision *dec, char *why, size_t len)
{
	struct router_live live = pool_live(d->opts.pool);
	struct router_pin pin = {.cluster = job->cluster, .namespace = job->namespace};
	json_t *labels = json_loads(job->labels_json, 0, NULL);
	json_t *spec = json_loads(job->spec_json, 0, NULL), *errors = NULL;
	char detail[GW_ERRLEN];
	enum router_result res;

	if (r->nclusters == 0) {
		/* Store-only until a cluster is added. */
		snprintf(why, len, "no clusters are configured");
		json_decref(labels);
		json_decref(spec);
		return ROUTER_WAIT;
	}
	res = router_place(r, &live, job->cluster ? &pin : NULL, labels, spec, job->id, dec,
			   &errors, detail);
	if (res == ROUTER_INVALID) {
		char *text = json_dumps(errors, JSON_COMPACT);

		snprintf(why, len, "%s: %s", detail, text ? text : "");
		free(text);
	} else if (res == ROUTER_WAIT) {
		snprintf(why, len, "%s", detail);
	} else if (res == ROUTER_TOO_BIG) {
		/* Accepted when nodes could hold it: it waits for them. */
		snprintf(why, len, "NoNodes: %s", json_string_value(json_object_get(json_array_get(errors, 0), "message")));
		res = ROUTER_WAIT;
	}
	json_decref(errors);
	json_decref(labels);
	json_decref(spec);
	return res;
}

/* Placement only reads the namespaces' usage; the room it found is then
 * taken (reserved) in a step that checks again, so that of concurrent
 * dispatches into the same room one gets it and the others place again,
 * with that job counted. */
static enum router_result place_and_reserve(struct dispatch *d, struct router *r, const struct store_job *job,
					    struct router_decision *dec, char *why, size_t len)
{
	for (int tries = 0; tries < 4; tries++) {
		enum router_result res = place(d, r, job, dec, why, len);

		if (res != ROUTER_OK || dec->shared || pool_reserve(d->opts.pool, dec->cluster->name, job->id, dec->ns, dec->role,
						     &dec->demand, job->cluster != NULL, RESERVATION_MS))
			return res;
		router_decision_release(dec);
	}
	snprintf(why, len, "NoCapacity: concurrent dispatches took the room that placement found");
	return ROUTER_WAIT;
}

/* The job waits a moment before it is tried again, with why. */
void dispatch_wait_a_moment(struct dispatch *d, const char *job_id, const char *why)
{
	pthread_mutex_lock(&d->lock);
	json_object_set_new(d->waiting, job_id, json_pack("[I, s]", (json_int_t)(gw_now_ms() + WAIT_RETRY_MS), why));
	pthread_mutex_unlock(&d->lock);
}

/* QUEUED -> DISPATCHING with the placement and a lease, committed before
 * any object exists; *job becomes the claimed job. False when another
 * process took it, it was cancelled, or a limit is reached (then it
 * waits). */
bool dispatch_claim(struct dispatch *d, const struct router *r, struct store_job *job,
		    const struct router_decision *dec, const char *server)
{
	struct store_op op = {.kind = STORE_OP_CLAIM, .job_id = job->id, .reason = "Dispatching",
			      .lease_owner = d->owner};
	json_t *pj = dispatch_placement_json(job, dec, server);
	char *placement = json_dumps(pj, JSON_COMPACT);
	enum gw_err rc;

	json_decref(pj);
	op.cluster = dec->cluster->name;
	op.namespace = dec->ns->name;
	op.placement_json = placement;
	op.lease_until_ms = gw_now_ms() + (int64_t)d->opts.lease_s * 1000;
	op.pool = dec->pool->name;
	op.demand = dispatch_demand(&dec->demand);
	dispatch_team_limits(r, job->team, d->opts.max_running_per_team, 0, &op.team_limits, NULL);
	dispatch_pool_limits(r, dec->pool->name, &op.pool_limits);
	rc = store_execute(d->store, &op);
	free(placement);
	if (rc != GW_OK) {
		pool_release(d->opts.pool, job->id);
		if (rc == GW_EBUSY) /* at a limit (another process took the room): wait, saying so */
			dispatch_wait_a_moment(d, job->id, op.err);
		store_job_release(&op.job);
		return false;
	}
	store_job_release(job);
	*job = op.job;
	return true;
}

/* Creates the job's objects in order, the first (driver or application)
 * owning the rest; *lost when the lease went to another process, which
 * finishes the dispatch. */
static enum create_outcome create_objects(struct dispatch *d, struct cluster_rt *cl, struct store_job *job,
					  json_t *objs, bool *lost, char *err)
{
	enum create_outcome outcome = CREATED;
	char uid[64] = "", owner_uid[64] = "", msg[GW_ERRLEN + 64];
	size_t i;
	json_t *obj;

	if (dispatch_cluster_limited(cl))
		snprintf(msg, sizeof(msg),
			 "ClusterRateLimited: cluster %s takes %u requests/s and %u dispatches at once"
			 " (over %ld gateway processes)", cl->name, d->opts.cluster_qps, d->opts.cluster_concurrency,
			 atomic_load(&d->replicas));
	else
		snprintf(msg, sizeof(msg), "Dispatching: creating the driver on %s/%s", cl->name, job->namespace);
	note_phase(d, job->id, msg);
	dispatch_enter_cluster(cl);
	json_array_foreach(objs, i, obj) {
		json_t *owner = json_array_get(json_object_get(json_object_get(obj, "metadata"), "ownerReferences"), 0);

		if (!keep_lease(d, job)) {
			*lost = true;
			break;
		}
		if (owner)
			json_object_set_new(owner, "uid", json_string(owner_uid));
		outcome = dispatch_create_or_adopt(cl, obj, job->id, uid, sizeof(uid), err);
		if (outcome != CREATED)
			break;
		if (i == 0)
			snprintf(owner_uid, sizeof(owner_uid), "%s", uid);
	}
	dispatch_leave_cluster(cl);
	return outcome;
}

/* The job's state after its creates: SUBMITTED, FAILED, or QUEUED for a
 * retry after a delay. */
void dispatch_record_outcome(struct dispatch *d, struct cluster_rt *cl, const struct store_job *job,
			     enum create_outcome outcome, const char *err, const char *server)
{
	struct restart_policy policy = dispatch_restart_policy(d, job);
	struct dispatch_names names;
	char ui[300], msg[GW_ERRLEN + 64];

	dispatch_names(job, &names);
	if (outcome == CREATED && server) {
		/* No driver of its own: the UI is the server's. */
		struct store_op sub = {.spark_ui = ui};

		snprintf(ui, sizeof(ui), "http://%s.%s.svc:%d", server, job->namespace, DISPATCH_UI_PORT);
		snprintf(msg, sizeof(msg), "statement submitted to shared server %s on %s/%s", server, cl->name,
			 job->namespace);
		dispatch_count_cluster(cl, "sparkgw_dispatches_total", "outcome", "created");
		if (dispatch_move_job(d, job->id, STORE_SUBMITTED, "StatementSubmitted", msg, &sub) == GW_ESTATE)
			dispatch_shared_stop(cl, job, server); /* cancelled meanwhile */
	} else if (outcome == CREATED) {
		/* The operator names its driver as spark-submit would: app-driver. */
		struct store_op sub = {.driver_pod = names.driver_pod, .spark_ui = ui};

		snprintf(ui, sizeof(ui), cl->mode == ROUTER_SPARK_OPERATOR
				 ? "http://%s-ui-svc.%s.svc:4040" : "http://%s.%s.svc:4040",
			 cl->mode == ROUTER_SPARK_OPERATOR ? names.app : names.service, job->namespace);
		snprintf(msg, sizeof(msg), "created on %s/%s", cl->name, job->namespace);
		if (job->run <= 1) /* a first run: from its submission */
			gw_metrics_observe(d->opts.metrics, "sparkgw_dispatch_latency_seconds", "",
					   (double)(gw_now_ms() - job->created_ms) / 1e3);
		dispatch_count_cluster(cl, "sparkgw_dispatches_total", "outcome", "created");
		if (dispatch_move_job(d, job->id, STORE_SUBMITTED,
				      cl->mode == ROUTER_SPARK_OPERATOR ? "ApplicationCreated" : "DriverCreated",
				      msg, &sub) == GW_ESTATE) {
			/* Cancelled while we created it: take it down again. */
			dispatch_delete_driver(cl, job);
		} else {
			dispatch_apply_seen(cl, job->id);
		}
	} else if (outcome == REJECTED) {
		dispatch_count_cluster(cl, "sparkgw_dispatches_total", "outcome", "rejected");
		snprintf(msg, sizeof(msg), "the cluster refused the job: %.*s", GW_ERRLEN, err);
		dispatch_move_job(d, job->id, STORE_FAILED, "DispatchRejected", msg, NULL);
	} else {
		struct store_op back = {.not_before_ms = gw_now_ms() + retry_delay_ms(policy.submit_base_ms,
										      job->attempts)};

		dispatch_count_cluster(cl, "sparkgw_dispatches_total", "outcome", "failed");
		if (job->attempts >= policy.submit_attempts) {
			snprintf(msg, sizeof(msg), "gave up after %d attempts: %s", job->attempts, err);
			dispatch_move_job(d, job->id, STORE_FAILED, "DispatchFailed", msg, NULL);
		} else {
			snprintf(msg, sizeof(msg), "attempt %d failed: %s", job->attempts, err);
			dispatch_move_job(d, job->id, STORE_QUEUED, "DispatchRetry", msg, &back);
		}
	}
}

/* One job from the queue: placed (pinned where a retry was placed before:
 * elsewhere it could run twice), claimed, its objects created, and the
 * outcome recorded. */
static void dispatch_one(struct dispatch *d, const char *job_id)
{
	struct router *r = router_holder_get(d->opts.policy);
	struct router_decision dec = {0};
	struct cluster_rt *cl;
	struct store_job job = {0};
	char err[GW_ERRLEN] = "", msg[GW_ERRLEN + 64], why[GW_ERRLEN * 2];
	json_t *objs = NULL;
	enum create_outcome outcome = REJECTED;
	bool lost = false;

	if (store_job_get(d->store, job_id, &job, err))
		goto out;
	switch (place_and_reserve(d, r, &job, &dec, why, sizeof(why))) {
	case ROUTER_OK:
		break;
	case ROUTER_INVALID:
		dispatch_move_job(d, job.id, STORE_FAILED, "Unplaceable", why, NULL);
		goto out;
	case ROUTER_WAIT:
	case ROUTER_TOO_BIG: /* place() makes it a wait */
		dispatch_wait_a_moment(d, job.id, why);
		gw_log(GW_LOG_DEBUG, "dispatch: job %s waits: %s", job.id, why);
		goto out;
	}
	cl = dispatch_cluster_named(d, dec.cluster->name);
	if (!cl) {
		snprintf(msg, sizeof(msg), "cluster %s has no connection", dec.cluster->name);
		dispatch_move_job(d, job.id, STORE_FAILED, "ClusterUnknown", msg, NULL);
		goto out;
	}
	if (dec.shared) {
		dispatch_shared_one(d, r, cl, &job, &dec);
		goto out;
	}
	if (!dispatch_claim(d, r, &job, &dec, NULL))
		goto out;
	if ((objs = dispatch_manifests(&job, &dec, err)))
		outcome = create_objects(d, cl, &job, objs, &lost, err);
	if (!lost)
		dispatch_record_outcome(d, cl, &job, outcome, err, NULL);
out:
	json_decref(objs);
	router_decision_release(&dec);
	store_job_release(&job);
	router_unref(r);
}

void *dispatch_worker_main(void *arg)
{
	struct dispatch *d = arg;

	pthread_mutex_lock(&d->lock);
	while (!atomic_load(&d->stop)) {
		char id[STORE_ID_LEN];

		if (d->qlen == 0) {
			pthread_cond_wait(&d->work, &d->lock);
			continue;
		}
		memcpy(id, d->queue[d->qhead], sizeof(id));
		d->qhead = (d->qhead + 1) % d->qcap;
		d->qlen--;
		pthread_mutex_unlock(&d->lock);
		dispatch_one(d, id);
		pthread_mutex_lock(&d->lock);
		json_object_del(d->inflight, id);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/* Whether this process is dispatching the job already; d->lock is held. */
static bool in_flight(void *arg, const char *job_id)
{
	struct dispatch *d = arg;

	return json_object_get(d->inflight, job_id) != NULL;
}

/* Reads the queue, orders it by fair share within limits, and hands the
 * ready jobs to the workers. Returns how long it took. */
static int64_t feed(struct dispatch *d)
{
	struct router *r = router_holder_get(d->opts.policy);
	struct dispatch_defaults defaults = {.max_running_per_team = d->opts.max_running_per_team};
	struct store_queue q;
	struct dispatch_pick *picks = NULL;
	json_t *quota = json_object();
	char err[GW_ERRLEN];
	int64_t started = gw_now_ms(), now;
	const char *id;
	json_t *until;
	void *iter;

	memset(&q, 0, sizeof(q));
	if (r->nclusters == 0) /* store-only until a cluster is added */
		goto out;
	if (store_queue_read(d->store, started, (int64_t)d->opts.aging_s * 1000, FEED_PER_TEAM, &q, err)) {
		gw_log(GW_LOG_WARN, "dispatch: reading the queue: %s", err);
		goto out;
	}
	picks = calloc(q.njobs + 1, sizeof(*picks));
	pthread_mutex_lock(&d->lock);
	if (!picks || dispatch_order(r, &defaults, &q, in_flight, d, picks)) {
		pthread_mutex_unlock(&d->lock);
		gw_log(GW_LOG_WARN, "dispatch: ordering the queue: out of memory");
		goto out;
	}
	/* Jobs with no room now wait a moment; forget the expired marks. The
	 * reason stays until then, for the queue's explanation. */
	now = gw_now_ms();
	json_object_foreach_safe(d->waiting, iter, id, until)
		if (json_integer_value(json_array_get(until, 0)) <= now)
			json_object_del(d->waiting, id);
	for (size_t i = 0; i < q.njobs; i++) {
		const char *job = q.jobs[picks[i].job].id;

		if (!picks[i].ready) {
			json_object_set_new(quota, job, json_string(picks[i].why));
			continue;
		}
		if (json_object_get(d->inflight, job) || json_object_get(d->waiting, job) ||
		    d->qlen == d->qcap)
			continue;
		json_object_set_new(d->inflight, job, json_string("Dispatching"));
		memcpy(d->queue[(d->qhead + d->qlen) % d->qcap], job, STORE_ID_LEN);
		d->qlen++;
	}
	json_decref(d->quota);
	d->quota = quota;
	quota = NULL;
	if (d->qlen)
		pthread_cond_broadcast(&d->work);
	pthread_mutex_unlock(&d->lock);
out:
	json_decref(quota);
	free(picks);
	store_queue_release(&q);
	router_unref(r);
	return gw_now_ms() - started;
}

void *dispatch_feeder_main(void *arg)
{
	struct dispatch *d = arg;

	while (!atomic_load(&d->stop)) {
		struct timespec until;
		int64_t took, wake;

		took = feed(d);
		dispatch_cancel_jobs(d);
		wake = gw_now_ms() + IDLE_POLL_MS;
		until.tv_sec = wake / 1000;
		until.tv_nsec = (wake % 1000) * 1000000L;
		pthread_mutex_lock(&d->lock);
		while (!d->poked && !atomic_load(&d->stop) &&
		       pthread_cond_timedwait(&d->wake, &d->lock, &until) == 0)
			;
		d->poked = false;
		pthread_mutex_unlock(&d->lock);
		/* A deep queue makes a feed cost milliseconds: commits coming in
		 * meanwhile are taken together, keeping the feeder under a fifth
		 * of a core. */
		if (took > 0)
			dispatch_sleep_ms((long)(4 * took));
	}
	return NULL;
}

/* Writer thread, after each commit: new work may be waiting. */
void dispatch_on_commit(void *arg)
{
	struct dispatch *d = arg;

	pthread_mutex_lock(&d->lock);
	d->poked = true;
	pthread_cond_signal(&d->wake);
	pthread_mutex_unlock(&d->lock);
}

/* A restarted gateway takes the room of the jobs already on the clusters
 * again (their placement, pinned, without a room check), so that their
 * executors, not yet started, are not given away before the watchers see
 * them. */
void dispatch_restore_reservations(struct dispatch *d, const struct router *r)
{
	static const enum store_state on_cluster[] = {STORE_SUBMITTED, STORE_RUNNING};
	size_t restored = 0;

	for (size_t c = 0; c < r->nclusters; c++)
		for (size_t s = 0; s < sizeof(on_cluster) / sizeof(on_cluster[0]); s++) {
			struct store_job *jobs = NULL;
			size_t n = 0;
			char err[GW_ERRLEN];

			if (store_jobs_in_state(d->store, on_cluster[s], r->clusters[c].name, RESTORE_MAX, &jobs, &n, err)) {
				gw_log(GW_LOG_WARN, "dispatch: reservations of %s: %s", r->clusters[c].name, err);
				continue;
			}
			for (size_t j = 0; j < n; j++) {
				struct store_job job; /* whole: the listed ones are brief */
				struct router_pin pin;
				json_t *labels, *spec, *errors = NULL;
				struct router_decision dec = {0};
				char detail[GW_ERRLEN];

				if (store_job_get(d->store, jobs[j].id, &job, err))
					continue;
				pin = (struct router_pin){.cluster = job.cluster, .namespace = job.namespace};
				labels = json_loads(job.labels_json, 0, NULL);
				spec = json_loads(job.spec_json, 0, NULL);
				if (job.namespace &&
				    router_place(r, NULL, &pin, labels, spec, job.id, &dec, &errors, detail) == ROUTER_OK &&
				    !dec.shared && pool_reserve(d->opts.pool, dec.cluster->name, job.id, dec.ns, dec.role, &dec.demand, true,
						 RESERVATION_MS))
					restored++;
				router_decision_release(&dec);
				json_decref(errors);
				json_decref(labels);
				json_decref(spec);
				store_job_release(&job);
			}
			for (size_t j = 0; j < n; j++)
				store_job_release(&jobs[j]);
			free(jobs);
		}
	if (restored)
		gw_log(GW_LOG_INFO, "dispatch: %zu job(s) on the clusters hold their room again", restored);
}
