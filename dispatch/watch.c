/* The cluster watchers: list, then watch from the list's resourceVersion,
 * resume after a dropped stream, re-list after 410 Expired. A missed event
 * can only delay a state change: the re-list reconciles every job the
 * cluster should know about. Each object seen moves its job's state, and
 * its pods' runs are recorded for usage. */
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

#define WATCH_TIMEOUT_S 60

/* Where a driver pod says the job is: as observed_state. Waiting past
 * the pending or image pull timeout fails it (Unschedulable,
 * ErrImagePull). */
static int pod_state(struct cluster_rt *cl, const json_t *obj, char *reason, size_t rlen, char *message,
		     size_t mlen)
{
	int64_t created = 0, now = gw_now_ms();
	const json_t *status = json_object_get(obj, "status");
	const char *phase = dispatch_jstr(json_object_get(status, "phase"));
	const json_t *cs = json_array_get(json_object_get(status, "containerStatuses"), 0);
	const json_t *term = json_object_get(json_object_get(cs, "state"), "terminated");
	const json_t *waiting = json_object_get(json_object_get(cs, "state"), "waiting");
	const json_t *conds = json_object_get(status, "conditions");
	size_t i;
	json_t *c;

	gw_time_parse(dispatch_jstr(json_object_get(json_object_get(obj, "metadata"), "creationTimestamp")), &created);
	if (!strcmp(phase, "Running"))
		return snprintf(reason, rlen, "DriverRunning"), STORE_RUNNING;
	if (!strcmp(phase, "Succeeded"))
		return snprintf(reason, rlen, "Completed"), STORE_SUCCEEDED;
	if (!strcmp(phase, "Failed")) {
		const char *r = dispatch_jstr(json_object_get(term, "reason"));

		snprintf(reason, rlen, "%s", !strcmp(r, "OOMKilled") ? "OOMKilled" : "NonZeroExitCode");
		snprintf(message, mlen, "the driver exited with code %lld%s%s",
			 (long long)json_integer_value(json_object_get(term, "exitCode")),
			 *r ? ": " : "", r);
		return STORE_FAILED;
	}
	if (waiting) {
		const char *r = dispatch_jstr(json_object_get(waiting, "reason"));

		if ((!strcmp(r, "ErrImagePull") || !strcmp(r, "ImagePullBackOff") ||
		     !strcmp(r, "InvalidImageName")) &&
		    now - created >= (int64_t)cl->d->opts.image_pull_timeout_s * 1000) {
			snprintf(reason, rlen, "ErrImagePull");
			snprintf(message, mlen, "%s", dispatch_jstr(json_object_get(waiting, "message")));
			return STORE_FAILED;
		}
	}
	json_array_foreach(conds, i, c)
		if (!strcmp(dispatch_jstr(json_object_get(c, "type")), "PodScheduled") &&
		    !strcmp(dispatch_jstr(json_object_get(c, "reason")), "Unschedulable") &&
		    now - created >= (int64_t)cl->d->opts.pending_timeout_s * 1000) {
			snprintf(reason, rlen, "Unschedulable");
			snprintf(message, mlen, "%s", dispatch_jstr(json_object_get(c, "message")));
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
		const char *s = dispatch_jstr(json_object_get(st, "state"));

		if (!strcmp(s, "RUNNING"))
			return snprintf(reason, rlen, "DriverRunning"), STORE_RUNNING;
		if (!strcmp(s, "COMPLETED"))
			return snprintf(reason, rlen, "Completed"), STORE_SUCCEEDED;
		if (!strcmp(s, "FAILED") || !strcmp(s, "SUBMISSION_FAILED")) {
			snprintf(reason, rlen, "%s", !strcmp(s, "FAILED") ? "ApplicationFailed" : "SubmissionFailed");
			snprintf(message, mlen, "%s", dispatch_jstr(json_object_get(st, "errorMessage")));
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
	struct restart_policy p = dispatch_restart_policy(cl->d, job);
	struct store_op again = {.new_run = true};
	char msg[GW_ERRLEN + 128];

	if (!p.on_failure || job->run > p.retries) {
		dispatch_move_job(cl->d, job->id, STORE_FAILED, reason, message, NULL);
		return false;
	}
	snprintf(msg, sizeof(msg), "run %d failed (%s%s%.*s); run %d of %d starts in %d s", job->run, reason,
		 message ? ": " : "", GW_ERRLEN, message ? message : "", job->run + 1, p.retries + 1,
		 p.interval_s);
	again.not_before_ms = gw_now_ms() + (int64_t)p.interval_s * 1000;
	if (dispatch_move_job(cl->d, job->id, STORE_QUEUED, "Restarting", msg, &again) != GW_OK)
		return false;
	dispatch_delete_driver(cl, job);
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
	const char *id = dispatch_jstr(json_object_get(json_object_get(json_object_get(obj, "metadata"), "labels"),
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
			dispatch_move_job(cl->d, id, STORE_CANCELLED, dispatch_cancel_reason(&job), "the cluster confirmed the deletion",
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

			dispatch_move_job(cl->d, id, (enum store_state)to, reason, *message ? message : NULL, &seen);
		}
		if (timed_out) /* it would wait forever: free the namespace */
			dispatch_delete_driver(cl, &job);
	}
	store_job_release(&job);
}

/* After SUBMITTED: anything the watcher saw earlier now applies. */
void dispatch_apply_seen(struct cluster_rt *cl, const char *job_id)
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
void dispatch_recheck_pending(struct cluster_rt *cl, bool all)
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
		    !strcmp(dispatch_jstr(json_object_get(json_object_get(obj, "status"), "phase")), "Pending"))
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
	const char *uid = dispatch_jstr(json_object_get(meta, "uid"));
	const char *job = json_string_value(json_object_get(json_object_get(meta, "labels"), DISPATCH_JOB_LABEL));
	const char *phase = dispatch_jstr(json_object_get(status, "phase"));
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
		json_array_append_new(uids, json_string(dispatch_jstr(json_object_get(json_object_get(it, "metadata"), "uid"))));
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
	if (strcmp(dispatch_jstr(json_object_get(status, "phase")), "Pending"))
		return;
	json_array_foreach(json_object_get(status, "conditions"), i, c)
		if (!strcmp(dispatch_jstr(json_object_get(c, "type")), "PodScheduled") &&
		    !strcmp(dispatch_jstr(json_object_get(c, "status")), "False")) {
			snprintf(out, len, "%s: %s", *dispatch_jstr(json_object_get(c, "reason")) ?
				 dispatch_jstr(json_object_get(c, "reason")) : "Pending", dispatch_jstr(json_object_get(c, "message")));
			return;
		}
	if (waiting && *dispatch_jstr(json_object_get(waiting, "reason")))
		snprintf(out, len, "%s%s%s", dispatch_jstr(json_object_get(waiting, "reason")),
			 *dispatch_jstr(json_object_get(waiting, "message")) ? ": " : "", dispatch_jstr(json_object_get(waiting, "message")));
}

static void note_pod_wait(struct cluster_rt *cl, const char *type, const json_t *pod)
{
	const json_t *meta = json_object_get(pod, "metadata");
	const char *job = json_string_value(json_object_get(json_object_get(meta, "labels"), DISPATCH_JOB_LABEL));
	const char *name = dispatch_jstr(json_object_get(meta, "name"));
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
bool dispatch_pods_wait_reason(struct cluster_rt *cl, const char *job_id, char *out, size_t len)
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
	const char *phase = dispatch_jstr(json_object_get(json_object_get(pod, "status"), "phase"));
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

		if (gw_quantity_parse(dispatch_jstr(json_object_get(json_object_get(res, "requests"), "cpu")), &v) == 0)
			cores += v;
		if (gw_quantity_parse(dispatch_jstr(json_object_get(json_object_get(res, "requests"), "memory")), &v) == 0)
			memory += (int64_t)v;
		json_object_foreach(json_object_get(res, "limits"), key, q)
			if (strstr(key, "gpu"))
				gpus += atoi(dispatch_jstr(q));
	}
	{
		struct store_demand held = {.cores_milli = llround(cores * 1000),
					    .memory_mib = (memory + (1 << 20) - 1) >> 20, .gpus = gpus};

		record_usage(cl, type, pod, &held);
	}
	pool_pod(cl->d->opts.pool, cl->name, dispatch_jstr(json_object_get(meta, "uid")),
		 json_string_value(json_object_get(json_object_get(meta, "labels"), DISPATCH_JOB_LABEL)),
		 dispatch_jstr(json_object_get(meta, "namespace")),
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
	const char *id = dispatch_jstr(json_object_get(labels, DISPATCH_JOB_LABEL));
	bool pending = strcmp(type, "DELETED") &&
		       !strcmp(dispatch_jstr(json_object_get(json_object_get(pod, "status"), "phase")), "Pending");
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
			dispatch_delete_driver(cl, &job);
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
	const char *rv = dispatch_jstr(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));

	if (!strcmp(type, "ERROR")) {
		if (json_integer_value(json_object_get(obj, "code")) == 410)
			w->expired = true;
		gw_log(GW_LOG_INFO, "watch %s: %s", w->cl->name, dispatch_jstr(json_object_get(obj, "message")));
		return false;
	}
	if (*rv)
		snprintf(w->rv, sizeof(w->rv), "%s", rv);
	if (strcmp(type, "BOOKMARK"))
		observe(w->wt, type, obj);
	if (!w->wt->apps && gw_now_ms() >= w->recheck_at_ms) {
		if (w->cl->mode == ROUTER_DRIVER_POD)
			dispatch_recheck_pending(w->cl, false);
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
				 dispatch_jstr(json_object_get(json_object_get(json_object_get(it, "metadata"), "labels"),
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
			if (!jobs[j].driver_pod && dispatch_shared_server(cl, jobs[j].id, key, sizeof(key)))
				continue; /* a statement on a shared server: shared.c follows it */
			if (live[s] == STORE_CANCELLING)
				dispatch_move_job(cl->d, jobs[j].id, STORE_CANCELLED, dispatch_cancel_reason(&jobs[j]), "the driver is gone",
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
		if (!dispatch_watching(cl)) {
			dispatch_sleep_ms(100);
			continue;
		}
		atomic_store(&cl->watch_halt, false);
		atomic_fetch_add(&cl->watches_open, 1);
		listed_at = gw_now_ms();
		lrc = k8s_request(cl->client, "GET", watch_path(wt->apps), NULL, &r, err);

		dispatch_count_call(cl, "LIST", lrc, lrc ? 0 : r.status);
		dispatch_count_cluster(cl, "sparkgw_watch_restarts_total", "resource", wt->apps ? "sparkapplications" : "pods");
		if (lrc || r.status != 200) {
			gw_log(GW_LOG_WARN, "watch %s: list failed: %s", cl->name, err);
			k8s_response_release(&r);
			atomic_fetch_sub(&cl->watches_open, 1);
			dispatch_sleep_ms(backoff);
			backoff = backoff < 5000 ? backoff * 2 : 5000;
			continue;
		}
		backoff = 100;
		snprintf(w.rv, sizeof(w.rv), "%s",
			 dispatch_jstr(json_object_get(json_object_get(r.body, "metadata"), "resourceVersion")));
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

			dispatch_count_call(cl, "WATCH", rc, 200);
			if (carries_state)
				dispatch_recheck_pending(cl, true);
			if (rc != GW_OK) {
				gw_log(GW_LOG_INFO, "watch %s: %s; resuming from %s", cl->name, err, w.rv);
				dispatch_sleep_ms(backoff);
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

bool dispatch_start_watcher(struct cluster_rt *cl, bool apps)
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
