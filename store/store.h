/* The job store: every job, label, state change and idempotency key, on
 * SQLite (one process) or PostgreSQL (replicas sharing it). Writes go
 * through one writer thread that commits concurrent operations together
 * (group commit) and reports each only after its commit is durable; reads
 * use a pool of read-only connections and never wait for the writer. The
 * job state machine lives here and nowhere else. */
#ifndef GW_STORE_H
#define GW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/err.h"
#include "common/labels.h"

struct store;

enum store_state {
	STORE_QUEUED,
	STORE_DISPATCHING,
	STORE_SUBMITTED,
	STORE_RUNNING,
	STORE_SUCCEEDED,
	STORE_FAILED,
	STORE_CANCELLING,
	STORE_CANCELLED,
	STORE_REJECTED,
};
#define STORE_NSTATES 9

const char *store_state_name(enum store_state st);
/* -1 when name is not a state. */
int store_state_parse(const char *name);
bool store_state_terminal(enum store_state st);
bool store_transition_allowed(enum store_state from, enum store_state to);

#define STORE_ID_LEN 24
/* Priority ranks are 0 (first) to STORE_PRIORITY_LEVELS - 1. */
#define STORE_PRIORITY_LEVELS 16

/* A job as stored. Strings are owned by the struct: store_job_release(). */
struct store_job {
	int64_t seq;
	char id[STORE_ID_LEN];
	char *name;
	char *user;
	enum store_state state;
	char *reason;      /* why it is in its state; may be NULL */
	char *message;     /* may be NULL */
	char *labels_json; /* JSON object text */
	char *spec_json;   /* JSON object text, as submitted */
	char *spec_shown_json; /* the spec with secrets redacted; "": spec_json
				* itself; NULL: not known (to be redacted) */
	int64_t created_ms;
	int64_t updated_ms;
	int64_t rv; /* changes on every write to the job; global, increasing */
	/* Placement and driver, once dispatched; NULL before. */
	char *cluster;
	char *namespace;
	char *driver_pod;
	char *spark_ui;
	char *spark_app_id; /* what the driver reported; NULL until then */
	char *lease_owner;      /* gateway process dispatching it */
	int64_t lease_until_ms;
	int attempts;           /* dispatch attempts so far */
	int64_t not_before_ms;  /* QUEUED: not to be dispatched before */
	char *placement_json;   /* how it was placed, once claimed */
	int priority;           /* rank: 0 is dispatched first */
	char *team;             /* "" for none */
	char *pool;             /* "" before a placement check */
	struct store_demand {
		int64_t cores_milli;
		int64_t memory_mib;
		int64_t gpus;
	} demand;               /* driver and executors together */
	int run;                /* 1, then one more per restart after a failure */
	int ttl_s;              /* objects kept after the end; -1: the default */
	int64_t cleaned_ms;     /* when its cluster objects went; 0: not yet */
};

/* Bounds on a team's or a pool's jobs; 0 is no bound. */
struct store_limits {
	unsigned running;  /* active jobs (DISPATCHING to CANCELLING) */
	unsigned queued;
	int64_t cores_milli;
	int64_t memory_mib;
	int64_t gpus;
};

struct store_event {
	int64_t seq;
	int64_t time_ms;
	enum store_state state;
	int previous; /* a store_state, or -1 for the first event */
	char *reason;
	char *message; /* may be NULL */
};

void store_job_release(struct store_job *job);
void store_jobs_free(struct store_job *jobs, size_t n);
void store_events_free(struct store_event *events, size_t n);

struct gw_metrics;

struct store_options {
	const char *path;     /* SQLite: the database file, created if missing */
	/* Not NULL: PostgreSQL at this libpq connection string instead, which
	 * several gateway processes may share. */
	const char *postgres_dsn;
	bool synchronous_full; /* FULL: a commit survives power loss */
	size_t batch_max;     /* operations per group commit */
	struct gw_metrics *metrics; /* may be NULL */
	/* Called by the writer after each commit with the seqs of the jobs it
	 * wrote, and with n == 0 when another process wrote to the database
	 * (noticed within 200 ms): any job may have changed. May be NULL. */
	void (*jobs_changed)(void *arg, const int64_t *seqs, size_t n);
	void *jobs_changed_arg;
};

