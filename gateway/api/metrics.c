/* GET /metrics: the Prometheus text exposition. Counters and histograms
 * are kept as things happen; gauges of state (jobs by state, the queue by
 * pool and team, cluster health) are read at the scrape. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics.h"
#include "gateway/api/api.h"
#include "pool/pool.h"

void gateway_metrics_declare(struct gw_metrics *m)
{
	gw_metrics_family(m, "sparkgw_jobs", GW_GAUGE, "Jobs in the store by state.");
	gw_metrics_family(m, "sparkgw_queue_depth", GW_GAUGE, "Queued jobs by pool and team.");
	gw_metrics_family(m, "sparkgw_cluster_healthy", GW_GAUGE,
			  "1 when the cluster answers its health probes and calls, else 0.");
	gw_metrics_family(m, "sparkgw_cluster_schedulable", GW_GAUGE,
			  "1 when the cluster takes new jobs (active rotation and healthy), else 0.");
}

/* Scrape-time gauges, set afresh so that gone series go. */
static enum gw_err read_gauges(struct request *rq, char *err)
{
	struct gw_metrics *m = rq->services->metrics;
	struct router *r = router_holder_get(rq->services->policy);
	struct router_live live = pool_live(rq->services->pool);
	json_t *counts, *queued;
	enum gw_err rc = store_state_counts(rq->store, &counts, &queued, err);
	const char *state;
	json_t *v;
	size_t i;

	gw_metrics_clear(m, "sparkgw_jobs");
	gw_metrics_clear(m, "sparkgw_queue_depth");
	gw_metrics_clear(m, "sparkgw_cluster_healthy");
	gw_metrics_clear(m, "sparkgw_cluster_schedulable");
	json_object_foreach(counts, state, v) {
		char labels[64];

		snprintf(labels, sizeof(labels), "state=\"%s\"", state);
		gw_metrics_set(m, "sparkgw_jobs", labels, (double)json_integer_value(v));
	}
	json_array_foreach(queued, i, v) {
		char pool[200], team[200], labels[450];

		gw_metrics_escape(json_string_value(json_object_get(v, "pool")), pool, sizeof(pool));
		gw_metrics_escape(json_string_value(json_object_get(v, "team")), team, sizeof(team));
		snprintf(labels, sizeof(labels), "pool=\"%s\",team=\"%s\"", pool, team);
		gw_metrics_set(m, "sparkgw_queue_depth", labels,
			       (double)json_integer_value(json_object_get(v, "count")));
	}
	for (i = 0; i < r->nclusters; i++) {
		char name[200], labels[220], why[GW_ERRLEN];

		gw_metrics_escape(r->clusters[i].name, name, sizeof(name));
		snprintf(labels, sizeof(labels), "cluster=\"%s\"", name);
		gw_metrics_set(m, "sparkgw_cluster_healthy", labels,
			       pool_healthy(rq->services->pool, r->clusters[i].name) ? 1 : 0);
		gw_metrics_set(m, "sparkgw_cluster_schedulable", labels,
			       live.usable(live.arg, r->clusters[i].name, why, sizeof(why)) ? 1 : 0);
	}
	json_decref(counts);
	json_decref(queued);
	router_unref(r);
	return rc;
}

enum MHD_Result api_metrics(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	struct MHD_Response *resp;
	char err[GW_ERRLEN], *text;
	enum gw_err rc;

	(void)id;
	if (!rq->services->metrics)
		return http_reply_problem(&rq->http, 404, "not-found", "metrics are off", NULL);
	if ((rc = read_gauges(rq, err)))
		return gateway_reply_store_error(rq, rc, err);
	text = gw_metrics_render(rq->services->metrics);
	resp = text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE) : NULL;
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
	return http_queue(&rq->http, 200, resp);
}
