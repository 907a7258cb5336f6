/* Loading and checking a routing policy from the configuration document.
 * Every error names the file, line and column of the offending node. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/quantity.h"
#include "router/router.h"

#define DEFAULT_MAX_PODS 3000
#define UNLIMITED_CORES 1e9
#define UNLIMITED_MEMORY INT64_MAX
#define MAX_GPUS 1e6
#define MAX_PODS 1e8

struct loader {
	const json_t *marks;
	const char *path;
	char *err;
};

static enum gw_err fail(struct loader *ld, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static enum gw_err fail(struct loader *ld, const char *key, const char *fmt, ...)
{
	const json_t *mark = json_object_get(ld->marks, key);
	char what[GW_ERRLEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	gw_seterr(ld->err, "%s: line %d, column %d: %s", ld->path,
		  (int)json_integer_value(json_array_get(mark, 0)),
		  (int)json_integer_value(json_array_get(mark, 1)), what);
	return GW_EINVAL;
}

/* Fails on keys of obj not in allowed (NULL-terminated). */
static enum gw_err only_keys(struct loader *ld, json_t *obj, const char *at,
			     const char *const *allowed)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return fail(ld, at, "%s must be a mapping", at);
	json_object_foreach(obj, key, v) {
		const char *const *a = allowed;
		char sub[256];

		while (*a && strcmp(*a, key))
			a++;
		if (!*a) {
			snprintf(sub, sizeof(sub), "%s.%s", at, key);
			return fail(ld, sub, "unknown key '%s'", sub);
		}
	}
	return GW_OK;
}

static enum gw_err get_string(struct loader *ld, json_t *obj, const char *at, const char *key,
			      bool required, const char *def, char **out)
{
	json_t *v = json_object_get(obj, key);
	char sub[256];

	snprintf(sub, sizeof(sub), "%s.%s", at, key);
	if (!v && required)
		return fail(ld, at, "%s needs '%s'", at, key);
	if (v && (!json_is_string(v) || !*json_string_value(v)))
		return fail(ld, sub, "%s must be a non-empty string", sub);
	*out = v ? strdup(json_string_value(v)) : def ? strdup(def) : NULL;
	return GW_OK;
}

/* A sparkConf-like map of strings (numbers and booleans are written out). */
static enum gw_err get_conf(struct loader *ld, json_t *obj, const char *at, const char *key,
			    json_t **out)
{
	json_t *v = json_object_get(obj, key), *conf = json_object();
	const char *k;
	json_t *x;
	char sub[256];

	*out = conf;
	if (!v)
		return GW_OK;
	snprintf(sub, sizeof(sub), "%s.%s", at, key);
	if (!json_is_object(v))
		return fail(ld, sub, "%s must be a mapping of Spark properties", sub);
	json_object_foreach(v, k, x) {
		char text[64];

		if (json_is_string(x)) {
			json_object_set(conf, k, x);
			continue;
		}
		if (json_is_integer(x))
			snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(x));
		else if (json_is_real(x))
			snprintf(text, sizeof(text), "%g", json_real_value(x));
		else if (json_is_boolean(x))
			snprintf(text, sizeof(text), "%s", json_is_true(x) ? "true" : "false");
		else
			return fail(ld, sub, "%s.%s must be a scalar", sub, k);
		json_object_set_new(conf, k, json_string(text));
	}
	return GW_OK;
}

/* Memory in the policy: a Kubernetes quantity ("64Gi") or a Spark size ("64g"). */
static bool parse_memory(json_t *v, int64_t *bytes)
{
	double q;

	if (json_is_integer(v)) {
		*bytes = json_integer_value(v);
		return *bytes >= 0;
	}
	if (!json_is_string(v))
		return false;
	if (gw_quantity_parse(json_string_value(v), &q) == 0 && q >= 0 && q < 9e18) {
		*bytes = (int64_t)q;
		return true;
	}
	return gw_spark_memory_parse(json_string_value(v), bytes) == 0;
}

static enum gw_err get_number(struct loader *ld, json_t *obj, const char *at, const char *key,
			      double def, double max, double *out)
{
	json_t *v = json_object_get(obj, key);
	char sub[256];

	snprintf(sub, sizeof(sub), "%s.%s", at, key);
	if (!v) {
		*out = def;
		return GW_OK;
	}
	if (json_is_string(v) && gw_quantity_parse(json_string_value(v), out) == 0 && *out >= 0 &&
	    *out <= max)
		return GW_OK;
	if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > max)
		return fail(ld, sub, "%s must be a number from 0 to %g", sub, max);
	*out = json_number_value(v);
	return GW_OK;
}

static enum gw_err get_memory(struct loader *ld, json_t *obj, const char *at, const char *key,
			      int64_t def, int64_t *out)
{
	json_t *v = json_object_get(obj, key);
	char sub[256];

	snprintf(sub, sizeof(sub), "%s.%s", at, key);
	*out = def;
	if (v && !parse_memory(v, out))
		return fail(ld, sub, "%s must be a memory size such as 64Gi or 64g", sub);
	return GW_OK;
}

/* limits: {maxRunning, maxQueued, maxCores, maxMemory, maxGpus}, each
 * absent or 0 for no bound. */
