/* The gateway's configuration: one table of keys with types, bounds and
 * defaults, read from YAML and overridden by command-line flags. */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "router/router.h"

struct gateway_config {
	char *listen;  /* HOST:PORT, [IPv6]:PORT */
	char *data_dir;
	int log_level; /* enum gw_log_level */
	bool store_postgres; /* else SQLite */
	char *store_dsn;     /* PostgreSQL's; NULL: not set */
	bool store_sync_full;
	unsigned store_batch_max;
	unsigned store_retention_s;
	unsigned http_threads;
	unsigned http_max_connections;
	unsigned http_connection_timeout_s;
	unsigned http_max_body_bytes;
	unsigned http_shutdown_grace_s;
	unsigned http_max_log_followers;
	unsigned http_job_cache_bytes;
	unsigned http_max_connections_per_ip;
	char *http_tls_cert, *http_tls_key, *http_tls_client_ca; /* NULL: plain HTTP */
	bool auth_none;
	unsigned auth_rate, auth_burst;
	unsigned dispatch_workers;
	unsigned dispatch_probe_s;
	unsigned dispatch_lease_s;
	unsigned dispatch_max_attempts;
	unsigned dispatch_retry_base_ms;
	unsigned dispatch_pending_timeout_s;
	unsigned dispatch_image_pull_timeout_s;
	unsigned scheduler_aging_s;
	unsigned scheduler_max_queued_per_team;
	unsigned scheduler_cluster_qps;
	unsigned scheduler_cluster_concurrency;
	unsigned scheduler_max_running_per_team;
	unsigned scheduler_max_queue_depth;
	unsigned scheduler_max_run_s;
	unsigned scheduler_max_commit_ms;
	unsigned scheduler_cleanup_after_s;
	char *livy_prefix;           /* NULL: the Livy API is off */
	char *spark_history_server;  /* NULL: none */
	char *compat_spark_version;
	unsigned livy_list_s;        /* GET /batches: jobs submitted this recently */
	json_t *compat_queues;       /* Livy's and BPG's queue -> labels; may be NULL */
	struct router *router; /* clusters, pools, namespace groups, rules */
	json_t *policy_doc;    /* the file's policy keys, to rebuild it with */
	json_t *policy_marks;  /* their line and column */
	char *path;            /* the file, NULL without one */
};

/* Fills cfg with every default. */
enum gw_err gateway_config_defaults(struct gateway_config *cfg);
/* Applies a YAML file over cfg; errors name file, line and column. */
enum gw_err gateway_config_load(struct gateway_config *cfg, const char *path,
				char *err);
/* The file's policy with overlay applied ({"added": [cluster, with "pool"
 * and "weight"], "removed": [name]}), as a new router in *out. */
enum gw_err gateway_config_policy_with(const struct gateway_config *cfg, const json_t *overlay,
				       struct router **out, char *err);
/* The same, put in cfg->router (unchanged on error). */
enum gw_err gateway_config_apply_overlay(struct gateway_config *cfg, const json_t *overlay,
					 char *err);

/* Sets one key by its dotted name from text, as a flag would. */
enum gw_err gateway_config_set(struct gateway_config *cfg, const char *key,
			       const char *value, char *err);
void gateway_config_release(struct gateway_config *cfg);

/* Splits "host:port" or "[v6]:port"; host gets at most hostlen bytes. */
enum gw_err gateway_parse_listen(const char *listen, char *host, size_t hostlen,
				 unsigned *port, char *err);

#endif
