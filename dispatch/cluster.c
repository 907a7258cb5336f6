/* A cluster as the loops use it: its API server budget (a token bucket and
 * a cap on dispatches in flight), object creation that adopts what a
 * retried create finds, deletion, counting of calls, and reading a
 * driver's log and Spark UI through it. */
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

const char *dispatch_jstr(const json_t *v)
{
	const char *s = json_string_value(v);

	return s ? s : "";
}

struct cluster_rt *dispatch_cluster_named(struct dispatch *d, const char *name)
{
	size_t n = atomic_load(&d->nclusters);

	for (size_t i = 0; name && i < n; i++)
		if (!atomic_load(&d->clusters[i].removed) && !strcmp(d->clusters[i].name, name))
			return &d->clusters[i];
	return NULL;
}

/* Whether this process holds the cluster's watch lease, with time to spare. */
bool dispatch_watching(struct cluster_rt *cl)
{
	return gw_now_ms() + WATCH_MARGIN_MS < atomic_load(&cl->watch_until_ms);
}

void dispatch_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

void dispatch_count_finished(struct dispatch *d, enum store_state state, const char *reason)
{
	char why[200], labels[300];

	if (!d)
		return;
	gw_metrics_escape(reason ? reason : "", why, sizeof(why));
	snprintf(labels, sizeof(labels), "state=\"%s\",reason=\"%s\"", store_state_name(state), why);
	gw_metrics_add(d->opts.metrics, "sparkgw_jobs_finished_total", labels, 1);
}

/* A state change, setting the placement and driver fields given in
 * fields (may be NULL); a job that moved on meanwhile (ESTATE) is not an
 * error. */
enum gw_err dispatch_move_job(struct dispatch *d, const char *id, enum store_state to,
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
	if (rc == GW_OK && store_state_terminal(to))
		dispatch_count_finished(d, to, reason);
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
void dispatch_count_call(struct cluster_rt *cl, const char *verb, enum gw_err rc, long status)
{
	char name[200], labels[300];

	gw_metrics_escape(cl->name, name, sizeof(name));
	if (rc)
		snprintf(labels, sizeof(labels), "cluster=\"%s\",verb=\"%s\",code=\"error\"", name, verb);
	else
		snprintf(labels, sizeof(labels), "cluster=\"%s\",verb=\"%s\",code=\"%ld\"", name, verb, status);
	gw_metrics_add(cl->d->opts.metrics, "sparkgw_apiserver_requests_total", labels, 1);
}

void dispatch_count_cluster(struct cluster_rt *cl, const char *family, const char *label, const char *value)
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
		dispatch_sleep_ms(wait_ms);
		pthread_mutex_lock(&cl->rate_lock);
	}
	pthread_mutex_unlock(&cl->rate_lock);
}

/* Whether a dispatch to the cluster would wait for its budget now. */
bool dispatch_cluster_limited(struct cluster_rt *cl)
{
	double tokens;
	bool full;

	pthread_mutex_lock(&cl->rate_lock);
	tokens = cl->tokens + (double)(gw_now_ms() - cl->tokens_at_ms) / 1000.0 * cluster_qps(cl->d);
	full = cl->inflight >= cluster_concurrency(cl->d);
	pthread_mutex_unlock(&cl->rate_lock);
	return full || tokens < 1.0;
}

void dispatch_enter_cluster(struct cluster_rt *cl)
{
	pthread_mutex_lock(&cl->rate_lock);
	while (cl->inflight >= cluster_concurrency(cl->d))
		pthread_cond_wait(&cl->rate_free, &cl->rate_lock);
	cl->inflight++;
	pthread_mutex_unlock(&cl->rate_lock);
}

void dispatch_leave_cluster(struct cluster_rt *cl)
{
	pthread_mutex_lock(&cl->rate_lock);
	cl->inflight--;
	pthread_cond_signal(&cl->rate_free);
	pthread_mutex_unlock(&cl->rate_lock);
}

/* Creates obj, or adopts the one a previous attempt made (409 with our job
 * label). *uid gets the object's uid. */
enum create_outcome dispatch_create_or_adopt(struct cluster_rt *cl, json_t *obj,
					   const char *job_id, char *uid, size_t uidlen,
					   char *why)
{
	const char *kind = dispatch_jstr(json_object_get(obj, "kind"));
	const char *ns = dispatch_jstr(json_object_get(json_object_get(obj, "metadata"), "namespace"));
	const char *name = dispatch_jstr(json_object_get(json_object_get(obj, "metadata"), "name"));
	struct k8s_response r;
	char path[512];
	enum gw_err rc;
	enum create_outcome out;

	object_path(ns, NULL, kind, path, sizeof(path));
	take_token(cl);
	rc = k8s_request(cl->client, "POST", path, obj, &r, why);
	dispatch_count_call(cl, "POST", rc, rc ? 0 : r.status);
	/* Real calls count towards the cluster's health too. */
	pool_report(cl->d->opts.pool, cl->name, rc == GW_OK && r.status < 500, why);
	if (rc)
		return RETRY;
	if (r.status == 409 && !strcmp(k8s_status_reason(&r), "AlreadyExists")) {
		k8s_response_release(&r);
		object_path(ns, name, kind, path, sizeof(path));
		take_token(cl);
		rc = k8s_request(cl->client, "GET", path, NULL, &r, why);
		dispatch_count_call(cl, "GET", rc, rc ? 0 : r.status);
		if (rc)
			return RETRY;
		if (r.status == 200 &&
		    strcmp(dispatch_jstr(json_object_get(json_object_get(json_object_get(r.body, "metadata"), "labels"),
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
		snprintf(uid, uidlen, "%s", dispatch_jstr(json_object_get(json_object_get(r.body, "metadata"), "uid")));
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
long dispatch_delete_driver(struct cluster_rt *cl, const struct store_job *job)
{
	struct dispatch_names names;
	json_t *opts = json_pack("{s:s, s:s, s:s}", "kind", "DeleteOptions", "apiVersion", "v1",
				 "propagationPolicy", "Foreground");
	struct k8s_response r;
	char path[512], err[GW_ERRLEN];
	long status = 0;
	enum gw_err rc;

	if (!job->driver_pod && dispatch_shared_server(cl, job->id, path, sizeof(path))) {
		json_decref(opts);
		return dispatch_shared_stop(cl, job, path);
	}
	dispatch_names(job, &names);
	if (cl->mode == ROUTER_SPARK_OPERATOR)
		object_path(job->namespace, names.app, "SparkApplication", path, sizeof(path));
	else
		object_path(job->namespace, names.driver_pod, "Pod", path, sizeof(path));
	take_token(cl);
	rc = k8s_request(cl->client, "DELETE", path, opts, &r, err);
	dispatch_count_call(cl, "DELETE", rc, rc ? 0 : r.status);
	if (rc == GW_OK)
		status = r.status;
	else
		gw_log(GW_LOG_WARN, "dispatch: delete %s: %s", path, err);
	k8s_response_release(&r);
	json_decref(opts);
	return status;
}

/* The cluster of the job's driver; NULL (GW_ENOTFOUND in err) before it
 * has one. */
static struct cluster_rt *driver_cluster(struct dispatch *d, const struct store_job *job, char *err)
{
	struct cluster_rt *cl = dispatch_cluster_named(d, job->cluster);

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
		dispatch_sleep_ms(100L << attempt);
	}
	if (rc == GW_OK && status != 200) {
		gw_seterr(err, "the cluster answered %ld", status);
		rc = GW_EINVAL;
	}
	return rc;
}
