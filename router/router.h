/* Routing: resource labels and policy to placement — cluster pool, cluster,
 * namespace group, namespace and node role — and the final Spark conf,
 * composed by layers with the layer each value came from.
 *
 * A policy (struct router) is immutable once loaded, so a reload builds a
 * new one and swaps it; live facts (health, rotation, weights, namespace
 * usage) come in through struct router_live at placement time. */
#ifndef GW_ROUTER_H
#define GW_ROUTER_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "common/labels.h"

enum router_mode { ROUTER_DRIVER_POD, ROUTER_SPARK_OPERATOR };

/* Where pods of a kind may run, and how big one may be. */
struct router_node_role {
	char *name;
	double max_cores;
	int64_t max_memory; /* bytes, heap + overhead */
	int max_gpus;
	json_t *node_selector; /* object of strings, may be empty */
	json_t *tolerations;   /* array of core/v1 Tolerations */
};

/* A batch scheduler a cluster's Spark pods go to (their schedulerName),
 * with the queue they take; Volcano and YuniKorn get their gang
 * scheduling objects too. */
struct router_batch_scheduler {
	char *name;  /* "volcano", "yunikorn" or another scheduler's; NULL: the default scheduler */
	char *queue; /* NULL: the scheduler's default queue */
};

struct router_cluster {
	char *name;
	char *kubeconfig;
	char *context;          /* NULL: the kubeconfig's current-context */
	enum router_mode mode;
	char *image;            /* Spark image when neither job nor pool names one */
	char *service_account;  /* default driver service account */
	json_t *defaults;       /* sparkConf below the user's */
	json_t *overrides;      /* sparkConf above the user's */
	json_t *annotations;    /* added to drivers and executors */
	json_t *sidecars;       /* core/v1 Containers added to drivers and executors */
	struct router_batch_scheduler batch; /* over the pool's */
	struct router_node_role *roles;
	size_t nroles;
};

struct router_namespace {
	char *name;
	unsigned max_pods;      /* active pods; default 3000 */
	double quota_cores;     /* 0: no quota */
	int64_t quota_memory;
	int quota_gpus;
	char *service_account;  /* NULL: the cluster's */
	json_t *overrides;      /* sparkConf, the top layer */
};

struct router_group {
	char *name;
	struct gw_selector *selector; /* which jobs it serves */
	char *selector_text;
	struct router_namespace *namespaces;
	size_t nnamespaces;
};

struct router_member {
	size_t cluster; /* index into the router's clusters */
	unsigned weight;
};

/* Bounds on a team's or a pool's jobs at once; 0 is no bound. */
struct router_limits {
	unsigned running;
	unsigned queued;
	double cores;
	int64_t memory; /* bytes */
	int gpus;
};

/* Long-running Spark servers a pool keeps in one namespace of each of its
 * clusters, which run small SQL jobs as statements (shared execution)
 * instead of a driver each. */
struct router_shared {
	char *namespace;
	unsigned min_servers, max_servers; /* per cluster */
	unsigned max_jobs;                 /* per server at once */
	unsigned idle_timeout_s;           /* a server above the minimum, idle this long, goes */
	char *image;                       /* NULL: the cluster's Spark image */
	double cores;
	int64_t memory;                    /* bytes */
	/* SQL jobs these labels select go shared when they ask for at most
	 * max_executor_cores; NULL: only DDL and `execution: shared`. */
	struct gw_selector *selector;
	char *selector_text;
	double max_executor_cores;
};

