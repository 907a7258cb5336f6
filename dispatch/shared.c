/* Shared execution: the long-running Spark servers a pool declares
 * (sharedServers) and the small SQL jobs that run on them as statements
 * instead of on a driver of their own.
 *
 * A server is a Pod and a Service in the pool's shared namespace, labelled
 * like the gateway's other objects; the gateway reaches it through the API
 * server's service proxy and speaks Livy's REST API to it (sessions and
 * statements). A job gets a session of its own on the server, named after
 * the job and its run, so that after a crash the session is found, not
 * made twice (Livy refuses a second session of a name), and its statement,
 * the session's first, is found before one is posted.
 *
 * The shared loop, every SHARED_TICK_MS, for each cluster: lists the
 * servers and their sessions (a server answering is a healthy one); on the
 * cluster whose watch lease this process holds it also moves the jobs on
 * them (SUBMITTED -> RUNNING -> SUCCEEDED/FAILED), replaces servers that
 * died, and scales them between the pool's bounds by the jobs bound and
 * waiting. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "dispatch/dispatch.h"
#include "dispatch/dispatch_int.h"
#include "k8sclient/k8s.h"

#define SHARED_TICK_MS 500
/* A job told there is no free slot counts toward the servers wanted this
 * long. */
#define WANT_MS 3000
#define LIVY_PORT 8998
#define SERVER_LABEL "sparkgw/shared-server"
#define POOL_LABEL "sparkgw/shared-pool"
#define OUTPUT_MAX 1024

/* A pool's name as a label value and name part: lower case letters,
 * digits and '-', at most 40. */