static enum gw_err parse_limits(struct loader *ld, json_t *v, const char *at,
				struct router_limits *l, bool *has_running, bool *has_queued)
{
	static const char *const keys[] = {"maxRunning", "maxQueued", "maxCores", "maxMemory",
					   "maxGpus", NULL};
	double running, queued, gpus;
	enum gw_err rc;

	if ((rc = only_keys(ld, v, at, keys)) ||
	    (rc = get_number(ld, v, at, "maxRunning", 0, MAX_PODS, &running)) ||
	    (rc = get_number(ld, v, at, "maxQueued", 0, MAX_PODS, &queued)) ||
	    (rc = get_number(ld, v, at, "maxCores", 0, UNLIMITED_CORES, &l->cores)) ||
	    (rc = get_memory(ld, v, at, "maxMemory", 0, &l->memory)) ||
	    (rc = get_number(ld, v, at, "maxGpus", 0, MAX_GPUS, &gpus)))
		return rc;
	l->running = (unsigned)running;
	l->queued = (unsigned)queued;
	l->gpus = (int)gpus;
	if (has_running)
		*has_running = json_object_get(v, "maxRunning") != NULL;
	if (has_queued)
		*has_queued = json_object_get(v, "maxQueued") != NULL;
	return GW_OK;
}

/* teams: {name: {share, maxRunning, maxQueued, maxCores, maxMemory, maxGpus}} */
static enum gw_err parse_teams(struct loader *ld, struct router *r, json_t *v)
{
	const char *name;
	json_t *t;
	char why[GW_ERRLEN];
	enum gw_err rc;

	if (!json_is_object(v))
		return fail(ld, "teams", "teams must be a mapping of team names");
	r->teams = calloc(json_object_size(v) + 1, sizeof(*r->teams));
	if (!r->teams)
		return GW_ENOMEM;
	json_object_foreach(v, name, t) {
		struct router_team *team = &r->teams[r->nteams++];
		json_t *limits;
		char at[256];

		snprintf(at, sizeof(at), "teams.%s", name);
		team->name = strdup(name);
		if (!gw_label_value_valid(name, why) || !*name)
			return fail(ld, at, "team names are label values: %s", *name ? why : "empty");
		if (!json_is_object(t))
			return fail(ld, at, "%s must be a mapping", at);
		if ((rc = get_number(ld, t, at, "share", 1, 1e6, &team->share)))
			return rc;
		if (team->share <= 0)
			return fail(ld, at, "%s.share must be more than 0", at);
		/* The limit keys sit beside share. */
		limits = json_deep_copy(t);
		json_object_del(limits, "share");
		rc = parse_limits(ld, limits, at, &team->limits, &team->has_running, &team->has_queued);
		json_decref(limits);
		if (rc)
			return rc;
	}
	return GW_OK;
}

/* priorities: {levels: [first .. last], default: name} */
static enum gw_err parse_priorities(struct loader *ld, struct router *r, json_t *v)
{
	static const char *const keys[] = {"levels", "default", NULL};
	json_t *levels = json_object_get(v, "levels");
	char *def = NULL, why[GW_ERRLEN];
	enum gw_err rc;

	if ((rc = only_keys(ld, v, "priorities", keys)) ||
	    (rc = get_string(ld, v, "priorities", "default", false, "normal", &def)))
		return rc;
	for (size_t i = 0; i < r->npriorities; i++)
		free(r->priorities[i]);
	r->npriorities = 0;
	if (!json_is_array(levels) || json_array_size(levels) == 0 ||
	    json_array_size(levels) > ROUTER_MAX_PRIORITIES) {
		free(def);
		return fail(ld, levels ? "priorities.levels" : "priorities",
			    "priorities.levels must be a list of 1 to %d names", ROUTER_MAX_PRIORITIES);
	}
	for (size_t i = 0; i < json_array_size(levels); i++) {
		const char *name = json_string_value(json_array_get(levels, i));
		char at[64];

		snprintf(at, sizeof(at), "priorities.levels[%zu]", i);
		if (!name || !*name || !gw_label_value_valid(name, why) || router_priority_rank(r, name) >= 0) {
			free(def);
			return fail(ld, at, "priority names are distinct label values");
		}
		r->priorities[r->npriorities++] = strdup(name);
	}
	r->default_priority = router_priority_rank(r, def);
	if (r->default_priority < 0)
		rc = fail(ld, json_object_get(v, "default") ? "priorities.default" : "priorities",
			  "priorities.default must be one of the levels ('%s' is not)", def);
	free(def);
	return rc;
}

static void role_release(struct router_node_role *r)
{
	free(r->name);
	json_decref(r->node_selector);
	json_decref(r->tolerations);
}

static enum gw_err parse_role(struct loader *ld, json_t *v, const char *at,
			      struct router_node_role *role)
{
	static const char *const keys[] = {"name", "maxPod", "nodeSelector", "tolerations", NULL};
	static const char *const pod_keys[] = {"cores", "memory", "gpus", NULL};
	json_t *max = json_object_get(v, "maxPod");
	char sub[256];
	double gpus;
	enum gw_err rc;

