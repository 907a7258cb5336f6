/* Internals shared by the dispatch module's files: the dispatch and the
 * per-cluster runtime, and what one loop's file calls in another's.
 *
 * Threads: the feeder (dispatcher.c, also running cancels), the workers,
 * one or two watchers per cluster (watch.c), the prober (probe.c), the
 * housekeeper and the leaser each have their own; they share struct
 * dispatch under its lock and a cluster under the locks named in it.
 * dispatch.c starts and joins them all; it alone frees. */
#ifndef GW_DISPATCH_INT_H
#define GW_DISPATCH_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "dispatch/dispatch.h"
#include "k8sclient/k8s.h"
#include "router/router.h"
#include "store/store.h"

/* The label that ties every object the gateway creates to its job. */
#define DISPATCH_JOB_LABEL "sparkgw/job-id"
/* Which run of the job an object belongs to (restartPolicy OnFailure);
 * objects of an earlier run are left alone. Absent means 1. */
#define DISPATCH_RUN_LABEL "sparkgw/run"

struct dispatch_names {
	char app[STORE_ID_LEN + 16]; /* the SparkApplication, and prefix of the rest */
	char driver_pod[STORE_ID_LEN + 32];
	char service[STORE_ID_LEN + 32];
	char config_map[STORE_ID_LEN + 32];
	char run[16];                /* the run label's value */
};

/* Object names, all derived from the job id and its run: "<id>-driver",
 * then "<id>-r2-driver" for a second run. */
void dispatch_names(const struct store_job *job, struct dispatch_names *n);

#define FEED_BATCH 256
/* A cluster's watch lease: taken for WATCH_LEASE_MS, renewed every
 * WATCH_RENEW_MS; its holder stops watching WATCH_MARGIN_MS before the
 * lease would run out unrenewed, so two replicas never watch at once
 * (with clocks that agree within the margin). */
#define WATCH_LEASE_MS 6000
#define WATCH_RENEW_MS 1500
#define WATCH_MARGIN_MS 2000
#define DEADLINE_REASON "DeadlineExceeded"

/* One cluster: its client, and what its watcher last saw of each live job
 * (so that a state seen before the job was SUBMITTED is not lost). */
struct cluster_rt {
	struct dispatch *d;
	char *name;
	enum router_mode mode;
	struct k8s_client *client;
	struct k8s_client *probe_client; /* no retries: a probe tells what it sees */
	pthread_t watchers[2];           /* pods; SparkApplications in operator mode */
	int nwatchers;
	atomic_bool stop;                /* the dispatch stops, or the cluster left */
	atomic_bool removed;
	_Atomic int64_t watch_until_ms;  /* this process's watch lease; 0: none */
	atomic_bool watch_halt;          /* stop watching: stop, or the lease is ending */
	atomic_int watches_open;         /* watcher threads listing or watching now */
	/* The API server's budget: a token bucket of cluster_qps and at most
	 * cluster_concurrency dispatches at once. */
	pthread_mutex_t rate_lock;       /* guards tokens, tokens_at_ms, inflight */
	pthread_cond_t rate_free;
	double tokens;
	int64_t tokens_at_ms;
	unsigned inflight;
	pthread_mutex_t lock; /* guards seen, early, pending_drivers */
	json_t *seen;         /* job id -> last object */
	/* Job ids whose object was seen while the store had them DISPATCHING:
	 * applied again until the dispatcher (maybe another replica's) has
	 * marked them SUBMITTED. */
	json_t *early;
	json_t *usage;        /* pod uid -> 1: its run recorded, 2: its end too (watcher only) */
	json_t *pending_drivers; /* operator mode: job id -> its Pending driver pod (under lock) */
	/* job id -> {pod name: why it is not running yet}: a pod the scheduler
	 * cannot place or whose container waits, while that lasts. */
	pthread_mutex_t waits_lock;
	json_t *pod_waits;
	int64_t nodes_listed_ms; /* the prober's last node list (prober only) */
	/* Shared servers (shared.c), under shared_lock: the last list of them
	 * (name -> {pool, ns, phase, ready, sessions}); job id -> the server it
	 * is bound to (shared jobs only, until they leave it); job id -> {pool,
	 * at} for jobs that found no free slot lately; and the loop's own
	 * marks ("listed", "idle:NAME" -> since when). */
	pthread_mutex_t shared_lock;
	json_t *shared_servers, *shared_jobs, *shared_waiting, *shared_view;
};

struct dispatch {
	struct store *store;
	struct dispatch_options opts;
	char owner[64];
	struct cluster_rt *clusters;
	atomic_bool stop;