static void pool_token(const char *pool, char *out, size_t len)
{
	size_t n = 0;

	for (const char *p = pool; *p && n + 1 < len && n < 40; p++)
		out[n++] = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a')
			   : ((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9')) ? *p : '-';
	while (n > 0 && out[n - 1] == '-')
		n--;
	out[n] = 0;
	if (!n)
		snprintf(out, len, "pool");
}

static void session_name(const struct store_job *job, char *out, size_t len)
{
	snprintf(out, len, "sparkgw-%s-%d", job->id, job->run > 0 ? job->run : 1);
}

/* A request through the API server's proxy to a server's Livy. */
static enum gw_err livy(struct cluster_rt *cl, const char *ns, const char *server, const char *method,
			const char *rest, const json_t *body, struct k8s_response *r, char *err)
{
	char path[700];
	enum gw_err rc;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/services/%s:%d/proxy/%s", ns, server, LIVY_PORT, rest);
	rc = k8s_request(cl->client, method, path, body, r, err);
	dispatch_count_call(cl, method, rc, rc ? 0 : r->status);
	return rc;
}

/* The server a job is bound to, from the map or its placement; false for
 * a job on a driver of its own (or not placed yet). Only shared jobs are
 * kept in the map, until they leave their server. */
bool dispatch_shared_server(struct cluster_rt *cl, const char *job_id, char *server, size_t len)
{
	struct store_job job = {0};
	json_t *placement, *known;
	char err[GW_ERRLEN];
	bool shared = false;

	pthread_mutex_lock(&cl->shared_lock);
	known = json_object_get(cl->shared_jobs, job_id);
	if (known)
		snprintf(server, len, "%s", dispatch_jstr(known));
	pthread_mutex_unlock(&cl->shared_lock);
	if (known)
		return *server != 0;
	if (store_job_get(cl->d->store, job_id, &job, err))
		return false;
	placement = job.placement_json ? json_loads(job.placement_json, 0, NULL) : NULL;
	if (placement && json_string_value(json_object_get(placement, "sharedServer"))) {
		shared = true;
		snprintf(server, len, "%s", json_string_value(json_object_get(placement, "sharedServer")));
		pthread_mutex_lock(&cl->shared_lock);
		json_object_set_new(cl->shared_jobs, job_id, json_string(server));
		pthread_mutex_unlock(&cl->shared_lock);
	}
	json_decref(placement);
	store_job_release(&job);
	return shared;
}

/* Jobs bound to a server now (claimed or on it). Caller holds shared_lock. */
static unsigned bound_to(const struct cluster_rt *cl, const char *server)
{
	const char *id;
	json_t *v;
	unsigned n = 0;

	json_object_foreach(cl->shared_jobs, id, v)
		n += !strcmp(dispatch_jstr(v), server);
	return n;
}

/* A ready server of the pool with a free slot, the least bound one, is
 * bound to the job; false with why when there is none. */
static bool pick(struct cluster_rt *cl, const struct router_decision *dec, const char *job_id, char *server,
		 size_t len, char *why, size_t why_len)
{
	const struct router_shared *sh = dec->pool->shared;
	const char *name, *best = NULL;
	unsigned best_bound = sh->max_jobs, ready = 0, total = 0;
	char token[48];
	json_t *s;

	pool_token(dec->pool->name, token, sizeof(token));
	pthread_mutex_lock(&cl->shared_lock);
	json_object_foreach(cl->shared_servers, name, s) {
		unsigned bound;

		if (strcmp(dispatch_jstr(json_object_get(s, "pool")), token))
			continue;
		total++;
		if (!json_is_true(json_object_get(s, "ready")))
			continue;
		ready++;
		if ((bound = bound_to(cl, name)) < best_bound) {
			best_bound = bound;
			best = name;
		}
	}
	if (best) {
		snprintf(server, len, "%s", best);
		json_object_set_new(cl->shared_jobs, job_id, json_string(best));
		json_object_del(cl->shared_waiting, job_id);
	} else {
		json_object_set_new(cl->shared_waiting, job_id,
				    json_pack("{s:s, s:I}", "pool", token, "at", (json_int_t)gw_now_ms()));
		snprintf(why, why_len, "SharedServerBusy: %u of pool %s's %u shared servers on %s ready, every ready one"
			 " running %u jobs", ready, dec->pool->name, total, cl->name, sh->max_jobs);
	}
	pthread_mutex_unlock(&cl->shared_lock);
	return best != NULL;
}

static void unbind(struct cluster_rt *cl, const char *job_id)
{
	pthread_mutex_lock(&cl->shared_lock);
	json_object_del(cl->shared_jobs, job_id);
	pthread_mutex_unlock(&cl->shared_lock);
}

/* The job's session on the server, by its name: *sid, or -1 when the
 * server has none. The HTTP status of the list (0: no answer). */
static long find_session(struct cluster_rt *cl, const struct store_job *job, const char *server, long long *sid,
			 char *err)
{
	char name[STORE_ID_LEN + 32];
	struct k8s_response r;
	long status = 0;
	size_t i;
	json_t *s;

	*sid = -1;
	session_name(job, name, sizeof(name));
	if (livy(cl, job->namespace, server, "GET", "sessions?size=10000", NULL, &r, err) == GW_OK) {
		status = r.status;
		json_array_foreach(status == 200 ? json_object_get(r.body, "sessions") : NULL, i, s)
			if (!strcmp(dispatch_jstr(json_object_get(s, "name")), name))
				*sid = json_integer_value(json_object_get(s, "id"));
	}
	k8s_response_release(&r);
	return status;
}

/* The job's session on the server: found by name, else made. */
static enum create_outcome open_session(struct cluster_rt *cl, const struct store_job *job, const char *server,
					long long *sid, char *err)
{
	json_t *spec = json_loads(job->spec_json, 0, NULL), *conf = json_object_get(spec, "sparkConf"), *body;
	char name[STORE_ID_LEN + 32], e[GW_ERRLEN] = "";
	struct k8s_response r;
	enum create_outcome outcome = RETRY;

	session_name(job, name, sizeof(name));
	for (int round = 0; round < 2 && outcome == RETRY; round++) {
		long listed = find_session(cl, job, server, sid, e);

		if (*sid >= 0)
			outcome = CREATED;
		if (!*e && listed != 200)
			snprintf(e, sizeof(e), "listing sessions on %s answered %ld", server, listed);
		if (outcome == CREATED || round == 1 || *e)
			break;
		body = json_pack("{s:s, s:s, s:s, s:o}", "kind", "sql", "name", name, "proxyUser", job->user ? job->user : "",
				 "conf", json_is_object(conf) ? json_incref(conf) : json_object());
		if (!job->user || !*job->user)
			json_object_del(body, "proxyUser");
		if (livy(cl, job->namespace, server, "POST", "sessions", body, &r, e) == GW_OK) {
			if (r.status == 201 || r.status == 200) {
				*sid = json_integer_value(json_object_get(r.body, "id"));
				outcome = CREATED;
			} else if (r.status == 400 && strstr(dispatch_jstr(json_object_get(r.body, "msg")), "Duplicate session name")) {
				/* Made by an attempt whose answer was lost: found next round. */
			} else if (r.status >= 400 && r.status < 500) {
				snprintf(e, sizeof(e), "session refused (%ld): %s", r.status, dispatch_jstr(json_object_get(r.body, "msg")));
				outcome = REJECTED;
			} else {
				snprintf(e, sizeof(e), "creating a session on %s answered %ld", server, r.status);
			}
		}
		k8s_response_release(&r);
		json_decref(body);
	}
	if (outcome != CREATED)
		snprintf(err, GW_ERRLEN, "%s", *e ? e : "the session was neither made nor found");
	json_decref(spec);
	return outcome;
}

/* The job's statements in its session: posted once, adopted after. */
static enum create_outcome run_statement(struct cluster_rt *cl, const struct store_job *job, const char *server,
					 long long sid, char *err)
{
	json_t *spec = json_loads(job->spec_json, 0, NULL), *body;
	struct k8s_response r;
	char rest[64];
	enum create_outcome outcome = RETRY;

	bool listed;

	snprintf(rest, sizeof(rest), "sessions/%lld/statements", sid);
	listed = livy(cl, job->namespace, server, "GET", rest, NULL, &r, err) == GW_OK && r.status == 200;
	if (listed && json_integer_value(json_object_get(r.body, "total_statements")) > 0)
		outcome = CREATED; /* posted by an attempt whose answer was lost */
	else if (!listed && !*err)
		snprintf(err, GW_ERRLEN, "listing statements on %s answered %ld", server, r.status);
	k8s_response_release(&r);
	if (outcome == RETRY && listed) {
		body = json_pack("{s:s, s:s}", "code", dispatch_jstr(json_object_get(spec, "sql")), "kind", "sql");
		if (livy(cl, job->namespace, server, "POST", rest, body, &r, err) == GW_OK) {
			if (r.status == 201 || r.status == 200)
				outcome = CREATED;
			else if (r.status >= 400 && r.status < 500)
				outcome = REJECTED;
			if (outcome != CREATED)
				snprintf(err, GW_ERRLEN, "statement refused (%ld): %s", r.status,
					 dispatch_jstr(json_object_get(r.body, "msg")));
		}
		k8s_response_release(&r);
		json_decref(body);
	}
	json_decref(spec);
	return outcome;
}

void dispatch_shared_one(struct dispatch *d, const struct router *r, struct cluster_rt *cl, struct store_job *job,
			 const struct router_decision *dec)
{
	char server[128] = "", why[GW_ERRLEN], err[GW_ERRLEN] = "";
	json_t *placed = job->placement_json ? json_loads(job->placement_json, 0, NULL) : NULL;
	const char *pinned = json_string_value(json_object_get(placed, "sharedServer"));
	enum create_outcome outcome = RETRY;
	long long sid = -1;
	bool lost = false;

	if (pinned) {
		/* Claimed before a crash: the same server, or none. */
		json_t *s;

		snprintf(server, sizeof(server), "%s", pinned);
		pthread_mutex_lock(&cl->shared_lock);
		s = json_object_get(cl->shared_servers, server);
		json_object_set_new(cl->shared_jobs, job->id, json_string(server));
		lost = !s && json_is_true(json_object_get(cl->shared_view, "listed"));
		pthread_mutex_unlock(&cl->shared_lock);
		if (lost) {
			snprintf(why, sizeof(why), "shared server %s went away while the job was given to it; whether its"
				 " statement ran is not known", server);
			dispatch_move_job(d, job->id, STORE_FAILED, "SharedServerLost", why, NULL);
			goto out;
		}
	} else if (!pick(cl, dec, job->id, server, sizeof(server), why, sizeof(why))) {
		dispatch_wait_a_moment(d, job->id, why);
		goto out;
	}
	if (!dispatch_claim(d, r, job, dec, server)) {
		unbind(cl, job->id);
		goto out;
	}
	dispatch_enter_cluster(cl);
	outcome = open_session(cl, job, server, &sid, err);
	if (outcome == CREATED)
		outcome = run_statement(cl, job, server, sid, err);
	dispatch_leave_cluster(cl);
	if (outcome != CREATED)
		unbind(cl, job->id);
	dispatch_record_outcome(d, cl, job, outcome, err, server);
out:
	json_decref(placed);
}

long dispatch_shared_stop(struct cluster_rt *cl, const struct store_job *job, const char *server)
{
	char rest[96], err[GW_ERRLEN];
	struct k8s_response r;
	long long sid;
	long status = find_session(cl, job, server, &sid, err);

	if (status == 200)
		status = 404; /* the server answers: without a session, nothing is left to stop */
	if (sid < 0) {
		if (status == 404)
			unbind(cl, job->id);
		return status; /* 404: no such session (any more); 503: the server is gone */
	}
	snprintf(rest, sizeof(rest), "sessions/%lld/statements/0/cancel", sid);
	if (livy(cl, job->namespace, server, "POST", rest, NULL, &r, err) == GW_OK)
		status = r.status;
	k8s_response_release(&r);
	snprintf(rest, sizeof(rest), "sessions/%lld", sid);
	if (livy(cl, job->namespace, server, "DELETE", rest, NULL, &r, err) == GW_OK && r.status == 200)
		status = 404; /* gone now: the cancel is complete */
	k8s_response_release(&r);
	if (status == 404)
		unbind(cl, job->id); /* its slot is free */
	return status;
}

/* ---- the loop ---- */

static json_t *server_pod(const char *name, const char *ns, const char *token, const char *image,
			  const struct router_shared *sh)
{
	char cpu[32], memory[32];

	snprintf(cpu, sizeof(cpu), "%g", sh->cores);
	snprintf(memory, sizeof(memory), "%lldMi", (long long)(sh->memory >> 20));
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s, s:s, s:s}}, s:{s:[{s:s, s:s, s:[{s:s, s:i}, {s:s, s:i}],"
			 " s:{s:{s:s, s:s}, s:{s:s}}, s:{s:{s:s, s:i}, s:i}}]}}",
			 "apiVersion", "v1", "kind", "Pod", "metadata", "name", name, "namespace", ns, "labels",
			 "app.kubernetes.io/managed-by", "sparkgw", "app.kubernetes.io/component", "spark-shared-server",
			 SERVER_LABEL, name, POOL_LABEL, token, "spec", "containers", "name", "livy", "image", image,
			 "ports", "name", "livy", "containerPort", LIVY_PORT, "name", "spark-ui", "containerPort",
			 DISPATCH_UI_PORT, "resources", "requests", "cpu", cpu, "memory", memory, "limits", "memory",
			 memory, "readinessProbe", "httpGet", "path", "/sessions", "port", LIVY_PORT, "periodSeconds", 10);
}

static json_t *server_service(const char *name, const char *ns, const char *token)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s, s:s}}, s:{s:{s:s}, s:[{s:s, s:i, s:i}, {s:s, s:i, s:i}]}}",
			 "apiVersion", "v1", "kind", "Service", "metadata", "name", name, "namespace", ns, "labels",
			 "app.kubernetes.io/managed-by", "sparkgw", "app.kubernetes.io/component", "spark-shared-server",
			 POOL_LABEL, token, "spec", "selector", SERVER_LABEL, name, "ports", "name", "livy", "port",
			 LIVY_PORT, "targetPort", LIVY_PORT, "name", "spark-ui", "port", DISPATCH_UI_PORT, "targetPort",
			 DISPATCH_UI_PORT);
}