	if ((rc = only_keys(ld, v, at, keys)) || (rc = get_string(ld, v, at, "name", true, NULL, &role->name)))
		return rc;
	snprintf(sub, sizeof(sub), "%s.maxPod", at);
	if (max && (rc = only_keys(ld, max, sub, pod_keys)))
		return rc;
	if ((rc = get_number(ld, max, sub, "cores", UNLIMITED_CORES, UNLIMITED_CORES, &role->max_cores)) ||
	    (rc = get_memory(ld, max, sub, "memory", UNLIMITED_MEMORY, &role->max_memory)) ||
	    (rc = get_number(ld, max, sub, "gpus", 0, MAX_GPUS, &gpus)))
		return rc;
	role->max_gpus = (int)gpus;
	role->node_selector = json_deep_copy(json_object_get(v, "nodeSelector"));
	if (!role->node_selector)
		role->node_selector = json_object();
	role->tolerations = json_deep_copy(json_object_get(v, "tolerations"));
	if (!role->tolerations)
		role->tolerations = json_array();
	snprintf(sub, sizeof(sub), "%s.nodeSelector", at);
	if (!json_is_object(role->node_selector))
		return fail(ld, sub, "%s must be a mapping of labels", sub);
	snprintf(sub, sizeof(sub), "%s.tolerations", at);
	if (!json_is_array(role->tolerations))
		return fail(ld, sub, "%s must be a list of tolerations", sub);
	return GW_OK;
}

static void ns_release(struct router_namespace *ns)
{
	free(ns->name);
	free(ns->service_account);
	json_decref(ns->overrides);
}

static enum gw_err parse_namespace(struct loader *ld, json_t *v, const char *at,
				   struct router_namespace *ns)
{
	static const char *const keys[] = {"name", "maxPods", "quota", "serviceAccount", "overrides", NULL};
	static const char *const quota_keys[] = {"cores", "memory", "gpus", NULL};
	json_t *quota = json_object_get(v, "quota");
	char sub[256], why[GW_ERRLEN];
	double max_pods, gpus;
	enum gw_err rc;

	if (json_is_string(v)) { /* just a name */
		ns->name = strdup(json_string_value(v));
		ns->max_pods = DEFAULT_MAX_PODS;
		ns->overrides = json_object();
	} else {
		snprintf(sub, sizeof(sub), "%s.quota", at);
		if ((rc = only_keys(ld, v, at, keys)) ||
		    (rc = get_string(ld, v, at, "name", true, NULL, &ns->name)) ||
		    (rc = get_number(ld, v, at, "maxPods", DEFAULT_MAX_PODS, MAX_PODS, &max_pods)) ||
		    (quota && (rc = only_keys(ld, quota, sub, quota_keys))) ||
		    (rc = get_number(ld, quota, sub, "cores", 0, UNLIMITED_CORES, &ns->quota_cores)) ||
		    (rc = get_memory(ld, quota, sub, "memory", 0, &ns->quota_memory)) ||
		    (rc = get_number(ld, quota, sub, "gpus", 0, MAX_GPUS, &gpus)) ||
		    (rc = get_string(ld, v, at, "serviceAccount", false, NULL, &ns->service_account)) ||
		    (rc = get_conf(ld, v, at, "overrides", &ns->overrides)))
			return rc;
		ns->max_pods = (unsigned)max_pods;
		ns->quota_gpus = (int)gpus;
	}
	if (!gw_dns1123_label_valid(ns->name, why))
		return fail(ld, at, "namespace '%s' is not a DNS-1123 label: %s", ns->name, why);
	return GW_OK;
}

/* batchScheduler: {name, queue}. */
static enum gw_err parse_batch(struct loader *ld, json_t *v, const char *at, struct router_batch_scheduler *b)
{
	static const char *const keys[] = {"name", "queue", NULL};
	json_t *bs = json_object_get(v, "batchScheduler");
	char sub[256], why[GW_ERRLEN];
	enum gw_err rc;

	if (!bs)
		return GW_OK;
	snprintf(sub, sizeof(sub), "%s.batchScheduler", at);
	if (!json_is_object(bs))
		return fail(ld, sub, "%s must be a map with a name and a queue", sub);
	if ((rc = only_keys(ld, bs, sub, keys)) || (rc = get_string(ld, bs, sub, "name", true, NULL, &b->name)) ||
	    (rc = get_string(ld, bs, sub, "queue", false, NULL, &b->queue)))
		return rc;
	if (!gw_dns1123_subdomain_valid(b->name, why))
		return fail(ld, sub, "%s.name '%s' is not a scheduler name: %s", sub, b->name, why);
	return GW_OK;
}

static void cluster_release(struct router_cluster *c)
{
	free(c->name);
	free(c->kubeconfig);
	free(c->context);
	free(c->image);
	free(c->service_account);
	json_decref(c->defaults);
	json_decref(c->overrides);
	json_decref(c->annotations);
	json_decref(c->sidecars);
	free(c->batch.name);
	free(c->batch.queue);
	for (size_t i = 0; i < c->nroles; i++)
		role_release(&c->roles[i]);
	free(c->roles);
}

static enum gw_err parse_cluster(struct loader *ld, json_t *v, const char *at,
				 struct router_cluster *c, char **namespace)
{
	static const char *const keys[] = {"name", "kubeconfig", "context", "mode", "namespace",
					   "image", "serviceAccount", "defaults", "overrides",
					   "annotations", "nodeRoles", "sidecars", "batchScheduler", NULL};
	json_t *roles = json_object_get(v, "nodeRoles");
	char *mode = NULL, sub[256], why[GW_ERRLEN];
	enum gw_err rc;

