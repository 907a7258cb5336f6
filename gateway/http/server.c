/* HTTP server: connection handling, routing, response helpers and the
 * small operational endpoints (health, readiness, version). */
#include "gateway/http/http.h"
#include "gateway/api/jobview.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <openssl/crypto.h>

#include "common/log.h"
#include "common/metrics.h"
#include "gateway/api/api.h"

#ifndef GW_VERSION
#define GW_VERSION "0.0.0"
#endif
#ifndef GW_GIT_COMMIT
#define GW_GIT_COMMIT "unknown"
#endif

struct gateway_server {
	struct MHD_Daemon *daemon;
	struct gateway_services services;
	struct gateway_followers *followers;
	const struct gateway_config *cfg;
	int listen_fd;
	atomic_int in_flight; /* requests between first callback and completion */
	atomic_ullong requests; /* numbers the request ids made here */
	char id_prefix[16];     /* random per process, so ids are unique across restarts */
	char *tls_cert, *tls_key, *tls_ca; /* PEM, NULL without TLS */
};

/* TLS 1.2 and 1.3 only. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* A whole (PEM) file, or NULL with the reason in err. */
static char *read_file(const char *path, char *err)
{
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	long n;

	if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || n > (1 << 20) || fseek(f, 0, SEEK_SET) ||
	    !(text = calloc(1, (size_t)n + 1)) || fread(text, 1, (size_t)n, f) != (size_t)n) {
		gw_seterr(err, "%s: %s", path, f ? "unreadable or over 1 MiB" : strerror(errno));
		free(text);
		text = NULL;
	}
	if (f)
		fclose(f);
	return text;
}

static void free_tls(struct gateway_server *srv)
{
	if (srv->tls_key)
		OPENSSL_cleanse(srv->tls_key, strlen(srv->tls_key));
	free(srv->tls_cert);
	free(srv->tls_key);
	free(srv->tls_ca);
}

typedef enum MHD_Result (*handler_fn)(struct request *rq, const char *id);

struct route {
	const char *method;
	const char *path; /* '*' stands for one path segment; a final "**" for
			   * nothing or "/" and the rest */
	handler_fn fn;
	int min_role;     /* an enum auth_role, or OPEN: no token needed */
};

#define OPEN (-1)

static enum MHD_Result handle_healthz(struct request *rq, const char *id);
static enum MHD_Result handle_readyz(struct request *rq, const char *id);
static enum MHD_Result handle_version(struct request *rq, const char *id);

