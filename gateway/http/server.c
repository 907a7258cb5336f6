/* The HTTP server: connections, the life of a request (body limits,
 * request ids, client certificates, metrics by route), routing over the
 * application's route tables, start and graceful stop. */
#include "gateway/http/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdint.h>
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

struct http_server {
	struct MHD_Daemon *daemon;
	const struct http_app *app;
	struct gw_metrics *metrics;
	const struct gateway_config *cfg;
	int listen_fd;
	atomic_int in_flight; /* requests between first callback and completion */
	atomic_bool stopping; /* new requests get 503 while those in flight finish */
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

static void free_tls(struct http_server *srv)
{
	if (srv->tls_key)
		OPENSSL_cleanse(srv->tls_key, strlen(srv->tls_key));
	free(srv->tls_cert);
	free(srv->tls_key);
	free(srv->tls_ca);
}

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

static enum MHD_Result dispatch(struct http_server *srv, struct http_request *h, const char *url,
				const char *method)
{
	const struct http_app *app = srv->app;
	char id[128] = "", allow[64] = "", mounted_url[300];
	bool path_known = false;
	const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
	const struct http_route *table = app->routes;
	size_t nroutes = app->nroutes;
	size_t plen = app->mount_at ? strlen(app->mount_at) : 0;

	if (plen && !strncmp(url, app->mount_at, plen) && url[plen] == '/' &&
	    (size_t)snprintf(mounted_url, sizeof(mounted_url), "%s%s", app->mount_as, url + plen) <
		    sizeof(mounted_url)) {
		table = app->mount_routes;
		nroutes = app->mount_nroutes;
		url = mounted_url;
		h->problem_msg = true;
	}
	for (size_t i = 0; i < nroutes; i++) {
		const struct http_route *r = &table[i];

		if (!path_matches(r->path, url, id, sizeof(id)))
			continue;
		if (strcmp(r->method, m) == 0) {
			enum MHD_Result reply;

			h->route = r->path;
			if (r->min_role != HTTP_OPEN && !app->authorize(h, r->min_role, &reply))
				return reply;
			return r->fn(h, id);
		}
		path_known = true;
		snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s",
			 *allow ? ", " : "", r->method);
	}
	if (path_known) {
		char detail[160];

		snprintf(detail, sizeof(detail), "%s is not allowed here; use %s", method, allow);
		return http_reply_problem_header(h, 405, "method-not-allowed", detail, MHD_HTTP_HEADER_ALLOW, allow);
	}
	return http_reply_problem(h, 404, "not-found", "no such endpoint", NULL);
}

void http_suspend(struct http_request *h, enum MHD_Result (*resume)(struct http_request *h))
{
	h->resume = resume;
	MHD_suspend_connection(h->conn);
}

void http_resume(struct http_request *h)
{
	MHD_resume_connection(h->conn);
}

/* How much of an oversized body is drained before giving up on it. */
static size_t drain_limit(const struct http_server *srv)
{
	return (size_t)srv->cfg->http_max_body_bytes * 16;
}

static enum MHD_Result reply_too_large(struct http_server *srv, struct http_request *h)
{
	char detail[96];

	h->responded = true;
	snprintf(detail, sizeof(detail), "the request body exceeds %u bytes", srv->cfg->http_max_body_bytes);
	return http_reply_problem(h, 413, "body-too-large", detail, NULL);
}

/* The client's X-Request-Id when it is a sane token, else a new one. */
static void set_request_id(struct http_server *srv, struct http_request *h, const char *given)
{
	size_t n = given ? strlen(given) : 0;
	bool ok = n > 0 && n < sizeof(h->request_id);

	for (size_t i = 0; ok && i < n; i++)
		ok = (given[i] >= 'a' && given[i] <= 'z') || (given[i] >= 'A' && given[i] <= 'Z') ||
		     (given[i] >= '0' && given[i] <= '9') || given[i] == '-' || given[i] == '_' || given[i] == '.';
	if (ok)
		memcpy(h->request_id, given, n + 1);
	else
		snprintf(h->request_id, sizeof(h->request_id), "%s-%llx", srv->id_prefix,
			 (unsigned long long)atomic_fetch_add(&srv->requests, 1) + 1);
}