static void post(struct cluster_rt *cl, const char *ns, const char *plural, json_t *obj /* stolen */)
{
	struct k8s_response r;
	char path[300], err[GW_ERRLEN];
	enum gw_err rc;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/%s", ns, plural);
	rc = k8s_request(cl->client, "POST", path, obj, &r, err);
	dispatch_count_call(cl, "POST", rc, rc ? 0 : r.status);
	if (rc || (r.status >= 300 && r.status != 409))
		gw_log(GW_LOG_WARN, "shared: create %s on %s: %s", plural, cl->name, rc ? err : k8s_status_reason(&r));
	k8s_response_release(&r);
	json_decref(obj);
}

static void delete_server(struct cluster_rt *cl, const char *ns, const char *name)
{
	static const char *const plurals[] = {"pods", "services"};

	for (size_t i = 0; i < 2; i++) {
		struct k8s_response r;
		char path[300], err[GW_ERRLEN];
		enum gw_err rc;

		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/%s/%s", ns, plurals[i], name);
		rc = k8s_request(cl->client, "DELETE", path, NULL, &r, err);
		dispatch_count_call(cl, "DELETE", rc, rc ? 0 : r.status);
		k8s_response_release(&r);
	}
	gw_log(GW_LOG_INFO, "shared: server %s/%s on %s removed", ns, name, cl->name);
}

