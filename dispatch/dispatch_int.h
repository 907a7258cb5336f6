/* Internals shared by the dispatch module's files. */
#ifndef GW_DISPATCH_INT_H
#define GW_DISPATCH_INT_H

#include "store/store.h"

/* The label that ties every object the gateway creates to its job. */
#define DISPATCH_JOB_LABEL "sparkgw/job-id"
/* Which run of the job an object belongs to (restartPolicy OnFailure);
 * objects of an earlier run are left alone. Absent means 1. */
#define DISPATCH_RUN_LABEL "sparkgw/run"

struct dispatch_names {
	char app[STORE_ID_LEN + 16]; /* the SparkApplication, and prefix of the rest */
	char driver_pod[STORE_ID_LEN + 32];
	char service[STORE_ID_LEN + 32];
	char config_map[STORE_ID_LEN + 32];
	char run[16];                /* the run label's value */
};

/* Object names, all derived from the job id and its run: "<id>-driver",
 * then "<id>-r2-driver" for a second run. */
void dispatch_names(const struct store_job *job, struct dispatch_names *n);

#endif