static const struct route routes[] = {
	{"GET", "/", api_ui, OPEN},
	{"GET", "/ui/*", api_ui, OPEN},
	{"GET", "/healthz", handle_healthz, OPEN},
	{"GET", "/readyz", handle_readyz, OPEN},
	{"GET", "/api/v1/version", handle_version, OPEN},
	{"POST", "/api/v1/jobs", api_job_submit, AUTH_SUBMITTER},
	{"GET", "/api/v1/jobs", api_job_list, AUTH_VIEWER},
	{"GET", "/api/v1/jobs/*", api_job_get, AUTH_VIEWER},
	{"DELETE", "/api/v1/jobs/*", api_job_cancel, AUTH_SUBMITTER},
	{"GET", "/api/v1/jobs/*/events", api_job_events, AUTH_VIEWER},
	{"GET", "/api/v1/jobs/*/logs", api_job_logs, AUTH_VIEWER},
	{"GET", "/api/v1/jobs/*/conf", api_job_conf, AUTH_VIEWER},
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

/* Livy's, matched with compat.livy_prefix read as /livy, so that metrics
 * name them the same whatever the prefix. */
static const struct route livy_routes[] = {
	{"POST", "/livy/batches", api_livy_submit, AUTH_SUBMITTER},
	{"GET", "/livy/batches", api_livy_list, AUTH_VIEWER},
	{"GET", "/livy/batches/*", api_livy_get, AUTH_VIEWER},
	{"DELETE", "/livy/batches/*", api_livy_delete, AUTH_SUBMITTER},
	{"GET", "/livy/batches/*/state", api_livy_state, AUTH_VIEWER},
	{"GET", "/livy/batches/*/log", api_livy_log, AUTH_VIEWER},
};

#define NROUTES (sizeof(routes) / sizeof(routes[0]))

/* Matches url against pattern; the '*' segment is copied to id. */
static bool path_matches(const char *pattern, const char *url, char *id,
			 size_t idlen)
{
	while (*pattern) {
		if (!strcmp(pattern, "**"))
			return *url == '\0' || *url == '/';
		if (!*url)
			break;
		if (*pattern == '*') {
			size_t n = strcspn(url, "/");

			if (n == 0 || n >= idlen)
				return false;
			memcpy(id, url, n);
			id[n] = '\0';
			url += n;
			pattern++;
		} else if (*pattern++ != *url++) {
			return false;
		}
	}
	return *pattern == '\0' && *url == '\0';
}

enum MHD_Result http_queue(struct request *rq, unsigned status, struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "X-Request-Id", rq->request_id);
	rq->status = status;
	ret = MHD_queue_response(rq->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Queues resp with the header pairs of ap and a JSON content type. */
static enum MHD_Result queue_json(struct request *rq, unsigned status, struct MHD_Response *resp,
				  va_list ap)
{
	const char *name;

	if (!resp)
		return MHD_NO;
	while ((name = va_arg(ap, const char *)) != NULL) {
		const char *value = va_arg(ap, const char *);

		MHD_add_response_header(resp, name, value);
	}
	if (!MHD_get_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					"application/json");
	return http_queue(rq, status, resp);
}

static struct MHD_Response *owned_text(char *text)
{
	struct MHD_Response *resp = text ? MHD_create_response_from_buffer(strlen(text), text,
									  MHD_RESPMEM_MUST_FREE) : NULL;

	if (!resp)
		free(text);
	return resp;
}

enum MHD_Result http_reply_json(struct request *rq, unsigned status,
				json_t *body, ...)
{
	char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
	enum MHD_Result ret;
	va_list ap;

	json_decref(body);
	va_start(ap, body);
	ret = queue_json(rq, status, owned_text(text), ap);
	va_end(ap);
	return ret;
}

enum MHD_Result http_reply_json_text(struct request *rq, unsigned status, char *text, ...)
{
	enum MHD_Result ret;
	va_list ap;

	va_start(ap, text);
	ret = queue_json(rq, status, owned_text(text), ap);
	va_end(ap);
	return ret;
}

static void release_entry(void *entry)
{
	jobview_release(entry);
}

enum MHD_Result http_reply_job_entry(struct request *rq, unsigned status, struct jobview_entry *e, ...)
{
	/* Sent from the entry itself, which the response holds until sent. */
	struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback_cls(
		e->len, (void *)(uintptr_t)e->text, release_entry, e);
	enum MHD_Result ret;
	va_list ap;

	if (!resp)
		jobview_release(e);
	va_start(ap, e);
	ret = queue_json(rq, status, resp, ap);
	va_end(ap);
	return ret;
}

enum MHD_Result http_reply_not_modified(struct request *rq, const char *etag)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

	if (resp)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
	return http_queue(rq, 304, resp);
}

enum MHD_Result http_reply_text(struct request *rq, unsigned status, const char *text)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		strlen(text), (void *)(uintptr_t)text, MHD_RESPMEM_MUST_COPY);

	if (resp)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	return http_queue(rq, status, resp);
}

static const char *problem_title(unsigned status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

static enum MHD_Result reply_problem_with(struct request *rq, unsigned status,
					  const char *slug, const char *detail,
					  json_t *errors, const char *hname,
					  const char *hvalue)
{
	char type[128];
	json_t *body;

	snprintf(type, sizeof(type), "urn:sparkgw:problem:%s", slug);
	body = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title",
			 problem_title(status), "status", (int)status, "detail",
			 detail ? detail : "");
	if (!body) {
		json_decref(errors);
		return MHD_NO;
	}
	if (errors && rq->rename_fields)
		rq->rename_fields(errors);
	if (errors)
		json_object_set_new(body, "errors", errors);
	if (rq->problem_msg) /* where Livy's clients read the reason */
		json_object_set_new(body, "msg", json_string(detail ? detail : ""));
	return http_reply_json(rq, status, body, MHD_HTTP_HEADER_CONTENT_TYPE,
			       "application/problem+json", hname, hvalue, NULL);
}

