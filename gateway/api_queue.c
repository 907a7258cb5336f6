/* GET /api/v1/queue: queued jobs in the order dispatch takes them, each
 * with its position and why it waits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "gateway/http_int.h"
#include "router/router.h"

static const char *const priority_names[] = {"critical", "high", "normal", "low"};

/* The pool the policy sends the job to, without live state; NULL if none. */
static const char *pool_of(const struct router *r, const struct store_job *job)
{
	json_t *labels = json_loads(job->labels_json, 0, NULL), *spec = json_loads(job->spec_json, 0, NULL);
	json_t *errors = NULL;
	struct router_decision d;
	char detail[GW_ERRLEN];
	const char *pool = NULL;

	if (router_place(r, NULL, NULL, labels, spec, job->id, &d, &errors, detail) == ROUTER_OK) {
		pool = d.pool->name; /* lives as long as r */
		router_decision_release(&d);
	}
	json_decref(errors);
	json_decref(labels);
	json_decref(spec);
	return pool;
}

enum MHD_Result api_queue(struct request *rq, const char *id)
{
	const char *team = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "team");
	const char *pool = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "pool");
	const char *limit_s = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "limit");
	struct router *r;
	struct store_job *jobs;
	size_t n, limit = 100, position = 0;
	char err[GW_ERRLEN];
	json_t *items;
	enum gw_err rc;

	(void)id;
	if (limit_s) {
		char *end;
		long v;

		errno = 0;
		v = strtol(limit_s, &end, 10);
		if (!*limit_s || *end || errno || v < 1 || v > 10000)
			return http_reply_problem(rq, 400, "bad-query", "limit must be an integer from 1 to 10000", NULL);
		limit = (size_t)v;
	}
	rc = store_jobs_to_dispatch(rq->store, gw_now_ms(), (int64_t)rq->cfg->scheduler_aging_s * 1000,
				    limit, &jobs, &n, err);
	if (rc)
		return http_reply_store_error(rq, rc, err);
	r = router_holder_get(rq->services->policy);
	items = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *labels = json_loads(jobs[i].labels_json, 0, NULL);
		const char *jteam = json_string_value(json_object_get(labels, "team"));
		const char *jpool = pool_of(r, &jobs[i]);
		char since[GW_TIME_LEN], why[GW_ERRLEN];

		position++;
		if ((team && (!jteam || strcmp(team, jteam))) || (pool && (!jpool || strcmp(pool, jpool)))) {
			json_decref(labels);
			continue;
		}
		if (jobs[i].state == STORE_DISPATCHING)
			snprintf(why, sizeof(why), "Dispatching: its earlier dispatcher stopped; taken over now");
		else if (!rq->dispatch || !dispatch_wait_reason(rq->dispatch, jobs[i].id, why, sizeof(why)))
			snprintf(why, sizeof(why), position == 1 ? "Next" : "Priority: %zu job(s) ahead",
				 position - 1);
		gw_time_format(jobs[i].created_ms, since);
		json_array_append_new(items, json_pack("{s:i, s:s, s:s, s:s*, s:s*, s:s, s:s, s:s}",
			"position", (int)position, "id", jobs[i].id, "name", jobs[i].name, "team", jteam,
			"pool", jpool, "priority", priority_names[jobs[i].priority & 3], "waitingSince", since,
			"reason", why));
		json_decref(labels);
	}
	store_jobs_free(jobs, n);
	router_unref(r);
	return http_reply_json(rq, 200, json_pack("{s:o}", "items", items), NULL);
}