	pthread_mutex_t lock; /* guards everything below */
	pthread_cond_t wake;  /* feeder: commits happened, or stop */
	pthread_cond_t work;  /* workers: the queue has ids, or stop */
	char (*queue)[STORE_ID_LEN];
	size_t qhead, qlen, qcap;
	json_t *inflight;     /* job ids queued or being dispatched */
	json_t *cancel_sent;  /* job id -> time of the last DELETE */
	json_t *waiting;      /* job id -> [time before which it is not retried, why] */
	json_t *quota;        /* job id -> the limit it waits for, as of the last feed */
	/* Slots below nclusters are set up before the count grows, and never
	 * freed before dispatch_stop: readers need no lock. */
	atomic_size_t nclusters;
	pthread_mutex_t clusters_lock; /* serializes adding and removing */
	bool poked;

	/* Gateway processes alive on the store, this one included: each
	 * takes its part of a cluster's request budget. */
	atomic_long replicas;
	pthread_t feeder, prober, housekeeper, leaser, sharer;
	bool feeder_started, prober_started, housekeeper_started, leaser_started, sharer_started;
	pthread_t *workers;
	unsigned nworkers;
};

struct restart_policy {
	bool on_failure;
	int retries;          /* runs after the first, on failure */
	int interval_s;
	int submit_attempts;  /* dispatch attempts */
	long submit_base_ms;  /* first dispatch retry delay */
};

enum create_outcome { CREATED, RETRY, REJECTED };

/* cluster.c: a cluster's request budget, its objects, and calls through it. */
const char *dispatch_jstr(const json_t *v);
struct cluster_rt *dispatch_cluster_named(struct dispatch *d, const char *name);
bool dispatch_watching(struct cluster_rt *cl);
void dispatch_sleep_ms(long ms);
enum gw_err dispatch_move_job(struct dispatch *d, const char *id, enum store_state to, const char *reason, const char *message, const struct store_op *fields);
void dispatch_count_call(struct cluster_rt *cl, const char *verb, enum gw_err rc, long status);
void dispatch_count_cluster(struct cluster_rt *cl, const char *family, const char *label, const char *value);
bool dispatch_cluster_limited(struct cluster_rt *cl);
void dispatch_enter_cluster(struct cluster_rt *cl);
void dispatch_leave_cluster(struct cluster_rt *cl);
enum create_outcome dispatch_create_or_adopt(struct cluster_rt *cl, json_t *obj, const char *job_id, char *uid, size_t uidlen, char *why);
long dispatch_delete_driver(struct cluster_rt *cl, const struct store_job *job);

/* dispatcher.c: the feeder and the workers; reservations after a restart. */
struct restart_policy dispatch_restart_policy(const struct dispatch *d, const struct store_job *job);
/* QUEUED -> DISPATCHING with the placement (and the shared server, or
 * NULL), committed; *job becomes the claimed job. */
bool dispatch_claim(struct dispatch *d, const struct router *r, struct store_job *job,
		    const struct router_decision *dec, const char *server);
void dispatch_wait_a_moment(struct dispatch *d, const char *job_id, const char *why);
/* SUBMITTED (on the shared server, when named), FAILED, or QUEUED again. */
void dispatch_record_outcome(struct dispatch *d, struct cluster_rt *cl, const struct store_job *job,
			     enum create_outcome outcome, const char *err, const char *server);
void *dispatch_worker_main(void *arg);
void *dispatch_feeder_main(void *arg);
void dispatch_on_commit(void *arg);
void dispatch_restore_reservations(struct dispatch *d, const struct router *r);

/* cancel.c: cancels, on the feeder's rounds. */
const char *dispatch_cancel_reason(const struct store_job *job);
void dispatch_cancel_jobs(struct dispatch *d);

/* housekeeping.c: the housekeeper's loop. */
void *dispatch_housekeeper_main(void *arg);

/* watch.c: the watchers. */
void dispatch_apply_seen(struct cluster_rt *cl, const char *job_id);
void dispatch_recheck_pending(struct cluster_rt *cl, bool all);
bool dispatch_pods_wait_reason(struct cluster_rt *cl, const char *job_id, char *out, size_t len);
bool dispatch_start_watcher(struct cluster_rt *cl, bool apps);

/* shared.c: shared servers and the jobs on them. */
bool dispatch_shared_server(struct cluster_rt *cl, const char *job_id, char *server, size_t len);
void dispatch_shared_one(struct dispatch *d, const struct router *r, struct cluster_rt *cl, struct store_job *job,
			 const struct router_decision *dec);
/* Cancels the job's statement and ends its session: 404 once it is gone. */
long dispatch_shared_stop(struct cluster_rt *cl, const struct store_job *job, const char *server);
void *dispatch_shared_main(void *arg);

/* probe.c: the prober. */
void *dispatch_prober_main(void *arg);

/* leases.c: the leaser. */
void dispatch_release_watch(struct dispatch *d, struct cluster_rt *cl);
void *dispatch_leaser_main(void *arg);

#endif