enum MHD_Result http_reply_problem_header(struct request *rq, unsigned status, const char *slug,
					  const char *detail, const char *hname, const char *hvalue)
{
	return reply_problem_with(rq, status, slug, detail, NULL, hname, hvalue);
}

enum MHD_Result http_reply_problem(struct request *rq, unsigned status,
				   const char *slug, const char *detail,
				   json_t *errors)
{
	return reply_problem_with(rq, status, slug, detail, errors, NULL, NULL);
}

enum MHD_Result http_reply_problem_retry(struct request *rq, unsigned status, const char *slug,
					 const char *detail, const char *retry_after_s)
{
	return http_reply_problem_header(rq, status, slug, detail, MHD_HTTP_HEADER_RETRY_AFTER, retry_after_s);
}

enum MHD_Result http_reply_store_error(struct request *rq, enum gw_err rc,
				       const char *detail)
{
	switch (rc) {
	case GW_ENOTFOUND:
		return http_reply_problem(rq, 404, "not-found", detail, NULL);
	case GW_ECONFLICT:
	case GW_ESTATE:
		return http_reply_problem(rq, 409, "conflict", detail, NULL);
	case GW_EFULL:
	case GW_EIO:
	case GW_EBUSY:
	case GW_ECLOSED:
		gw_log_ids(GW_LOG_WARN, rq->request_id, NULL, "store unavailable: %s", detail);
		/* The write did not happen: the client may retry safely. */
		return reply_problem_with(rq, 503, "store-unavailable",
					  rc == GW_EFULL ? "the job store's disk is full: nothing was written; retry later"
							 : "the job store cannot accept writes right now; nothing was written;"
							   " retry later",
					  NULL, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	default:
		gw_log_ids(GW_LOG_ERROR, rq->request_id, NULL, "internal error: %s: %s", gw_strerror(rc), detail);
		return http_reply_problem(rq, 500, "internal", "internal error", NULL);
	}
}

/* Writer thread: the op has committed (or failed); wake the connection. */
static void async_done(struct store_op *op, void *arg)
{
	struct request *rq = arg;

	(void)op;
	MHD_resume_connection(rq->conn);
}

enum MHD_Result http_run_async(struct request *rq,
			       enum MHD_Result (*resume)(struct request *rq))
{
	rq->resume = resume;
	rq->op.done = async_done;
	rq->op.arg = rq;
	/* Suspend first: the writer may finish before this function returns. */
	MHD_suspend_connection(rq->conn);
	if (store_enqueue(rq->store, &rq->op) != GW_OK) {
		rq->op.rc = GW_ECLOSED;
		gw_seterr(rq->op.err, "the gateway is shutting down");
		MHD_resume_connection(rq->conn);
	}
	return MHD_YES;
}

static enum MHD_Result handle_healthz(struct request *rq, const char *id)
{
	(void)id;
	return http_reply_json(rq, 200, json_pack("{s:s}", "status", "ok"), NULL);
}

static enum MHD_Result handle_readyz(struct request *rq, const char *id)
{
	char err[GW_ERRLEN];

	(void)id;
	if (store_ping(rq->store, err) != GW_OK)
		return reply_problem_with(rq, 503, "not-ready", err, NULL,
					  MHD_HTTP_HEADER_RETRY_AFTER, "1");
	return http_reply_json(rq, 200, json_pack("{s:s}", "status", "ready"), NULL);
}

static enum MHD_Result handle_version(struct request *rq, const char *id)
{
	const char *engine_version, *engine = store_engine(rq->store, &engine_version);

	(void)id;
	return http_reply_json(rq, 200,
			       json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:s}", "version",
					 GW_VERSION, "gitCommit", GW_GIT_COMMIT,
					 "apiVersion", "v1", "store", "driver",
					 engine, "version", engine_version,
					 "auth", rq->cfg->auth_none ? "none" : "token"),
			       NULL);
}

