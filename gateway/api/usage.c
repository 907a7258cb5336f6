/* GET /api/v1/usage?groupBy=team|user|job|label:KEY&from=&to=: core-, memory- and
 * GPU-seconds held by the pods of jobs within a window, by team or by a
 * label's value, priced by the pools' price tables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "gateway/api/api.h"

#define DEFAULT_WINDOW_MS (24LL * 3600 * 1000)

static bool time_arg(struct request *rq, const char *name, int64_t def, int64_t *out)
{
	const char *v = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, name);

	*out = def;
	return !v || gw_time_parse(v, out) == 0;
}

/* Adds a row of usage (coreSeconds, memoryGiBSeconds, gpuSeconds, pool)
 * to items' member key, priced by the row's pool. */
static void add_row(json_t *items, const char *key, const json_t *row, const struct router *r, bool *priced)
{
	const struct router_pool *p = router_pool_named(r, json_string_value(json_object_get(row, "pool")));
	double core = json_real_value(json_object_get(row, "coreSeconds"));
	double mem = json_real_value(json_object_get(row, "memoryGiBSeconds"));
	double gpu = json_real_value(json_object_get(row, "gpuSeconds"));
	double cost = p ? (core * p->price_core_hour + mem * p->price_memory_gib_hour + gpu * p->price_gpu_hour) / 3600
			: 0;
	json_t *item = json_object_get(items, key);

	if (p && (p->price_core_hour || p->price_memory_gib_hour || p->price_gpu_hour))
		*priced = true;
	if (!item)
		json_object_set_new(items, key, item = json_pack("{s:s, s:f, s:f, s:f, s:f}", "key", key,
								 "coreSeconds", 0.0, "memoryGiBSeconds", 0.0,
								 "gpuSeconds", 0.0, "cost", 0.0));
	json_object_set_new(item, "coreSeconds", json_real(json_real_value(json_object_get(item, "coreSeconds")) + core));
	json_object_set_new(item, "memoryGiBSeconds",
			    json_real(json_real_value(json_object_get(item, "memoryGiBSeconds")) + mem));
	json_object_set_new(item, "gpuSeconds", json_real(json_real_value(json_object_get(item, "gpuSeconds")) + gpu));
	json_object_set_new(item, "cost", json_real(json_real_value(json_object_get(item, "cost")) + cost));
}

enum MHD_Result api_usage(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	const char *group = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, "groupBy");
	int64_t now = gw_now_ms();
	struct store_usage_query q = {.now_ms = now};
	char err[GW_ERRLEN], from[GW_TIME_LEN], to[GW_TIME_LEN];
	json_t *rows, *items, *list, *none = NULL;
	struct router *r;
	bool priced = false;
	const char *key;
	json_t *item;
	size_t i;
	json_t *row;
	enum gw_err rc;

	(void)id;
	if (!group || !strcmp(group, "team"))
		q.group = STORE_USAGE_BY_TEAM;
	else if (!strcmp(group, "user"))
		q.group = STORE_USAGE_BY_USER;
	else if (!strcmp(group, "job"))
		q.group = STORE_USAGE_BY_JOB;
	else if (!strncmp(group, "label:", 6) && group[6])
		q.group = STORE_USAGE_BY_LABEL;
	else
		return http_reply_problem(&rq->http, 400, "bad-query", "groupBy must be team, user, job or label:KEY",
					  NULL);
	q.label = q.group == STORE_USAGE_BY_LABEL ? group + 6 : NULL;
	if (!time_arg(rq, "to", now, &q.to_ms) || !time_arg(rq, "from", q.to_ms - DEFAULT_WINDOW_MS, &q.from_ms) ||
	    q.from_ms >= q.to_ms)
		return http_reply_problem(&rq->http, 400, "bad-query",
					  "from and to must be RFC 3339 times, from before to (default: the last 24 h)",
					  NULL);
	/* Others' usage is theirs: non-operators see their teams only. */
	if (rq->services->auth && rq->who.role < AUTH_OPERATOR)
		q.teams = rq->who.teams ? rq->who.teams : (none = json_array());
	rc = store_usage_sum(rq->store, &q, &rows, err);
	json_decref(none);
	if (rc) {
		json_decref(rows);
		return gateway_reply_store_error(rq, rc, err);
	}
	r = router_holder_get(rq->services->policy);
	items = json_object();
	json_array_foreach(rows, i, row)
		add_row(items, json_string_value(json_object_get(row, "key")), row, r, &priced);
	router_unref(r);
	list = json_array();
	json_object_foreach(items, key, item) {
		if (!priced)
			json_object_del(item, "cost");
		json_array_append(list, item);
	}
	json_decref(items);
	json_decref(rows);
	gw_time_format(q.from_ms, from);
	gw_time_format(q.to_ms, to);
	return http_reply_json(&rq->http, 200, json_pack("{s:s, s:s, s:s, s:o}", "from", from, "to", to, "groupBy",
						  group ? group : "team", "items", list), NULL);
}

/* GET /api/v1/jobs/{id}/pods: the pods the job's runs held (drivers and
 * executors, running or ended) and their total, priced as usage is. */
enum MHD_Result api_job_pods(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	json_t *pods, *totals, *total, *pod;
	enum MHD_Result reply;
	char err[GW_ERRLEN];
	struct router *r;
	bool priced = false;
	enum gw_err rc;
	size_t i;

	if (!gateway_load_job(rq, id, &reply))
		return reply;
	if ((rc = store_job_pods(rq->store, id, gw_now_ms(), &pods, err))) {
		json_decref(pods);
		return gateway_reply_store_error(rq, rc, err);
	}
	totals = json_object();
	r = router_holder_get(rq->services->policy);
	json_array_foreach(pods, i, pod) {
		char started[GW_TIME_LEN], ended[GW_TIME_LEN];
		int64_t end_ms = json_integer_value(json_object_get(pod, "endMs"));

		add_row(totals, id, pod, r, &priced);
		gw_time_format(json_integer_value(json_object_get(pod, "startMs")), started);
		gw_time_format(end_ms, ended);
		json_object_set_new(pod, "startedAt", json_string(started));
		json_object_set_new(pod, "endedAt", end_ms ? json_string(ended) : json_null());
		json_object_del(pod, "startMs");
		json_object_del(pod, "endMs");
	}
	router_unref(r);
	total = json_object_get(totals, id);
	total = total ? json_incref(total)
		      : json_pack("{s:f, s:f, s:f}", "coreSeconds", 0.0, "memoryGiBSeconds", 0.0, "gpuSeconds", 0.0);
	json_decref(totals);
	json_object_del(total, "key");
	if (!priced)
		json_object_del(total, "cost");
	return http_reply_json(&rq->http, 200, json_pack("{s:o, s:o}", "items", pods, "total", total), NULL);
}