/* The pool's servers on the cluster as they are now, into view: name ->
 * {pool, ns, phase, ready, sessions: {session name: {id, state}}}. */
static bool list_servers(struct cluster_rt *cl, const char *ns, const char *token, json_t *view)
{
	struct k8s_response r;
	char path[400], err[GW_ERRLEN];
	bool ok;
	size_t i;
	json_t *pod;

	snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods?labelSelector=%s%%3D%s", ns, POOL_LABEL, token);
	ok = k8s_request(cl->client, "GET", path, NULL, &r, err) == GW_OK && r.status == 200;
	dispatch_count_call(cl, "LIST", ok ? GW_OK : GW_EIO, ok ? 200 : r.status);
	json_array_foreach(ok ? json_object_get(r.body, "items") : NULL, i, pod) {
		const json_t *meta = json_object_get(pod, "metadata");
		const char *name = dispatch_jstr(json_object_get(meta, "name"));
		const char *phase = dispatch_jstr(json_object_get(json_object_get(pod, "status"), "phase"));
		bool deleting = json_object_get(meta, "deletionTimestamp") != NULL;
		json_t *sessions = json_object(), *s;
		struct k8s_response lr = {0};
		bool ready = false;
		size_t j;

		if (!deleting && !strcmp(phase, "Running") &&
		    livy(cl, ns, name, "GET", "sessions?size=10000", NULL, &lr, err) == GW_OK && lr.status == 200) {
			ready = true;
			json_array_foreach(json_object_get(lr.body, "sessions"), j, s)
				json_object_set_new(sessions, dispatch_jstr(json_object_get(s, "name")),
						    json_pack("{s:O, s:O}", "id", json_object_get(s, "id"), "state",
							      json_object_get(s, "state")));
		}
		k8s_response_release(&lr);
		json_object_set_new(view, name, json_pack("{s:s, s:s, s:s, s:b, s:b, s:o}", "pool", token, "ns", ns,
							 "phase", phase, "deleting", deleting, "ready", ready,
							 "sessions", sessions));
	}
	k8s_response_release(&r);
	return ok;
}

