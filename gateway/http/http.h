/* The HTTP layer: libmicrohttpd on a socket the gateway opens itself (so
 * start-up errors are precise), the life of a request (body limits, request
 * ids, TLS client certificates, metrics by route), routing over the route
 * tables the application registers, and the replies handlers send.
 *
 * It knows nothing of jobs: handlers depend on it, never the reverse. The
 * application's request begins with a struct http_request; the layer
 * allocates app->request_size bytes for each request and hands the
 * application's hooks a pointer to that first member.
 *
 * Threads: one request belongs to the MHD thread serving its connection;
 * while suspended (http_suspend) another thread may resume it. */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "gateway/config/config.h"

struct http_server;
struct gw_metrics;

struct http_request {
	struct MHD_Connection *conn;
	struct gw_buf body;
	bool responded; /* a response was queued before the body was read */
	bool too_large; /* the body is over the cap: drained, then 413 */
	size_t discarded;
	bool denied;    /* refused for who asks (401, 403, 429, another team's 404) */
	unsigned status; /* of the response queued */
	char method[8];
	char path[1024];
	const char *route; /* the matched route's pattern, for metrics; NULL: none */
	struct timespec started;
	char request_id[72]; /* X-Request-Id: the client's, or a new one */
	/* How problems are shaped: also carry "msg", as Livy's errors do; and
	 * a facade's renaming of validation errors' fields to its own. */
	bool problem_msg;
	void (*rename_fields)(json_t *errors);
	enum MHD_Result (*resume)(struct http_request *h); /* see http_suspend */
};

typedef enum MHD_Result (*http_handler)(struct http_request *h, const char *id);

/* path: '*' stands for one path segment (copied to the handler's id); a
 * final "**" for nothing or "/" and the rest. */
struct http_route {
	const char *method;
	const char *path;
	http_handler fn;
	int min_role; /* passed to authorize; HTTP_OPEN: no check */
};
#define HTTP_OPEN (-1)

/* What the application registers. */
struct http_app {
	const struct http_route *routes;
	size_t nroutes;
	/* A table served under a configurable prefix (Livy's): a URL under
	 * mount_at is matched as mount_as plus the rest, so that metrics name
	 * its routes the same whatever the prefix; its problems carry "msg". */
	const char *mount_at; /* NULL or "": none */
	const char *mount_as;
	const struct http_route *mount_routes;
	size_t mount_nroutes;
	size_t request_size; /* at least sizeof(struct http_request) */
	void (*request_init)(struct http_request *h, void *arg);
	/* After the response was sent or the connection dropped. */
	void (*request_done)(struct http_request *h, void *arg);
	/* False when it answered instead (401, 403, 429) with *reply. */
	bool (*authorize)(struct http_request *h, int min_role, enum MHD_Result *reply);
	/* At the start of stopping: ends what would outlast the grace (streams). */
	void (*stopping)(void *arg);
	void *arg;
};

/* Binds HOST:PORT ([v6]:PORT) and listens, so that a busy port is reported
 * before anything else is touched. */
enum gw_err http_listen(const char *addr, int *fd, char *err);
/* Serves app (which must outlive the server) on listen_fd (owned from now
 * on, even on failure) with cfg's http limits and TLS. */
enum gw_err http_server_start(const struct gateway_config *cfg, const struct http_app *app,
			      struct gw_metrics *metrics, int listen_fd, struct http_server **out, char *err);
/* Stops accepting, waits up to the configured grace for requests in flight
 * to finish, then closes every connection. NULL is a no-op. */
void http_server_stop(struct http_server *srv);

/* Suspends the connection until http_resume (from any thread, also before
 * this returns); then resume() answers on the connection's thread. */
void http_suspend(struct http_request *h, enum MHD_Result (*resume)(struct http_request *h));
void http_resume(struct http_request *h);

/* Replies. Each queues one response and returns MHD's result. */
/* resp (taken over; NULL is MHD_NO) with the request's id; notes the
 * status for metrics and the audit trail. */
enum MHD_Result http_queue(struct http_request *h, unsigned status, struct MHD_Response *resp);
/* resp (taken over) as application/json unless it has a content type, with
 * the header pairs of ap (NULL-terminated). */
enum MHD_Result http_queue_json(struct http_request *h, unsigned status, struct MHD_Response *resp, va_list ap);
/* body (stolen) as application/json; header pairs may follow, NULL-terminated. */
enum MHD_Result http_reply_json(struct http_request *h, unsigned status, json_t *body, ...);
/* text (taken over) as application/json; header pairs may follow. */
enum MHD_Result http_reply_json_text(struct http_request *h, unsigned status, char *text, ...);
/* 304 Not Modified with the ETag the client has. */
enum MHD_Result http_reply_not_modified(struct http_request *h, const char *etag);
/* text (copied) as text/plain. */
enum MHD_Result http_reply_text(struct http_request *h, unsigned status, const char *text);
/* An RFC 9457 problem. errors (stolen, may be NULL) is the list of
 * {field, message} for validation problems. */
enum MHD_Result http_reply_problem(struct http_request *h, unsigned status, const char *slug, const char *detail,
				   json_t *errors);
/* A problem with one header of its own (WWW-Authenticate, Retry-After). */
enum MHD_Result http_reply_problem_header(struct http_request *h, unsigned status, const char *slug,
					  const char *detail, const char *hname, const char *hvalue);
/* A problem with a Retry-After header, for 429 and 503. */
enum MHD_Result http_reply_problem_retry(struct http_request *h, unsigned status, const char *slug,
					 const char *detail, const char *retry_after_s);

#endif
