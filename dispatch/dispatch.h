/* The control loops between the store and the clusters: the dispatcher
 * (claims queued jobs under a lease, creates their Spark driver with a
 * name derived from the job id, records SUBMITTED), the canceller, and one
 * watcher per cluster that moves jobs through RUNNING to their end. */
#ifndef GW_DISPATCH_H
#define GW_DISPATCH_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "router/router.h"
#include "store/store.h"

struct pool;
struct gw_metrics;

struct dispatch_options {
	struct router_holder *policy; /* borrowed; outlives dispatch */
	struct pool *pool;            /* borrowed; outlives dispatch */
	unsigned workers;
	unsigned probe_s;             /* /readyz probe interval */
	unsigned lease_s;
	unsigned max_attempts;
	unsigned retry_base_ms;
	unsigned pending_timeout_s;
	unsigned image_pull_timeout_s;
	unsigned aging_s;             /* a queued job rises a rank per this wait */
	unsigned cluster_qps;         /* API requests a second, per cluster */
	unsigned cluster_concurrency; /* dispatches at once, per cluster */
	unsigned max_running_per_team; /* active jobs of one team; 0: no limit */
	unsigned max_run_s;           /* run time before DeadlineExceeded; 0: none */
	unsigned cleanup_after_s;     /* finished jobs' cluster objects are kept this long */
	unsigned retention_s;         /* finished jobs are kept this long; 0: for ever */
	struct gw_metrics *metrics;   /* may be NULL */
	/* Who this process is among replicas, the same across its restarts
	 * (host and listen address): it holds the clusters' watch leases, so
	 * that a process restarted in place watches again at once. */
	const char *instance;
};

struct dispatch;

/* Connects to every cluster (kubeconfig) and starts the loops. */
enum gw_err dispatch_start(struct store *store, const struct dispatch_options *opts,
			   struct dispatch **out, char *err);
/* Stops the loops and gives up the clusters' watch leases; jobs in flight
 * keep their leases and are taken over after a restart. NULL is a no-op. */
void dispatch_stop(struct dispatch *d);

/* Connects to a cluster added at runtime. GW_ECONFLICT if one of that
 * name is there. */
enum gw_err dispatch_add_cluster(struct dispatch *d, const struct router_cluster *cfg, char *err);
/* Why a job waits, when dispatch knows: a queued one for room or a quota,
 * a dispatched one for its pods (the scheduler's Unschedulable message, a
 * container's waiting reason); false when nothing holds it. */
bool dispatch_wait_reason(struct dispatch *d, const char *job_id, char *out, size_t len);

/* Stops watching a cluster; the policy no longer names it. */
void dispatch_remove_cluster(struct dispatch *d, const char *name);

/* Counts a job that reached a terminal state (sparkgw_jobs_finished_total):
 * the loops count theirs; the API counts the queued jobs it cancels. */
void dispatch_count_finished(struct dispatch *d, enum store_state state, const char *reason);

/* ---- scheduling (sched.c) ---- */

/* A team's limits in force: the policy's team entry, else the configured
 * defaults; *share (may be NULL) its fair-share weight. */
void dispatch_team_limits(const struct router *r, const char *team, unsigned default_running,
			  unsigned default_queued, struct store_limits *out, double *share);
void dispatch_pool_limits(const struct router *r, const char *pool, struct store_limits *out);
/* A placement's demand in the store's units. */
struct store_demand dispatch_demand(const struct router_demand *d);

struct dispatch_defaults {
	unsigned max_running_per_team;
};

/* One queued job in dispatch order: ready to go now, or waiting for the
 * quota named in why. */
struct dispatch_pick {
	size_t job; /* index into the queue's jobs */
	bool ready;
	char why[GW_ERRLEN];
};

/* Orders the queue (sorting q->jobs by rank on the way) into picks, one
 * per job: ready jobs in dispatch order, then waiting ones. on_its_way
 * (may be NULL) says which jobs are being dispatched already: their demand
 * counts, and no limit holds them back. */
enum gw_err dispatch_order(const struct router *r, const struct dispatch_defaults *defaults,
			   struct store_queue *q, bool (*on_its_way)(void *arg, const char *id),
			   void *arg, struct dispatch_pick *picks);

/* The final Spark conf of a placed job: the decision's layers with what
 * the gateway itself decides on top; key -> {value, source}. */
json_t *dispatch_final_conf(const struct store_job *job, const struct router_decision *d);
/* The placement as kept with the job and shown by the API: pool, group,
 * cluster, namespace, node role, reasons and the final conf. */
json_t *dispatch_placement_json(const struct store_job *job, const struct router_decision *d, const char *server);
/* The objects a job's dispatch creates, in creation order: driver Pod,
 * Service, ConfigMap (driver-pod mode) or one SparkApplication. New array,
 * or NULL with the reason in err. */
json_t *dispatch_manifests(const struct store_job *job, const struct router_decision *d,
			   char *err);

/* The driver's log: the last tail_lines lines (-1: all). *text is new. */
enum gw_err dispatch_driver_log(struct dispatch *d, const struct store_job *job,
				long tail_lines, char **text, char *err);

struct k8s_response;

/* The Spark UI's port on the driver, behind its Service. */
#define DISPATCH_UI_PORT 4040

/* GETs rest (a path under the UI, with its query) from the running
 * driver's Spark UI through its cluster's API server service proxy, the
 * UI told that it is served under ui_root (X-Forwarded-Context). prefix
 * gets the proxy's path, which the API server puts before the links of
 * HTML pages and redirects. resp is the caller's to release. */
enum gw_err dispatch_driver_ui(struct dispatch *d, const struct store_job *job, const char *rest,
			       const char *ui_root, struct k8s_response *resp, char *prefix, size_t prefix_len,
			       char *err);

/* Follows the driver's log: streams it to fn (false stops) until the
 * driver ends or *stop is set. */
enum gw_err dispatch_driver_log_follow(struct dispatch *d, const struct store_job *job,
				       long tail_lines,
				       bool (*fn)(void *arg, const char *data, size_t len),
				       void *arg, const atomic_bool *stop, char *err);

#endif
