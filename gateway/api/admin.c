/* Fleet administration: pools and clusters with health, rotation, weights
 * and load; cordon, drain, uncordon and weight changes (kept in the store,
 * so they survive restarts); policy reload. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/api/api.h"
#include "pool/pool.h"
#include "router/router.h"

/* A new reference to u[key], or to 0 when there is none. */
static json_t *count_of(json_t *u, const char *key)
{
	json_t *v = json_object_get(u, key);

	return v ? json_incref(v) : json_integer(0);
}

static json_t *cluster_json(struct request *rq, const struct router *r, const struct router_cluster *c,
			    json_t *live)
{
	json_t *state = json_object_get(live, c->name), *nss = json_object(), *roles = json_array();
	json_t *usage = json_object_get(state, "namespaces");
	unsigned configured = 0;
	long active = 0;
	char err[GW_ERRLEN];
	struct router_live lv = pool_live(rq->services->pool);

	for (size_t p = 0; p < r->npools; p++)
		for (size_t m = 0; m < r->pools[p].nmembers; m++)
			if (&r->clusters[r->pools[p].members[m].cluster] == c && !configured)
				configured = r->pools[p].members[m].weight;
	for (size_t g = 0; g < r->ngroups; g++)
		for (size_t n = 0; n < r->groups[g].nnamespaces; n++) {
			const struct router_namespace *ns = &r->groups[g].namespaces[n];
			json_t *u = json_object_get(usage, ns->name);

			json_t *entry = json_pack("{s:s, s:i, s:o, s:o, s:o}",
				"group", r->groups[g].name, "maxPods", (int)ns->max_pods,
				"pods", count_of(u, "pods"), "cores", count_of(u, "cores"),
				"memoryBytes", count_of(u, "memoryBytes"));

			if (ns->quota_cores > 0 || ns->quota_memory > 0 || ns->quota_gpus > 0)
				json_object_set_new(entry, "quota", json_pack("{s:f, s:I, s:i}", "cores", ns->quota_cores,
					"memoryBytes", (json_int_t)ns->quota_memory, "gpus", ns->quota_gpus));
			json_object_set_new(nss, ns->name, entry);
		}
	for (size_t i = 0; i < c->nroles; i++) {
		struct router_capacity cap;
		json_t *role = json_pack("{s:s, s:{s:f, s:I, s:i}}", "name", c->roles[i].name, "maxPod",
			"cores", c->roles[i].max_cores, "memoryBytes", (json_int_t)c->roles[i].max_memory,
			"gpus", c->roles[i].max_gpus);

		/* What placement counts on: the role's nodes, and what is free. */
		if (lv.capacity(lv.arg, c->name, &c->roles[i], &cap))
			json_object_set_new(role, "capacity", json_pack("{s:i, s:{s:f, s:I, s:i, s:i}, s:{s:f, s:I, s:i, s:i}}",
				"nodes", (int)cap.nodes,
				"total", "cores", cap.total.cores, "memoryBytes", (json_int_t)cap.total.memory,
				"gpus", cap.total.gpus, "pods", (int)cap.total.pods,
				"free", "cores", cap.free.cores, "memoryBytes", (json_int_t)cap.free.memory,
				"gpus", cap.free.gpus, "pods", (int)cap.free.pods));
		else
			json_object_set_new(role, "capacity", json_null());
		json_array_append_new(roles, role);
	}
	store_count_active(rq->store, c->name, &active, err);
	return json_pack("{s:s, s:s, s:s, s:b, s:O, s:i, s:i, s:I, s:b, s:o, s:o, s:O}",
			 "name", c->name, "mode", c->mode == ROUTER_SPARK_OPERATOR ? "spark-operator" : "driver-pod",
			 "rotation", pool_rotation_name(pool_rotation_of(rq->services->pool, c->name)),
			 "healthy", pool_healthy(rq->services->pool, c->name),
			 "lastError", json_object_get(state, "lastError") ? json_object_get(state, "lastError") : json_null(),
			 "weight", (int)configured, "weightInForce", (int)lv.weight(lv.arg, c->name, configured),
			 "activeJobs", (json_int_t)active,
			 /* A draining cluster is drained once nothing of ours runs there. */
			 "drained", pool_rotation_of(rq->services->pool, c->name) == POOL_DRAINING && active == 0,
			 "namespaces", nss, "nodeRoles", roles,
			 "nodes", json_object_get(state, "nodes") ? json_object_get(state, "nodes") : json_null());
}

