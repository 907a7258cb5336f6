/* GET /api/v1/queue: queued jobs in the order dispatch takes them, each
 * with its position and why it waits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "gateway/api/api.h"
#include "router/router.h"

enum MHD_Result api_queue(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	const char *team = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, "team");
	const char *pool = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, "pool");
	const char *limit_s = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, "limit");
	struct dispatch_defaults defaults = {.max_running_per_team = rq->cfg->scheduler_max_running_per_team};
	struct dispatch_pick *picks = NULL;
	struct store_queue q;
	struct router *r;
	size_t limit = 100;
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
			return http_reply_problem(&rq->http, 400, "bad-query", "limit must be an integer from 1 to 10000", NULL);
		limit = (size_t)v;
	}
	/* Each team's first `limit` jobs are enough to order the first
	 * `limit` of the whole queue. */
	rc = store_queue_read(rq->store, gw_now_ms(), (int64_t)rq->cfg->scheduler_aging_s * 1000, limit, &q, err);
	if (rc)
		return gateway_reply_store_error(rq, rc, err);
	r = router_holder_get(rq->services->policy);
	picks = calloc(q.njobs + 1, sizeof(*picks));
	if (!picks || dispatch_order(r, &defaults, &q, NULL, NULL, picks)) {
		free(picks);
		store_queue_release(&q);
		router_unref(r);
		return gateway_reply_store_error(rq, GW_ENOMEM, "out of memory");
	}
	items = json_array();
	for (size_t i = 0, ready = 0; i < q.njobs && i < limit; i++) {
		const struct store_queued *job = &q.jobs[picks[i].job];
		char since[GW_TIME_LEN], why[GW_ERRLEN];

		ready += picks[i].ready;
		if ((team && strcmp(team, job->team)) || (pool && strcmp(pool, job->pool)))
			continue;
		if (job->state == STORE_DISPATCHING)
			snprintf(why, sizeof(why), "Dispatching: its earlier dispatcher stopped; taken over now");
		else if (!picks[i].ready)
			snprintf(why, sizeof(why), "%s", picks[i].why);
		else if (!rq->dispatch || !dispatch_wait_reason(rq->dispatch, job->id, why, sizeof(why)))
			snprintf(why, sizeof(why), ready == 1 ? "Next" : "Priority: %zu job(s) ahead", ready - 1);
		gw_time_format(job->created_ms, since);
		json_array_append_new(items, json_pack("{s:i, s:s, s:s, s:s*, s:s*, s:s, s:s, s:s}",
			"position", (int)i + 1, "id", job->id, "name", job->name,
			"team", *job->team ? job->team : NULL, "pool", *job->pool ? job->pool : NULL,
			"priority", (size_t)job->priority < r->npriorities ? r->priorities[job->priority] : "unknown",
			"waitingSince", since, "reason", why));
	}
	free(picks);
	store_queue_release(&q);
	router_unref(r);
	return http_reply_json(&rq->http, 200, json_pack("{s:o}", "items", items), NULL);
}