/* Opens the database, applies pending migrations and starts the writer. */
enum gw_err store_open(const struct store_options *opts, struct store **out,
		       char *err);
/* Completes every queued write, then closes. NULL is a no-op. */
void store_close(struct store *s);

/* True when a job asking for `demand` would cross one of the limits of
 * the team or pool `name` (kind: "team" or "pool"), which now has `running`
 * active jobs using `used`; why then says which, as
 * "QuotaExceeded: team ads at 400/400 cores". */
bool store_limits_exceeded(const struct store_limits *lim, const char *kind, const char *name,
			   unsigned running, const struct store_demand *used,
			   const struct store_demand *demand, char *why, size_t len);

/* ---- writes ---- */

enum store_op_kind {
	STORE_OP_SUBMIT,     /* new job in QUEUED */
	STORE_OP_CANCEL,     /* QUEUED -> CANCELLED; running -> CANCELLING */
	STORE_OP_TRANSITION, /* any legal state change */
	/* Takes the dispatch lease: QUEUED -> DISPATCHING, or a DISPATCHING
	 * job whose lease expired (its placement is kept). */
	STORE_OP_CLAIM,
	/* Sets a cluster's rotation and weight (cluster_settings). */
	STORE_OP_CLUSTER_SETTINGS,
	/* Replaces the policy overlay (clusters added and removed at runtime). */
	STORE_OP_POLICY_OVERLAY,
	/* Extends the lease of a DISPATCHING job this owner holds (ECONFLICT
	 * when it lost it). */
	STORE_OP_RENEW,
	/* Records that a finished job's cluster objects are deleted. */
	STORE_OP_CLEANED,
	/* Deletes up to `limit` finished jobs last written before
	 * `before_ms` whose cluster objects are gone, with their labels,
	 * events and idempotency keys. */
	STORE_OP_PRUNE,
	/* Tokens and the audit trail (store_auth.c). */
	STORE_OP_TOKEN_CREATE, /* ECONFLICT if the id exists */
	STORE_OP_TOKEN_REVOKE, /* ENOTFOUND; unchanged if revoked already */
	STORE_OP_AUDIT,
	/* Pod usage (store_usage.c): a pod of a job ran (end_ms 0) or ended. */
	STORE_OP_POD_USAGE,
	/* Pods of a cluster still open but absent from its latest list (uids
	 * in `document`, a JSON array) ended, at end_ms or their job's end. */
	STORE_OP_POD_USAGE_CLOSE,
	/* Takes or extends the watch lease of `cluster` for lease_owner until
	 * lease_until_ms; ECONFLICT while another owner's has not run out. */
	STORE_OP_WATCH_LEASE,
	/* Gives it up (a clean stop), so that another process takes over now. */
	STORE_OP_WATCH_RELEASE,
	/* Says that gateway process lease_owner is alive until lease_until_ms. */
	STORE_OP_REPLICA_ALIVE,
	/* What runs in the namespaces of `cluster` (document: JSON), as the
	 * process watching it sees it. */
	STORE_OP_CLUSTER_USAGE,
};

struct store_pod_usage {
	const char *uid, *cluster, *job_id, *role;
	struct store_demand held;
	int64_t start_ms, end_ms; /* end 0: still running */
};

/* An API token as stored; the secret is not, only its SHA-256. */
struct store_token {
	char id[32];
	unsigned char secret_sha256[32];
	char *owner;
	char *teams_json; /* JSON array of team names */
	char *role;
	int64_t created_ms, expires_ms, revoked_ms; /* 0: not set */
};

void store_token_release(struct store_token *t);

