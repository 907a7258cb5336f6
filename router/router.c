/* Placement by a stable hash of the job id. */
#include "router/router.h"

#include <stdlib.h>

void router_cluster_release(struct router_cluster *c)
{
	free(c->name);
	free(c->kubeconfig);
	free(c->context);
	free(c->namespace);
	free(c->image);
	free(c->service_account);
}

void router_place(const struct router_cluster *clusters, size_t n,
		  const struct store_job *job, struct router_placement *out)
{
	/* FNV-1a over the id: the random half of the id spreads evenly. */
	uint64_t h = 1469598103934665603ULL;

	for (const char *p = job->id; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	out->cluster = &clusters[h % n];
	out->namespace = out->cluster->namespace;
}