	if ((rc = only_keys(ld, v, at, keys)) ||
	    (rc = get_string(ld, v, at, "name", true, NULL, &c->name)) ||
	    (rc = get_string(ld, v, at, "kubeconfig", true, NULL, &c->kubeconfig)) ||
	    (rc = get_string(ld, v, at, "context", false, NULL, &c->context)) ||
	    (rc = get_string(ld, v, at, "mode", false, "driver-pod", &mode)) ||
	    (rc = get_string(ld, v, at, "namespace", false, "default", namespace)) ||
	    (rc = get_string(ld, v, at, "image", false, "apache/spark:3.5.1", &c->image)) ||
	    (rc = get_string(ld, v, at, "serviceAccount", false, "spark", &c->service_account)) ||
	    (rc = get_conf(ld, v, at, "defaults", &c->defaults)) ||
	    (rc = get_conf(ld, v, at, "overrides", &c->overrides)) ||
	    (rc = get_conf(ld, v, at, "annotations", &c->annotations)) ||
	    (rc = parse_batch(ld, v, at, &c->batch)))
		goto out;
	if (!gw_dns1123_label_valid(c->name, why)) {
		rc = fail(ld, at, "cluster name '%s' is not a DNS-1123 label: %s", c->name, why);
		goto out;
	}
	if (strcmp(mode, "driver-pod") && strcmp(mode, "spark-operator")) {
		snprintf(sub, sizeof(sub), "%s.mode", at);
		rc = fail(ld, sub, "%s must be driver-pod or spark-operator", sub);
		goto out;
	}
	c->mode = strcmp(mode, "spark-operator") ? ROUTER_DRIVER_POD : ROUTER_SPARK_OPERATOR;
	c->sidecars = json_deep_copy(json_object_get(v, "sidecars"));
	if (!c->sidecars)
		c->sidecars = json_array();
	snprintf(sub, sizeof(sub), "%s.sidecars", at);
	if (!json_is_array(c->sidecars)) {
		rc = fail(ld, sub, "%s must be a list of containers", sub);
		goto out;
	}
	for (size_t i = 0; i < json_array_size(c->sidecars); i++) {
		json_t *ctr = json_array_get(c->sidecars, i);

		if (!json_is_string(json_object_get(ctr, "name")) || !json_is_string(json_object_get(ctr, "image"))) {
			char cat[300];

			snprintf(cat, sizeof(cat), "%s[%zu]", sub, i);
			rc = fail(ld, cat, "%s needs a name and an image", cat);
			goto out;
		}
	}
	snprintf(sub, sizeof(sub), "%s.nodeRoles", at);
	if (roles && !json_is_array(roles)) {
		rc = fail(ld, sub, "%s must be a list", sub);
		goto out;
	}
	if (json_array_size(roles) == 0) {
		/* One role that takes any CPU pod. */
		c->roles = calloc(1, sizeof(*c->roles));
		c->nroles = 1;
		c->roles->name = strdup("default");
		c->roles->max_cores = UNLIMITED_CORES;
		c->roles->max_memory = UNLIMITED_MEMORY;
		c->roles->node_selector = json_object();
		c->roles->tolerations = json_array();
	} else {
		c->roles = calloc(json_array_size(roles), sizeof(*c->roles));
		for (size_t i = 0; i < json_array_size(roles); i++) {
			char rat[256];

			snprintf(rat, sizeof(rat), "%s.nodeRoles[%zu]", at, i);
			c->nroles = i + 1;
			if ((rc = parse_role(ld, json_array_get(roles, i), rat, &c->roles[i])))
				goto out;
		}
	}
out:
	free(mode);
	return rc;
}

static void shared_release(struct router_shared *sh)
{
	if (!sh)
		return;
	free(sh->namespace);
	free(sh->image);
	gw_selector_free(sh->selector);
	free(sh->selector_text);
	free(sh);
}

static void router_free(struct router *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nclusters; i++)
		cluster_release(&r->clusters[i]);
	free(r->clusters);
	for (size_t i = 0; i < r->npools; i++) {
		free(r->pools[i].name);
		free(r->pools[i].members);
		json_decref(r->pools[i].defaults);
		json_decref(r->pools[i].images);
		free(r->pools[i].default_role);
		free(r->pools[i].driver_priority_class);
		free(r->pools[i].executor_priority_class);
		free(r->pools[i].batch.name);
		free(r->pools[i].batch.queue);
		shared_release(r->pools[i].shared);
		json_decref(r->pools[i].conf_allow);
		json_decref(r->pools[i].conf_deny);
	}
	free(r->pools);
	for (size_t i = 0; i < r->ngroups; i++) {
		free(r->groups[i].name);
		free(r->groups[i].selector_text);
		gw_selector_free(r->groups[i].selector);
		for (size_t j = 0; j < r->groups[i].nnamespaces; j++)
			ns_release(&r->groups[i].namespaces[j]);
		free(r->groups[i].namespaces);
	}
	free(r->groups);
	for (size_t i = 0; i < r->nrules; i++) {
		free(r->rules[i].text);
		gw_selector_free(r->rules[i].selector);
	}
	free(r->rules);
	for (size_t i = 0; i < r->nteams; i++)
		free(r->teams[i].name);
	free(r->teams);
	for (size_t i = 0; i < r->npriorities; i++)
		free(r->priorities[i]);
	free(r);
}

