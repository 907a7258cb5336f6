/* The dispatch loops.
 *
 * Exactly once: a job is claimed (QUEUED -> DISPATCHING, with placement
 * and a lease) and committed before any object is created; objects are
 * named after the job id, so a create retried after a crash or a lost
 * answer meets 409 AlreadyExists and adopts what exists; only then does
 * the job become SUBMITTED. A crash anywhere leaves a DISPATCHING job whose
 * lease expires and whose dispatch is redone on the same cluster.
 *
 * State flows back through one watcher per cluster: list, then watch from
 * the list's resourceVersion, resume after a dropped stream, re-list after
 * 410 Expired. A missed event can only delay a state change: the re-list
 * reconciles every job the cluster should know about. */
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

#define FEED_BATCH 256
#define FEED_PER_TEAM 64
#define IDLE_POLL_MS 250
#define HOUSEKEEPING_MS 1000
#define CLEAN_BATCH 50
#define DEADLINE_BATCH 1000
#define MAX_RUN_LABEL "max-run-seconds"
#define PRUNE_BATCH 200
#define PRUNE_IDLE_MS 60000
#define DEFAULT_RESTART_RETRIES 3
#define DEFAULT_RESTART_INTERVAL_S 5
#define CANCEL_RESEND_MS 5000
#define WATCH_TIMEOUT_S 60
#define WAIT_RETRY_MS 1000
/* A dispatched job's room in its namespace is held until the job leaves
 * the cluster; this bounds it should that never be seen. */
#define RESERVATION_MS (3600 * 1000)
/* Jobs per cluster and state whose room a restart takes again. */
#define RESTORE_MAX 100000
#define MAX_CLUSTERS 256
/* A cluster's watch lease: taken for WATCH_LEASE_MS, renewed every
 * WATCH_RENEW_MS; its holder stops watching WATCH_MARGIN_MS before the
 * lease would run out unrenewed, so two replicas never watch at once
 * (with clocks that agree within the margin). */
#define WATCH_LEASE_MS 6000
#define WATCH_RENEW_MS 1500
#define WATCH_MARGIN_MS 2000
#define USAGE_STALE_MS 15000
#define DEADLINE_REASON "DeadlineExceeded"

struct dispatch;

/* One cluster: its client, and what its watcher last saw of each live job
 * (so that a state seen before the job was SUBMITTED is not lost). */
struct cluster_rt {
	struct dispatch *d;
	char *name;
	enum router_mode mode;
	struct k8s_client *client;
	struct k8s_client *probe_client; /* no retries: a probe tells what it sees */
	pthread_t watchers[2];           /* pods; SparkApplications in operator mode */
	int nwatchers;
	atomic_bool stop;                /* the dispatch stops, or the cluster left */
	atomic_bool removed;
	_Atomic int64_t watch_until_ms;  /* this process's watch lease; 0: none */
	atomic_bool watch_halt;          /* stop watching: stop, or the lease is ending */
	atomic_int watches_open;         /* watcher threads listing or watching now */
	/* The API server's budget: a token bucket of cluster_qps and at most
	 * cluster_concurrency dispatches at once. */
	pthread_mutex_t rate_lock;       /* guards tokens, tokens_at_ms, inflight */
	pthread_cond_t rate_free;
	double tokens;
	int64_t tokens_at_ms;
	unsigned inflight;
	pthread_mutex_t lock; /* guards seen, early, pending_drivers */
	json_t *seen;         /* job id -> last object */
	/* Job ids whose object was seen while the store had them DISPATCHING:
	 * applied again until the dispatcher (maybe another replica's) has
	 * marked them SUBMITTED. */
	json_t *early;
	json_t *usage;        /* pod uid -> 1: its run recorded, 2: its end too (watcher only) */
	json_t *pending_drivers; /* operator mode: job id -> its Pending driver pod (under lock) */
	/* job id -> {pod name: why it is not running yet}: a pod the scheduler
	 * cannot place or whose container waits, while that lasts. */
	pthread_mutex_t waits_lock;
	json_t *pod_waits;
	int64_t nodes_listed_ms; /* the prober's last node list (prober only) */
};

struct dispatch {
	struct store *store;
	struct dispatch_options opts;
	char owner[64];
	struct cluster_rt *clusters;
	atomic_bool stop;

	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t wake;  /* feeder: commits happened, or stop */
	pthread_cond_t work;  /* workers: the queue has ids, or stop */
	char (*queue)[STORE_ID_LEN];
	size_t qhead, qlen, qcap;
	json_t *inflight;     /* job ids queued or being dispatched */
	json_t *cancel_sent;  /* job id -> time of the last DELETE */
	json_t *waiting;      /* job id -> [time before which it is not retried, why] */
	json_t *quota;        /* job id -> the limit it waits for, as of the last feed */
	/* Slots below nclusters are set up before the count grows, and never
	 * freed before dispatch_stop: readers need no lock. */
	atomic_size_t nclusters;
	pthread_mutex_t clusters_lock; /* serializes adding and removing */
	bool poked;

	/* Gateway processes alive on the store, this one included: each
	 * takes its part of a cluster's request budget. */
	atomic_long replicas;
	pthread_t feeder, prober, housekeeper, leaser;
	bool feeder_started, prober_started, housekeeper_started, leaser_started;
	pthread_t *workers;
	unsigned nworkers;
};

static const char *jstr(const json_t *v)
{
	const char *s = json_string_value(v);

	return s ? s : "";
}

static struct cluster_rt *cluster_named(struct dispatch *d, const char *name)
{
	size_t n = atomic_load(&d->nclusters);

	for (size_t i = 0; name && i < n; i++)
		if (!atomic_load(&d->clusters[i].removed) && !strcmp(d->clusters[i].name, name))
			return &d->clusters[i];
	return NULL;
}