/* The cost of a statement: the server's cores and memory divided among
 * its slots, for the time it ran. */
static void record_share(struct cluster_rt *cl, const struct store_job *job, const struct router_shared *sh,
			 int64_t start, int64_t end)
{
	struct store_op op = {.kind = STORE_OP_POD_USAGE};
	char uid[STORE_ID_LEN + 32];

	if (start <= 0)
		return;
	snprintf(uid, sizeof(uid), "statement-%s-%d", job->id, job->run > 0 ? job->run : 1);
	op.usage = (struct store_pod_usage){
		.uid = uid, .cluster = cl->name, .job_id = job->id, .role = "statement",
		.held = {.cores_milli = (int64_t)llround(sh->cores * 1000 / sh->max_jobs),
			 .memory_mib = (sh->memory >> 20) / sh->max_jobs},
		.start_ms = start, .end_ms = end > start ? end : start};
	if (store_execute(cl->d->store, &op))
		gw_log(GW_LOG_WARN, "shared: usage of %s: %s", job->id, op.err);
	store_job_release(&op.job);
}

/* A finished statement: the job's end, its output in the message, its
 * cost; then its session goes. */
static void finish(struct cluster_rt *cl, const struct store_job *job, const char *server, const char *ns,
		   long long sid, const struct router_shared *sh)
{
	struct k8s_response r;
	char rest[96], err[GW_ERRLEN], message[OUTPUT_MAX + 200];
	const char *state;
	json_t *output;
	char *text;
	bool ok;

	snprintf(rest, sizeof(rest), "sessions/%lld/statements/0", sid);
	if (livy(cl, ns, server, "GET", rest, NULL, &r, err) != GW_OK || r.status != 200) {
		k8s_response_release(&r);
		return; /* asked again next tick */
	}
	state = dispatch_jstr(json_object_get(r.body, "state"));
	output = json_object_get(r.body, "output");
	if (strcmp(state, "available") && strcmp(state, "error")) {
		k8s_response_release(&r);
		return;
	}
	ok = !strcmp(state, "available") && !strcmp(dispatch_jstr(json_object_get(output, "status")), "ok");
	text = json_dumps(ok ? json_object_get(output, "data") : output, JSON_COMPACT);
	snprintf(message, sizeof(message), "statement %s on shared server %s: %.*s", ok ? "succeeded" : "failed",
		 server, OUTPUT_MAX, text ? text : "");
	free(text);
	if (job->state == STORE_SUBMITTED)
		dispatch_move_job(cl->d, job->id, STORE_RUNNING, "StatementRunning", "the statement ran", NULL);
	record_share(cl, job, sh, json_integer_value(json_object_get(r.body, "started")),
		     json_integer_value(json_object_get(r.body, "completed")));
	if (dispatch_move_job(cl->d, job->id, ok ? STORE_SUCCEEDED : STORE_FAILED,
			      ok ? "StatementSucceeded" : "StatementFailed", message, NULL) == GW_OK) {
		k8s_response_release(&r);
		snprintf(rest, sizeof(rest), "sessions/%lld", sid);
		livy(cl, ns, server, "DELETE", rest, NULL, &r, err);
		unbind(cl, job->id);
	}
	k8s_response_release(&r);
}

