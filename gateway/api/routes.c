/* The gateway's API on the HTTP layer: the route table (every endpoint, its
 * handler and the role it needs, in one place), the per-request hooks, and
 * the small operational endpoints (health, readiness, version). */
#include "gateway/api/api.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics.h"
#include "gateway/api/jobview.h"

#ifndef GW_VERSION
#define GW_VERSION "0.0.0"
#endif
#ifndef GW_GIT_COMMIT
#define GW_GIT_COMMIT "unknown"
#endif

struct gateway_server {
	struct http_server *http;
	struct http_app app;
	struct gateway_services services;
	struct gateway_followers *followers;
	const struct gateway_config *cfg;
};

static enum MHD_Result handle_healthz(struct http_request *h, const char *id)
{
	(void)id;
	return http_reply_json(h, 200, json_pack("{s:s}", "status", "ok"), NULL);
}

static enum MHD_Result handle_readyz(struct http_request *h, const char *id)
{
	char err[GW_ERRLEN];

	(void)id;
	if (store_ping(api_request(h)->store, err) != GW_OK)
		return http_reply_problem_retry(h, 503, "not-ready", err, "1");
	return http_reply_json(h, 200, json_pack("{s:s}", "status", "ready"), NULL);
}

static enum MHD_Result handle_version(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	const char *engine_version, *engine = store_engine(rq->store, &engine_version);

	(void)id;
	return http_reply_json(h, 200,
			       json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:s}", "version",
					 GW_VERSION, "gitCommit", GW_GIT_COMMIT,
					 "apiVersion", "v1", "store", "driver",
					 engine, "version", engine_version,
					 "auth", rq->cfg->auth_none ? "none" : "token"),
			       NULL);
}

static const struct http_route routes[] = {
	{"GET", "/", api_ui, HTTP_OPEN},
	{"GET", "/ui/*", api_ui, HTTP_OPEN},
	{"GET", "/healthz", handle_healthz, HTTP_OPEN},
	{"GET", "/readyz", handle_readyz, HTTP_OPEN},
	{"GET", "/api/v1/version", handle_version, HTTP_OPEN},
	{"POST", "/api/v1/jobs", api_job_submit, AUTH_SUBMITTER},
	{"GET", "/api/v1/jobs", api_job_list, AUTH_VIEWER},
	{"GET", "/api/v1/jobs/*", api_job_get, AUTH_VIEWER},
	{"DELETE", "/api/v1/jobs/*", api_job_cancel, AUTH_SUBMITTER},
	{"GET", "/api/v1/jobs/*/events", api_job_events, AUTH_VIEWER},
	{"GET", "/api/v1/jobs/*/logs", api_job_logs, AUTH_VIEWER},
	{"GET", "/api/v1/jobs/*/conf", api_job_conf, AUTH_VIEWER},
	{"GET", "/api/v1/jobs/*/pods", api_job_pods, AUTH_VIEWER},
	{"GET", UI_ROUTE, api_job_ui, AUTH_VIEWER},
	{"GET", "/api/v1/pools", api_pools, AUTH_VIEWER},
	{"GET", "/api/v1/queue", api_queue, AUTH_OPERATOR},
	{"GET", "/api/v1/clusters", api_clusters, AUTH_VIEWER},
	{"POST", "/api/v1/clusters", api_cluster_add, AUTH_ADMIN},
	{"GET", "/api/v1/clusters/*", api_cluster_get, AUTH_VIEWER},
	{"DELETE", "/api/v1/clusters/*", api_cluster_remove, AUTH_ADMIN},
	{"PATCH", "/api/v1/clusters/*", api_cluster_patch, AUTH_OPERATOR},
	{"POST", "/api/v1/clusters/*/cordon", api_cluster_cordon, AUTH_OPERATOR},
	{"POST", "/api/v1/clusters/*/drain", api_cluster_drain, AUTH_OPERATOR},
	{"POST", "/api/v1/clusters/*/uncordon", api_cluster_uncordon, AUTH_OPERATOR},
	{"POST", "/api/v1/admin/reload", api_reload, AUTH_ADMIN},
	{"POST", "/api/v1/tokens", api_token_create, AUTH_ADMIN},
	{"GET", "/api/v1/tokens", api_token_list, AUTH_ADMIN},
	{"DELETE", "/api/v1/tokens/*", api_token_revoke, AUTH_ADMIN},
	{"GET", "/api/v1/audit", api_audit, AUTH_ADMIN},
	{"GET", "/metrics", api_metrics, AUTH_VIEWER},
	{"GET", "/api/v1/usage", api_usage, AUTH_VIEWER},
	{"POST", "/skatev2/spark", api_bpg_submit, AUTH_SUBMITTER},
	{"GET", "/skatev2/spark/*/status", api_bpg_status, AUTH_VIEWER},
	{"GET", "/skatev2/spark/*/driver", api_bpg_driver, AUTH_VIEWER},
	{"GET", "/skatev2/spark/*/describe", api_bpg_describe, AUTH_VIEWER},
	{"DELETE", "/skatev2/spark/*", api_bpg_delete, AUTH_SUBMITTER},
	{"GET", "/skatev2/log", api_bpg_log, AUTH_VIEWER},
};

