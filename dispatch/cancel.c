/* Cancels: the drivers of CANCELLING jobs deleted (again every few
 * seconds until the watcher sees them gone), on the feeder's rounds. */
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

#define CANCEL_RESEND_MS 5000

/* The reason a cancelled job ends with: the one it was cancelled for. */
const char *dispatch_cancel_reason(const struct store_job *job)
{
	return job->reason && !strcmp(job->reason, DEADLINE_REASON) ? DEADLINE_REASON : "Deleted";
}

void dispatch_cancel_jobs(struct dispatch *d)
{
	struct store_job *jobs;
	size_t n;
	char err[GW_ERRLEN];
	int64_t now = gw_now_ms();

	if (store_jobs_in_state(d->store, STORE_CANCELLING, NULL, FEED_BATCH, &jobs, &n, err))
		return;
	for (size_t i = 0; i < n && !atomic_load(&d->stop); i++) {
		struct cluster_rt *cl = dispatch_cluster_named(d, jobs[i].cluster);
		json_t *sent;
		long status;

		if (cl && !dispatch_watching(cl))
			continue; /* the replica that watches the cluster deletes, and sees it through */
		pthread_mutex_lock(&d->lock);
		sent = json_object_get(d->cancel_sent, jobs[i].id);
		if (sent && now - json_integer_value(sent) < CANCEL_RESEND_MS) {
			pthread_mutex_unlock(&d->lock);
			continue;
		}
		json_object_set_new(d->cancel_sent, jobs[i].id, json_integer(now));
		pthread_mutex_unlock(&d->lock);
		if (!cl) {
			dispatch_move_job(d, jobs[i].id, STORE_CANCELLED, dispatch_cancel_reason(&jobs[i]), "its cluster is gone", NULL);
			continue;
		}
		status = dispatch_delete_driver(cl, &jobs[i]);
		/* Gone already (or never made): the cancel is complete. Otherwise
		 * the watcher sees the deletion through. */
		if (status == 404)
			dispatch_move_job(d, jobs[i].id, STORE_CANCELLED, dispatch_cancel_reason(&jobs[i]),
				 "the cluster confirmed the deletion", NULL);
	}
	store_jobs_free(jobs, n);
}