/* One line of the audit trail. */
struct store_audit {
	int64_t seq;
	int64_t time_ms;
	const char *token_id, *team, *action, *target, *outcome, *remote; /* may be NULL */
	int status;
};

struct store_submission {
	const char *name;
	const char *user;
	const char *labels_json; /* validated JSON object of strings */
	const char *spec_json;
	const char *spec_shown_json; /* as in struct store_job; may be NULL */
	const char *idempotency_key; /* NULL for none */
	unsigned char body_sha256[32];
	int priority;                /* rank: 0 is dispatched first */
	const char *team;            /* the team label, may be NULL */
	const char *pool;            /* where the policy sends it, may be NULL */
	struct store_demand demand;
	int ttl_s;                   /* -1: the default */
	/* Only `queued` is looked at: a full queue is EBUSY. */
	struct store_limits team_limits, pool_limits;
};

/* One write. The caller owns it and its inputs until done() runs. */
struct store_op {
	enum store_op_kind kind;
	struct store_submission submit; /* SUBMIT */
	const char *job_id;              /* CANCEL, TRANSITION */
	enum store_state to;             /* TRANSITION */
	const char *reason;              /* CANCEL, TRANSITION, CLAIM */
	const char *message;             /* CANCEL, TRANSITION; may be NULL */
	/* CLAIM, TRANSITION: fields to set when not NULL. */
	const char *cluster, *namespace, *driver_pod, *spark_ui;
	const char *spark_app_id;        /* TRANSITION: the driver's Spark application id */
	const char *placement_json;      /* CLAIM: the explanation to keep */
	const char *lease_owner;         /* CLAIM, RENEW, WATCH_LEASE, WATCH_RELEASE */
	/* CLAIM: the pool placed in and the demand placed with replace the
	 * submission's; with them the job must fit in its team's and pool's
	 * limits, or the claim is EBUSY with the limit reached in err. */
	const char *pool;
	struct store_demand demand;
	struct store_limits team_limits, pool_limits;
	/* TRANSITION to QUEUED from SUBMITTED or RUNNING: a new run, placed
	 * afresh (placement, driver and dispatch attempts cleared). */
	bool new_run;
	const char *rotation;            /* CLUSTER_SETTINGS, with cluster */
	const char *document;            /* POLICY_OVERLAY, CLUSTER_USAGE: JSON text */
	int weight;                      /* CLUSTER_SETTINGS */
	int64_t lease_until_ms;          /* CLAIM, RENEW, WATCH_LEASE */
	int64_t not_before_ms;           /* TRANSITION to QUEUED: retry time */
	int64_t before_ms;               /* PRUNE */
	unsigned limit;                  /* PRUNE */
	unsigned pruned;                 /* PRUNE: jobs deleted */
	struct store_token token;        /* TOKEN_CREATE (strings borrowed), TOKEN_REVOKE (id) */
	struct store_audit audit;        /* AUDIT (strings borrowed) */
	struct store_pod_usage usage;    /* POD_USAGE; POD_USAGE_CLOSE: cluster, end_ms */

	/* Results, set before done() runs. */
	enum gw_err rc;  /* ENOTFOUND, ECONFLICT (key reused with another
			    body; finished job cancelled), ESTATE, EFULL, EIO,
			    EBUSY (SUBMIT: the team's queue is full) */
	bool unchanged;  /* SUBMIT: replay of an idempotency key;
			    CANCEL: already cancelling or cancelled */
	struct store_job job; /* the job after the write (caller releases) */
	char err[GW_ERRLEN];

	int queued_delta; /* set by the store: this op's change to the queue depth */

	/* Called once, on the writer thread, after the commit. Keep it short. */
	void (*done)(struct store_op *op, void *arg);
	void *arg;
};

/* Called on the writer thread after every commit that wrote something,
 * so that waiting work (the dispatcher) wakes at once. */
void store_set_commit_hook(struct store *s, void (*fn)(void *arg), void *arg);