const struct router_pool *router_pool_named(const struct router *r, const char *name)
{
	for (size_t i = 0; name && i < r->npools; i++)
		if (!strcmp(r->pools[i].name, name))
			return &r->pools[i];
	return NULL;
}

const struct router_team *router_team_named(const struct router *r, const char *name)
{
	for (size_t i = 0; name && i < r->nteams; i++)
		if (!strcmp(r->teams[i].name, name))
			return &r->teams[i];
	return NULL;
}

int router_priority_rank(const struct router *r, const char *value)
{
	if (!value)
		return r->default_priority;
	for (size_t i = 0; i < r->npriorities; i++)
		if (!strcmp(r->priorities[i], value))
			return (int)i;
	return -1;
}

const struct router_cluster *router_cluster_named(const struct router *r, const char *name)
{
	for (size_t i = 0; name && i < r->nclusters; i++)
		if (!strcmp(r->clusters[i].name, name))
			return &r->clusters[i];
	return NULL;
}

static long pool_index(const struct router *r, const char *name)
{
	for (size_t i = 0; i < r->npools; i++)
		if (!strcmp(r->pools[i].name, name))
			return (long)i;
	return -1;
}

static long group_index(const struct router *r, const char *name)
{
	for (size_t i = 0; i < r->ngroups; i++)
		if (!strcmp(r->groups[i].name, name))
			return (long)i;
	return -1;
}

/* sparkConf: {allow: [glob...], deny: [glob...]} */
static enum gw_err parse_conf_lists(struct loader *ld, json_t *v, const char *at, struct router_pool *p)
{
	static const char *const keys[] = {"allow", "deny", NULL};
	static const char *const lists[] = {"allow", "deny"};
	enum gw_err rc;

	p->conf_allow = json_array();
	p->conf_deny = json_array();
	if (!v)
		return GW_OK;
	if ((rc = only_keys(ld, v, at, keys)))
		return rc;
	for (size_t l = 0; l < 2; l++) {
		json_t *list = json_object_get(v, lists[l]);
		char sub[300];
		size_t i;
		json_t *pat;

		snprintf(sub, sizeof(sub), "%s.%s", at, lists[l]);
		if (list && !json_is_array(list))
			return fail(ld, sub, "%s must be a list of property patterns such as spark.sql.*", sub);
		json_array_foreach(list, i, pat) {
			if (!json_is_string(pat) || !*json_string_value(pat))
				return fail(ld, sub, "%s must be a list of property patterns such as spark.sql.*", sub);
			json_array_append(l ? p->conf_deny : p->conf_allow, pat);
		}
	}
	return GW_OK;
}

/* sharedServers: {namespace, minServers, maxServers, maxJobsPerServer,
 * idleTimeoutSeconds, image, cores, memory, selector, maxExecutorCores}. */
static enum gw_err parse_shared(struct loader *ld, json_t *v, const char *at, struct router_pool *p)
{
	static const char *const keys[] = {"namespace", "minServers", "maxServers", "maxJobsPerServer",
					   "idleTimeoutSeconds", "image", "cores", "memory", "selector",
					   "maxExecutorCores", NULL};
	json_t *sv = json_object_get(v, "sharedServers");
	struct router_shared *sh;
	double min, max, jobs, idle;
	char sub[256], why[GW_ERRLEN];
	enum gw_err rc;

	if (!sv)
		return GW_OK;
	snprintf(sub, sizeof(sub), "%s.sharedServers", at);
	if (!json_is_object(sv))
		return fail(ld, sub, "%s must be a map", sub);
	p->shared = sh = calloc(1, sizeof(*sh));
	if (!sh)
		return fail(ld, sub, "out of memory");
	if ((rc = only_keys(ld, sv, sub, keys)) ||
	    (rc = get_string(ld, sv, sub, "namespace", true, NULL, &sh->namespace)) ||
	    (rc = get_number(ld, sv, sub, "minServers", 1, 100, &min)) ||
	    (rc = get_number(ld, sv, sub, "maxServers", min > 1 ? min : 1, 100, &max)) ||
	    (rc = get_number(ld, sv, sub, "maxJobsPerServer", 8, 1000, &jobs)) ||
	    (rc = get_number(ld, sv, sub, "idleTimeoutSeconds", 300, 86400, &idle)) ||
	    (rc = get_string(ld, sv, sub, "image", false, NULL, &sh->image)) ||
	    (rc = get_number(ld, sv, sub, "cores", 4, 256, &sh->cores)) ||
	    (rc = get_memory(ld, sv, sub, "memory", 16LL << 30, &sh->memory)) ||
	    (rc = get_string(ld, sv, sub, "selector", false, NULL, &sh->selector_text)) ||
	    (rc = get_number(ld, sv, sub, "maxExecutorCores", 8, 100000, &sh->max_executor_cores)))
		return rc;
	if (max < min || max < 1 || jobs < 1)
		return fail(ld, sub, "%s needs 1 <= maxServers, minServers <= maxServers and maxJobsPerServer >= 1", sub);
	sh->min_servers = (unsigned)min;
	sh->max_servers = (unsigned)max;
	sh->max_jobs = (unsigned)jobs;
	sh->idle_timeout_s = (unsigned)idle;
	if (sh->selector_text && gw_selector_parse(sh->selector_text, &sh->selector, why))
		return fail(ld, sub, "%s.selector is invalid: %s", sub, why);
	return GW_OK;
}