/* The jobs on the cluster's shared servers, moved as their sessions say. */
static void follow_jobs(struct cluster_rt *cl, const struct router *r, json_t *view)
{
	static const enum store_state on_server[] = {STORE_SUBMITTED, STORE_RUNNING};

	for (size_t st = 0; st < 2; st++) {
		struct store_job *jobs = NULL;
		size_t n = 0;
		char err[GW_ERRLEN];

		if (store_jobs_in_state(cl->d->store, on_server[st], cl->name, 100000, &jobs, &n, err))
			continue;
		for (size_t j = 0; j < n; j++) {
			char server[128], name[STORE_ID_LEN + 32], why[300];
			const json_t *srv, *session;
			const struct router_pool *pool;
			const char *state;

			if (jobs[j].driver_pod || !dispatch_shared_server(cl, jobs[j].id, server, sizeof(server)))
				continue;
			srv = json_object_get(view, server);
			pool = router_pool_named(r, jobs[j].pool);
			if (!pool || !pool->shared)
				continue;
			if (!srv || !strcmp(dispatch_jstr(json_object_get(srv, "phase")), "Failed") ||
			    !strcmp(dispatch_jstr(json_object_get(srv, "phase")), "Succeeded")) {
				snprintf(why, sizeof(why), "shared server %s %s while the statement was on it", server,
					 srv ? "died" : "went away");
				if (dispatch_move_job(cl->d, jobs[j].id, STORE_FAILED, "SharedServerLost", why, NULL) == GW_OK)
					unbind(cl, jobs[j].id);
				continue;
			}
			if (!json_is_true(json_object_get(srv, "ready")))
				continue; /* not answering now: asked again */
			session_name(&jobs[j], name, sizeof(name));
			session = json_object_get(json_object_get(srv, "sessions"), name);
			state = dispatch_jstr(json_object_get(session, "state"));
			if (!session) {
				snprintf(why, sizeof(why), "its session on shared server %s is gone (the server restarted)",
					 server);
				if (dispatch_move_job(cl->d, jobs[j].id, STORE_FAILED, "SharedServerLost", why, NULL) == GW_OK)
					unbind(cl, jobs[j].id);
			} else if (!strcmp(state, "idle") || !strcmp(state, "dead") || !strcmp(state, "error") ||
				   !strcmp(state, "killed") || !strcmp(state, "success")) {
				finish(cl, &jobs[j], server, dispatch_jstr(json_object_get(srv, "ns")),
				       json_integer_value(json_object_get(session, "id")), pool->shared);
			} else if (!strcmp(state, "busy") && on_server[st] == STORE_SUBMITTED) {
				snprintf(why, sizeof(why), "running on shared server %s", server);
				dispatch_move_job(cl->d, jobs[j].id, STORE_RUNNING, "StatementRunning", why, NULL);
			}
		}
		store_jobs_free(jobs, n);
	}
}