/* Queues op; GW_ECLOSED once store_close has begun. */
enum gw_err store_enqueue(struct store *s, struct store_op *op);
/* Queues op and waits for it; op->done is ignored. Returns op->rc. */
enum gw_err store_execute(struct store *s, struct store_op *op);

/* ---- reads ---- */

enum gw_err store_job_get(struct store *s, const char *id,
			  struct store_job *out, char *err);

struct store_list_query {
	const struct gw_selector *selector; /* NULL for all */
	int state;                          /* a store_state, or -1 */
	const char *user;                   /* NULL for all */
	int64_t created_after_ms;           /* inclusive; 0 for none */
	int64_t created_before_ms;          /* exclusive; 0 for none */
	int64_t before_seq;                 /* cursor; 0 to start */
	int64_t from_seq;                   /* no job before this one; 0: none */
	/* Changes mode: jobs written after this rv, oldest change first, for
	 * pollers (rvs are committed in order, so none is skipped). */
	bool changes;
	int64_t after_rv;
	/* Oldest first instead, skipping `offset` rows (no cursor): for
	 * clients that page by position. Not with changes or before_seq;
	 * with created_after_ms (and from_seq to match) the cost is that of
	 * the recent jobs, not of the whole store. */
	bool oldest_first;
	size_t offset;
	size_t limit;
};

/* Newest first (changes mode: by rv). *next_seq is the cursor for the
 * next page, 0 at the end (changes mode: not set; the last rv is). */
enum gw_err store_job_list(struct store *s, const struct store_list_query *q,
			   struct store_job **items, size_t *n,
			   int64_t *next_seq, char *err);
/* How many jobs the query would list in all pages (not in changes mode). */
enum gw_err store_job_count(struct store *s, const struct store_list_query *q, int64_t *total, char *err);
/* The seq of the first job created at since_ms or later (INT64_MAX: none):
 * a list's from_seq, so that a window of recent jobs is read as a range. */
enum gw_err store_first_seq_since(struct store *s, int64_t since_ms, int64_t *seq, char *err);
/* A job by its seq, the number that stands for it where ids must be
 * integers (the Livy API). */
enum gw_err store_job_get_seq(struct store *s, int64_t seq, struct store_job *out, char *err);
enum gw_err store_job_events(struct store *s, const char *id,
			     struct store_event **items, size_t *n, char *err);
/* What the scheduler decides from, read at one instant: jobs whose
 * dispatch lease expired, the first `per_team` due QUEUED jobs of each team
 * at each priority (oldest first: enough for the team's first `per_team` by
 * rank with aging), and what every pool's teams use now. */
struct store_queued {
	int64_t seq;
	char id[STORE_ID_LEN];
	enum store_state state; /* QUEUED, or DISPATCHING with an expired lease */
	char *name, *team, *pool;
	int priority;           /* as submitted */
	int rank;               /* the priority with aging applied */
	int64_t created_ms;
	struct store_demand demand;
};

struct store_usage {
	char *pool, *team;
	unsigned running;       /* active jobs */
	struct store_demand used;
};

struct store_queue {
	struct store_queued *jobs;
	size_t njobs;
	struct store_usage *usage;
	size_t nusage;
};

enum gw_err store_queue_read(struct store *s, int64_t now_ms, int64_t aging_ms, size_t per_team,
			     struct store_queue *out, char *err);
void store_queue_release(struct store_queue *q);
/* Finished jobs whose cluster objects are due for deletion at now_ms (their
 * ttl_s, else default_ttl_s, after they ended), oldest first. */
enum gw_err store_jobs_to_clean(struct store *s, int64_t now_ms, int default_ttl_s, size_t limit,
				struct store_job **items, size_t *n, char *err);
/* These three leave out the jobs' spec and placement ("{}", NULL): load a
 * job for them. */
/* Jobs RUNNING since before before_ms, oldest first; with label, instead
 * every RUNNING job that has the label. */
