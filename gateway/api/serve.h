/* Serving the gateway's API: the services its handlers use, and the API
 * put on the HTTP layer with its route table (routes.c). What main needs. */
#ifndef GW_SERVE_H
#define GW_SERVE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "gateway/config/config.h"

struct auth;
struct dispatch;
struct gw_metrics;
struct jobview;
struct pool;
struct router_holder;
struct store;

/* What the handlers work with; all must outlive the server. */
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

struct gateway_server;

/* Serves the API on listen_fd (owned from now on, even on failure; see
 * http_listen). */
enum gw_err gateway_server_start(const struct gateway_config *cfg, const struct gateway_services *services,
				 int listen_fd, struct gateway_server **out, char *err);
/* Stops as http_server_stop does, ending log streams first. NULL is a no-op. */
void gateway_server_stop(struct gateway_server *srv);
/* Declares the families /metrics fills at each scrape. */
void gateway_metrics_declare(struct gw_metrics *m);

struct http_route;
/* The route tables served: the native one, and Livy's (under its prefix);
 * the contract test holds api/openapi.yaml to them. */
const struct http_route *gateway_routes(bool livy, size_t *n);

#endif
