/* The leaser: watch leases, so that one replica watches each cluster;
 * the count of live replicas, which share each cluster's request budget;
 * and this replica's cluster usage, shared with the others through the
 * store. */
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

#define USAGE_STALE_MS 15000

/* Gives up the watch lease of a cluster this process holds: the watch
 * stops first, then another replica may take it. */
void dispatch_release_watch(struct dispatch *d, struct cluster_rt *cl)
{
	struct store_op op = {.kind = STORE_OP_WATCH_RELEASE, .cluster = cl->name, .lease_owner = d->opts.instance};

	atomic_store(&cl->watch_until_ms, 0);
	atomic_store(&cl->watch_halt, true);
	/* The watches end (within a second) before the lease does, and a
	 * moment passes for the API server to see them end. */
	for (int t = 0; t < 500 && atomic_load(&cl->watches_open) > 0; t++)
		dispatch_sleep_ms(10);
	dispatch_sleep_ms(200);
	store_execute(d->store, &op);
	store_job_release(&op.job);
}

/* Takes or renews the watch lease of each cluster, up to this process's
 * share of them (the clusters over the replicas alive, rounded up), so
 * that watching spreads over the replicas; a process over its share gives
 * one up a round. A cluster whose lease is ending (another replica has
 * it, or the store cannot be reached) has its watch stopped. */
static void renew_watch_leases(struct dispatch *d)
{
	int64_t now = gw_now_ms();
	/* Alive for two rounds: a dead replica stops counting before its
	 * leases run out, so that the others' shares have room for them. */
	struct store_op alive = {.kind = STORE_OP_REPLICA_ALIVE, .lease_owner = d->opts.instance,
				 .lease_until_ms = now + 2 * WATCH_RENEW_MS};
	size_t n = atomic_load(&d->nclusters), clusters = 0, held = 0, share;
	long replicas = 1;
	char err[GW_ERRLEN];

	store_execute(d->store, &alive);
	store_job_release(&alive.job);
	if (store_replicas_alive(d->store, now, &replicas, err) || replicas < 1)
		replicas = 1;
	atomic_store(&d->replicas, replicas);
	for (size_t i = 0; i < n; i++) {
		clusters += !atomic_load(&d->clusters[i].removed);
		held += !atomic_load(&d->clusters[i].removed) && dispatch_watching(&d->clusters[i]);
	}
	share = (clusters + (size_t)replicas - 1) / (size_t)replicas;
	for (size_t i = 0; i < n && !atomic_load(&d->stop); i++) {
		struct cluster_rt *cl = &d->clusters[i];
		int64_t start = gw_now_ms();
		struct store_op op = {.kind = STORE_OP_WATCH_LEASE, .cluster = cl->name,
				      .lease_owner = d->opts.instance, .lease_until_ms = start + WATCH_LEASE_MS};
		bool was = dispatch_watching(cl);

		if (atomic_load(&cl->removed))
			continue;
		if (was && held > share) {
			dispatch_release_watch(d, cl);
			held--;
			share = held; /* one a round: the others may rebalance meanwhile */
			gw_log(GW_LOG_INFO, "dispatch: cluster %s: given up to another replica", cl->name);
			continue;
		}
		if (!was && held >= share)
			continue;
		/* Counted from before the request: the lease may have begun then. */
		if (store_execute(d->store, &op) == GW_OK)
			atomic_store(&cl->watch_until_ms, start + WATCH_LEASE_MS);
		else if (op.rc == GW_ECONFLICT)
			atomic_store(&cl->watch_until_ms, 0);
		store_job_release(&op.job);
		if (!dispatch_watching(cl))
			atomic_store(&cl->watch_halt, true);
		held += dispatch_watching(cl) && !was;
		if (was != dispatch_watching(cl))
			gw_log(GW_LOG_INFO, "dispatch: cluster %s: %s", cl->name,
			       was ? "no longer watched here" : "watched here now");
	}
}

/* With replicas, what runs in each cluster's namespaces goes through the
 * store: the replica watching a cluster tells it, the others place with
 * it (a view as old as USAGE_STALE_MS at most; older, they have none). */
static void share_usage(struct dispatch *d)
{
	json_t *told = NULL;
	char err[GW_ERRLEN];

	if (atomic_load(&d->replicas) < 2)
		return;
	for (size_t i = 0; i < atomic_load(&d->nclusters); i++) {
		struct cluster_rt *cl = &d->clusters[i];

		if (atomic_load(&cl->removed))
			continue;
		if (dispatch_watching(cl)) {
			json_t *usage = pool_usage(d->opts.pool, cl->name);
			char *text = json_dumps(usage, JSON_COMPACT);
			struct store_op op = {.kind = STORE_OP_CLUSTER_USAGE, .cluster = cl->name, .document = text};

			if (text)
				store_execute(d->store, &op);
			store_job_release(&op.job);
			free(text);
			json_decref(usage);
			continue;
		}
		if (!told && store_cluster_usage(d->store, gw_now_ms() - USAGE_STALE_MS, &told, err))
			break;
		if (json_object_get(told, cl->name))
			pool_set_usage(d->opts.pool, cl->name, json_object_get(told, cl->name));
	}
	json_decref(told);
}

void *dispatch_leaser_main(void *arg)
{
	struct dispatch *d = arg;

	while (!atomic_load(&d->stop)) {
		renew_watch_leases(d);
		share_usage(d);
		/* A quiet cluster sends no events to recheck on. */
		for (size_t i = 0; i < atomic_load(&d->nclusters); i++)
			if (dispatch_watching(&d->clusters[i]))
				dispatch_recheck_pending(&d->clusters[i], false);
		for (int t = 0; t < WATCH_RENEW_MS / 50 && !atomic_load(&d->stop); t++)
			dispatch_sleep_ms(50);
	}
	return NULL;
}