static enum gw_err parse_pool(struct loader *ld, struct router *r, json_t *v, const char *at,
			      struct router_pool *p)
{
	static const char *const keys[] = {"name", "clusters", "defaults", "images", "nodeRole",
					   "priorityClasses", "limits", "maxRunSeconds", "sparkConf", "prices",
					   "batchScheduler", "sharedServers", NULL};
	json_t *members = json_object_get(v, "clusters"), *pc = json_object_get(v, "priorityClasses");
	json_t *limits = json_object_get(v, "limits");
	char sub[256];
	double max_run;
	enum gw_err rc;

	if ((rc = only_keys(ld, v, at, keys)) ||
	    (rc = get_string(ld, v, at, "name", true, NULL, &p->name)) ||
	    (rc = get_conf(ld, v, at, "defaults", &p->defaults)) ||
	    (rc = get_conf(ld, v, at, "images", &p->images)) ||
	    (rc = get_string(ld, v, at, "nodeRole", false, NULL, &p->default_role)) ||
	    (rc = get_string(ld, pc, at, "driver", false, "sparkgw-driver", &p->driver_priority_class)) ||
	    (rc = get_string(ld, pc, at, "executor", false, "sparkgw-executor", &p->executor_priority_class)) ||
	    (rc = get_number(ld, v, at, "maxRunSeconds", 0, 31536000, &max_run)) ||
	    (rc = parse_batch(ld, v, at, &p->batch)) || (rc = parse_shared(ld, v, at, p)))
		return rc;
	p->max_run_s = (unsigned)max_run;
	snprintf(sub, sizeof(sub), "%s.prices", at);
	if (json_object_get(v, "prices")) {
		static const char *const price_keys[] = {"coreHour", "memoryGiBHour", "gpuHour", NULL};
		json_t *prices = json_object_get(v, "prices");

		if ((rc = only_keys(ld, prices, sub, price_keys)) ||
		    (rc = get_number(ld, prices, sub, "coreHour", 0, 1e6, &p->price_core_hour)) ||
		    (rc = get_number(ld, prices, sub, "memoryGiBHour", 0, 1e6, &p->price_memory_gib_hour)) ||
		    (rc = get_number(ld, prices, sub, "gpuHour", 0, 1e6, &p->price_gpu_hour)))
			return rc;
	}
	snprintf(sub, sizeof(sub), "%s.sparkConf", at);
	if ((rc = parse_conf_lists(ld, json_object_get(v, "sparkConf"), sub, p)))
		return rc;
	snprintf(sub, sizeof(sub), "%s.limits", at);
	if (limits && (rc = parse_limits(ld, limits, sub, &p->limits, NULL, NULL)))
		return rc;
	snprintf(sub, sizeof(sub), "%s.clusters", at);
	if (!json_is_array(members) || json_array_size(members) == 0)
		return fail(ld, json_is_array(members) ? sub : at, "%s needs a list of clusters", at);
	p->members = calloc(json_array_size(members), sizeof(*p->members));
	for (size_t i = 0; i < json_array_size(members); i++) {
		json_t *m = json_array_get(members, i);
		const char *name = json_is_string(m) ? json_string_value(m)
						     : json_string_value(json_object_get(m, "name"));
		json_t *w = json_object_get(m, "weight");
		const struct router_cluster *c = router_cluster_named(r, name);
		char mat[256];

		snprintf(mat, sizeof(mat), "%s.clusters[%zu]", at, i);
		if (!c)
			return fail(ld, mat, "no cluster named '%s'", name ? name : "");
		if (w && (!json_is_integer(w) || json_integer_value(w) < 1 || json_integer_value(w) > 1000000))
			return fail(ld, mat, "weight must be an integer from 1 to 1000000");
		p->members[i].cluster = (size_t)(c - r->clusters);
		p->members[i].weight = w ? (unsigned)json_integer_value(w) : 1;
		p->nmembers = i + 1;
	}
	return GW_OK;
}

static enum gw_err parse_group(struct loader *ld, json_t *v, const char *at, struct router_group *g)
{
	static const char *const keys[] = {"name", "selector", "namespaces", NULL};
	json_t *nss = json_object_get(v, "namespaces");
	char sub[256], why[GW_ERRLEN];
	enum gw_err rc;

	if ((rc = only_keys(ld, v, at, keys)) ||
	    (rc = get_string(ld, v, at, "name", true, NULL, &g->name)) ||
	    (rc = get_string(ld, v, at, "selector", false, "", &g->selector_text)))
		return rc;
	snprintf(sub, sizeof(sub), "%s.selector", at);
	if (gw_selector_parse(g->selector_text, &g->selector, why))
		return fail(ld, sub, "invalid selector: %s", why);
	snprintf(sub, sizeof(sub), "%s.namespaces", at);
	if (!json_is_array(nss) || json_array_size(nss) == 0)
		return fail(ld, json_is_array(nss) ? sub : at, "%s needs a list of namespaces", at);
	g->namespaces = calloc(json_array_size(nss), sizeof(*g->namespaces));
	for (size_t i = 0; i < json_array_size(nss); i++) {
		char nat[256];

		snprintf(nat, sizeof(nat), "%s.namespaces[%zu]", at, i);
		g->nnamespaces = i + 1;
		if ((rc = parse_namespace(ld, json_array_get(nss, i), nat, &g->namespaces[i])))
			return rc;
	}
	return GW_OK;
}

