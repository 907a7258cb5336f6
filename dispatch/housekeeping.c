/* The housekeeper's loop: deadlines (jobs running longer than they may),
 * cleanup of finished jobs' cluster objects after their time to live,
 * and pruning of jobs past the retention. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/metrics.h"
#include "common/quantity.h"
#include "common/timeutil.h"
#include "dispatch/dispatch.h"
#include "dispatch/dispatch_int.h"
#include "k8sclient/k8s.h"
#include "pool/pool.h"

#define HOUSEKEEPING_MS 1000
#define CLEAN_BATCH 50
#define DEADLINE_BATCH 1000
#define MAX_RUN_LABEL "max-run-seconds"
#define PRUNE_BATCH 200
#define PRUNE_IDLE_MS 60000

/* A job's longest run in seconds (label max-run-seconds, else its pool's
 * maxRunSeconds, else the configured default); 0 for none. */
static long max_run_seconds(const struct dispatch *d, const struct router *r, const struct store_job *job)
{
	json_t *labels = json_loads(job->labels_json, 0, NULL);
	const char *label = json_string_value(json_object_get(labels, MAX_RUN_LABEL));
	const struct router_pool *pool = router_pool_named(r, job->pool);
	long limit = label ? strtol(label, NULL, 10)
		     : pool && pool->max_run_s ? (long)pool->max_run_s : (long)d->opts.max_run_s;

	json_decref(labels);
	return limit;
}

static void cancel_overdue(struct dispatch *d, const struct router *r, struct store_job *jobs, size_t n,
			   int64_t now)
{
	for (size_t i = 0; i < n && !atomic_load(&d->stop); i++) {
		long limit = max_run_seconds(d, r, &jobs[i]);
		char msg[128];

		if (limit <= 0 || now - jobs[i].updated_ms < (int64_t)limit * 1000)
			continue;
		snprintf(msg, sizeof(msg), "ran longer than its %ld s", limit);
		dispatch_move_job(d, jobs[i].id, STORE_CANCELLING, DEADLINE_REASON, msg, NULL);
	}
	store_jobs_free(jobs, n);
}

/* Jobs running longer than they may are cancelled with reason
 * DeadlineExceeded. A RUNNING job is not written again until it ends, so
 * updated_ms is its start. Only candidates are read: the jobs running
 * longer than the shortest pool or default limit, and those with a label
 * of their own. */
static void enforce_deadlines(struct dispatch *d)
{
	struct router *r = router_holder_get(d->opts.policy);
	long shortest = (long)d->opts.max_run_s;
	struct store_job *jobs;
	size_t n;
	char err[GW_ERRLEN];
	int64_t now = gw_now_ms();

	for (size_t i = 0; i < r->npools; i++)
		if (r->pools[i].max_run_s && (!shortest || (long)r->pools[i].max_run_s < shortest))
			shortest = (long)r->pools[i].max_run_s;
	if (shortest && !store_jobs_running_before(d->store, now - (int64_t)shortest * 1000, NULL,
						   DEADLINE_BATCH, &jobs, &n, err))
		cancel_overdue(d, r, jobs, n, now);
	if (!store_jobs_running_before(d->store, 0, MAX_RUN_LABEL, DEADLINE_BATCH, &jobs, &n, err))
		cancel_overdue(d, r, jobs, n, now);
	router_unref(r);
}

/* Deletes finished jobs' cluster objects once their time to live is over
 * (spec timeToLiveSeconds, else the configured default). */
static void clean_up(struct dispatch *d)
{
	struct store_job *jobs;
	size_t n;
	char err[GW_ERRLEN];

	if (store_jobs_to_clean(d->store, gw_now_ms(), (int)d->opts.cleanup_after_s, CLEAN_BATCH, &jobs,
				&n, err))
		return;
	for (size_t i = 0; i < n && !atomic_load(&d->stop); i++) {
		struct cluster_rt *cl = dispatch_cluster_named(d, jobs[i].cluster);
		struct store_op done = {.kind = STORE_OP_CLEANED, .job_id = jobs[i].id};
		long status;

		if (cl && !dispatch_watching(cl))
			continue; /* the replica that watches the cluster cleans it */
		status = cl ? dispatch_delete_driver(cl, &jobs[i]) : 404; /* a cluster gone took them along */
		if (status != 200 && status != 202 && status != 404)
			continue; /* tried again on the next round */
		if (store_execute(d->store, &done))
			gw_log(GW_LOG_WARN, "dispatch: job %s: %s", jobs[i].id, done.err);
		else
			gw_log(GW_LOG_DEBUG, "dispatch: job %s: cluster objects deleted", jobs[i].id);
		store_job_release(&done.job);
	}
	store_jobs_free(jobs, n);
}

/* Deletes one batch of finished jobs older than the retention; true when
 * there may be more. Small batches keep each commit short, so requests
 * queued behind one hardly notice. */
static bool prune(struct dispatch *d)
{
	struct store_op op = {.kind = STORE_OP_PRUNE, .limit = PRUNE_BATCH,
			      .before_ms = gw_now_ms() - (int64_t)d->opts.retention_s * 1000};

	if (store_execute(d->store, &op)) {
		gw_log(GW_LOG_WARN, "dispatch: pruning: %s", op.err);
		return false;
	}
	if (op.pruned)
		gw_log(GW_LOG_INFO, "dispatch: pruned %u finished jobs past retention", op.pruned);
	return op.pruned == PRUNE_BATCH;
}

void *dispatch_housekeeper_main(void *arg)
{
	struct dispatch *d = arg;
	int64_t prune_at = 0;

	while (!atomic_load(&d->stop)) {
		long pause = HOUSEKEEPING_MS;

		enforce_deadlines(d);
		clean_up(d);
		if (d->opts.retention_s && gw_now_ms() >= prune_at) {
			int64_t idle = (int64_t)d->opts.retention_s * 250; /* a quarter of it */

			if (prune(d))
				pause = 50; /* a backlog: the next batch soon, not at once */
			else
				prune_at = gw_now_ms() + (idle < PRUNE_IDLE_MS ? idle : PRUNE_IDLE_MS);
		}
		for (long t = 0; t < pause && !atomic_load(&d->stop); t += 50)
			dispatch_sleep_ms(50);
	}
	return NULL;
}