enum MHD_Result api_pools(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	struct router *r = router_holder_get(rq->services->policy);
	json_t *live = pool_snapshot(rq->services->pool), *pools = json_array(), *groups = json_array();
	json_t *rules = json_array(), *body;

	(void)id;
	for (size_t p = 0; p < r->npools; p++) {
		json_t *members = json_array();

		for (size_t m = 0; m < r->pools[p].nmembers; m++)
			json_array_append_new(members, cluster_json(rq, r, &r->clusters[r->pools[p].members[m].cluster], live));
		json_array_append_new(pools, json_pack("{s:s, s:O, s:o}", "name", r->pools[p].name,
						       "defaults", r->pools[p].defaults, "clusters", members));
	}
	for (size_t g = 0; g < r->ngroups; g++) {
		json_t *nss = json_array();

		for (size_t n = 0; n < r->groups[g].nnamespaces; n++)
			json_array_append_new(nss, json_string(r->groups[g].namespaces[n].name));
		json_array_append_new(groups, json_pack("{s:s, s:s, s:o}", "name", r->groups[g].name,
							"selector", r->groups[g].selector_text, "namespaces", nss));
	}
	for (size_t i = 0; i < r->nrules; i++)
		json_array_append_new(rules, json_pack("{s:s, s:s}", "selector", r->rules[i].text, "pool",
						       r->pools[r->rules[i].pool].name));
	json_decref(live);
	body = json_pack("{s:o, s:o, s:o, s:s?}", "items", pools, "namespaceGroups", groups,
			 "rules", rules, "defaultPool",
			 r->default_pool >= 0 ? r->pools[r->default_pool].name : NULL);
	router_unref(r);
	return http_reply_json(&rq->http, 200, body, NULL);
}

enum MHD_Result api_clusters(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	struct router *r = router_holder_get(rq->services->policy);
	json_t *live = pool_snapshot(rq->services->pool), *items = json_array();

	(void)id;
	for (size_t i = 0; i < r->nclusters; i++)
		json_array_append_new(items, cluster_json(rq, r, &r->clusters[i], live));
	json_decref(live);
	router_unref(r);
	return http_reply_json(&rq->http, 200, json_pack("{s:o}", "items", items), NULL);
}

/* Looks the cluster up in the policy in force; NULL after answering 404. */
static const struct router_cluster *find_cluster(struct request *rq, struct router *r, const char *name,
						 enum MHD_Result *reply)
{
	const struct router_cluster *c = router_cluster_named(r, name);
	char detail[160];

	if (!c) {
		snprintf(detail, sizeof(detail), "no cluster named %.64s", name);
		*reply = http_reply_problem(&rq->http, 404, "not-found", detail, NULL);
	}
	return c;
}

enum MHD_Result api_cluster_get(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	struct router *r = router_holder_get(rq->services->policy);
	const struct router_cluster *c;
	enum MHD_Result reply;
	json_t *live;

	if ((c = find_cluster(rq, r, id, &reply))) {
		live = pool_snapshot(rq->services->pool);
		reply = http_reply_json(&rq->http, 200, cluster_json(rq, r, c, live), NULL);
		json_decref(live);
	}
	router_unref(r);
	return reply;
}

/* After the settings are committed: apply them, then answer. */
static enum MHD_Result settings_committed(struct request *rq)
{
	struct router *r;
	const struct router_cluster *c;
	enum MHD_Result reply;
	json_t *live;

	if (rq->op.rc)
		return gateway_reply_store_error(rq, rq->op.rc, rq->op.err);
	pool_set_rotation(rq->services->pool, rq->job_id,
			  (enum pool_rotation)pool_rotation_parse(rq->op.rotation));
	pool_set_weight(rq->services->pool, rq->job_id, (unsigned)rq->op.weight);
	r = router_holder_get(rq->services->policy);
	if ((c = find_cluster(rq, r, rq->job_id, &reply))) {
		live = pool_snapshot(rq->services->pool);
		reply = http_reply_json(&rq->http, 200, cluster_json(rq, r, c, live), NULL);
		json_decref(live);
	}
	router_unref(r);
	return reply;
}

static enum MHD_Result save_settings(struct request *rq, const char *name, enum pool_rotation rot,
				     int weight)
{
	struct router *r = router_holder_get(rq->services->policy);
	enum MHD_Result reply;
	bool known = find_cluster(rq, r, name, &reply) != NULL;

	router_unref(r);
	if (!known)
		return reply;
	/* The cluster name lives in the request until the commit answers. */
	snprintf(rq->job_id, sizeof(rq->job_id), "%s", name);
	if (strcmp(rq->job_id, name))
		return http_reply_problem(&rq->http, 400, "bad-request", "cluster name too long", NULL);
	rq->op.kind = STORE_OP_CLUSTER_SETTINGS;
	rq->op.cluster = rq->job_id;
	rq->op.rotation = pool_rotation_name(rot);
	rq->op.weight = weight;
	return gateway_run_async(rq, settings_committed);
}

