/* Internals of the store, not for other modules. Its parts depend on the
 * core (core.c: the store, connections, statements, readers, the job row),
 * never on each other; the front (store.c: migrations, the writer) routes
 * each write to the part it belongs to, and reads go to store_reads.c:
 *   store.c -> store_jobs.c, store_auth.c, store_usage.c -> core.c -> db.c
 *   store_reads.c -> core.c */
#ifndef GW_STORE_INT_H
#define GW_STORE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "store/db.h"
#include "store/store.h"

enum store_stmt {
	STMT_JOB_BY_ID,
	STMT_JOB_BY_SEQ,
	STMT_FIRST_SEQ_SINCE,
	STMT_JOB_EVENTS,
	STMT_JOB_INSERT,
	STMT_SUBMIT_PG,  /* PostgreSQL only */
	STMT_LABEL_INSERT,
	STMT_EVENT_INSERT,
	STMT_JOB_UPDATE,
	STMT_LABELS_UPDATE,
	STMT_IDEM_GET,
	STMT_IDEM_INSERT,
	STMT_PING,
	STMT_JOB_PLACE,
	STMT_JOB_LEASE,
	STMT_JOB_SET_PLACEMENT,
	STMT_CLUSTER_SETTINGS_PUT,
	STMT_OVERLAY_PUT,
	STMT_TEAM_QUEUED,
	STMT_TEAM_ACTIVE,
	STMT_POOL_QUEUED,
	STMT_POOL_ACTIVE,
	STMT_JOB_SET_DEMAND,
	STMT_JOB_NEW_RUN,
	STMT_JOB_RENEW,
	STMT_JOB_CLEANED,
	STMT_JOBS_PRUNE,
	STMT_NEXT_EVENT_SEQ,
	STMT_FIRST_EVENT_INSERT,
	STMT_AUDIT_INSERT,
	STMT_TOKEN_INSERT,
	STMT_TOKEN_REVOKE,
	STMT_POD_USAGE_UPSERT,
	STMT_POD_USAGE_CLOSE,
	STMT_WATCH_LEASE,
	STMT_WATCH_RELEASE,
	STMT_REPLICA_ALIVE,
	STMT_REPLICAS_FORGET,
	STMT_CLUSTER_USAGE_PUT,
	STMT_BEGIN,
	STMT_WRITE_LOCK, /* PostgreSQL only */
	STMT_NOTIFY,     /* PostgreSQL only */
	STMT_COMMIT,
	STMT_SAVEPOINT,
	STMT_RELEASE,
	STMT_ROLLBACK_TO,
	STMT_JOBS_TO_CLEAN,
	STMT_JOBS_IN_STATE,
	STMT_JOBS_IN_STATE_ON,
	STMT_JOBS_RUNNING_BEFORE,
	STMT_JOBS_LABELLED_RUNNING,
	STMT_COUNT
};

/* PostgreSQL: the advisory lock every write transaction of every replica
 * takes first. One writer at a time keeps the rvs (change counters) in
 * commit order, which pollers of changes rely on, and makes the checks
 * of quotas and idempotency keys exact across replicas; each holder
 * commits a whole batch, so the lock is taken once per batch. */
#define STORE_PG_WRITE_LOCK 1936747367 /* "spkg" */
#define GW_STR_(x) #x
#define GW_STR(x) GW_STR_(x)
/* Where writers tell other replicas that jobs changed. */
#define STORE_PG_CHANNEL "sparkgw_jobs"

struct queue_node;

/* The store: shared by the front (store.c: the writer and its queue) and
 * the core (core.c: connections and readers). */
struct store {
	enum db_driver driver;
	char *target;          /* SQLite file, or PostgreSQL connection string */
	char version[32];      /* the engine's */
	bool sync_full;
	size_t batch_max;

	struct store_conn *writer; /* owned by the writer thread once started */
	pthread_t writer_thread;

	pthread_mutex_t lock; /* guards head, tail, closing */
	pthread_cond_t wake;      /* writer: work arrived or closing */
	pthread_cond_t done_cond; /* store_execute waiters: a batch finished */
	struct queue_node *head, *tail;
	bool closing;

	pthread_mutex_t pool_lock; /* guards free_readers */
	struct store_conn *free_readers;

	void (*commit_hook)(void *arg); /* set before writes begin */
	void *commit_hook_arg;

	void (*jobs_changed)(void *arg, const int64_t *seqs, size_t n);
	void *jobs_changed_arg;
	int64_t *changed;            /* writer: seqs of the jobs written in the batch */
	size_t nchanged, changed_cap;
	bool changed_oom;            /* one was not noted: report "any" */

	atomic_long queued;          /* jobs in QUEUED */
	_Atomic double commit_ms;    /* moving average of a batch's commit */
	struct gw_metrics *metrics;
};

/* One database connection with its prepared statements; used by one
 * thread at a time (the writer's, or a reader checked out of the pool). */
struct store_conn {
	struct db_conn *db;
	struct db_stmt *stmts[STMT_COUNT];
	struct store_conn *next_free;
};

/* The statement, prepared on first use and reset for reuse; NULL on error
 * with the reason in err. */
struct db_stmt *store_conn_stmt(struct store_conn *c, enum store_stmt which,
			       char *err);

