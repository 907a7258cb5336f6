/* The dispatch module's life: start (connect to each cluster, start its
 * watchers, restore reservations, start the loops), clusters added and
 * removed at runtime, wait reasons, and stop. The loops themselves live in
 * dispatcher.c (feeder, workers), watch.c, cancel.c, housekeeping.c,
 * probe.c and leases.c; the calls to a cluster in cluster.c. */
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

#define MAX_CLUSTERS 256

void dispatch_stop(struct dispatch *d)
{
	if (!d)
		return;
	store_set_commit_hook(d->store, NULL, NULL);
	atomic_store(&d->stop, true);
	for (size_t i = 0; d->clusters && i < atomic_load(&d->nclusters); i++) {
		atomic_store(&d->clusters[i].stop, true);
		atomic_store(&d->clusters[i].watch_halt, true);
	}
	pthread_mutex_lock(&d->lock);
	pthread_cond_broadcast(&d->wake);
	pthread_cond_broadcast(&d->work);
	pthread_mutex_unlock(&d->lock);
	if (d->feeder_started)
		pthread_join(d->feeder, NULL);
	if (d->prober_started)
		pthread_join(d->prober, NULL);
	if (d->housekeeper_started)
		pthread_join(d->housekeeper, NULL);
	if (d->sharer_started)
		pthread_join(d->sharer, NULL);
	if (d->leaser_started) {
		/* Gone: the other replicas' shares of the clusters grow now. */
		struct store_op gone = {.kind = STORE_OP_REPLICA_ALIVE, .lease_owner = d->opts.instance};

		pthread_join(d->leaser, NULL);
		store_execute(d->store, &gone);
		store_job_release(&gone.job);
	}
	for (unsigned i = 0; i < d->nworkers; i++)
		pthread_join(d->workers[i], NULL);
	for (size_t i = 0; d->clusters && i < atomic_load(&d->nclusters); i++) {
		for (int w = 0; w < d->clusters[i].nwatchers; w++)
			pthread_join(d->clusters[i].watchers[w], NULL);
		/* Watched no more: another replica may take it over now. */
		if (atomic_load(&d->clusters[i].watch_until_ms))
			dispatch_release_watch(d, &d->clusters[i]);
		k8s_client_free(d->clusters[i].client);
		k8s_client_free(d->clusters[i].probe_client);
		json_decref(d->clusters[i].seen);
		json_decref(d->clusters[i].early);
		json_decref(d->clusters[i].pending_drivers);
		json_decref(d->clusters[i].usage);
		json_decref(d->clusters[i].pod_waits);
		json_decref(d->clusters[i].shared_servers);
		json_decref(d->clusters[i].shared_jobs);
		json_decref(d->clusters[i].shared_waiting);
		json_decref(d->clusters[i].shared_view);
		pthread_mutex_destroy(&d->clusters[i].shared_lock);
		free(d->clusters[i].name);
		pthread_mutex_destroy(&d->clusters[i].lock);
		pthread_mutex_destroy(&d->clusters[i].waits_lock);
		pthread_mutex_destroy(&d->clusters[i].rate_lock);
		pthread_cond_destroy(&d->clusters[i].rate_free);
	}
	free(d->clusters);
	free(d->workers);
	free(d->queue);
	json_decref(d->inflight);
	json_decref(d->cancel_sent);
	json_decref(d->waiting);
	json_decref(d->quota);
	pthread_cond_destroy(&d->work);
	pthread_cond_destroy(&d->wake);
	pthread_mutex_destroy(&d->clusters_lock);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

/* Connects to a cluster and starts its watchers; the slot is published
 * (nclusters grows) only once it is ready. Caller holds clusters_lock. */
static enum gw_err add_cluster(struct dispatch *d, const struct router_cluster *cfg, char *err)
{
	size_t n = atomic_load(&d->nclusters);
	struct cluster_rt *cl = &d->clusters[n];
	struct k8s_client_options probe_opts = {.max_retries = 0, .request_timeout_ms = 3000};
	struct k8s_config kc;
	char inner[GW_ERRLEN];
	enum gw_err rc;

	if (n == MAX_CLUSTERS) {
		gw_seterr(err, "at most %d clusters", MAX_CLUSTERS);
		return GW_EINVAL;
	}
	memset(cl, 0, sizeof(*cl));
	cl->d = d;
	cl->name = strdup(cfg->name);
	cl->mode = cfg->mode;
	cl->seen = json_object();
	cl->early = json_object();
	cl->pending_drivers = json_object();
	cl->usage = json_object();
	cl->pod_waits = json_object();
	cl->shared_servers = json_object();
	cl->shared_jobs = json_object();
	cl->shared_waiting = json_object();
	cl->shared_view = json_object();
	pthread_mutex_init(&cl->shared_lock, NULL);
	atomic_init(&cl->stop, false);
	atomic_init(&cl->removed, false);
	atomic_init(&cl->watch_until_ms, 0);
	atomic_init(&cl->watch_halt, true);
	atomic_init(&cl->watches_open, 0);
	pthread_mutex_init(&cl->lock, NULL);
	pthread_mutex_init(&cl->waits_lock, NULL);
	pthread_mutex_init(&cl->rate_lock, NULL);
	pthread_cond_init(&cl->rate_free, NULL);
	cl->tokens = d->opts.cluster_qps;
	cl->tokens_at_ms = gw_now_ms();
	/* "in-cluster": the cluster the gateway runs in, as its service account. */
	rc = !strcmp(cfg->kubeconfig, "in-cluster") ? k8s_incluster_config(&kc, inner)
						   : k8s_kubeconfig_load(cfg->kubeconfig, cfg->context, &kc, inner);
	if (rc == GW_OK) {
		rc = k8s_client_new(&kc, NULL, &cl->client, inner);
		if (rc == GW_OK)
			rc = k8s_client_new(&kc, &probe_opts, &cl->probe_client, inner);
		k8s_config_release(&kc);
	}
	if (rc) {
		gw_seterr(err, "cluster %s: %s", cfg->name, inner);
		k8s_client_free(cl->client);
		json_decref(cl->seen);
		json_decref(cl->early);
		json_decref(cl->pending_drivers);
		json_decref(cl->usage);
		json_decref(cl->pod_waits);
		json_decref(cl->shared_servers);
		json_decref(cl->shared_jobs);
		json_decref(cl->shared_waiting);
		json_decref(cl->shared_view);
		pthread_mutex_destroy(&cl->shared_lock);
		free(cl->name);
		pthread_mutex_destroy(&cl->lock);
		pthread_mutex_destroy(&cl->waits_lock);
		pthread_mutex_destroy(&cl->rate_lock);
		pthread_cond_destroy(&cl->rate_free);
		return rc;
	}
	dispatch_start_watcher(cl, false);
	if (cl->mode == ROUTER_SPARK_OPERATOR)
		dispatch_start_watcher(cl, true);
	atomic_store(&d->nclusters, n + 1);
	return GW_OK;
}

enum gw_err dispatch_add_cluster(struct dispatch *d, const struct router_cluster *cfg, char *err)
{
	enum gw_err rc;

	pthread_mutex_lock(&d->clusters_lock);
	if (dispatch_cluster_named(d, cfg->name)) {
		gw_seterr(err, "cluster %s exists", cfg->name);
		rc = GW_ECONFLICT;
	} else {
		rc = add_cluster(d, cfg, err);
	}
	pthread_mutex_unlock(&d->clusters_lock);
	if (rc == GW_OK)
		gw_log(GW_LOG_INFO, "dispatch: cluster %s added", cfg->name);
	return rc;
}

bool dispatch_wait_reason(struct dispatch *d, const char *job_id, char *out, size_t len)
{
	json_t *w;
	bool known;

	pthread_mutex_lock(&d->lock);
	/* What stops it now, else where its dispatch is, else the limit the
	 * last ordering found it behind. */
	if ((w = json_object_get(d->waiting, job_id)))
		w = json_array_get(w, 1);
	else if (!(w = json_object_get(d->inflight, job_id)))
		w = json_object_get(d->quota, job_id);
	known = json_is_string(w);
	if (known)
		snprintf(out, len, "%s", json_string_value(w));
	pthread_mutex_unlock(&d->lock);
	/* Dispatched: what holds its pods on the cluster. */
	for (size_t i = 0; !known && i < atomic_load(&d->nclusters); i++)
		known = dispatch_pods_wait_reason(&d->clusters[i], job_id, out, len);
	if (!known) {
		struct router *r = router_holder_get(d->opts.policy);

		if ((known = r->nclusters == 0))
			snprintf(out, len, "NoCapacity: no clusters are configured");
		router_unref(r);
	}
	return known;
}

void dispatch_remove_cluster(struct dispatch *d, const char *name)
{
	struct cluster_rt *cl;

	pthread_mutex_lock(&d->clusters_lock);
	cl = dispatch_cluster_named(d, name);
	if (cl) {
		/* Its slot stays (a worker may hold it) until dispatch_stop. */
		atomic_store(&cl->removed, true);
		atomic_store(&cl->stop, true);
		atomic_store(&cl->watch_halt, true);
	}
	pthread_mutex_unlock(&d->clusters_lock);
	if (cl)
		gw_log(GW_LOG_INFO, "dispatch: cluster %s removed", name);
}

enum gw_err dispatch_start(struct store *store, const struct dispatch_options *opts,
			   struct dispatch **out, char *err)
{
	struct dispatch *d = calloc(1, sizeof(*d));
	struct router *r = router_holder_get(opts->policy);
	unsigned char rnd[6];
	enum gw_err rc = GW_OK;

	*out = NULL;
	if (!d) {
		router_unref(r);
		return GW_ENOMEM;
	}
	d->store = store;
	d->opts = *opts;
	if (!d->opts.instance)
		d->opts.instance = d->owner;
	gw_metrics_family(opts->metrics, "sparkgw_dispatch_latency_seconds", GW_HISTOGRAM_LONG,
			  "From a job's submission to its driver created on a cluster (first runs).");
	gw_metrics_family(opts->metrics, "sparkgw_dispatches_total", GW_COUNTER,
			  "Dispatch attempts by cluster and outcome: created, failed (retried or given up), rejected.");
	gw_metrics_family(opts->metrics, "sparkgw_apiserver_requests_total", GW_COUNTER,
			  "Kubernetes API server requests by cluster, verb and status code (error: no answer).");
	gw_metrics_family(opts->metrics, "sparkgw_watch_restarts_total", GW_COUNTER,
			  "Lists that (re)start a cluster watch, by cluster and resource.");
	gw_metrics_family(opts->metrics, "sparkgw_jobs_finished_total", GW_COUNTER,
			  "Jobs that ended, by final state and reason (Completed, OOMKilled, CancelledByUser, ...).");
	if (!d->opts.cluster_qps)
		d->opts.cluster_qps = 100;
	if (!d->opts.cluster_concurrency)
		d->opts.cluster_concurrency = 16;
	atomic_init(&d->stop, false);
	atomic_init(&d->nclusters, 0);
	atomic_init(&d->replicas, 1);
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->clusters_lock, NULL);
	pthread_cond_init(&d->wake, NULL);
	pthread_cond_init(&d->work, NULL);
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		memset(rnd, 0, sizeof(rnd));
	snprintf(d->owner, sizeof(d->owner), "pid-%d-%02x%02x%02x%02x%02x%02x", (int)getpid(),
		 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
	d->qcap = FEED_BATCH * 4;
	d->queue = calloc(d->qcap, sizeof(*d->queue));
	d->inflight = json_object();
	d->cancel_sent = json_object();
	d->waiting = json_object();
	d->quota = json_object();
	d->clusters = calloc(MAX_CLUSTERS, sizeof(*d->clusters));
	d->workers = calloc(opts->workers, sizeof(*d->workers));
	if (!d->queue || !d->inflight || !d->cancel_sent || !d->waiting || !d->quota || !d->clusters || !d->workers)
		rc = GW_ENOMEM;
	pthread_mutex_lock(&d->clusters_lock);
	for (size_t i = 0; rc == GW_OK && i < r->nclusters; i++)
		rc = add_cluster(d, &r->clusters[i], err);
	pthread_mutex_unlock(&d->clusters_lock);
	if (rc == GW_OK)
		dispatch_restore_reservations(d, r);
	router_unref(r);
	if (rc) {
		dispatch_stop(d);
		return rc;
	}
	for (unsigned i = 0; i < opts->workers; i++)
		if (pthread_create(&d->workers[i], NULL, dispatch_worker_main, d) == 0)
			d->nworkers++;
	d->feeder_started = pthread_create(&d->feeder, NULL, dispatch_feeder_main, d) == 0;
	d->prober_started = pthread_create(&d->prober, NULL, dispatch_prober_main, d) == 0;
	d->housekeeper_started = pthread_create(&d->housekeeper, NULL, dispatch_housekeeper_main, d) == 0;
	d->leaser_started = pthread_create(&d->leaser, NULL, dispatch_leaser_main, d) == 0;
	d->sharer_started = pthread_create(&d->sharer, NULL, dispatch_shared_main, d) == 0;
	store_set_commit_hook(store, dispatch_on_commit, d);
	gw_log(GW_LOG_INFO, "dispatch: %zu cluster(s), %u workers, lease owner %s",
	       atomic_load(&d->nclusters), d->nworkers, d->owner);
	*out = d;
	return GW_OK;
}