static enum MHD_Result dispatch(struct request *rq, const char *url,
				const char *method)
{
	char id[128] = "", allow[64] = "", livy_url[300];
	bool path_known = false;
	const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
	const struct route *table = routes;
	size_t nroutes = NROUTES;
	const char *prefix = rq->cfg->livy_prefix;
	size_t plen = prefix ? strlen(prefix) : 0;

	if (plen && !strncmp(url, prefix, plen) && url[plen] == '/' &&
	    (size_t)snprintf(livy_url, sizeof(livy_url), "/livy%s", url + plen) < sizeof(livy_url)) {
		table = livy_routes;
		nroutes = sizeof(livy_routes) / sizeof(livy_routes[0]);
		url = livy_url;
		rq->problem_msg = true;
	}
	for (size_t i = 0; i < nroutes; i++) {
		const struct route *r = &table[i];

		if (!path_matches(r->path, url, id, sizeof(id)))
			continue;
		if (strcmp(r->method, m) == 0) {
			enum MHD_Result reply;

			rq->route = r->path;
			if (r->min_role != OPEN &&
			    !gateway_authorize(rq, (enum auth_role)r->min_role, &reply))
				return reply;
			return r->fn(rq, id);
		}
		path_known = true;
		snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s",
			 *allow ? ", " : "", r->method);
	}
	if (path_known) {
		char detail[160];

		snprintf(detail, sizeof(detail), "%s is not allowed here; use %s", method, allow);
		return reply_problem_with(rq, 405, "method-not-allowed", detail, NULL,
					  MHD_HTTP_HEADER_ALLOW, allow);
	}
	return http_reply_problem(rq, 404, "not-found", "no such endpoint", NULL);
}

/* How much of an oversized body is drained before giving up on it. */
static size_t drain_limit(const struct gateway_server *srv)
{
	return (size_t)srv->cfg->http_max_body_bytes * 16;
}

static enum MHD_Result reply_too_large(struct request *rq)
{
	char detail[96];

	rq->responded = true;
	snprintf(detail, sizeof(detail), "the request body exceeds %u bytes",
		 rq->cfg->http_max_body_bytes);
	return http_reply_problem(rq, 413, "body-too-large", detail, NULL);
}

/* The client's X-Request-Id when it is a sane token, else a new one. */
static void set_request_id(struct gateway_server *srv, struct request *rq, const char *given)
{
	size_t n = given ? strlen(given) : 0;
	bool ok = n > 0 && n < sizeof(rq->request_id);

	for (size_t i = 0; ok && i < n; i++)
		ok = (given[i] >= 'a' && given[i] <= 'z') || (given[i] >= 'A' && given[i] <= 'Z') ||
		     (given[i] >= '0' && given[i] <= '9') || given[i] == '-' || given[i] == '_' || given[i] == '.';
	if (ok)
		memcpy(rq->request_id, given, n + 1);
	else
		snprintf(rq->request_id, sizeof(rq->request_id), "%s-%llx", srv->id_prefix,
			 (unsigned long long)atomic_fetch_add(&srv->requests, 1) + 1);
}

/* Counts and times the request by route, and logs it at debug level. */
static void record_request(struct gateway_server *srv, struct request *rq)
{
	struct gw_metrics *m = srv->services.metrics;
	struct timespec now;
	double seconds;
	char labels[300];
	const char *route = rq->route ? rq->route : "other";

	if (!rq->status)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	seconds = (double)(now.tv_sec - rq->started.tv_sec) + (double)(now.tv_nsec - rq->started.tv_nsec) / 1e9;
	snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\",code=\"%u\"", route, rq->method, rq->status);
	gw_metrics_add(m, "sparkgw_http_requests_total", labels, 1);
	snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\"", route, rq->method);
	gw_metrics_observe(m, "sparkgw_http_request_duration_seconds", labels, seconds);
	if (rq->route && !strcmp(rq->route, "/api/v1/jobs") && !strcmp(rq->method, "POST"))
		gw_metrics_add(m, "sparkgw_submissions_total",
			       rq->status == 201 ? "outcome=\"accepted\""
			       : rq->status == 200 ? "outcome=\"replayed_or_dry_run\""
			       : rq->status == 429 ? "outcome=\"shed\""
			       : rq->status >= 500 ? "outcome=\"failed\"" : "outcome=\"refused\"", 1);
	gw_log_ids(GW_LOG_DEBUG, rq->request_id, NULL, "%s %s %u %.1f ms", rq->method, rq->path, rq->status,
		   seconds * 1e3);
}