static enum gw_err parse_routing(struct loader *ld, struct router *r, json_t *v)
{
	static const char *const keys[] = {"rules", "defaultPool", NULL};
	static const char *const rule_keys[] = {"selector", "pool", "namespaceGroup", NULL};
	json_t *rules = json_object_get(v, "rules");
	const char *def = json_string_value(json_object_get(v, "defaultPool"));
	char why[GW_ERRLEN];
	enum gw_err rc;

	if ((rc = only_keys(ld, v, "routing", keys)))
		return rc;
	if (rules && !json_is_array(rules))
		return fail(ld, "routing.rules", "routing.rules must be a list");
	if (json_object_get(v, "defaultPool") && (!def || (r->default_pool = pool_index(r, def)) < 0))
		return fail(ld, "routing.defaultPool", "no pool named '%s'", def ? def : "");
	r->rules = calloc(json_array_size(rules) + 1, sizeof(*r->rules));
	for (size_t i = 0; i < json_array_size(rules); i++) {
		json_t *rule = json_array_get(rules, i);
		struct router_rule *out = &r->rules[i];
		char at[64], *pool = NULL, *group = NULL;
		long pi;

		snprintf(at, sizeof(at), "routing.rules[%zu]", i);
		r->nrules = i + 1;
		out->group = -1;
		if ((rc = only_keys(ld, rule, at, rule_keys)) ||
		    (rc = get_string(ld, rule, at, "selector", true, NULL, &out->text)) ||
		    (rc = get_string(ld, rule, at, "pool", true, NULL, &pool)) ||
		    (rc = get_string(ld, rule, at, "namespaceGroup", false, NULL, &group)))
			goto rule_done;
		if (gw_selector_parse(out->text, &out->selector, why)) {
			rc = fail(ld, at, "invalid selector '%s': %s", out->text, why);
			goto rule_done;
		}
		if ((pi = pool_index(r, pool)) < 0) {
			rc = fail(ld, at, "no pool named '%s'", pool);
			goto rule_done;
		}
		out->pool = (size_t)pi;
		if (group && (out->group = group_index(r, group)) < 0)
			rc = fail(ld, at, "no namespace group named '%s'", group);
rule_done:
		free(pool);
		free(group);
		if (rc)
			return rc;
	}
	return GW_OK;
}

/* Without pools: one pool of every cluster. Without groups: one group that
 * serves everyone with the clusters' own namespaces. */
static enum gw_err implicit_parts(struct router *r, char **namespaces)
{
	if (r->npools == 0 && r->nclusters) {
		free(r->pools);
		r->pools = calloc(1, sizeof(*r->pools));
		r->npools = 1;
		r->pools->name = strdup("default");
		r->pools->members = calloc(r->nclusters, sizeof(*r->pools->members));
		for (size_t i = 0; i < r->nclusters; i++)
			r->pools->members[i] = (struct router_member){.cluster = i, .weight = 1};
		r->pools->nmembers = r->nclusters;
		r->pools->defaults = json_object();
		r->pools->images = json_object();
		r->pools->driver_priority_class = strdup("sparkgw-driver");
		r->pools->executor_priority_class = strdup("sparkgw-executor");
	}
	if (r->ngroups == 0 && r->nclusters) {
		free(r->groups);
		r->groups = calloc(1, sizeof(*r->groups));
		r->ngroups = 1;
		r->groups->name = strdup("default");
		r->groups->selector_text = strdup("");
		gw_selector_parse("", &r->groups->selector, NULL);
		r->groups->namespaces = calloc(r->nclusters, sizeof(*r->groups->namespaces));
		for (size_t i = 0; i < r->nclusters; i++) {
			bool seen = false;

			for (size_t j = 0; j < r->groups->nnamespaces; j++)
				seen = seen || !strcmp(r->groups->namespaces[j].name, namespaces[i]);
			if (seen)
				continue;
			r->groups->namespaces[r->groups->nnamespaces++] = (struct router_namespace){
				.name = strdup(namespaces[i]), .max_pods = DEFAULT_MAX_PODS,
				.overrides = json_object()};
		}
	}
	if (r->default_pool < 0 && r->npools == 1)
		r->default_pool = 0;
	return GW_OK;
}

enum gw_err router_load(json_t *doc, const json_t *marks, const char *path,
			struct router **out, char *err)
{
	struct loader ld = {.marks = marks, .path = path, .err = err};
	struct router *r = calloc(1, sizeof(*r));
	json_t *clusters = json_object_get(doc, "clusters"), *pools = json_object_get(doc, "pools");
	json_t *groups = json_object_get(doc, "namespaceGroups"), *routing = json_object_get(doc, "routing");
	json_t *teams = json_object_get(doc, "teams"), *priorities = json_object_get(doc, "priorities");
	static const char *const levels[] = {"critical", "high", "normal", "low"};
	char **namespaces = NULL;
	enum gw_err rc = GW_OK;

