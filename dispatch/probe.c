/* The prober: each cluster's health (for routing) and node list (for
 * placement). */
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

/* Nodes change slowly; a list from the API server's cache (resourceVersion
 * 0) a minute apart keeps placement's view of them current enough. */
#define NODES_EVERY_MS 60000
#define NODES_PAGE 500

/* The cluster's nodes, page by page, for placement; unknown to it when
 * the list fails (a token not allowed to list nodes: placement then trusts
 * the node roles' limits alone). */
static void list_nodes(struct cluster_rt *cl)
{
	json_t *items = json_array();
	char path[1200], cont[800] = "", err[GW_ERRLEN] = "";
	bool ok = true;

	do {
		struct k8s_response r;
		const char *next;

		if (*cont)
			snprintf(path, sizeof(path), "/api/v1/nodes?limit=%d&continue=%s", NODES_PAGE, cont);
		else
			snprintf(path, sizeof(path), "/api/v1/nodes?limit=%d&resourceVersion=0", NODES_PAGE);
		ok = k8s_request(cl->probe_client, "GET", path, NULL, &r, err) == GW_OK && r.status == 200;
		dispatch_count_call(cl, "LIST", ok ? GW_OK : GW_EIO, ok ? 200 : r.status);
		if (ok)
			json_array_extend(items, json_object_get(r.body, "items"));
		next = ok ? json_string_value(json_object_get(json_object_get(r.body, "metadata"), "continue")) : NULL;
		snprintf(cont, sizeof(cont), "%s", next && strlen(next) < sizeof(cont) ? next : "");
		k8s_response_release(&r);
	} while (ok && *cont);
	if (!ok)
		gw_log(GW_LOG_WARN, "cluster %s: cannot list nodes (%s): placement counts on node roles' limits only",
		       cl->name, *err ? err : "no answer");
	pool_set_nodes(cl->d->opts.pool, cl->name, ok ? items : NULL);
	json_decref(items);
	cl->nodes_listed_ms = gw_now_ms();
}

/* Health: each cluster's /readyz on an interval, and its nodes now and
 * then. */
void *dispatch_prober_main(void *arg)
{
	struct dispatch *d = arg;

	while (!atomic_load(&d->stop)) {
		for (size_t i = 0; i < atomic_load(&d->nclusters) && !atomic_load(&d->stop); i++) {
			struct k8s_response r;
			char err[GW_ERRLEN] = "";
			bool ok;

			if (atomic_load(&d->clusters[i].removed))
				continue;
			ok = k8s_request(d->clusters[i].probe_client, "GET", "/readyz", NULL, &r, err) == GW_OK &&
			     r.status == 200;

			if (!ok && !*err)
				snprintf(err, sizeof(err), "/readyz answered %ld", r.status);
			pool_report(d->opts.pool, d->clusters[i].name, ok, err);
			k8s_response_release(&r);
			if (ok && gw_now_ms() - d->clusters[i].nodes_listed_ms >= NODES_EVERY_MS)
				list_nodes(&d->clusters[i]);
		}
		for (unsigned t = 0; t < d->opts.probe_s * 10 && !atomic_load(&d->stop); t++)
			dispatch_sleep_ms(100);
	}
	return NULL;
}