static int current_weight(struct request *rq, const char *name)
{
	json_t *live = pool_snapshot(rq->services->pool);
	int w = (int)json_integer_value(json_object_get(json_object_get(live, name), "weightOverride"));

	json_decref(live);
	return w;
}

enum MHD_Result api_cluster_cordon(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);

	return save_settings(rq, id, POOL_CORDONED, current_weight(rq, id));
}

enum MHD_Result api_cluster_drain(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);

	return save_settings(rq, id, POOL_DRAINING, current_weight(rq, id));
}

enum MHD_Result api_cluster_uncordon(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);

	return save_settings(rq, id, POOL_ACTIVE, current_weight(rq, id));
}

enum MHD_Result api_cluster_patch(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	char detail[GW_ERRLEN];
	json_t *body = gateway_json_parse(rq->http.body.data ? rq->http.body.data : "", rq->http.body.len, detail);
	json_t *w = json_object_get(body, "weight");
	const char *key;
	json_t *v;
	int weight;

	if (!body)
		return http_reply_problem(&rq->http, 400, "malformed-body", detail, NULL);
	json_object_foreach(body, key, v)
		if (strcmp(key, "weight")) {
			/* key lives in body: the problem is built before body goes. */
			json_t *errors = json_pack("[{s:s, s:s}]", "field", key, "message", "unknown field");

			json_decref(body);
			return http_reply_problem(&rq->http, 422, "validation-failed", "only weight can be changed",
						  errors);
		}
	if (!json_is_integer(w) || json_integer_value(w) < 0 || json_integer_value(w) > 1000000) {
		json_decref(body);
		return http_reply_problem(&rq->http, 422, "validation-failed", "weight must be an integer from 0 to 1000000",
					  json_pack("[{s:s, s:s}]", "field", "weight", "message",
						    "must be an integer from 0 (the configured weight) to 1000000"));
	}
	weight = (int)json_integer_value(w);
	json_decref(body);
	return save_settings(rq, id, pool_rotation_of(rq->services->pool, id), weight);
}

enum MHD_Result api_reload(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	char err[GW_ERRLEN];

	(void)id;
	if (rq->services->reload(rq->services->reload_arg, err) != GW_OK)
		return http_reply_problem(&rq->http, 422, "invalid-policy", err, NULL);
	return http_reply_json(&rq->http, 200, json_pack("{s:s}", "status", "reloaded"), NULL);
}

static enum MHD_Result reply_change_error(struct request *rq, enum gw_err rc, const char *err)
{
	switch (rc) {
	case GW_ENOTFOUND:
		return http_reply_problem(&rq->http, 404, "not-found", err, NULL);
	case GW_ECONFLICT:
		return http_reply_problem(&rq->http, 409, "conflict", err, NULL);
	case GW_EINVAL:
		return http_reply_problem(&rq->http, 422, "invalid-policy", err, NULL);
	default:
		return gateway_reply_store_error(rq, rc, err);
	}
}

/* POST /api/v1/clusters: a cluster entry as in the policy file, plus the
 * pool it joins and its weight there. */
enum MHD_Result api_cluster_add(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	char detail[GW_ERRLEN], err[GW_ERRLEN];
	json_t *body = gateway_json_parse(rq->http.body.data ? rq->http.body.data : "", rq->http.body.len, detail);
	struct router *r;
	const struct router_cluster *c;
	enum MHD_Result reply;
	enum gw_err rc;

	(void)id;
	if (!body)
		return http_reply_problem(&rq->http, 400, "malformed-body", detail, NULL);
	rc = rq->services->change_clusters(rq->services->reload_arg, NULL, body, err);
	if (rc) {
		json_decref(body);
		return reply_change_error(rq, rc, err);
	}
	r = router_holder_get(rq->services->policy);
	c = router_cluster_named(r, json_string_value(json_object_get(body, "name")));
	json_decref(body);
	if (c) {
		json_t *live = pool_snapshot(rq->services->pool);
		char location[300];

		snprintf(location, sizeof(location), "/api/v1/clusters/%s", c->name);
		reply = http_reply_json(&rq->http, 201, cluster_json(rq, r, c, live), MHD_HTTP_HEADER_LOCATION,
					location, NULL);
		json_decref(live);
	} else {
		reply = http_reply_problem(&rq->http, 500, "internal", "the cluster was added but is not in force", NULL);
	}
	router_unref(r);
	return reply;
}

enum MHD_Result api_cluster_remove(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	char err[GW_ERRLEN];
	enum gw_err rc = rq->services->change_clusters(rq->services->reload_arg, id, NULL, err);

	if (rc)
		return reply_change_error(rq, rc, err);
	return http_reply_json(&rq->http, 200, json_pack("{s:s, s:s}", "status", "removed", "name", id), NULL);
}