	*out = NULL;
	if (!r)
		return GW_ENOMEM;
	atomic_init(&r->refs, 1);
	r->default_pool = -1;
	for (size_t i = 0; i < 4; i++)
		r->priorities[r->npriorities++] = strdup(levels[i]);
	r->default_priority = 2;
	if ((teams && (rc = parse_teams(&ld, r, teams))) ||
	    (priorities && (rc = parse_priorities(&ld, r, priorities))))
		goto out;
	if ((clusters && !json_is_array(clusters)) || (pools && !json_is_array(pools)) ||
	    (groups && !json_is_array(groups))) {
		rc = fail(&ld, clusters && !json_is_array(clusters) ? "clusters"
			       : pools && !json_is_array(pools) ? "pools" : "namespaceGroups",
			  "clusters, pools and namespaceGroups must be lists");
		goto out;
	}
	r->clusters = calloc(json_array_size(clusters) + 1, sizeof(*r->clusters));
	namespaces = calloc(json_array_size(clusters) + 1, sizeof(*namespaces));
	for (size_t i = 0; i < json_array_size(clusters); i++) {
		char at[64];

		snprintf(at, sizeof(at), "clusters[%zu]", i);
		r->nclusters = i + 1;
		if ((rc = parse_cluster(&ld, json_array_get(clusters, i), at, &r->clusters[i], &namespaces[i])))
			goto out;
		for (size_t j = 0; j < i; j++)
			if (!strcmp(r->clusters[j].name, r->clusters[i].name)) {
				rc = fail(&ld, at, "cluster names must be unique: '%s' again", r->clusters[i].name);
				goto out;
			}
	}
	r->pools = calloc(json_array_size(pools) + 1, sizeof(*r->pools));
	for (size_t i = 0; i < json_array_size(pools); i++) {
		char at[64];

		snprintf(at, sizeof(at), "pools[%zu]", i);
		r->npools = i + 1;
		if ((rc = parse_pool(&ld, r, json_array_get(pools, i), at, &r->pools[i])))
			goto out;
		if (pool_index(r, r->pools[i].name) != (long)i) {
			rc = fail(&ld, at, "pool names must be unique: '%s' again", r->pools[i].name);
			goto out;
		}
	}
	r->groups = calloc(json_array_size(groups) + 1, sizeof(*r->groups));
	for (size_t i = 0; i < json_array_size(groups); i++) {
		char at[64];

		snprintf(at, sizeof(at), "namespaceGroups[%zu]", i);
		r->ngroups = i + 1;
		if ((rc = parse_group(&ld, json_array_get(groups, i), at, &r->groups[i])))
			goto out;
		if (group_index(r, r->groups[i].name) != (long)i) {
			rc = fail(&ld, at, "namespace group names must be unique: '%s' again", r->groups[i].name);
			goto out;
		}
	}
	if (routing && (rc = parse_routing(&ld, r, routing)))
		goto out;
	if (!r->rules)
		r->rules = calloc(1, sizeof(*r->rules));
	if ((rc = implicit_parts(r, namespaces)))
		goto out;
	for (size_t i = 0; i < r->npools; i++)
		if (r->pools[i].shared && !router_shared_namespace(r, &r->pools[i])) {
			char at[64];

			snprintf(at, sizeof(at), "pools[%zu].sharedServers", i);
			rc = fail(&ld, at, "%s.namespace '%s' is in no namespace group", at, r->pools[i].shared->namespace);
			goto out;
		}
out:
	for (size_t i = 0; namespaces && i < json_array_size(clusters); i++)
		free(namespaces[i]);
	free(namespaces);
	if (rc) {
		router_free(r);
		return rc;
	}
	*out = r;
	return GW_OK;
}

const struct router_namespace *router_shared_namespace(const struct router *r, const struct router_pool *pool)
{
	for (size_t g = 0; pool->shared && g < r->ngroups; g++)
		for (size_t n = 0; n < r->groups[g].nnamespaces; n++)
			if (!strcmp(r->groups[g].namespaces[n].name, pool->shared->namespace))
				return &r->groups[g].namespaces[n];
	return NULL;
}

struct router *router_ref(struct router *r)
{
	atomic_fetch_add(&r->refs, 1);
	return r;
}

void router_unref(struct router *r)
{
	if (r && atomic_fetch_sub(&r->refs, 1) == 1)
		router_free(r);
}

struct router_holder {
	pthread_mutex_t lock; /* guards current */
	struct router *current;
};

struct router_holder *router_holder_new(struct router *r)
{
	struct router_holder *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	pthread_mutex_init(&h->lock, NULL);
	h->current = r;
	return h;
}

void router_holder_free(struct router_holder *h)
{
	if (!h)
		return;
	router_unref(h->current);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

struct router *router_holder_get(struct router_holder *h)
{
	struct router *r;

	pthread_mutex_lock(&h->lock);
	r = router_ref(h->current);
	pthread_mutex_unlock(&h->lock);
	return r;
}

void router_holder_swap(struct router_holder *h, struct router *r)
{
	struct router *old;

	pthread_mutex_lock(&h->lock);
	old = h->current;
	h->current = r;
	pthread_mutex_unlock(&h->lock);
	router_unref(old);
}