/* With a client CA: the client showed a certificate the CA signed. */
static bool client_verified(struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	unsigned status = 0;

	return ci && ci->tls_session &&
	       gnutls_certificate_verify_peers2((gnutls_session_t)ci->tls_session, &status) == GNUTLS_E_SUCCESS &&
	       status == 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct gateway_server *srv = cls;
	struct request *rq = *con_cls;

	(void)version;
	if (!rq) {
		const char *length;

		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		rq->srv = srv;
		rq->services = &srv->services;
		rq->store = srv->services.store;
		rq->dispatch = srv->services.dispatch;
		rq->followers = srv->followers;
		rq->cfg = srv->cfg;
		rq->conn = conn;
		snprintf(rq->method, sizeof(rq->method), "%s", method);
		snprintf(rq->path, sizeof(rq->path), "%s", url);
		clock_gettime(CLOCK_MONOTONIC, &rq->started);
		set_request_id(srv, rq, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id"));
		gw_buf_init(&rq->body, srv->cfg->http_max_body_bytes);
		*con_cls = rq;
		atomic_fetch_add(&srv->in_flight, 1);
		if (srv->tls_ca && !client_verified(conn)) {
			rq->responded = true;
			rq->denied = true;
			return http_reply_problem(rq, 401, "client-certificate-required",
						  "this gateway takes only clients with a certificate its CA signed",
						  NULL);
		}
		length = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (length && strtoull(length, NULL, 10) > srv->cfg->http_max_body_bytes) {
			const char *expect = MHD_lookup_connection_value(
				conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);

			/* A client waiting for 100-continue never sends the body, and
			 * one announcing a huge body is not worth reading. */
			if ((expect && strcasestr(expect, "100-continue")) ||
			    strtoull(length, NULL, 10) > drain_limit(srv))
				return reply_too_large(rq);
			rq->too_large = true;
		}
		/* Answering on the first callback would cost the keep-alive. */
		return MHD_YES;
	}
	if (rq->resume) {
		enum MHD_Result (*resume)(struct request *) = rq->resume;

		rq->resume = NULL;
		return resume(rq);
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (rq->responded)
			return MHD_YES;
		if (!rq->too_large && gw_buf_append(&rq->body, upload_data, n) != GW_OK) {
			rq->too_large = true;
			gw_buf_release(&rq->body);
		}
		/* An oversized body is read and dropped, so that the client, which
		 * may still be sending, reads the 413 instead of a reset. */
		if (rq->too_large) {
			rq->discarded += n;
			if (rq->discarded > drain_limit(srv))
				return reply_too_large(rq);
		}
		return MHD_YES;
	}
	if (rq->responded)
		return MHD_YES;
	if (rq->too_large)
		return reply_too_large(rq);
	return dispatch(rq, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn,
			 void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct gateway_server *srv = cls;
	struct request *rq = *con_cls;

	(void)conn;
	(void)toe;
	if (!rq)
		return;
	record_request(srv, rq);
	gateway_audit(rq);
	auth_principal_release(&rq->who);
	gw_buf_release(&rq->body);
	gateway_submission_release(&rq->sub);
	store_job_release(&rq->op.job);
	free(rq->idempotency_key);
	free(rq);
	*con_cls = NULL;
	atomic_fetch_sub(&srv->in_flight, 1);
}

enum gw_err gateway_listen(const char *listen_addr, int *out, char *err)
{
	char host[256], portstr[8];
	unsigned port;
	struct addrinfo hints = {0}, *res = NULL;
	int fd = -1, one = 1, grc;
	enum gw_err rc;

	if ((rc = gateway_parse_listen(listen_addr, host, sizeof(host), &port, err)))
		return rc;
	snprintf(portstr, sizeof(portstr), "%u", port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((grc = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		gw_seterr(err, "listen %s: %s", listen_addr, gai_strerror(grc));
		return GW_EINVAL;
	}
	fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 1024) ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)) {
		gw_seterr(err, "listen %s: %s", listen_addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(res);
		return GW_EIO;
	}
	freeaddrinfo(res);
	*out = fd;
	return GW_OK;
}

enum gw_err gateway_server_start(const struct gateway_config *cfg,
				 const struct gateway_services *services,
				 int listen_fd,
				 struct gateway_server **out, char *err)
{
	struct gateway_server *srv = calloc(1, sizeof(*srv));

	*out = NULL;
	if (!srv) {
		close(listen_fd);
		return GW_ENOMEM;
	}
	srv->services = *services;
	srv->followers = gateway_followers_new();
	{
		unsigned char rnd[4] = {0};

		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			memset(rnd, 0, sizeof(rnd));
		snprintf(srv->id_prefix, sizeof(srv->id_prefix), "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
	}
	gw_metrics_family(services->metrics, "sparkgw_http_requests_total", GW_COUNTER,
			  "HTTP requests by route, method and status code.");
	gw_metrics_family(services->metrics, "sparkgw_http_request_duration_seconds", GW_HISTOGRAM,
			  "HTTP request time, from its headers to its answer queued, by route and method.");
	gw_metrics_family(services->metrics, "sparkgw_submissions_total", GW_COUNTER,
			  "Job submissions by outcome.");
	srv->cfg = cfg;
	srv->listen_fd = listen_fd;
	atomic_init(&srv->in_flight, 0);
	if (cfg->http_tls_cert || cfg->http_tls_key) {
		if (!cfg->http_tls_cert || !cfg->http_tls_key) {
			gw_seterr(err, "TLS needs both http.tls_cert and http.tls_key");
			goto fail;
		}
		if (!(srv->tls_cert = read_file(cfg->http_tls_cert, err)) ||
		    !(srv->tls_key = read_file(cfg->http_tls_key, err)) ||
		    (cfg->http_tls_client_ca && !(srv->tls_ca = read_file(cfg->http_tls_client_ca, err))))
			goto fail;
	}
	{
		/* Options that TLS adds sit before the end marker, in place of
		 * MHD_OPTION_END pairs that end the list early without it. */
		struct MHD_OptionItem tls[] = {
			{srv->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, srv->tls_cert},
			{MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key},
			{MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)(uintptr_t)TLS_PRIORITIES},
			{srv->tls_ca ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, srv->tls_ca},
			{MHD_OPTION_END, 0, NULL},
		};

		srv->daemon = MHD_start_daemon(
			MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC |
				(srv->tls_cert ? MHD_USE_TLS : 0),
			0, NULL, NULL, on_request, srv,
			MHD_OPTION_LISTEN_SOCKET, srv->listen_fd,
			MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->http_threads,
			MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections,
			MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections_per_ip,
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http_connection_timeout_s,
			MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
			MHD_OPTION_ARRAY, tls,
			MHD_OPTION_END);
	}
	if (!srv->daemon || !srv->followers) {
		gw_seterr(err, "listen %s: cannot start the HTTP server%s", cfg->listen,
			  srv->tls_cert ? " (is the TLS certificate and key a matching PEM pair?)" : "");
		goto fail;
	}
	*out = srv;
	return GW_OK;
fail:
	if (srv->daemon)
		MHD_stop_daemon(srv->daemon);
	else
		close(srv->listen_fd);
	gateway_followers_free(srv->followers);
	free_tls(srv);
	free(srv);
	return GW_EIO;
}

void gateway_server_stop(struct gateway_server *srv)
{
	struct timespec tick = {0, 10 * 1000 * 1000};
	unsigned waited_ms = 0;
	int fd;

	if (!srv)
		return;
	fd = MHD_quiesce_daemon(srv->daemon);
	if (fd >= 0)
		close(fd);
	/* Log streams would otherwise run until their drivers end. */
	gateway_followers_stop(srv->followers);
	while (atomic_load(&srv->in_flight) > 0 &&
	       waited_ms < srv->cfg->http_shutdown_grace_s * 1000) {
		nanosleep(&tick, NULL);
		waited_ms += 10;
	}
	MHD_stop_daemon(srv->daemon);
	gateway_followers_free(srv->followers);
	free_tls(srv);
	free(srv);
}