/* Counts and times the request by route, and logs it at debug level. */
static void record_request(struct http_server *srv, struct http_request *h)
{
	struct gw_metrics *m = srv->metrics;
	struct timespec now;
	double seconds;
	char labels[300];
	const char *route = h->route ? h->route : "other";

	if (!h->status)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	seconds = (double)(now.tv_sec - h->started.tv_sec) + (double)(now.tv_nsec - h->started.tv_nsec) / 1e9;
	snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\",code=\"%u\"", route, h->method, h->status);
	gw_metrics_add(m, "sparkgw_http_requests_total", labels, 1);
	snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\"", route, h->method);
	gw_metrics_observe(m, "sparkgw_http_request_duration_seconds", labels, seconds);
	gw_log_ids(GW_LOG_DEBUG, h->request_id, NULL, "%s %s %u %.1f ms", h->method, h->path, h->status,
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
	struct http_server *srv = cls;
	struct http_request *h = *con_cls;

	(void)version;
	if (!h) {
		const char *length;

		h = calloc(1, srv->app->request_size);
		if (!h)
			return MHD_NO;
		h->conn = conn;
		snprintf(h->method, sizeof(h->method), "%s", method);
		snprintf(h->path, sizeof(h->path), "%s", url);
		clock_gettime(CLOCK_MONOTONIC, &h->started);
		set_request_id(srv, h, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id"));
		gw_buf_init(&h->body, srv->cfg->http_max_body_bytes);
		srv->app->request_init(h, srv->app->arg);
		*con_cls = h;
		atomic_fetch_add(&srv->in_flight, 1);
		if (atomic_load(&srv->stopping)) {
			h->responded = true;
			return http_reply_problem_retry(h, 503, "shutting-down",
							"this gateway is shutting down; retry in a moment", "1");
		}
		if (srv->tls_ca && !client_verified(conn)) {
			h->responded = true;
			h->denied = true;
			return http_reply_problem(h, 401, "client-certificate-required",
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
				return reply_too_large(srv, h);
			h->too_large = true;
		}
		/* Answering on the first callback would cost the keep-alive. */
		return MHD_YES;
	}
	if (h->resume) {
		enum MHD_Result (*resume)(struct http_request *) = h->resume;

		h->resume = NULL;
		return resume(h);
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (h->responded)
			return MHD_YES;
		if (!h->too_large && gw_buf_append(&h->body, upload_data, n) != GW_OK) {
			h->too_large = true;
			gw_buf_release(&h->body);
		}
		/* An oversized body is read and dropped, so that the client, which
		 * may still be sending, reads the 413 instead of a reset. */
		if (h->too_large) {
			h->discarded += n;
			if (h->discarded > drain_limit(srv))
				return reply_too_large(srv, h);
		}
		return MHD_YES;
	}
	if (h->responded)
		return MHD_YES;
	if (h->too_large)
		return reply_too_large(srv, h);
	return dispatch(srv, h, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *conn,
			 void **con_cls, enum MHD_RequestTerminationCode toe)
{
	struct http_server *srv = cls;
	struct http_request *h = *con_cls;

	(void)conn;
	(void)toe;
	if (!h)
		return;
	record_request(srv, h);
	srv->app->request_done(h, srv->app->arg);
	gw_buf_release(&h->body);
	free(h);
	*con_cls = NULL;
	atomic_fetch_sub(&srv->in_flight, 1);
}

enum gw_err http_listen(const char *listen_addr, int *out, char *err)
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

enum gw_err http_server_start(const struct gateway_config *cfg, const struct http_app *app,
			      struct gw_metrics *metrics, int listen_fd, struct http_server **out, char *err)
{
	struct http_server *srv = calloc(1, sizeof(*srv));

	*out = NULL;
	if (!srv) {
		close(listen_fd);
		return GW_ENOMEM;
	}
	srv->app = app;
	srv->metrics = metrics;
	{
		unsigned char rnd[4] = {0};

		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			memset(rnd, 0, sizeof(rnd));
		snprintf(srv->id_prefix, sizeof(srv->id_prefix), "%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
	}
	gw_metrics_family(metrics, "sparkgw_http_requests_total", GW_COUNTER,
			  "HTTP requests by route, method and status code.");
	gw_metrics_family(metrics, "sparkgw_http_request_duration_seconds", GW_HISTOGRAM,
			  "HTTP request time, from its headers to its answer queued, by route and method.");
	srv->cfg = cfg;
	srv->listen_fd = listen_fd;
	atomic_init(&srv->in_flight, 0);
	atomic_init(&srv->stopping, false);
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
	if (!srv->daemon) {
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
	free_tls(srv);
	free(srv);
	return GW_EIO;
}

void http_server_stop(struct http_server *srv)
{
	struct timespec tick = {0, 10 * 1000 * 1000};
	unsigned waited_ms = 0;

	if (!srv)
		return;
	/* Not MHD_quiesce_daemon: with a thread pool on epoll it races the
	 * workers removing the listen socket and aborts (libmicrohttpd 0.9.75,
	 * "Failed to remove listen FD from epoll set"). The socket stays open
	 * until MHD_stop_daemon; what arrives meanwhile is refused with 503. */
	atomic_store(&srv->stopping, true);
	if (srv->app->stopping)
		srv->app->stopping(srv->app->arg);
	while (atomic_load(&srv->in_flight) > 0 &&
	       waited_ms < srv->cfg->http_shutdown_grace_s * 1000) {
		nanosleep(&tick, NULL);
		waited_ms += 10;
	}
	MHD_stop_daemon(srv->daemon);
	free_tls(srv);
	free(srv);
}