/* Livy's, served under compat.livy_prefix. */
static const struct http_route livy_routes[] = {
	{"POST", "/livy/batches", api_livy_submit, AUTH_SUBMITTER},
	{"GET", "/livy/batches", api_livy_list, AUTH_VIEWER},
	{"GET", "/livy/batches/*", api_livy_get, AUTH_VIEWER},
	{"DELETE", "/livy/batches/*", api_livy_delete, AUTH_SUBMITTER},
	{"GET", "/livy/batches/*/state", api_livy_state, AUTH_VIEWER},
	{"GET", "/livy/batches/*/log", api_livy_log, AUTH_VIEWER},
};

const struct http_route *gateway_routes(bool livy, size_t *n)
{
	*n = livy ? sizeof(livy_routes) / sizeof(livy_routes[0]) : sizeof(routes) / sizeof(routes[0]);
	return livy ? livy_routes : routes;
}

static void request_init(struct http_request *h, void *arg)
{
	struct gateway_server *srv = arg;
	struct request *rq = api_request(h);

	rq->services = &srv->services;
	rq->store = srv->services.store;
	rq->dispatch = srv->services.dispatch;
	rq->followers = srv->followers;
	rq->cfg = srv->cfg;
}

static void count_submission(struct gateway_server *srv, const struct http_request *h)
{
	unsigned st = h->status;

	if (st && h->route && !strcmp(h->route, "/api/v1/jobs") && !strcmp(h->method, "POST"))
		gw_metrics_add(srv->services.metrics, "sparkgw_submissions_total",
			       st == 201 ? "outcome=\"accepted\""
			       : st == 200 ? "outcome=\"replayed_or_dry_run\""
			       : st == 429 ? "outcome=\"shed\""
			       : st >= 500 ? "outcome=\"failed\"" : "outcome=\"refused\"", 1);
}

static void request_done(struct http_request *h, void *arg)
{
	struct request *rq = api_request(h);

	count_submission(arg, h);
	gateway_audit(rq);
	auth_principal_release(&rq->who);
	gateway_submission_release(&rq->sub);
	store_job_release(&rq->op.job);
	free(rq->idempotency_key);
}

static bool authorize(struct http_request *h, int min_role, enum MHD_Result *reply)
{
	return gateway_authorize(api_request(h), (enum auth_role)min_role, reply);
}

static void stopping(void *arg)
{
	struct gateway_server *srv = arg;

	/* Log streams would otherwise run until their drivers end. */
	gateway_followers_stop(srv->followers);
}

enum gw_err gateway_server_start(const struct gateway_config *cfg, const struct gateway_services *services,
				 int listen_fd, struct gateway_server **out, char *err)
{
	struct gateway_server *srv = calloc(1, sizeof(*srv));
	enum gw_err rc;

	*out = NULL;
	if (!srv || !(srv->followers = gateway_followers_new())) {
		free(srv);
		close(listen_fd);
		return GW_ENOMEM;
	}
	srv->services = *services;
	srv->cfg = cfg;
	srv->app = (struct http_app){
		.routes = routes,
		.nroutes = sizeof(routes) / sizeof(routes[0]),
		.mount_at = cfg->livy_prefix,
		.mount_as = "/livy",
		.mount_routes = livy_routes,
		.mount_nroutes = sizeof(livy_routes) / sizeof(livy_routes[0]),
		.request_size = sizeof(struct request),
		.request_init = request_init,
		.request_done = request_done,
		.authorize = authorize,
		.stopping = stopping,
		.arg = srv,
	};
	gw_metrics_family(services->metrics, "sparkgw_submissions_total", GW_COUNTER, "Job submissions by outcome.");
	if ((rc = http_server_start(cfg, &srv->app, services->metrics, listen_fd, &srv->http, err))) {
		gateway_followers_free(srv->followers);
		free(srv);
		return rc;
	}
	*out = srv;
	return GW_OK;
}

void gateway_server_stop(struct gateway_server *srv)
{
	if (!srv)
		return;
	http_server_stop(srv->http);
	gateway_followers_free(srv->followers);
	free(srv);
}