/* Servers wanted for the pool: its bound jobs and those that waited for a
 * slot lately, over the slots of a server, within the pool's bounds. */
static unsigned wanted(struct cluster_rt *cl, const char *token, const struct router_shared *sh, json_t *view)
{
	const char *k;
	json_t *v, *s;
	unsigned jobs = 0, servers;
	int64_t now = gw_now_ms();
	void *iter;

	pthread_mutex_lock(&cl->shared_lock);
	json_object_foreach(view, k, s)
		if (!strcmp(dispatch_jstr(json_object_get(s, "pool")), token))
			jobs += bound_to(cl, k);
	json_object_foreach_safe(cl->shared_waiting, iter, k, v) {
		if (now - json_integer_value(json_object_get(v, "at")) > WANT_MS)
			json_object_del(cl->shared_waiting, k);
		else if (!strcmp(dispatch_jstr(json_object_get(v, "pool")), token))
			jobs++;
	}
	pthread_mutex_unlock(&cl->shared_lock);
	servers = (jobs + sh->max_jobs - 1) / sh->max_jobs;
	return servers < sh->min_servers ? sh->min_servers : servers > sh->max_servers ? sh->max_servers : servers;
}

/* Keeps the pool's servers on the cluster: the dead replaced, as many as
 * wanted, an idle one above that removed after the idle timeout. */
