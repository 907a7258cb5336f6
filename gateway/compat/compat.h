/* The compatibility APIs' bodies and vocabulary: Apache Livy's batch
 * requests and Batch Processing Gateway's submissions, translated into the
 * native submission shape, and the native job states in their words. Knows
 * nothing of HTTP (livy.c and bpg.c serve them). */
#ifndef GW_COMPAT_H
#define GW_COMPAT_H

#include <jansson.h>

#include "gateway/api/submission.h"
#include "store/store.h"

struct compat_settings {
	const char *spark_version; /* for bodies that name none */
	json_t *queues;            /* queue name -> labels; may be NULL */
};

/* On BODY_OK, *out is a new native submission. On BODY_INVALID, *errors
 * is a new array of {field, message} naming the client's own fields, and
 * detail sums it up. body is the client's parsed JSON (an object). */
enum gateway_body_status compat_livy_submission(json_t *body, const struct compat_settings *cs,
						json_t **out, json_t **errors, char *detail);
enum gateway_body_status compat_bpg_submission(json_t *body, const struct compat_settings *cs,
					       json_t **out, json_t **errors, char *detail);

/* Rewrites the fields of native validation errors (as gateway_submission_parse
 * names them) into the Livy or BPG request's names, in place. */
void compat_livy_fields(json_t *errors);
void compat_bpg_fields(json_t *errors);

/* A job state in Livy's batch vocabulary (starting, running, success,
 * dead, killed…) and in the Spark operator's, as BPG reports it. */
const char *compat_livy_state(enum store_state st);
const char *compat_bpg_state(enum store_state st);

#endif
