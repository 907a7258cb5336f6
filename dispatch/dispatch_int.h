/* Internals shared by the dispatch module's files. */
#ifndef GW_DISPATCH_INT_H
#define GW_DISPATCH_INT_H

#include "store/store.h"

/* The label that ties every object the gateway creates to its job. */
#define DISPATCH_JOB_LABEL "sparkgw/job-id"

struct dispatch_names {
	char driver_pod[STORE_ID_LEN + 16];
	char service[STORE_ID_LEN + 16];
	char config_map[STORE_ID_LEN + 16];
	char app[STORE_ID_LEN];
};

/* Object names, all derived from the job id. */
void dispatch_names(const char *job_id, struct dispatch_names *n);

#endif