/* The writes of each part, run by the writer inside its open transaction:
 * jobs and the fleet's settings (store_jobs.c), tokens and audit
 * (store_auth.c), pod usage (store_usage.c). */
enum gw_err store_apply_job_op(struct store_conn *c, struct store_op *op);
enum gw_err store_apply_auth_op(struct store_conn *c, struct store_op *op);
enum gw_err store_apply_usage_op(struct store_conn *c, struct store_op *op);
/* A step to GW_OK at DB_DONE. */
enum gw_err store_step_done(struct store_conn *c, struct db_stmt *st, char *err);

/* A text column, copied (NULL for NULL; *oom set when out of memory). */
char *store_column_text(struct db_stmt *st, int col, bool *oom);
/* The job of the statement which (by id or by seq) into
 * *job; GW_ENOTFOUND when there is none. */
enum gw_err store_load_job(struct store_conn *c, enum store_stmt which, const char *id, int64_t seq,
			   struct store_job *job, char *err);
/* Reads a row of the job column list (see STORE_JOB_COLUMNS). */
enum gw_err store_row_to_job(struct db_stmt *st, struct store_job *job);

/* Qualified, so that queries joining job_labels can use them too. */
#define STORE_JOB_COLUMNS                                                      \
	"jobs.seq, jobs.id, jobs.name, jobs.\"user\", jobs.state, jobs.reason,"    \
	" jobs.message, jobs.labels, jobs.spec, jobs.created_ms,"              \
	" jobs.updated_ms, jobs.rv, jobs.cluster, jobs.namespace,"            \
	" jobs.driver_pod, jobs.spark_ui, jobs.lease_owner,"                  \
	" jobs.lease_until_ms, jobs.attempts, jobs.not_before_ms, jobs.placement,"  \
	" jobs.priority, jobs.team, jobs.pool, jobs.cores_milli, jobs.memory_mib,"   \
	" jobs.gpus, jobs.run, jobs.ttl_s, jobs.cleaned_ms, jobs.spec_shown, jobs.spark_app_id"
/* The same, without the large spec ('{}') and placement (NULL): for loops
 * over many jobs that never read them. */
#define STORE_JOB_COLUMNS_BRIEF                                                \
	"jobs.seq, jobs.id, jobs.name, jobs.\"user\", jobs.state, jobs.reason,"    \
	" jobs.message, jobs.labels, '{}', jobs.created_ms,"                   \
	" jobs.updated_ms, jobs.rv, jobs.cluster, jobs.namespace,"            \
	" jobs.driver_pod, jobs.spark_ui, jobs.lease_owner,"                  \
	" jobs.lease_until_ms, jobs.attempts, jobs.not_before_ms, NULL,"      \
	" jobs.priority, jobs.team, jobs.pool, jobs.cores_milli, jobs.memory_mib,"   \
	" jobs.gpus, jobs.run, jobs.ttl_s, jobs.cleaned_ms, NULL, jobs.spark_app_id"

/* The states in which a job holds resources on a cluster. */
#define STORE_ACTIVE_STATES "('DISPATCHING', 'SUBMITTED', 'RUNNING', 'CANCELLING')"
/* The same as the condition of the partial index jobs_active_usage, word
 * for word, so that a query can name that index. */
#define STORE_ACTIVE_CONDITION \
	"state = 'DISPATCHING' OR state = 'SUBMITTED' OR state = 'RUNNING' OR state = 'CANCELLING'"
/* Those of the partial indexes jobs_finished and jobs_to_clean (SQLite):
 * a job that ran and ended, and one that ended at all. */
#define STORE_ENDED_CONDITION "state = 'SUCCEEDED' OR state = 'FAILED' OR state = 'CANCELLED'"
#define STORE_FINISHED_CONDITION STORE_ENDED_CONDITION " OR state = 'REJECTED'"

/* A one-statement read on a pooled connection: begin checks a reader out
 * and prepares sql (NULL on error, the reason in err, nothing held); the
 * caller binds and steps; end finalizes, returns the reader and maps the
 * last step's result (DB_DONE, or DB_ROW when it read one row) to GW_OK,
 * anything else to the error. */
struct db_stmt *store_read_begin(struct store *s, const char *sql, struct store_conn **c, char *err);
enum gw_err store_read_end(struct store *s, struct store_conn *c, struct db_stmt *st, int src, char *err);

enum db_driver store_driver(const struct store *s);
/* Sums of the demand columns, 0 over no rows. */
#define STORE_SUMS "coalesce(sum(cores_milli), 0), coalesce(sum(memory_mib), 0), coalesce(sum(gpus), 0)"

/* The text for the connection's engine: SQLite's, or PostgreSQL's. */
static inline const char *store_sql(const struct store_conn *c, const char *lite, const char *pg)
{
	return db_driver(c->db) == DB_POSTGRES ? pg : lite;
}

/* A connection of the store's engine (reader: read-only, for the pool). */
enum gw_err store_conn_open(const struct store *s, bool reader, struct store_conn **out, char *err);
void store_conn_close(struct store_conn *c);
/* Checks a reader out of the pool (opening one if none is free). */
struct store_conn *store_reader_get(struct store *s, char *err);
void store_reader_put(struct store *s, struct store_conn *c);

#endif