/* Whether this process holds the cluster's watch lease, with time to spare. */
static bool watching(struct cluster_rt *cl)
{
	return gw_now_ms() + WATCH_MARGIN_MS < atomic_load(&cl->watch_until_ms);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* A state change, setting the placement and driver fields given in
 * fields (may be NULL); a job that moved on meanwhile (ESTATE) is not an
 * error. */
static enum gw_err move_job(struct dispatch *d, const char *id, enum store_state to,
			    const char *reason, const char *message,
			    const struct store_op *fields)
{
	struct store_op op = {.kind = STORE_OP_TRANSITION, .job_id = id, .to = to,
			      .reason = reason, .message = message};
	enum gw_err rc;

	if (fields) {
		op.driver_pod = fields->driver_pod;
		op.spark_ui = fields->spark_ui;
		op.spark_app_id = fields->spark_app_id;
		op.not_before_ms = fields->not_before_ms;
		op.new_run = fields->new_run;
	}
	rc = store_execute(d->store, &op);
	/* Off the cluster (ended, or back to the queue): its room is free. */
	if (rc == GW_OK && (to == STORE_QUEUED || store_state_terminal(to)))
		pool_release(d->opts.pool, id);
	if (rc && rc != GW_ESTATE)
		gw_log(GW_LOG_WARN, "dispatch: job %s -> %s: %s", id, store_state_name(to), op.err);
	else if (rc == GW_OK)
		gw_log(GW_LOG_DEBUG, "dispatch: job %s -> %s (%s)", id, store_state_name(to), reason);
	store_job_release(&op.job);
	return rc;
}

static void object_path(const char *ns, const char *name, const char *kind,
			char *out, size_t len)
{
	if (!strcmp(kind, "SparkApplication"))
		snprintf(out, len, "/apis/sparkoperator.k8s.io/v1beta2/namespaces/%s/sparkapplications%s%s",
			 ns, name ? "/" : "", name ? name : "");
	else if (!strcmp(kind, "Pod"))
		snprintf(out, len, "/api/v1/namespaces/%s/pods%s%s", ns, name ? "/" : "", name ? name : "");
	else if (!strcmp(kind, "PodGroup"))
		snprintf(out, len, "/apis/scheduling.volcano.sh/v1beta1/namespaces/%s/podgroups%s%s", ns,
			 name ? "/" : "", name ? name : "");
	else if (!strcmp(kind, "Service"))
		snprintf(out, len, "/api/v1/namespaces/%s/services%s%s", ns, name ? "/" : "", name ? name : "");
	else
		snprintf(out, len, "/api/v1/namespaces/%s/configmaps%s%s", ns, name ? "/" : "", name ? name : "");
}

/* One API server call in the metrics: verb and status (or "error": no answer). */
static void count_call(struct cluster_rt *cl, const char *verb, enum gw_err rc, long status)
{
	char name[200], labels[300];

	gw_metrics_escape(cl->name, name, sizeof(name));
	if (rc)
		snprintf(labels, sizeof(labels), "cluster=\"%s\",verb=\"%s\",code=\"error\"", name, verb);
	else
		snprintf(labels, sizeof(labels), "cluster=\"%s\",verb=\"%s\",code=\"%ld\"", name, verb, status);
	gw_metrics_add(cl->d->opts.metrics, "sparkgw_apiserver_requests_total", labels, 1);
}

static void count_cluster(struct cluster_rt *cl, const char *family, const char *label, const char *value)
{
	char name[200], v[100], labels[400];

	gw_metrics_escape(cl->name, name, sizeof(name));
	gw_metrics_escape(value, v, sizeof(v));
	snprintf(labels, sizeof(labels), "cluster=\"%s\",%s=\"%s\"", name, label, v);
	gw_metrics_add(cl->d->opts.metrics, family, labels, 1);
}

/* This process's part of a cluster's budget: requests a second, and
 * dispatches at once. Replicas split it, so that together they keep to
 * what the cluster was given. */
static double cluster_qps(const struct dispatch *d)
{
	return (double)d->opts.cluster_qps / (double)atomic_load(&d->replicas);
}

static unsigned cluster_concurrency(const struct dispatch *d)
{
	unsigned long n = (unsigned long)atomic_load(&d->replicas), part = d->opts.cluster_concurrency / n;

	return part ? (unsigned)part : 1;
}

/* Waits for a token of the cluster's request budget. */
static void take_token(struct cluster_rt *cl)
{
	double qps = cluster_qps(cl->d);

	pthread_mutex_lock(&cl->rate_lock);
	for (;;) {
		int64_t now = gw_now_ms();
		long wait_ms;

		cl->tokens += (double)(now - cl->tokens_at_ms) / 1000.0 * qps;
		if (cl->tokens > qps)
			cl->tokens = qps; /* a second's worth of burst */
		cl->tokens_at_ms = now;
		if (cl->tokens >= 1.0) {
			cl->tokens -= 1.0;
			break;
		}
		wait_ms = (long)((1.0 - cl->tokens) / qps * 1000.0) + 1;
		pthread_mutex_unlock(&cl->rate_lock);
		sleep_ms(wait_ms);
		pthread_mutex_lock(&cl->rate_lock);
	}
	pthread_mutex_unlock(&cl->rate_lock);
}

/* Whether a dispatch to the cluster would wait for its budget now. */
static bool cluster_limited(struct cluster_rt *cl)
{
	double tokens;
	bool full;

	pthread_mutex_lock(&cl->rate_lock);
	tokens = cl->tokens + (double)(gw_now_ms() - cl->tokens_at_ms) / 1000.0 * cluster_qps(cl->d);
	full = cl->inflight >= cluster_concurrency(cl->d);
	pthread_mutex_unlock(&cl->rate_lock);
	return full || tokens < 1.0;
}

static void enter_cluster(struct cluster_rt *cl)
{
	pthread_mutex_lock(&cl->rate_lock);
	while (cl->inflight >= cluster_concurrency(cl->d))
		pthread_cond_wait(&cl->rate_free, &cl->rate_lock);
	cl->inflight++;
	pthread_mutex_unlock(&cl->rate_lock);
}

static void leave_cluster(struct cluster_rt *cl)
{
	pthread_mutex_lock(&cl->rate_lock);
	cl->inflight--;
	pthread_cond_signal(&cl->rate_free);
	pthread_mutex_unlock(&cl->rate_lock);
}

enum create_outcome { CREATED, RETRY, REJECTED };

/* Creates obj, or adopts the one a previous attempt made (409 with our job
 * label). *uid gets the object's uid. */
static enum create_outcome create_or_adopt(struct cluster_rt *cl, json_t *obj,
					   const char *job_id, char *uid, size_t uidlen,
					   char *why)
{
	const char *kind = jstr(json_object_get(obj, "kind"));
	const char *ns = jstr(json_object_get(json_object_get(obj, "metadata"), "namespace"));
	const char *name = jstr(json_object_get(json_object_get(obj, "metadata"), "name"));
	struct k8s_response r;
	char path[512];
	enum gw_err rc;
	enum create_outcome out;

	object_path(ns, NULL, kind, path, sizeof(path));
	take_token(cl);
	rc = k8s_request(cl->client, "POST", path, obj, &r, why);
	count_call(cl, "POST", rc, rc ? 0 : r.status);
	/* Real calls count towards the cluster's health too. */
	pool_report(cl->d->opts.pool, cl->name, rc == GW_OK && r.status < 500, why);
	if (rc)
		return RETRY;
	if (r.status == 409 && !strcmp(k8s_status_reason(&r), "AlreadyExists")) {
		k8s_response_release(&r);
		object_path(ns, name, kind, path, sizeof(path));
		take_token(cl);
		rc = k8s_request(cl->client, "GET", path, NULL, &r, why);
		count_call(cl, "GET", rc, rc ? 0 : r.status);
		if (rc)
			return RETRY;
		if (r.status == 200 &&
		    strcmp(jstr(json_object_get(json_object_get(json_object_get(r.body, "metadata"), "labels"),
						DISPATCH_JOB_LABEL)),
			   job_id) && strcmp(kind, "Service") && strcmp(kind, "ConfigMap")) {
			gw_seterr(why, "%s %s/%s exists and belongs to another job", kind, ns, name);
			k8s_response_release(&r);
			return REJECTED;
		}
		if (r.status == 200)
			gw_log(GW_LOG_INFO, "dispatch: job %s: adopted existing %s %s/%s", job_id, kind, ns, name);
	}
	if (r.status == 200 || r.status == 201) {
		snprintf(uid, uidlen, "%s", jstr(json_object_get(json_object_get(r.body, "metadata"), "uid")));
		out = CREATED;
	} else if (r.status == 429 || r.status >= 500 || r.status == 404 /* raced a delete */) {
		out = RETRY;
	} else {
		out = REJECTED;
	}
	k8s_response_release(&r);
	return out;
}

/* Deletes the job's driver (and with it, by ownership, the rest). Returns
 * the HTTP status, or 0 if the cluster did not answer. */
static long delete_driver(struct cluster_rt *cl, const struct store_job *job)
{
	struct dispatch_names names;
	json_t *opts = json_pack("{s:s, s:s, s:s}", "kind", "DeleteOptions", "apiVersion", "v1",
				 "propagationPolicy", "Foreground");
	struct k8s_response r;
	char path[512], err[GW_ERRLEN];
	long status = 0;
	enum gw_err rc;

	dispatch_names(job, &names);
	if (cl->mode == ROUTER_SPARK_OPERATOR)
		object_path(job->namespace, names.app, "SparkApplication", path, sizeof(path));
	else
		object_path(job->namespace, names.driver_pod, "Pod", path, sizeof(path));
	take_token(cl);
	rc = k8s_request(cl->client, "DELETE", path, opts, &r, err);
	count_call(cl, "DELETE", rc, rc ? 0 : r.status);
	if (rc == GW_OK)
		status = r.status;
	else
		gw_log(GW_LOG_WARN, "dispatch: delete %s: %s", path, err);
	k8s_response_release(&r);
	json_decref(opts);
	return status;
}

static void apply_seen(struct cluster_rt *cl, const char *job_id);

static long retry_delay_ms(long base_ms, int attempts)
{
	long ms = base_ms << (attempts < 10 ? attempts - 1 : 9);

	return ms > 60000 ? 60000 : ms;
}

/* The job's restartPolicy, with the gateway's defaults. */
struct restart_policy {
	bool on_failure;
	int retries;          /* runs after the first, on failure */
	int interval_s;
	int submit_attempts;  /* dispatch attempts */
	long submit_base_ms;  /* first dispatch retry delay */
};

static struct restart_policy restart_policy(const struct dispatch *d, const struct store_job *job)
{
	json_t *spec = json_loads(job->spec_json, 0, NULL);
	const json_t *rp = json_object_get(spec, "restartPolicy");
	const json_t *v;
	struct restart_policy p = {
		.on_failure = !strcmp(jstr(json_object_get(rp, "type")), "OnFailure"),
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

		if (res != ROUTER_OK || pool_reserve(d->opts.pool, dec->cluster->name, job->id, dec->ns, dec->role,
						     &dec->demand, job->cluster != NULL, RESERVATION_MS))
			return res;
		router_decision_release(dec);
	}
	snprintf(why, len, "NoCapacity: concurrent dispatches took the room that placement found");
	return ROUTER_WAIT;
}

static void dispatch_one(struct dispatch *d, const char *job_id)
{
	struct store_op claim = {.kind = STORE_OP_CLAIM, .job_id = job_id, .reason = "Dispatching",
				 .lease_owner = d->owner};
	struct router *r = router_holder_get(d->opts.policy);
	struct router_decision dec = {0};
	struct cluster_rt *cl;
	struct store_job job = {0};
	struct dispatch_names names;
	char err[GW_ERRLEN] = "", uid[64] = "", owner_uid[64] = "", ui[300], msg[GW_ERRLEN + 64];
	char why[GW_ERRLEN * 2];
	char *placement = NULL;
	json_t *objs = NULL, *pj;
	enum create_outcome outcome = CREATED;
	struct restart_policy policy;
	enum gw_err rc;
	size_t i;
	json_t *obj;

	if (store_job_get(d->store, job_id, &job, err))
		goto out;
	/* A retried dispatch stays where it was placed (the pin): elsewhere it
	 * could run twice. */
	switch (place_and_reserve(d, r, &job, &dec, why, sizeof(why))) {
	case ROUTER_OK:
		break;
	case ROUTER_INVALID:
		move_job(d, job.id, STORE_FAILED, "Unplaceable", why, NULL);
		goto out;
	case ROUTER_WAIT:
	case ROUTER_TOO_BIG: /* place() makes it a wait */
		pthread_mutex_lock(&d->lock);
		json_object_set_new(d->waiting, job.id,
				    json_pack("[I, s]", (json_int_t)(gw_now_ms() + WAIT_RETRY_MS), why));
		pthread_mutex_unlock(&d->lock);
		gw_log(GW_LOG_DEBUG, "dispatch: job %s waits: %s", job.id, why);
		goto out;
	}
	cl = cluster_named(d, dec.cluster->name);
	if (!cl) {
		snprintf(msg, sizeof(msg), "cluster %s has no connection", dec.cluster->name);
		move_job(d, job.id, STORE_FAILED, "ClusterUnknown", msg, NULL);
		goto out;
	}
	pj = dispatch_placement_json(&job, &dec);
	placement = json_dumps(pj, JSON_COMPACT);
	json_decref(pj);
	claim.cluster = dec.cluster->name;
	claim.namespace = dec.ns->name;
	claim.placement_json = placement;
	claim.lease_until_ms = gw_now_ms() + (int64_t)d->opts.lease_s * 1000;
	claim.pool = dec.pool->name;
	claim.demand = dispatch_demand(&dec.demand);
	dispatch_team_limits(r, job.team, d->opts.max_running_per_team, 0, &claim.team_limits, NULL);
	dispatch_pool_limits(r, dec.pool->name, &claim.pool_limits);
	if ((rc = store_execute(d->store, &claim)) != GW_OK) {
		pool_release(d->opts.pool, job.id);
		if (rc == GW_EBUSY) { /* at a limit (another process took the room): wait, saying so */
			pthread_mutex_lock(&d->lock);
			json_object_set_new(d->waiting, job.id,
					    json_pack("[I, s]", (json_int_t)(gw_now_ms() + WAIT_RETRY_MS), claim.err));
			pthread_mutex_unlock(&d->lock);
		}
		store_job_release(&claim.job);
		goto out; /* taken, cancelled, gone, or over a limit */
	}
	store_job_release(&job);
	job = claim.job;
	policy = restart_policy(d, &job);

	objs = dispatch_manifests(&job, &dec, err);
	if (!objs)
		outcome = REJECTED;
	if (cluster_limited(cl))
		snprintf(msg, sizeof(msg),
			 "ClusterRateLimited: cluster %s takes %u requests/s and %u dispatches at once"
			 " (over %ld gateway processes)", cl->name, d->opts.cluster_qps, d->opts.cluster_concurrency,
			 atomic_load(&d->replicas));
	else
		snprintf(msg, sizeof(msg), "Dispatching: creating the driver on %s/%s", cl->name, job.namespace);
	note_phase(d, job.id, msg);
	enter_cluster(cl);
	json_array_foreach(objs, i, obj) {
		json_t *owner = json_array_get(json_object_get(json_object_get(obj, "metadata"), "ownerReferences"), 0);

		if (!keep_lease(d, &job)) {
			leave_cluster(cl);
			goto out; /* its new owner finishes the dispatch */
		}
		/* The first object is the driver (or the application): the
		 * others are owned by it, so go with it. */
		if (owner)
			json_object_set_new(owner, "uid", json_string(owner_uid));
		outcome = create_or_adopt(cl, obj, job.id, uid, sizeof(uid), err);
		if (outcome != CREATED)
			break;
		if (i == 0)
			snprintf(owner_uid, sizeof(owner_uid), "%s", uid);
	}
	leave_cluster(cl);

	dispatch_names(&job, &names);
	if (outcome == CREATED) {
		/* The operator names its driver as spark-submit would: app-driver. */
		struct store_op sub = {.driver_pod = names.driver_pod, .spark_ui = ui};

		snprintf(ui, sizeof(ui), cl->mode == ROUTER_SPARK_OPERATOR
				 ? "http://%s-ui-svc.%s.svc:4040" : "http://%s.%s.svc:4040",
			 cl->mode == ROUTER_SPARK_OPERATOR ? names.app : names.service, job.namespace);
		snprintf(msg, sizeof(msg), "created on %s/%s", cl->name, job.namespace);
		if (job.run <= 1) /* a first run: from its submission */
			gw_metrics_observe(d->opts.metrics, "sparkgw_dispatch_latency_seconds", "",
					   (double)(gw_now_ms() - job.created_ms) / 1e3);
		count_cluster(cl, "sparkgw_dispatches_total", "outcome", "created");
		if (move_job(d, job.id, STORE_SUBMITTED,
			     cl->mode == ROUTER_SPARK_OPERATOR ? "ApplicationCreated" : "DriverCreated",
			     msg, &sub) == GW_ESTATE) {
			/* Cancelled while we created it: take it down again. */
			delete_driver(cl, &job);
		} else {
			apply_seen(cl, job.id);
		}
	} else if (outcome == REJECTED) {
		count_cluster(cl, "sparkgw_dispatches_total", "outcome", "rejected");
		snprintf(msg, sizeof(msg), "the cluster refused the job: %.*s", GW_ERRLEN, err);
		move_job(d, job.id, STORE_FAILED, "DispatchRejected", msg, NULL);
	} else {
		struct store_op back = {.not_before_ms = gw_now_ms() + retry_delay_ms(policy.submit_base_ms,
										      job.attempts)};

		count_cluster(cl, "sparkgw_dispatches_total", "outcome", "failed");
		if (job.attempts >= policy.submit_attempts) {
			snprintf(msg, sizeof(msg), "gave up after %d attempts: %s", job.attempts, err);
			move_job(d, job.id, STORE_FAILED, "DispatchFailed", msg, NULL);
		} else {
			snprintf(msg, sizeof(msg), "attempt %d failed: %s", job.attempts, err);
			move_job(d, job.id, STORE_QUEUED, "DispatchRetry", msg, &back);
		}
	}
out:
	json_decref(objs);
	free(placement);
	router_decision_release(&dec);
	store_job_release(&job);
	router_unref(r);
}

static void *worker_main(void *arg)
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

/* The reason a cancelled job ends with: the one it was cancelled for. */
static const char *cancel_reason(const struct store_job *job)
{
	return job->reason && !strcmp(job->reason, DEADLINE_REASON) ? DEADLINE_REASON : "Deleted";
}

/* A job's longest run in seconds (label max-run-seconds, else its pool's
 * maxRunSeconds, else the configured default); 0 for none. */
static long max_run_seconds(const struct dispatch *d, const struct router *r, const struct store_job *job)
{
	json_t *labels = json_loads(job->labels_json, 0, NULL);
	const char *label = json_string_value(json_object_get(labels, MAX_RUN_LABEL));
	const struct router_pool *pool = router_pool_named(r, job->pool);
	long limit = label ? strtol(label, NULL, 10)
		     : pool && pool->max_run_s ? (long)pool->max_run_s : (long)d->opts.max_run_s;

	json_decref(labels);
	return limit;
}

static void cancel_overdue(struct dispatch *d, const struct router *r, struct store_job *jobs, size_t n,
			   int64_t now)
{
	for (size_t i = 0; i < n && !atomic_load(&d->stop); i++) {
		long limit = max_run_seconds(d, r, &jobs[i]);
		char msg[128];

		if (limit <= 0 || now - jobs[i].updated_ms < (int64_t)limit * 1000)
			continue;
		snprintf(msg, sizeof(msg), "ran longer than its %ld s", limit);
		move_job(d, jobs[i].id, STORE_CANCELLING, DEADLINE_REASON, msg, NULL);
	}
	store_jobs_free(jobs, n);
}

/* Jobs running longer than they may are cancelled with reason
 * DeadlineExceeded. A RUNNING job is not written again until it ends, so
 * updated_ms is its start. Only candidates are read: the jobs running
 * longer than the shortest pool or default limit, and those with a label
 * of their own. */
static void enforce_deadlines(struct dispatch *d)
{
	struct router *r = router_holder_get(d->opts.policy);
	long shortest = (long)d->opts.max_run_s;
	struct store_job *jobs;
	size_t n;
	char err[GW_ERRLEN];
	int64_t now = gw_now_ms();

	for (size_t i = 0; i < r->npools; i++)
		if (r->pools[i].max_run_s && (!shortest || (long)r->pools[i].max_run_s < shortest))
			shortest = (long)r->pools[i].max_run_s;
	if (shortest && !store_jobs_running_before(d->store, now - (int64_t)shortest * 1000, NULL,
						   DEADLINE_BATCH, &jobs, &n, err))
		cancel_overdue(d, r, jobs, n, now);
	if (!store_jobs_running_before(d->store, 0, MAX_RUN_LABEL, DEADLINE_BATCH, &jobs, &n, err))
		cancel_overdue(d, r, jobs, n, now);
	router_unref(r);
}

/* Deletes finished jobs' cluster objects once their time to live is over
 * (spec timeToLiveSeconds, else the configured default). */
static void clean_up(struct dispatch *d)
{
	struct store_job *jobs;
	size_t n;
	char err[GW_ERRLEN];

	if (store_jobs_to_clean(d->store, gw_now_ms(), (int)d->opts.cleanup_after_s, CLEAN_BATCH, &jobs,
				&n, err))
		return;
	for (size_t i = 0; i < n && !atomic_load(&d->stop); i++) {
		struct cluster_rt *cl = cluster_named(d, jobs[i].cluster);
		struct store_op done = {.kind = STORE_OP_CLEANED, .job_id = jobs[i].id};
		long status;

		if (cl && !watching(cl))
			continue; /* the replica that watches the cluster cleans it */
		status = cl ? delete_driver(cl, &jobs[i]) : 404; /* a cluster gone took them along */
		if (status != 200 && status != 202 && status != 404)
			continue; /* tried again on the next round */
		if (store_execute(d->store, &done))
			gw_log(GW_LOG_WARN, "dispatch: job %s: %s", jobs[i].id, done.err);
		else
			gw_log(GW_LOG_DEBUG, "dispatch: job %s: cluster objects deleted", jobs[i].id);
		store_job_release(&done.job);
	}
	store_jobs_free(jobs, n);
}

/* Deletes one batch of finished jobs older than the retention; true when
 * there may be more. Small batches keep each commit short, so requests
 * queued behind one hardly notice. */
static bool prune(struct dispatch *d)
{
	struct store_op op = {.kind = STORE_OP_PRUNE, .limit = PRUNE_BATCH,
			      .before_ms = gw_now_ms() - (int64_t)d->opts.retention_s * 1000};

	if (store_execute(d->store, &op)) {
		gw_log(GW_LOG_WARN, "dispatch: pruning: %s", op.err);
		return false;
	}
	if (op.pruned)
		gw_log(GW_LOG_INFO, "dispatch: pruned %u finished jobs past retention", op.pruned);
	return op.pruned == PRUNE_BATCH;
}

static void *housekeeper_main(void *arg)
{
	struct dispatch *d = arg;
	int64_t prune_at = 0;

	while (!atomic_load(&d->stop)) {
		long pause = HOUSEKEEPING_MS;

		enforce_deadlines(d);
		clean_up(d);
		if (d->opts.retention_s && gw_now_ms() >= prune_at) {
			int64_t idle = (int64_t)d->opts.retention_s * 250; /* a quarter of it */

			if (prune(d))
				pause = 50; /* a backlog: the next batch soon, not at once */
			else
				prune_at = gw_now_ms() + (idle < PRUNE_IDLE_MS ? idle : PRUNE_IDLE_MS);
		}
		for (long t = 0; t < pause && !atomic_load(&d->stop); t += 50)
			sleep_ms(50);
	}
	return NULL;
}

static void cancel_jobs(struct dispatch *d)
{
	struct store_job *jobs;
	size_t n;
	char err[GW_ERRLEN];
	int64_t now = gw_now_ms();

	if (store_jobs_in_state(d->store, STORE_CANCELLING, NULL, FEED_BATCH, &jobs, &n, err))
		return;
	for (size_t i = 0; i < n && !atomic_load(&d->stop); i++) {
		struct cluster_rt *cl = cluster_named(d, jobs[i].cluster);
		json_t *sent;
		long status;

		if (cl && !watching(cl))
			continue; /* the replica that watches the cluster deletes, and sees it through */
		pthread_mutex_lock(&d->lock);
		sent = json_object_get(d->cancel_sent, jobs[i].id);
		if (sent && now - json_integer_value(sent) < CANCEL_RESEND_MS) {
			pthread_mutex_unlock(&d->lock);
			continue;
		}
		json_object_set_new(d->cancel_sent, jobs[i].id, json_integer(now));
		pthread_mutex_unlock(&d->lock);
		if (!cl) {
			move_job(d, jobs[i].id, STORE_CANCELLED, cancel_reason(&jobs[i]), "its cluster is gone", NULL);
			continue;
		}
		status = delete_driver(cl, &jobs[i]);
		/* Gone already (or never made): the cancel is complete. Otherwise
		 * the watcher sees the deletion through. */
		if (status == 404)
			move_job(d, jobs[i].id, STORE_CANCELLED, cancel_reason(&jobs[i]),
				 "the cluster confirmed the deletion", NULL);
	}
	store_jobs_free(jobs, n);
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

static void *feeder_main(void *arg)
{
	struct dispatch *d = arg;

	while (!atomic_load(&d->stop)) {
		struct timespec until;
		int64_t took, wake;

		took = feed(d);
		cancel_jobs(d);
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
			sleep_ms((long)(4 * took));
	}
	return NULL;
}

/* Writer thread, after each commit: new work may be waiting. */
static void on_commit(void *arg)
{
	struct dispatch *d = arg;

	pthread_mutex_lock(&d->lock);
	d->poked = true;
	pthread_cond_signal(&d->wake);
	pthread_mutex_unlock(&d->lock);
}

/* ---- watchers ---- */

/* Where a driver pod says the job is: as observed_state. Waiting past
 * the pending or image pull timeout fails it (Unschedulable,
 * ErrImagePull). */
static int pod_state(struct cluster_rt *cl, const json_t *obj, char *reason, size_t rlen, char *message,
		     size_t mlen)
{
	int64_t created = 0, now = gw_now_ms();
	const json_t *status = json_object_get(obj, "status");
	const char *phase = jstr(json_object_get(status, "phase"));
	const json_t *cs = json_array_get(json_object_get(status, "containerStatuses"), 0);
	const json_t *term = json_object_get(json_object_get(cs, "state"), "terminated");
	const json_t *waiting = json_object_get(json_object_get(cs, "state"), "waiting");
	const json_t *conds = json_object_get(status, "conditions");
	size_t i;
	json_t *c;

	gw_time_parse(jstr(json_object_get(json_object_get(obj, "metadata"), "creationTimestamp")), &created);
	if (!strcmp(phase, "Running"))
		return snprintf(reason, rlen, "DriverRunning"), STORE_RUNNING;
	if (!strcmp(phase, "Succeeded"))
		return snprintf(reason, rlen, "Completed"), STORE_SUCCEEDED;
	if (!strcmp(phase, "Failed")) {
		const char *r = jstr(json_object_get(term, "reason"));

		snprintf(reason, rlen, "%s", !strcmp(r, "OOMKilled") ? "OOMKilled" : "NonZeroExitCode");
		snprintf(message, mlen, "the driver exited with code %lld%s%s",
			 (long long)json_integer_value(json_object_get(term, "exitCode")),
			 *r ? ": " : "", r);
		return STORE_FAILED;
	}
	if (waiting) {
		const char *r = jstr(json_object_get(waiting, "reason"));

		if ((!strcmp(r, "ErrImagePull") || !strcmp(r, "ImagePullBackOff") ||
		     !strcmp(r, "InvalidImageName")) &&
		    now - created >= (int64_t)cl->d->opts.image_pull_timeout_s * 1000) {
			snprintf(reason, rlen, "ErrImagePull");
			snprintf(message, mlen, "%s", jstr(json_object_get(waiting, "message")));
			return STORE_FAILED;
		}
	}
	json_array_foreach(conds, i, c)
		if (!strcmp(jstr(json_object_get(c, "type")), "PodScheduled") &&
		    !strcmp(jstr(json_object_get(c, "reason")), "Unschedulable") &&
		    now - created >= (int64_t)cl->d->opts.pending_timeout_s * 1000) {
			snprintf(reason, rlen, "Unschedulable");
			snprintf(message, mlen, "%s", jstr(json_object_get(c, "message")));
			return STORE_FAILED;
		}
	return -1;
}

/* Where the object says the job is: the state it should move to, with
 * reason and message, or -1 for no change (yet). */
static int observed_state(struct cluster_rt *cl, const json_t *obj, char *reason,
			  size_t rlen, char *message, size_t mlen)
{
	if (cl->mode == ROUTER_SPARK_OPERATOR) {
		const json_t *st = json_object_get(json_object_get(obj, "status"), "applicationState");
		const char *s = jstr(json_object_get(st, "state"));

		if (!strcmp(s, "RUNNING"))
			return snprintf(reason, rlen, "DriverRunning"), STORE_RUNNING;
		if (!strcmp(s, "COMPLETED"))
			return snprintf(reason, rlen, "Completed"), STORE_SUCCEEDED;
		if (!strcmp(s, "FAILED") || !strcmp(s, "SUBMISSION_FAILED")) {
			snprintf(reason, rlen, "%s", !strcmp(s, "FAILED") ? "ApplicationFailed" : "SubmissionFailed");
			snprintf(message, mlen, "%s", jstr(json_object_get(st, "errorMessage")));
			return STORE_FAILED;
		}
		return -1;
	}
	return pod_state(cl, obj, reason, rlen, message, mlen);
}

/* The run an object belongs to (label absent: the first). */
static int object_run(const json_t *obj)
{
	const char *run = json_string_value(json_object_get(
		json_object_get(json_object_get(obj, "metadata"), "labels"), DISPATCH_RUN_LABEL));

	return run ? atoi(run) : 1;
}

/* The job's run failed: under restartPolicy OnFailure with runs left it
 * goes back to the queue for a new run (placed afresh, after the
 * interval), and the failed run's objects are deleted (true); else it
 * FAILED. */
static bool run_failed(struct cluster_rt *cl, const struct store_job *job, const char *reason,
		       const char *message)
{
	struct restart_policy p = restart_policy(cl->d, job);
	struct store_op again = {.new_run = true};
	char msg[GW_ERRLEN + 128];

	if (!p.on_failure || job->run > p.retries) {
		move_job(cl->d, job->id, STORE_FAILED, reason, message, NULL);
		return false;
	}
	snprintf(msg, sizeof(msg), "run %d failed (%s%s%.*s); run %d of %d starts in %d s", job->run, reason,
		 message ? ": " : "", GW_ERRLEN, message ? message : "", job->run + 1, p.retries + 1,
		 p.interval_s);
	again.not_before_ms = gw_now_ms() + (int64_t)p.interval_s * 1000;
	if (move_job(cl->d, job->id, STORE_QUEUED, "Restarting", msg, &again) != GW_OK)
		return false;
	delete_driver(cl, job);
	return true;
}

/* The listed jobs are brief: the restart policy is in the whole job. */
static void lost_driver(struct cluster_rt *cl, const char *job_id)
{
	struct store_job job;
	char err[GW_ERRLEN];

	if (store_job_get(cl->d->store, job_id, &job, err))
		return;
	run_failed(cl, &job, "DriverLost", "the driver is no longer on the cluster");
	store_job_release(&job);
}

/* The Spark application id the object shows (the History Server names
 * the application by it): the driver pod's spark-app-selector label, or
 * the operator's status.sparkApplicationId; NULL when none yet. */
static const char *spark_app_id(const struct cluster_rt *cl, const json_t *obj)
{
	const char *id = cl->mode == ROUTER_SPARK_OPERATOR
				 ? json_string_value(json_object_get(json_object_get(obj, "status"), "sparkApplicationId"))
				 : json_string_value(json_object_get(json_object_get(json_object_get(obj, "metadata"),
									     "labels"), "spark-app-selector"));

	return id && *id ? id : NULL;
}

/* Applies what the cluster says of one object to its job. */
static void apply_object(struct cluster_rt *cl, const char *type, json_t *obj)
{
	const char *id = jstr(json_object_get(json_object_get(json_object_get(obj, "metadata"), "labels"),
					      DISPATCH_JOB_LABEL));
	struct store_job job;
	char err[GW_ERRLEN], reason[64] = "", message[GW_ERRLEN] = "";
	bool deleted = !strcmp(type, "DELETED");
	int to;

	if (!*id || store_job_get(cl->d->store, id, &job, err))
		return;
	/* Objects elsewhere, or of an earlier run, say nothing of this one. */
	if (!job.cluster || strcmp(job.cluster, cl->name) || object_run(obj) != job.run) {
		store_job_release(&job);
		return;
	}
	pthread_mutex_lock(&cl->lock);
	if (deleted || store_state_terminal(job.state))
		json_object_del(cl->seen, id);
	else
		json_object_set(cl->seen, id, obj);
	if (!deleted && job.state == STORE_DISPATCHING)
		json_object_set_new(cl->early, id, json_true());
	else
		json_object_del(cl->early, id);
	pthread_mutex_unlock(&cl->lock);

	if (deleted) {
		if (job.state == STORE_CANCELLING)
			move_job(cl->d, id, STORE_CANCELLED, cancel_reason(&job), "the cluster confirmed the deletion",
				 NULL);
		else if (job.state == STORE_SUBMITTED || job.state == STORE_RUNNING)
			run_failed(cl, &job, "DriverDeleted", "the driver was deleted on the cluster");
		store_job_release(&job);
		return;
	}
	to = observed_state(cl, obj, reason, sizeof(reason), message, sizeof(message));
	if (to >= 0 && (int)job.state != to && store_transition_allowed(job.state, (enum store_state)to)) {
		bool timed_out = !strcmp(reason, "Unschedulable") || !strcmp(reason, "ErrImagePull");

		if (to == STORE_FAILED && job.state != STORE_CANCELLING) {
			if (run_failed(cl, &job, reason, *message ? message : NULL))
				timed_out = false; /* its objects are deleted already */
		} else {
			struct store_op seen = {.spark_app_id = spark_app_id(cl, obj)};

			move_job(cl->d, id, (enum store_state)to, reason, *message ? message : NULL, &seen);
		}
		if (timed_out) /* it would wait forever: free the namespace */
			delete_driver(cl, &job);
	}
	store_job_release(&job);
}

/* After SUBMITTED: anything the watcher saw earlier now applies. */
static void apply_seen(struct cluster_rt *cl, const char *job_id)
{
	json_t *obj;

	pthread_mutex_lock(&cl->lock);
	obj = json_incref(json_object_get(cl->seen, job_id));
	pthread_mutex_unlock(&cl->lock);
	if (obj)
		apply_object(cl, "MODIFIED", obj);
	json_decref(obj);
}

/* Pending objects are re-judged on a clock, as nothing may change on the
 * cluster while a pod waits for capacity or an image. */
static void recheck_pending(struct cluster_rt *cl, bool all)
{
	json_t *copy;
	const char *id;
	json_t *obj;

	json_t *early;

	pthread_mutex_lock(&cl->lock);
	copy = json_copy(cl->seen);
	early = json_copy(cl->early);
	pthread_mutex_unlock(&cl->lock);
	/* On the clock, only pending driver pods, whose timeouts run out with
	 * nothing new on the cluster, and objects seen before their job was
	 * SUBMITTED; the rest was applied when seen (and is again on every
	 * re-watch, all). */
	json_object_foreach(copy, id, obj)
		if (all || json_object_get(early, id) ||
		    !strcmp(jstr(json_object_get(json_object_get(obj, "status"), "phase")), "Pending"))
			apply_object(cl, "MODIFIED", obj);
	json_decref(copy);
	json_decref(early);
}

static const char *watch_path(bool apps)
{
	/* Every pod of a job (drivers and executors) for the namespaces' usage;
	 * the drivers, or the SparkApplications, for the jobs' state. */
	return apps ? "/apis/sparkoperator.k8s.io/v1beta2/sparkapplications?labelSelector=sparkgw%2Fjob-id"
		    : "/api/v1/pods?labelSelector=sparkgw%2Fjob-id";
}

static bool is_driver(const json_t *pod)
{
	const char *role = json_string_value(json_object_get(
		json_object_get(json_object_get(pod, "metadata"), "labels"), "spark-role"));

	return role && !strcmp(role, "driver");
}

/* A usage record on its way to the store; strings copied in. */
struct usage_op {
	struct store_op op;
	char uid[64], cluster[128], job_id[STORE_ID_LEN], role[16];
};

static void usage_done(struct store_op *op, void *arg)
{
	(void)arg;
	if (op->rc)
		gw_log(GW_LOG_WARN, "dispatch: pod usage: %s", op->err);
	free(op);
}

static int64_t time_field(const json_t *v)
{
	int64_t ms = 0;

	return json_is_string(v) && gw_time_parse(json_string_value(v), &ms) == 0 ? ms : 0;
}

/* Records when a pod of a job started holding its requests and when it
 * stopped, once each: the cost of the job (usage by team and label). */
static void record_usage(struct cluster_rt *cl, const char *type, const json_t *pod,
			 const struct store_demand *held)
{
	const json_t *meta = json_object_get(pod, "metadata"), *status = json_object_get(pod, "status");
	const char *uid = jstr(json_object_get(meta, "uid"));
	const char *job = json_string_value(json_object_get(json_object_get(meta, "labels"), DISPATCH_JOB_LABEL));
	const char *phase = jstr(json_object_get(status, "phase"));
	const json_t *term = json_object_get(json_object_get(json_array_get(json_object_get(status,
		"containerStatuses"), 0), "state"), "terminated");
	bool ended = !strcmp(type, "DELETED") || !strcmp(phase, "Succeeded") || !strcmp(phase, "Failed");
	int64_t start = time_field(json_object_get(status, "startTime")), end = 0;
	json_int_t seen;
	struct usage_op *u;

	if (!job || !*uid || !start || strlen(uid) >= sizeof(u->uid))
		return; /* not a job's, or it never ran */
	seen = json_integer_value(json_object_get(cl->usage, uid));
	if (ended) {
		end = time_field(json_object_get(term, "finishedAt"));
		if (!end)
			end = time_field(json_object_get(meta, "deletionTimestamp"));
		if (!end)
			end = gw_now_ms();
	}
	if (!strcmp(type, "DELETED"))
		json_object_del(cl->usage, uid);
	else
		json_object_set_new(cl->usage, uid, json_integer(ended ? 2 : 1));
	if (seen == (ended ? 2 : 1))
		return;
	if (!(u = calloc(1, sizeof(*u))))
		return;
	snprintf(u->uid, sizeof(u->uid), "%s", uid);
	snprintf(u->cluster, sizeof(u->cluster), "%s", cl->name);
	snprintf(u->job_id, sizeof(u->job_id), "%s", job);
	snprintf(u->role, sizeof(u->role), "%s", is_driver(pod) ? "driver" : "executor");
	u->op.kind = STORE_OP_POD_USAGE;
	u->op.usage = (struct store_pod_usage){.uid = u->uid, .cluster = u->cluster, .job_id = u->job_id,
					       .role = u->role, .held = *held, .start_ms = start,
					       .end_ms = end > start ? end : ended ? start : 0};
	u->op.done = usage_done;
	/* Not awaited: the watcher goes on; the uid keeps it from counting twice. */
	if (store_enqueue(cl->d->store, &u->op) != GW_OK)
		free(u);
}

/* After a list: pods this cluster no longer has ended while nobody watched. */
static void close_missing_usage(struct cluster_rt *cl, const json_t *items)
{
	struct store_op op = {.kind = STORE_OP_POD_USAGE_CLOSE};
	json_t *uids = json_array();
	char *present;
	size_t i;
	json_t *it;

	json_array_foreach(items, i, it)
		json_array_append_new(uids, json_string(jstr(json_object_get(json_object_get(it, "metadata"), "uid"))));
	present = json_dumps(uids, JSON_COMPACT);
	op.document = present;
	op.usage.cluster = cl->name;
	op.usage.end_ms = gw_now_ms();
	if (present && store_execute(cl->d->store, &op))
		gw_log(GW_LOG_WARN, "dispatch: pod usage on %s: %s", cl->name, op.err);
	free(present);
	store_job_release(&op.job);
	json_decref(uids);
}

/* Why a Pending pod does not run yet, as kubectl describe shows it: the
 * scheduler's condition (Unschedulable: 0/12 nodes are available: …) or
 * its container's waiting reason; "" when nothing holds it. */
static void pod_wait_reason(const json_t *pod, char *out, size_t len)
{
	const json_t *status = json_object_get(pod, "status"), *c;
	const json_t *waiting = json_object_get(json_object_get(json_array_get(json_object_get(status,
		"containerStatuses"), 0), "state"), "waiting");
	size_t i;

	*out = '\0';
	if (strcmp(jstr(json_object_get(status, "phase")), "Pending"))
		return;
	json_array_foreach(json_object_get(status, "conditions"), i, c)
		if (!strcmp(jstr(json_object_get(c, "type")), "PodScheduled") &&
		    !strcmp(jstr(json_object_get(c, "status")), "False")) {
			snprintf(out, len, "%s: %s", *jstr(json_object_get(c, "reason")) ?
				 jstr(json_object_get(c, "reason")) : "Pending", jstr(json_object_get(c, "message")));
			return;
		}
	if (waiting && *jstr(json_object_get(waiting, "reason")))
		snprintf(out, len, "%s%s%s", jstr(json_object_get(waiting, "reason")),
			 *jstr(json_object_get(waiting, "message")) ? ": " : "", jstr(json_object_get(waiting, "message")));
}

static void note_pod_wait(struct cluster_rt *cl, const char *type, const json_t *pod)
{
	const json_t *meta = json_object_get(pod, "metadata");
	const char *job = json_string_value(json_object_get(json_object_get(meta, "labels"), DISPATCH_JOB_LABEL));
	const char *name = jstr(json_object_get(meta, "name"));
	char why[GW_ERRLEN];
	json_t *pods;

	if (!job)
		return;
	if (strcmp(type, "DELETED"))
		pod_wait_reason(pod, why, sizeof(why));
	else
		*why = '\0';
	pthread_mutex_lock(&cl->waits_lock);
	pods = json_object_get(cl->pod_waits, job);
	if (*why) {
		if (!pods)
			json_object_set_new(cl->pod_waits, job, pods = json_object());
		json_object_set_new(pods, name, json_string(why));
	} else if (pods) {
		json_object_del(pods, name);
		if (!json_object_size(pods))
			json_object_del(cl->pod_waits, job);
	}
	pthread_mutex_unlock(&cl->waits_lock);
}

/* What holds a job's pods on its cluster: the first pod's reason, and how
 * many more wait; false when none does. */
static bool pods_wait_reason(struct cluster_rt *cl, const char *job_id, char *out, size_t len)
{
	json_t *pods;
	bool known;

	pthread_mutex_lock(&cl->waits_lock);
	pods = json_object_get(cl->pod_waits, job_id);
	known = json_object_size(pods) > 0;
	if (known) {
		const char *name = json_object_iter_key(json_object_iter(pods));
		size_t more = json_object_size(pods) - 1;

		if (more)
			snprintf(out, len, "%s (pod %s and %zu more)", json_string_value(json_object_get(pods, name)),
				 name, more);
		else
			snprintf(out, len, "%s (pod %s)", json_string_value(json_object_get(pods, name)), name);
	}
	pthread_mutex_unlock(&cl->waits_lock);
	return known;
}

/* A pod's requests, counted while it holds them (Pending or Running). */
static void account_pod(struct cluster_rt *cl, const char *type, const json_t *pod)
{
	const json_t *meta = json_object_get(pod, "metadata");
	const char *phase = jstr(json_object_get(json_object_get(pod, "status"), "phase"));
	bool active = strcmp(type, "DELETED") && (!strcmp(phase, "Pending") || !strcmp(phase, "Running"));
	json_t *containers = json_object_get(json_object_get(pod, "spec"), "containers");
	double cores = 0, v;
	int64_t memory = 0;
	int gpus = 0;
	size_t i;
	json_t *c;

	json_array_foreach(containers, i, c) {
		json_t *res = json_object_get(c, "resources");
		const char *key;
		json_t *q;

		if (gw_quantity_parse(jstr(json_object_get(json_object_get(res, "requests"), "cpu")), &v) == 0)
			cores += v;
		if (gw_quantity_parse(jstr(json_object_get(json_object_get(res, "requests"), "memory")), &v) == 0)
			memory += (int64_t)v;
		json_object_foreach(json_object_get(res, "limits"), key, q)
			if (strstr(key, "gpu"))
				gpus += atoi(jstr(q));
	}
	{
		struct store_demand held = {.cores_milli = llround(cores * 1000),
					    .memory_mib = (memory + (1 << 20) - 1) >> 20, .gpus = gpus};

		record_usage(cl, type, pod, &held);
	}
	pool_pod(cl->d->opts.pool, cl->name, jstr(json_object_get(meta, "uid")),
		 json_string_value(json_object_get(json_object_get(meta, "labels"), DISPATCH_JOB_LABEL)),
		 jstr(json_object_get(meta, "namespace")),
		 json_string_value(json_object_get(json_object_get(pod, "spec"), "nodeName")), active, cores, memory,
		 gpus);
	note_pod_wait(cl, type, pod);
}

struct watcher {
	struct cluster_rt *cl;
	bool apps; /* SparkApplications, else pods */
};

/* The operator keeps an application SUBMITTED while its driver pod
 * cannot be scheduled or pulled: the gateway judges that pod itself, as
 * in driver-pod mode, and a run that waited past its timeout fails (its
 * SparkApplication deleted, the namespace's room freed). */
static void judge_operator_driver(struct cluster_rt *cl, const char *type, json_t *pod)
{
	const json_t *labels = json_object_get(json_object_get(pod, "metadata"), "labels");
	const char *id = jstr(json_object_get(labels, DISPATCH_JOB_LABEL));
	bool pending = strcmp(type, "DELETED") &&
		       !strcmp(jstr(json_object_get(json_object_get(pod, "status"), "phase")), "Pending");
	char reason[64] = "", message[GW_ERRLEN] = "", err[GW_ERRLEN];
	struct store_job job;

	if (!*id)
		return;
	pthread_mutex_lock(&cl->lock);
	if (pending)
		json_object_set(cl->pending_drivers, id, pod);
	else
		json_object_del(cl->pending_drivers, id);
	pthread_mutex_unlock(&cl->lock);
	if (!pending || pod_state(cl, pod, reason, sizeof(reason), message, sizeof(message)) != STORE_FAILED)
		return;
	if (store_job_get(cl->d->store, id, &job, err))
		return;
	if (job.state == STORE_SUBMITTED && job.cluster && !strcmp(job.cluster, cl->name) &&
	    object_run(pod) == job.run) {
		pthread_mutex_lock(&cl->lock);
		json_object_del(cl->pending_drivers, id);
		pthread_mutex_unlock(&cl->lock);
		if (!run_failed(cl, &job, reason, *message ? message : NULL))
			delete_driver(cl, &job);
	}
	store_job_release(&job);
}

/* Pending operator drivers, on the clock: their timeouts run out with
 * nothing new on the cluster. */
static void recheck_operator_drivers(struct cluster_rt *cl)
{
	json_t *copy, *pod;
	const char *id;

	pthread_mutex_lock(&cl->lock);
	copy = json_copy(cl->pending_drivers);
	pthread_mutex_unlock(&cl->lock);
	json_object_foreach(copy, id, pod)
		judge_operator_driver(cl, "MODIFIED", pod);
	json_decref(copy);
}

static void observe(struct watcher *wt, const char *type, json_t *obj)
{
	if (!wt->apps) {
		account_pod(wt->cl, type, obj);
		if (wt->cl->mode == ROUTER_SPARK_OPERATOR && is_driver(obj))
			judge_operator_driver(wt->cl, type, obj);
		if (wt->cl->mode == ROUTER_SPARK_OPERATOR || !is_driver(obj))
			return;
	}
	apply_object(wt->cl, type, obj);
}

struct watch_ctx {
	struct watcher *wt;
	struct cluster_rt *cl;
	char rv[32];
	bool expired;
	int64_t recheck_at_ms;
};

static bool on_watch_event(void *arg, const char *type, json_t *obj)
{
	struct watch_ctx *w = arg;
	const char *rv = jstr(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));

	if (!strcmp(type, "ERROR")) {
		if (json_integer_value(json_object_get(obj, "code")) == 410)
			w->expired = true;
		gw_log(GW_LOG_INFO, "watch %s: %s", w->cl->name, jstr(json_object_get(obj, "message")));
		return false;
	}
	if (*rv)
		snprintf(w->rv, sizeof(w->rv), "%s", rv);
	if (strcmp(type, "BOOKMARK"))
		observe(w->wt, type, obj);
	if (!w->wt->apps && gw_now_ms() >= w->recheck_at_ms) {
		if (w->cl->mode == ROUTER_DRIVER_POD)
			recheck_pending(w->cl, false);
		else
			recheck_operator_drivers(w->cl);
		w->recheck_at_ms = gw_now_ms() + 1000;
	}
	return !atomic_load(&w->cl->watch_halt);
}

/* Jobs the cluster should have but does not list: their objects are gone. */
static void reconcile_missing(struct cluster_rt *cl, json_t *items, int64_t listed_at)
{
	static const enum store_state live[] = {STORE_SUBMITTED, STORE_RUNNING, STORE_CANCELLING};
	json_t *present = json_object();
	size_t i;
	json_t *it;

	json_array_foreach(items, i, it)
		if (cl->mode == ROUTER_SPARK_OPERATOR || is_driver(it)) {
			char key[STORE_ID_LEN + 16];

			snprintf(key, sizeof(key), "%s#%d",
				 jstr(json_object_get(json_object_get(json_object_get(it, "metadata"), "labels"),
						      DISPATCH_JOB_LABEL)), object_run(it));
			json_object_set_new(present, key, json_true());
		}
	for (size_t s = 0; s < sizeof(live) / sizeof(live[0]); s++) {
		struct store_job *jobs;
		size_t n;
		char err[GW_ERRLEN];

		if (store_jobs_in_state(cl->d->store, live[s], cl->name, 100000, &jobs, &n, err))
			continue;
		for (size_t j = 0; j < n; j++) {
			char key[STORE_ID_LEN + 16];

			/* Jobs changed after the list began may not be in it yet. */
			snprintf(key, sizeof(key), "%s#%d", jobs[j].id, jobs[j].run);
			if (json_object_get(present, key) || jobs[j].updated_ms >= listed_at)
				continue;
			if (live[s] == STORE_CANCELLING)
				move_job(cl->d, jobs[j].id, STORE_CANCELLED, cancel_reason(&jobs[j]), "the driver is gone",
					 NULL);
			else
				lost_driver(cl, jobs[j].id);
		}
		store_jobs_free(jobs, n);
	}
	json_decref(present);
}

static void *watcher_main(void *arg)
{
	struct watcher *wt = arg;
	struct cluster_rt *cl = wt->cl;
	/* In operator mode the pods are watched for usage only. */
	bool carries_state = wt->apps || cl->mode == ROUTER_DRIVER_POD;
	long backoff = 100;

	while (!atomic_load(&cl->stop)) {
		struct watch_ctx w = {.wt = wt, .cl = cl};
		struct k8s_response r;
		char err[GW_ERRLEN];
		int64_t listed_at;
		size_t i;
		json_t *it;
		enum gw_err lrc;

		/* Another replica watches it, or nobody yet: wait for the lease. */
		if (!watching(cl)) {
			sleep_ms(100);
			continue;
		}
		atomic_store(&cl->watch_halt, false);
		atomic_fetch_add(&cl->watches_open, 1);
		listed_at = gw_now_ms();
		lrc = k8s_request(cl->client, "GET", watch_path(wt->apps), NULL, &r, err);

		count_call(cl, "LIST", lrc, lrc ? 0 : r.status);
		count_cluster(cl, "sparkgw_watch_restarts_total", "resource", wt->apps ? "sparkapplications" : "pods");
		if (lrc || r.status != 200) {
			gw_log(GW_LOG_WARN, "watch %s: list failed: %s", cl->name, err);
			k8s_response_release(&r);
			atomic_fetch_sub(&cl->watches_open, 1);
			sleep_ms(backoff);
			backoff = backoff < 5000 ? backoff * 2 : 5000;
			continue;
		}
		backoff = 100;
		snprintf(w.rv, sizeof(w.rv), "%s",
			 jstr(json_object_get(json_object_get(r.body, "metadata"), "resourceVersion")));
		if (!wt->apps) {
			pool_forget_pods(cl->d->opts.pool, cl->name);
			pthread_mutex_lock(&cl->waits_lock);
			json_object_clear(cl->pod_waits);
			pthread_mutex_unlock(&cl->waits_lock);
			close_missing_usage(cl, json_object_get(r.body, "items"));
		}
		json_array_foreach(json_object_get(r.body, "items"), i, it)
			observe(wt, "MODIFIED", it);
		if (carries_state)
			reconcile_missing(cl, json_object_get(r.body, "items"), listed_at);
		k8s_response_release(&r);

		while (!atomic_load(&cl->watch_halt) && !w.expired) {
			enum gw_err rc = k8s_watch(cl->client, watch_path(wt->apps), w.rv, WATCH_TIMEOUT_S,
						   on_watch_event, &w, &cl->watch_halt, err);

			count_call(cl, "WATCH", rc, 200);
			if (carries_state)
				recheck_pending(cl, true);
			if (rc != GW_OK) {
				gw_log(GW_LOG_INFO, "watch %s: %s; resuming from %s", cl->name, err, w.rv);
				sleep_ms(backoff);
				backoff = backoff < 5000 ? backoff * 2 : 5000;
			} else {
				backoff = 100;
			}
		}
		atomic_fetch_sub(&cl->watches_open, 1);
		/* 410 Expired: events were compacted away; the list catches up. */
	}
	free(wt);
	return NULL;
}

/* Nodes change slowly; a list from the API server's cache (resourceVersion
 * 0) a minute apart keeps placement's view of them current enough. */
#define NODES_EVERY_MS 60000
#define NODES_PAGE 500

/* The cluster's nodes, page by page, for placement; unknown to it when
 * the list fails (a token not allowed to list nodes: placement then trusts
 * the node roles' limits alone). */
static void list_nodes(struct cluster_rt *cl)
{
	json_t *items = json_array();
	char path[1200], cont[800] = "", err[GW_ERRLEN] = "";
	bool ok = true;

	do {
		struct k8s_response r;
		const char *next;

		if (*cont)
			snprintf(path, sizeof(path), "/api/v1/nodes?limit=%d&continue=%s", NODES_PAGE, cont);
		else
			snprintf(path, sizeof(path), "/api/v1/nodes?limit=%d&resourceVersion=0", NODES_PAGE);
		ok = k8s_request(cl->probe_client, "GET", path, NULL, &r, err) == GW_OK && r.status == 200;
		count_call(cl, "LIST", ok ? GW_OK : GW_EIO, ok ? 200 : r.status);
		if (ok)
			json_array_extend(items, json_object_get(r.body, "items"));
		next = ok ? json_string_value(json_object_get(json_object_get(r.body, "metadata"), "continue")) : NULL;
		snprintf(cont, sizeof(cont), "%s", next && strlen(next) < sizeof(cont) ? next : "");
		k8s_response_release(&r);
	} while (ok && *cont);
	if (!ok)
		gw_log(GW_LOG_WARN, "cluster %s: cannot list nodes (%s): placement counts on node roles' limits only",
		       cl->name, *err ? err : "no answer");
	pool_set_nodes(cl->d->opts.pool, cl->name, ok ? items : NULL);
	json_decref(items);
	cl->nodes_listed_ms = gw_now_ms();
}

/* Health: each cluster's /readyz on an interval, and its nodes now and
 * then. */
static void *prober_main(void *arg)
{
	struct dispatch *d = arg;

	while (!atomic_load(&d->stop)) {
		for (size_t i = 0; i < atomic_load(&d->nclusters) && !atomic_load(&d->stop); i++) {
			struct k8s_response r;
			char err[GW_ERRLEN] = "";
			bool ok;

			if (atomic_load(&d->clusters[i].removed))
				continue;
			ok = k8s_request(d->clusters[i].probe_client, "GET", "/readyz", NULL, &r, err) == GW_OK &&
			     r.status == 200;

			if (!ok && !*err)
				snprintf(err, sizeof(err), "/readyz answered %ld", r.status);
			pool_report(d->opts.pool, d->clusters[i].name, ok, err);
			k8s_response_release(&r);
			if (ok && gw_now_ms() - d->clusters[i].nodes_listed_ms >= NODES_EVERY_MS)
				list_nodes(&d->clusters[i]);
		}
		for (unsigned t = 0; t < d->opts.probe_s * 10 && !atomic_load(&d->stop); t++)
			sleep_ms(100);
	}
	return NULL;
}

/* Gives up the watch lease of a cluster this process holds: the watch
 * stops first, then another replica may take it. */
static void release_watch(struct dispatch *d, struct cluster_rt *cl)
{
	struct store_op op = {.kind = STORE_OP_WATCH_RELEASE, .cluster = cl->name, .lease_owner = d->opts.instance};

	atomic_store(&cl->watch_until_ms, 0);
	atomic_store(&cl->watch_halt, true);
	/* The watches end (within a second) before the lease does, and a
	 * moment passes for the API server to see them end. */
	for (int t = 0; t < 500 && atomic_load(&cl->watches_open) > 0; t++)
		sleep_ms(10);
	sleep_ms(200);
	store_execute(d->store, &op);
	store_job_release(&op.job);
}

/* Takes or renews the watch lease of each cluster, up to this process's
 * share of them (the clusters over the replicas alive, rounded up), so
 * that watching spreads over the replicas; a process over its share gives
 * one up a round. A cluster whose lease is ending (another replica has
 * it, or the store cannot be reached) has its watch stopped. */
static void renew_watch_leases(struct dispatch *d)
{
	int64_t now = gw_now_ms();
	/* Alive for two rounds: a dead replica stops counting before its
	 * leases run out, so that the others' shares have room for them. */
	struct store_op alive = {.kind = STORE_OP_REPLICA_ALIVE, .lease_owner = d->opts.instance,
				 .lease_until_ms = now + 2 * WATCH_RENEW_MS};
	size_t n = atomic_load(&d->nclusters), clusters = 0, held = 0, share;
	long replicas = 1;
	char err[GW_ERRLEN];

	store_execute(d->store, &alive);
	store_job_release(&alive.job);
	if (store_replicas_alive(d->store, now, &replicas, err) || replicas < 1)
		replicas = 1;
	atomic_store(&d->replicas, replicas);
	for (size_t i = 0; i < n; i++) {
		clusters += !atomic_load(&d->clusters[i].removed);
		held += !atomic_load(&d->clusters[i].removed) && watching(&d->clusters[i]);
	}
	share = (clusters + (size_t)replicas - 1) / (size_t)replicas;
	for (size_t i = 0; i < n && !atomic_load(&d->stop); i++) {
		struct cluster_rt *cl = &d->clusters[i];
		int64_t start = gw_now_ms();
		struct store_op op = {.kind = STORE_OP_WATCH_LEASE, .cluster = cl->name,
				      .lease_owner = d->opts.instance, .lease_until_ms = start + WATCH_LEASE_MS};
		bool was = watching(cl);

		if (atomic_load(&cl->removed))
			continue;
		if (was && held > share) {
			release_watch(d, cl);
			held--;
			share = held; /* one a round: the others may rebalance meanwhile */
			gw_log(GW_LOG_INFO, "dispatch: cluster %s: given up to another replica", cl->name);
			continue;
		}
		if (!was && held >= share)
			continue;
		/* Counted from before the request: the lease may have begun then. */
		if (store_execute(d->store, &op) == GW_OK)
			atomic_store(&cl->watch_until_ms, start + WATCH_LEASE_MS);
		else if (op.rc == GW_ECONFLICT)
			atomic_store(&cl->watch_until_ms, 0);
		store_job_release(&op.job);
		if (!watching(cl))
			atomic_store(&cl->watch_halt, true);
		held += watching(cl) && !was;
		if (was != watching(cl))
			gw_log(GW_LOG_INFO, "dispatch: cluster %s: %s", cl->name,
			       was ? "no longer watched here" : "watched here now");
	}
}

/* With replicas, what runs in each cluster's namespaces goes through the
 * store: the replica watching a cluster tells it, the others place with
 * it (a view as old as USAGE_STALE_MS at most; older, they have none). */
static void share_usage(struct dispatch *d)
{
	json_t *told = NULL;
	char err[GW_ERRLEN];

	if (atomic_load(&d->replicas) < 2)
		return;
	for (size_t i = 0; i < atomic_load(&d->nclusters); i++) {
		struct cluster_rt *cl = &d->clusters[i];

		if (atomic_load(&cl->removed))
			continue;
		if (watching(cl)) {
			json_t *usage = pool_usage(d->opts.pool, cl->name);
			char *text = json_dumps(usage, JSON_COMPACT);
			struct store_op op = {.kind = STORE_OP_CLUSTER_USAGE, .cluster = cl->name, .document = text};

			if (text)
				store_execute(d->store, &op);
			store_job_release(&op.job);
			free(text);
			json_decref(usage);
			continue;
		}
		if (!told && store_cluster_usage(d->store, gw_now_ms() - USAGE_STALE_MS, &told, err))
			break;
		if (json_object_get(told, cl->name))
			pool_set_usage(d->opts.pool, cl->name, json_object_get(told, cl->name));
	}
	json_decref(told);
}

static void *leaser_main(void *arg)
{
	struct dispatch *d = arg;

	while (!atomic_load(&d->stop)) {
		renew_watch_leases(d);
		share_usage(d);
		/* A quiet cluster sends no events to recheck on. */
		for (size_t i = 0; i < atomic_load(&d->nclusters); i++)
			if (watching(&d->clusters[i]))
				recheck_pending(&d->clusters[i], false);
		for (int t = 0; t < WATCH_RENEW_MS / 50 && !atomic_load(&d->stop); t++)
			sleep_ms(50);
	}
	return NULL;
}

/* ---- lifecycle ---- */

/* The cluster of the job's driver; NULL (GW_ENOTFOUND in err) before it
 * has one. */
static struct cluster_rt *driver_cluster(struct dispatch *d, const struct store_job *job, char *err)
{
	struct cluster_rt *cl = cluster_named(d, job->cluster);

	if (!cl || !job->driver_pod || !job->namespace) {
		gw_seterr(err, "job %s has no driver yet", job->id);
		return NULL;
	}
	return cl;
}

static enum gw_err log_path(struct dispatch *d, const struct store_job *job, long tail_lines,
			    bool follow, struct cluster_rt **cl, char *path, size_t len, char *err)
{
	if (!(*cl = driver_cluster(d, job, err)))
		return GW_ENOTFOUND;
	snprintf(path, len, "/api/v1/namespaces/%s/pods/%s/log?follow=%s", job->namespace,
		 job->driver_pod, follow ? "true" : "false");
	if (tail_lines >= 0)
		snprintf(path + strlen(path), len - strlen(path), "&tailLines=%ld", tail_lines);
	return GW_OK;
}

enum gw_err dispatch_driver_log(struct dispatch *d, const struct store_job *job,
				long tail_lines, char **text, char *err)
{
	struct cluster_rt *cl;
	struct k8s_response r;
	char path[512];
	enum gw_err rc;

	*text = NULL;
	if ((rc = log_path(d, job, tail_lines, false, &cl, path, sizeof(path), err)) ||
	    (rc = k8s_request(cl->client, "GET", path, NULL, &r, err)))
		return rc;
	if (r.status == 200) {
		*text = r.text;
		r.text = NULL;
	} else {
		gw_seterr(err, "%s", json_string_value(json_object_get(r.body, "message"))
					     ? json_string_value(json_object_get(r.body, "message"))
					     : "the cluster has no log for this driver");
		rc = r.status == 404 ? GW_ENOTFOUND : GW_EINVAL;
	}
	k8s_response_release(&r);
	return rc;
}

enum gw_err dispatch_driver_ui(struct dispatch *d, const struct store_job *job, const char *rest,
			       const char *ui_root, struct k8s_response *resp, char *prefix, size_t prefix_len,
			       char *err)
{
	char forwarded[600], *path = NULL, service[STORE_ID_LEN + 40];
	const char *headers[] = {"Accept: */*", forwarded, NULL};
	struct cluster_rt *cl = driver_cluster(d, job, err);
	struct dispatch_names names;
	enum gw_err rc;

	memset(resp, 0, sizeof(*resp));
	if (!cl)
		return GW_ENOTFOUND;
	dispatch_names(job, &names);
	/* The Service in front of the driver's UI port: the gateway's own, or
	 * the one the Spark operator makes for each application. */
	if (cl->mode == ROUTER_DRIVER_POD)
		snprintf(service, sizeof(service), "%s", names.service);
	else
		snprintf(service, sizeof(service), "%s-ui-svc", names.app);
	snprintf(prefix, prefix_len, "/api/v1/namespaces/%s/services/%s:%d/proxy", job->namespace, service,
		 DISPATCH_UI_PORT);
	/* Spark's UI puts this before its links and its scripts' API calls
	 * (UIUtils.uiRoot): so they come back to the gateway. */
	snprintf(forwarded, sizeof(forwarded), "X-Forwarded-Context: %s", ui_root);
	if (asprintf(&path, "%s/%s", prefix, rest) < 0)
		return GW_ENOMEM;
	rc = k8s_request_with(cl->client, "GET", path, NULL, headers, resp, err);
	free(path);
	return rc;
}

struct follow_ctx {
	bool (*fn)(void *arg, const char *data, size_t len);
	void *arg;
	bool got_data;
};

static bool follow_relay(void *arg, const char *data, size_t len)
{
	struct follow_ctx *fc = arg;

	fc->got_data = true;
	return fc->fn(fc->arg, data, len);
}

enum gw_err dispatch_driver_log_follow(struct dispatch *d, const struct store_job *job,
				       long tail_lines,
				       bool (*fn)(void *arg, const char *data, size_t len),
				       void *arg, const atomic_bool *stop, char *err)
{
	struct follow_ctx fc = {.fn = fn, .arg = arg};
	struct cluster_rt *cl;
	char path[512];
	long status = 0;
	enum gw_err rc;

	if ((rc = log_path(d, job, tail_lines, true, &cl, path, sizeof(path), err)))
		return rc;
	/* A stream that fails before it begins is retried, as a request would be. */
	for (int attempt = 0; attempt < 5 && !atomic_load(stop); attempt++) {
		/* A day at most: a driver that runs longer is followed again. */
		rc = k8s_stream(cl->client, path, 86400, follow_relay, &fc, stop, &status, err);
		if (fc.got_data || (rc == GW_OK && status < 500 && status != 429))
			break;
		sleep_ms(100L << attempt);
	}
	if (rc == GW_OK && status != 200) {
		gw_seterr(err, "the cluster answered %ld", status);
		rc = GW_EINVAL;
	}
	return rc;
}

void dispatch_stop(struct dispatch *d)
{
	if (!d)
		return;
	store_set_commit_hook(d->store, NULL, NULL);
	atomic_store(&d->stop, true);
	for (size_t i = 0; d->clusters && i < atomic_load(&d->nclusters); i++) {
		atomic_store(&d->clusters[i].stop, true);
		atomic_store(&d->clusters[i].watch_halt, true);
	}
	pthread_mutex_lock(&d->lock);
	pthread_cond_broadcast(&d->wake);
	pthread_cond_broadcast(&d->work);
	pthread_mutex_unlock(&d->lock);
	if (d->feeder_started)
		pthread_join(d->feeder, NULL);
	if (d->prober_started)
		pthread_join(d->prober, NULL);
	if (d->housekeeper_started)
		pthread_join(d->housekeeper, NULL);
	if (d->leaser_started) {
		/* Gone: the other replicas' shares of the clusters grow now. */
		struct store_op gone = {.kind = STORE_OP_REPLICA_ALIVE, .lease_owner = d->opts.instance};

		pthread_join(d->leaser, NULL);
		store_execute(d->store, &gone);
		store_job_release(&gone.job);
	}
	for (unsigned i = 0; i < d->nworkers; i++)
		pthread_join(d->workers[i], NULL);
	for (size_t i = 0; d->clusters && i < atomic_load(&d->nclusters); i++) {
		for (int w = 0; w < d->clusters[i].nwatchers; w++)
			pthread_join(d->clusters[i].watchers[w], NULL);
		/* Watched no more: another replica may take it over now. */
		if (atomic_load(&d->clusters[i].watch_until_ms))
			release_watch(d, &d->clusters[i]);
		k8s_client_free(d->clusters[i].client);
		k8s_client_free(d->clusters[i].probe_client);
		json_decref(d->clusters[i].seen);
		json_decref(d->clusters[i].early);
		json_decref(d->clusters[i].pending_drivers);
		json_decref(d->clusters[i].usage);
		json_decref(d->clusters[i].pod_waits);
		free(d->clusters[i].name);
		pthread_mutex_destroy(&d->clusters[i].lock);
		pthread_mutex_destroy(&d->clusters[i].waits_lock);
		pthread_mutex_destroy(&d->clusters[i].rate_lock);
		pthread_cond_destroy(&d->clusters[i].rate_free);
	}
	free(d->clusters);
	free(d->workers);
	free(d->queue);
	json_decref(d->inflight);
	json_decref(d->cancel_sent);
	json_decref(d->waiting);
	json_decref(d->quota);
	pthread_cond_destroy(&d->work);
	pthread_cond_destroy(&d->wake);
	pthread_mutex_destroy(&d->clusters_lock);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static bool start_watcher(struct cluster_rt *cl, bool apps)
{
	struct watcher *wt = calloc(1, sizeof(*wt));

	if (!wt)
		return false;
	wt->cl = cl;
	wt->apps = apps;
	if (pthread_create(&cl->watchers[cl->nwatchers], NULL, watcher_main, wt)) {
		free(wt);
		return false;
	}
	cl->nwatchers++;
	return true;
}

/* Connects to a cluster and starts its watchers; the slot is published
 * (nclusters grows) only once it is ready. Caller holds clusters_lock. */
static enum gw_err add_cluster(struct dispatch *d, const struct router_cluster *cfg, char *err)
{
	size_t n = atomic_load(&d->nclusters);
	struct cluster_rt *cl = &d->clusters[n];
	struct k8s_client_options probe_opts = {.max_retries = 0, .request_timeout_ms = 3000};
	struct k8s_config kc;
	char inner[GW_ERRLEN];
	enum gw_err rc;

	if (n == MAX_CLUSTERS) {
		gw_seterr(err, "at most %d clusters", MAX_CLUSTERS);
		return GW_EINVAL;
	}
	memset(cl, 0, sizeof(*cl));
	cl->d = d;
	cl->name = strdup(cfg->name);
	cl->mode = cfg->mode;
	cl->seen = json_object();
	cl->early = json_object();
	cl->pending_drivers = json_object();
	cl->usage = json_object();
	cl->pod_waits = json_object();
	atomic_init(&cl->stop, false);
	atomic_init(&cl->removed, false);
	atomic_init(&cl->watch_until_ms, 0);
	atomic_init(&cl->watch_halt, true);
	atomic_init(&cl->watches_open, 0);
	pthread_mutex_init(&cl->lock, NULL);
	pthread_mutex_init(&cl->waits_lock, NULL);
	pthread_mutex_init(&cl->rate_lock, NULL);
	pthread_cond_init(&cl->rate_free, NULL);
	cl->tokens = d->opts.cluster_qps;
	cl->tokens_at_ms = gw_now_ms();
	/* "in-cluster": the cluster the gateway runs in, as its service account. */
	rc = !strcmp(cfg->kubeconfig, "in-cluster") ? k8s_incluster_config(&kc, inner)
						   : k8s_kubeconfig_load(cfg->kubeconfig, cfg->context, &kc, inner);
	if (rc == GW_OK) {
		rc = k8s_client_new(&kc, NULL, &cl->client, inner);
		if (rc == GW_OK)
			rc = k8s_client_new(&kc, &probe_opts, &cl->probe_client, inner);
		k8s_config_release(&kc);
	}
	if (rc) {
		gw_seterr(err, "cluster %s: %s", cfg->name, inner);
		k8s_client_free(cl->client);
		json_decref(cl->seen);
		json_decref(cl->early);
		json_decref(cl->pending_drivers);
		json_decref(cl->usage);
		json_decref(cl->pod_waits);
		free(cl->name);
		pthread_mutex_destroy(&cl->lock);
		pthread_mutex_destroy(&cl->waits_lock);
		pthread_mutex_destroy(&cl->rate_lock);
		pthread_cond_destroy(&cl->rate_free);
		return rc;
	}
	start_watcher(cl, false);
	if (cl->mode == ROUTER_SPARK_OPERATOR)
		start_watcher(cl, true);
	atomic_store(&d->nclusters, n + 1);
	return GW_OK;
}

enum gw_err dispatch_add_cluster(struct dispatch *d, const struct router_cluster *cfg, char *err)
{
	enum gw_err rc;

	pthread_mutex_lock(&d->clusters_lock);
	if (cluster_named(d, cfg->name)) {
		gw_seterr(err, "cluster %s exists", cfg->name);
		rc = GW_ECONFLICT;
	} else {
		rc = add_cluster(d, cfg, err);
	}
	pthread_mutex_unlock(&d->clusters_lock);
	if (rc == GW_OK)
		gw_log(GW_LOG_INFO, "dispatch: cluster %s added", cfg->name);
	return rc;
}

bool dispatch_wait_reason(struct dispatch *d, const char *job_id, char *out, size_t len)
{
	json_t *w;
	bool known;

	pthread_mutex_lock(&d->lock);
	/* What stops it now, else where its dispatch is, else the limit the
	 * last ordering found it behind. */
	if ((w = json_object_get(d->waiting, job_id)))
		w = json_array_get(w, 1);
	else if (!(w = json_object_get(d->inflight, job_id)))
		w = json_object_get(d->quota, job_id);
	known = json_is_string(w);
	if (known)
		snprintf(out, len, "%s", json_string_value(w));
	pthread_mutex_unlock(&d->lock);
	/* Dispatched: what holds its pods on the cluster. */
	for (size_t i = 0; !known && i < atomic_load(&d->nclusters); i++)
		known = pods_wait_reason(&d->clusters[i], job_id, out, len);
	if (!known) {
		struct router *r = router_holder_get(d->opts.policy);

		if ((known = r->nclusters == 0))
			snprintf(out, len, "NoCapacity: no clusters are configured");
		router_unref(r);
	}
	return known;
}

void dispatch_remove_cluster(struct dispatch *d, const char *name)
{
	struct cluster_rt *cl;

	pthread_mutex_lock(&d->clusters_lock);
	cl = cluster_named(d, name);
	if (cl) {
		/* Its slot stays (a worker may hold it) until dispatch_stop. */
		atomic_store(&cl->removed, true);
		atomic_store(&cl->stop, true);
		atomic_store(&cl->watch_halt, true);
	}
	pthread_mutex_unlock(&d->clusters_lock);
	if (cl)
		gw_log(GW_LOG_INFO, "dispatch: cluster %s removed", name);
}

/* A restarted gateway takes the room of the jobs already on the clusters
 * again (their placement, pinned, without a room check), so that their
 * executors, not yet started, are not given away before the watchers see
 * them. */
static void restore_reservations(struct dispatch *d, const struct router *r)
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
				    pool_reserve(d->opts.pool, dec.cluster->name, job.id, dec.ns, dec.role, &dec.demand, true,
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

enum gw_err dispatch_start(struct store *store, const struct dispatch_options *opts,
			   struct dispatch **out, char *err)
{
	struct dispatch *d = calloc(1, sizeof(*d));
	struct router *r = router_holder_get(opts->policy);
	unsigned char rnd[6];
	enum gw_err rc = GW_OK;

	*out = NULL;
	if (!d) {
		router_unref(r);
		return GW_ENOMEM;
	}
	d->store = store;
	d->opts = *opts;
	if (!d->opts.instance)
		d->opts.instance = d->owner;
	gw_metrics_family(opts->metrics, "sparkgw_dispatch_latency_seconds", GW_HISTOGRAM_LONG,
			  "From a job's submission to its driver created on a cluster (first runs).");
	gw_metrics_family(opts->metrics, "sparkgw_dispatches_total", GW_COUNTER,
			  "Dispatch attempts by cluster and outcome: created, failed (retried or given up), rejected.");
	gw_metrics_family(opts->metrics, "sparkgw_apiserver_requests_total", GW_COUNTER,
			  "Kubernetes API server requests by cluster, verb and status code (error: no answer).");
	gw_metrics_family(opts->metrics, "sparkgw_watch_restarts_total", GW_COUNTER,
			  "Lists that (re)start a cluster watch, by cluster and resource.");
	if (!d->opts.cluster_qps)
		d->opts.cluster_qps = 100;
	if (!d->opts.cluster_concurrency)
		d->opts.cluster_concurrency = 16;
	atomic_init(&d->stop, false);
	atomic_init(&d->nclusters, 0);
	atomic_init(&d->replicas, 1);
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->clusters_lock, NULL);
	pthread_cond_init(&d->wake, NULL);
	pthread_cond_init(&d->work, NULL);
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		memset(rnd, 0, sizeof(rnd));
	snprintf(d->owner, sizeof(d->owner), "pid-%d-%02x%02x%02x%02x%02x%02x", (int)getpid(),
		 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
	d->qcap = FEED_BATCH * 4;
	d->queue = calloc(d->qcap, sizeof(*d->queue));
	d->inflight = json_object();
	d->cancel_sent = json_object();
	d->waiting = json_object();
	d->quota = json_object();
	d->clusters = calloc(MAX_CLUSTERS, sizeof(*d->clusters));
	d->workers = calloc(opts->workers, sizeof(*d->workers));
	if (!d->queue || !d->inflight || !d->cancel_sent || !d->waiting || !d->quota || !d->clusters || !d->workers)
		rc = GW_ENOMEM;
	pthread_mutex_lock(&d->clusters_lock);
	for (size_t i = 0; rc == GW_OK && i < r->nclusters; i++)
		rc = add_cluster(d, &r->clusters[i], err);
	pthread_mutex_unlock(&d->clusters_lock);
	if (rc == GW_OK)
		restore_reservations(d, r);
	router_unref(r);
	if (rc) {
		dispatch_stop(d);
		return rc;
	}
	for (unsigned i = 0; i < opts->workers; i++)
		if (pthread_create(&d->workers[i], NULL, worker_main, d) == 0)
			d->nworkers++;
	d->feeder_started = pthread_create(&d->feeder, NULL, feeder_main, d) == 0;
	d->prober_started = pthread_create(&d->prober, NULL, prober_main, d) == 0;
	d->housekeeper_started = pthread_create(&d->housekeeper, NULL, housekeeper_main, d) == 0;
	d->leaser_started = pthread_create(&d->leaser, NULL, leaser_main, d) == 0;
	store_set_commit_hook(store, on_commit, d);
	gw_log(GW_LOG_INFO, "dispatch: %zu cluster(s), %u workers, lease owner %s",
	       atomic_load(&d->nclusters), d->nworkers, d->owner);
	*out = d;
	return GW_OK;
}