enum gw_err store_jobs_running_before(struct store *s, int64_t before_ms, const char *label, size_t limit,
				      struct store_job **items, size_t *n, char *err);
/* Jobs in state on cluster (NULL: any), oldest first. */
enum gw_err store_jobs_in_state(struct store *s, enum store_state state,
				const char *cluster, size_t limit,
				struct store_job **items, size_t *n, char *err);
/* Every cluster's settings: {name: {"rotation": …, "weight": n}}. */
enum gw_err store_cluster_settings(struct store *s, json_t **out, char *err);
/* The policy overlay, or an empty object. */
enum gw_err store_policy_overlay(struct store *s, json_t **out, char *err);
/* Every cluster's namespaces as its watcher last told (CLUSTER_USAGE) at
 * or after since_ms: {cluster: usage}. */
enum gw_err store_cluster_usage(struct store *s, int64_t since_ms, json_t **out, char *err);
/* Gateway processes alive at now_ms (STORE_OP_REPLICA_ALIVE). */
enum gw_err store_replicas_alive(struct store *s, int64_t now_ms, long *count, char *err);
/* Jobs on cluster in DISPATCHING, SUBMITTED, RUNNING or CANCELLING. */
enum gw_err store_count_active(struct store *s, const char *cluster, long *count, char *err);
/* How loaded the store is: jobs in QUEUED (as this process has seen
 * them: counted at open and, on PostgreSQL, after other replicas' commits;
 * kept by its own commits in between) and the recent average commit
 * time. */
void store_load(struct store *s, long *queued, double *commit_ms);

/* The token of that id: ENOTFOUND if none. */
enum gw_err store_token_get(struct store *s, const char *id, struct store_token *out, char *err);
/* Every token, newest first; *out a JSON array of {id, owner, teams, role,
 * createdMs, expiresMs, revokedMs}. */
enum gw_err store_token_list(struct store *s, json_t **out, char *err);

struct store_audit_query {
	const char *token_id, *team, *action, *outcome; /* NULL: any */
	int64_t since_ms, before_seq;                   /* 0: any */
	size_t limit;
};

/* Audit lines, newest first, as a JSON array; *next_seq the cursor for the
 * next page (0 at the end). */
enum gw_err store_audit_list(struct store *s, const struct store_audit_query *q, json_t **out,
			     int64_t *next_seq, char *err);

/* Jobs in each state: {"QUEUED": n, ...}; and queued jobs by pool and team:
 * [{pool, team, count}]. */
enum gw_err store_state_counts(struct store *s, json_t **counts, json_t **queued, char *err);

enum store_usage_group { STORE_USAGE_BY_TEAM, STORE_USAGE_BY_LABEL, STORE_USAGE_BY_USER, STORE_USAGE_BY_JOB };

struct store_usage_query {
	int64_t from_ms, to_ms, now_ms;
	enum store_usage_group group;
	const char *label;   /* STORE_USAGE_BY_LABEL: this label's value */
	const json_t *teams; /* array: only these teams; NULL: all */
};

/* Resources held within [from, to) (running pods up to now), by group and
 * pool: [{key, pool, coreSeconds, memoryGiBSeconds, gpuSeconds}]. */
enum gw_err store_usage_sum(struct store *s, const struct store_usage_query *q, json_t **out, char *err);

/* The pods a job's runs held (by pod_usage), oldest first: [{role,
 * cluster, pool, coresMilli, memoryMiB, gpus, startMs, endMs (0 while it
 * runs), coreSeconds, memoryGiBSeconds, gpuSeconds (up to now_ms)}]. */
enum gw_err store_job_pods(struct store *s, const char *job_id, int64_t now_ms, json_t **out, char *err);

/* "sqlite" or "postgres", and the engine's version in version. */
const char *store_engine(const struct store *s, const char **version);

/* GW_OK when the database answers a query. */
enum gw_err store_ping(struct store *s, char *err);

#endif
