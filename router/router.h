/* Placement: which cluster and namespace a job goes to. Until policy-based
 * routing exists this spreads jobs over the configured clusters by a hash
 * of the job id, which keeps a job's placement stable across retries. */
#ifndef GW_ROUTER_H
#define GW_ROUTER_H

#include <stddef.h>

#include "common/err.h"
#include "store/store.h"

enum router_mode { ROUTER_DRIVER_POD, ROUTER_SPARK_OPERATOR };

/* A cluster as configured. */
struct router_cluster {
	char *name;
	char *kubeconfig;      /* path; NULL with in_cluster */
	char *context;         /* NULL: the kubeconfig's current-context */
	enum router_mode mode;
	char *namespace;       /* where jobs go */
	char *image;           /* Spark image when the job names none */
	char *service_account; /* the driver's service account */
};

void router_cluster_release(struct router_cluster *c);

struct router_placement {
	const struct router_cluster *cluster;
	const char *namespace;
};

/* Chooses the placement of job among n clusters (n >= 1). */
void router_place(const struct router_cluster *clusters, size_t n,
		  const struct store_job *job, struct router_placement *out);

#endif
