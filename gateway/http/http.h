/* The HTTP server: libmicrohttpd on a listening socket the gateway opens
 * itself (so start-up errors are precise), serving the v1 API. */
#ifndef GW_SERVER_H
#define GW_SERVER_H

#include <jansson.h>

#include "common/err.h"
#include "dispatch/dispatch.h"
#include "gateway/auth/auth.h"
#include "gateway/config/config.h"
#include "store/store.h"

struct gateway_server;

/* Binds HOST:PORT ([v6]:PORT) and listens, so that a busy port is reported
 * before anything else is touched. */
enum gw_err gateway_listen(const char *addr, int *fd, char *err);
struct pool;
struct router_holder;

/* What the handlers work with; all must outlive the server. */
struct gw_metrics;

struct gateway_services {
	struct store *store;
	struct dispatch *dispatch;    /* NULL when no cluster is configured */
	struct router_holder *policy;
	struct pool *pool;
	struct auth *auth;            /* NULL with auth.mode none */
	struct gw_metrics *metrics;
	struct jobview *jobs_view;    /* rendered jobs, for hot reads */
	/* Re-reads the configuration and puts its policy in force; GW_EINVAL
	 * with file, line and reason (the old policy stays) on a bad one. */
	enum gw_err (*reload)(void *arg, char *err);
	/* Adds a cluster (add: its policy entry with "pool" and "weight") or
	 * removes one (remove: its name), kept across restarts: GW_EINVAL,
	 * GW_ENOTFOUND, GW_ECONFLICT (exists, or still has jobs). */
	enum gw_err (*change_clusters)(void *arg, const char *remove, json_t *add, char *err);
	void *reload_arg;
};

/* Serves on listen_fd (owned from now on, even on failure). */
enum gw_err gateway_server_start(const struct gateway_config *cfg,
				 const struct gateway_services *services,
				 int listen_fd,
				 struct gateway_server **out, char *err);
/* Declares the families /metrics fills at each scrape. */
void gateway_metrics_declare(struct gw_metrics *m);
/* Stops accepting, waits up to the configured grace for requests in flight
 * to finish, then closes every connection. NULL is a no-op. */
void gateway_server_stop(struct gateway_server *srv);

#endif