struct router_pool {
	char *name;
	struct router_shared *shared; /* NULL: every job gets a driver of its own */
	struct router_limits limits;
	unsigned max_run_s;     /* jobs' longest run; 0: the configured default */
	struct router_member *members;
	size_t nmembers;
	json_t *defaults;       /* sparkConf, the bottom layer */
	json_t *images;         /* sparkVersion prefix ("3.5") -> image */
	char *default_role;     /* node role for CPU jobs; NULL: the first without GPUs */
	char *driver_priority_class;
	char *executor_priority_class;
	/* Spark properties a job may set here: glob patterns; an empty allow
	 * list allows all but the denied. */
	json_t *conf_allow, *conf_deny;
	/* Prices for cost attribution, per hour; 0: not priced. */
	double price_core_hour, price_memory_gib_hour, price_gpu_hour;
	struct router_batch_scheduler batch; /* for its clusters that name none */
};

struct router_rule {
	char *text;
	struct gw_selector *selector;
	size_t pool;
	long group; /* -1: chosen by the groups' own selectors */
};

/* A team: its weight in fair share and its limits over all pools. Limits
 * it does not set (has_running, has_queued false) are the configured
 * defaults. */
struct router_team {
	char *name;
	double share;
	struct router_limits limits;
	bool has_running, has_queued;
};

#define ROUTER_MAX_PRIORITIES 16

struct router {
	atomic_int refs; /* router_unref frees at zero */
	struct router_team *teams;
	size_t nteams;
	/* Priority label values, dispatched first to last; the index is the
	 * rank kept with each job. */
	char *priorities[ROUTER_MAX_PRIORITIES];
	size_t npriorities;
	int default_priority;
	struct router_cluster *clusters;
	size_t nclusters;
	struct router_pool *pools;
	size_t npools;
	struct router_group *groups;
	size_t ngroups;
	struct router_rule *rules;
	size_t nrules;
	long default_pool; /* -1: none */
};

/* Builds a policy from the config document (keys clusters, pools,
 * namespaceGroups, routing). Without pools or groups the policy is the
 * simple one: one pool of all clusters, one group of each cluster's
 * `namespace`. Errors name file, line and column. */
enum gw_err router_load(json_t *doc, const json_t *marks, const char *path,
			struct router **out, char *err);
/* A policy is shared by reference: whoever holds one may use it until
 * router_unref. router_load's result holds one reference. */
struct router *router_ref(struct router *r);
void router_unref(struct router *r);

/* The policy in force; a reload swaps it atomically. */
struct router_holder;
struct router_holder *router_holder_new(struct router *r /* reference taken over */);
void router_holder_free(struct router_holder *h);
/* A reference to the current policy: router_unref it after use. */
struct router *router_holder_get(struct router_holder *h);
/* Puts r (reference taken over) in force; requests already placing keep
 * the old one until they finish. */
void router_holder_swap(struct router_holder *h, struct router *r);

const struct router_cluster *router_cluster_named(const struct router *r, const char *name);
const struct router_pool *router_pool_named(const struct router *r, const char *name);
/* The namespace the pool's shared servers run in (NULL: none). */
const struct router_namespace *router_shared_namespace(const struct router *r, const struct router_pool *pool);
/* The team's entry; NULL when the policy names none (share 1, defaults). */
const struct router_team *router_team_named(const struct router *r, const char *name);
/* The rank of a priority label value (NULL: the default); -1 if the policy
 * has no such priority. */
int router_priority_rank(const struct router *r, const char *value);

/* Live facts, from pool/. */
struct router_usage {
	unsigned pods;
	double cores;
	int64_t memory;
	int gpus;
};

/* What the nodes a node role selects can hold: all of them together, the
 * largest one (each resource's largest), and what is free of them now. */
struct router_capacity {
	unsigned nodes;
	struct router_usage total, largest, free;
};

/* Any callback may be NULL: every cluster usable, weights as configured,
 * namespaces empty, nodes unknown. With capacity alone (the check at
 * submission), a job no node role could ever hold is refused. */