static void keep_servers(struct cluster_rt *cl, const struct router *r, const struct router_pool *pool,
			 const char *token, json_t *view)
{
	const struct router_shared *sh = pool->shared;
	const struct router_namespace *ns = router_shared_namespace(r, pool);
	const struct router_cluster *c = router_cluster_named(r, cl->name);
	unsigned want = wanted(cl, token, sh, view), alive = 0;
	int64_t now = gw_now_ms();
	const char *name;
	json_t *s;
	char idle_key[200];

	json_object_foreach(view, name, s) {
		const char *phase = dispatch_jstr(json_object_get(s, "phase"));

		if (strcmp(dispatch_jstr(json_object_get(s, "pool")), token) || json_is_true(json_object_get(s, "deleting")))
			continue;
		if (!strcmp(phase, "Failed") || !strcmp(phase, "Succeeded")) {
			gw_log(GW_LOG_WARN, "shared: server %s on %s is %s: replaced", name, cl->name, phase);
			delete_server(cl, ns->name, name);
			continue;
		}
		alive++;
	}
	for (unsigned k = 0; alive < want && k < sh->max_servers * 2; k++) {
		char server[96];

		snprintf(server, sizeof(server), "%s-shared-%u", token, k);
		if (json_object_get(view, server))
			continue;
		gw_log(GW_LOG_INFO, "shared: creating server %s/%s on %s (%u wanted)", ns->name, server, cl->name, want);
		post(cl, ns->name, "services", server_service(server, ns->name, token));
		post(cl, ns->name, "pods", server_pod(server, ns->name, token, sh->image ? sh->image
							     : c && c->image ? c->image : "apache/spark:3.5.3", sh));
		alive++;
	}
	/* Above what is wanted: the idle ones go once idle long enough. */
	json_object_foreach(view, name, s) {
		json_t *since;
		unsigned bound;

		if (strcmp(dispatch_jstr(json_object_get(s, "pool")), token) || json_is_true(json_object_get(s, "deleting")))
			continue;
		snprintf(idle_key, sizeof(idle_key), "idle:%s", name);
		pthread_mutex_lock(&cl->shared_lock);
		bound = bound_to(cl, name);
		since = json_object_get(cl->shared_view, idle_key);
		if (bound || json_object_size(json_object_get(s, "sessions")))
			json_object_del(cl->shared_view, idle_key);
		else if (!since)
			json_object_set_new(cl->shared_view, idle_key, json_integer(now));
		since = json_object_get(cl->shared_view, idle_key);
		pthread_mutex_unlock(&cl->shared_lock);
		if (alive > want && since && now - json_integer_value(since) >= (int64_t)sh->idle_timeout_s * 1000) {
			delete_server(cl, ns->name, name);
			alive--;
		}
	}
}

static void tick(struct cluster_rt *cl, const struct router *r)
{
	json_t *view = json_object();
	bool listed = true, any = false;

	for (size_t p = 0; p < r->npools; p++) {
		const struct router_pool *pool = &r->pools[p];
		bool member = false;
		char token[48];

		for (size_t m = 0; m < pool->nmembers && !member; m++)
			member = !strcmp(r->clusters[pool->members[m].cluster].name, cl->name);
		if (!pool->shared || !member)
			continue;
		any = true;
		pool_token(pool->name, token, sizeof(token));
		listed = list_servers(cl, router_shared_namespace(r, pool)->name, token, view) && listed;
	}
	if (!any) {
		json_decref(view);
		return;
	}
	pthread_mutex_lock(&cl->shared_lock);
	json_decref(cl->shared_servers);
	cl->shared_servers = json_incref(view);
	json_object_set_new(cl->shared_view, "listed", json_boolean(listed));
	pthread_mutex_unlock(&cl->shared_lock);
	if (listed && dispatch_watching(cl)) {
		follow_jobs(cl, r, view);
		for (size_t p = 0; p < r->npools; p++) {
			char token[48];

			if (!r->pools[p].shared)
				continue;
			pool_token(r->pools[p].name, token, sizeof(token));
			for (size_t m = 0; m < r->pools[p].nmembers; m++)
				if (!strcmp(r->clusters[r->pools[p].members[m].cluster].name, cl->name))
					keep_servers(cl, r, &r->pools[p], token, view);
		}
	}
	json_decref(view);
}

void *dispatch_shared_main(void *arg)
{
	struct dispatch *d = arg;

	while (!atomic_load(&d->stop)) {
		struct router *r = router_holder_get(d->opts.policy);

		for (size_t i = 0; i < atomic_load(&d->nclusters) && !atomic_load(&d->stop); i++)
			if (!atomic_load(&d->clusters[i].removed))
				tick(&d->clusters[i], r);
		router_unref(r);
		for (int t = 0; t < SHARED_TICK_MS / 50 && !atomic_load(&d->stop); t++)
			dispatch_sleep_ms(50);
	}
	return NULL;
}