struct router_live {
	/* False when the cluster must get no new jobs (unhealthy, cordoned,
	 * draining), with the reason in why. */
	bool (*usable)(void *arg, const char *cluster, char *why, size_t len);
	/* The weight in force (an operator may have changed it). */
	unsigned (*weight)(void *arg, const char *cluster, unsigned configured);
	void (*usage)(void *arg, const char *cluster, const char *ns, struct router_usage *out);
	/* False when the cluster's nodes are not known. */
	bool (*capacity)(void *arg, const char *cluster, const struct router_node_role *role,
			 struct router_capacity *out);
	void *arg;
};

/* What a job asks for, from its spec. */
struct router_demand {
	unsigned pods;
	double cores;
	int64_t memory;
	int gpus;
};

struct router_decision {
	const struct router_pool *pool;
	const struct router_group *group;
	const struct router_cluster *cluster;
	const struct router_namespace *ns;
	const struct router_node_role *role;
	struct router_demand demand; /* nothing for a shared job: its server holds the room */
	bool shared;     /* runs as a statement on one of the pool's shared servers */
	char execution[256]; /* why shared or dedicated */
	json_t *reasons; /* array of strings, the steps taken */
	json_t *conf;    /* key -> {"value", "source"} */
};

void router_decision_release(struct router_decision *d);
/* The batch scheduler of the decision's cluster, or else of its pool;
 * NULL for the default scheduler. */
const struct router_batch_scheduler *router_batch_scheduler(const struct router_decision *d);

enum router_result {
	ROUTER_OK,
	ROUTER_INVALID, /* the job can never be placed: *errors says why (422) */
	ROUTER_WAIT,    /* no capacity or cluster now: try again later */
	/* No node role of the pool's clusters could hold it, as their nodes
	 * are now (*errors says why, naming the largest place): refused at
	 * submission, waited out once queued (nodes come back). */
	ROUTER_TOO_BIG,
};

/* A placement decided before (a dispatch retried after a crash): the job
 * must go to the same cluster and namespace, or it could run twice. */
struct router_pin {
	const char *cluster;
	const char *namespace;
};

/* Places a job; pin may be NULL. live may be NULL (every cluster usable, namespaces empty):
 * that is the check done at submission. job_key spreads jobs over weighted
 * clusters. On ROUTER_INVALID, *errors is a new array of {field, message};
 * on ROUTER_WAIT, detail says why. */
enum router_result router_place(const struct router *r, const struct router_live *live,
				const struct router_pin *pin,
				const json_t *labels, const json_t *spec, const char *job_key,
				struct router_decision *out, json_t **errors, char *detail);

/* Adds to errors what the policy refuses of a submission whatever its
 * sizes: protected or pool-denied Spark conf keys, labels no rule routes.
 * For a submission that failed validation (labels and spec may hold
 * anything), so that one answer lists every problem. */
void router_refusals(const struct router *r, const json_t *labels, const json_t *spec, json_t *errors);

/* Whether a job's demand fits in ns on top of usage u: its active-pod cap
 * and the quotas it sets. */
bool router_namespace_fits(const struct router_namespace *ns, const struct router_usage *u,
			   const struct router_demand *d);

/* Spark conf keys a user may not set, because they would let a job leave
 * its namespace or its identity; NULL if key is allowed. */
const char *router_protected_key(const char *key);

/* What a SQL script does, for sending catalogue-only scripts to shared
 * servers: DDL only when every statement is DDL (CREATE TABLE ... AS a
 * query is DML). */
enum router_sql_kind {
	ROUTER_SQL_DDL,
	ROUTER_SQL_DML,
	ROUTER_SQL_EMPTY,   /* comments and semicolons only */
	ROUTER_SQL_INVALID, /* an unterminated string, identifier or comment */
};

/* Whether a submission's spec is a SQL job (spec.type SQL). */
bool router_is_sql(const json_t *spec);

/* Classifies sql[0..len); reason says why (the verbs, or the first
 * statement that is not DDL, or what is unterminated). */
enum router_sql_kind router_sql_classify(const char *sql, size_t len, char *reason, size_t reason_len);

#endif
