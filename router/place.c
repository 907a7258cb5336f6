/* Placement: labels -> rule -> pool -> namespace group; then, with live
 * state, a weighted choice among usable clusters that have room, the
 * namespace with the most headroom, and the node role. Then the Spark conf
 * by layers: pool defaults < cluster defaults < user < cluster overrides <
 * namespace overrides. */
#include <fnmatch.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/quantity.h"
#include "router/router.h"

#define MIN_OVERHEAD (384LL << 20)

static const char *const protected_prefixes[] = {
	"spark.master",
	"spark.submit.deployMode",
	"spark.kubernetes.namespace",
	"spark.kubernetes.context",
	"spark.kubernetes.authenticate.",
	"spark.kubernetes.driver.pod.name",
	"spark.kubernetes.executor.podNamePrefix",
	"spark.kubernetes.driver.podTemplateFile",
	"spark.kubernetes.executor.podTemplateFile",
	"spark.kubernetes.driver.podTemplateContainerName",
	"spark.kubernetes.executor.podTemplateContainerName",
	"spark.kubernetes.driver.volumes.hostPath.",
	"spark.kubernetes.executor.volumes.hostPath.",
	"spark.kubernetes.driver.label.sparkgw/",
	"spark.kubernetes.executor.label.sparkgw/",
	"spark.kubernetes.node.selector.",
	"spark.kubernetes.driver.node.selector.",
	"spark.kubernetes.executor.node.selector.",
	"spark.kubernetes.driver.scheduler.name",
	"spark.kubernetes.executor.scheduler.name",
	"spark.kubernetes.scheduler.name",
	/* Which API server the driver talks to, and code that rewrites pods. */
	"spark.kubernetes.driver.master",
	"spark.kubernetes.driver.pod.featureSteps",
	"spark.kubernetes.executor.pod.featureSteps",
	"spark.app.id",
	NULL,
};

const char *router_protected_key(const char *key)
{
	for (const char *const *p = protected_prefixes; *p; p++) {
		size_t n = strlen(*p);

		if (!strncmp(key, *p, n) && ((*p)[n - 1] == '.' || (*p)[n - 1] == '/' || key[n] == '\0'))
			return *p;
	}
	return NULL;
}

/* Whether key matches one of the patterns (shell globs: spark.sql.*). */
static bool conf_listed(const json_t *patterns, const char *key)
{
	size_t i;
	json_t *p;

	json_array_foreach(patterns, i, p)
		if (fnmatch(json_string_value(p), key, 0) == 0)
			return true;
	return false;
}

void router_decision_release(struct router_decision *d)
{
	json_decref(d->reasons);
	json_decref(d->conf);
	memset(d, 0, sizeof(*d));
}

const struct router_batch_scheduler *router_batch_scheduler(const struct router_decision *d)
{
	if (d->cluster && d->cluster->batch.name)
		return &d->cluster->batch;
	return d->pool && d->pool->batch.name ? &d->pool->batch : NULL;
}

static void reason(json_t *reasons, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reason(json_t *reasons, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_array_append_new(reasons, json_string(text));
}

static void add_error(json_t *errors, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void add_error(json_t *errors, const char *field, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	json_array_append_new(errors, json_pack("{s:s, s:s}", "field", field, "message", text));
}

static long long jint(const json_t *v, long long def)
{
	return json_is_integer(v) ? (long long)json_integer_value(v) : def;
}

struct pod_size {
	double cores;
	int64_t memory;
	int gpus;
};

/* A driver or executor pod as Kubernetes will see it: heap plus overhead. */
static struct pod_size pod_size(const json_t *pod)
{
	struct pod_size s = {.cores = (double)jint(json_object_get(pod, "cores"), 1)};
	int64_t heap = 1LL << 30, overhead = 0;
	const char *mem = json_string_value(json_object_get(pod, "memory"));
	const char *extra = json_string_value(json_object_get(pod, "memoryOverhead"));

	if (mem)
		gw_spark_memory_parse(mem, &heap);
	if (!extra || gw_spark_memory_parse(extra, &overhead))
		overhead = heap / 10 > MIN_OVERHEAD ? heap / 10 : MIN_OVERHEAD;
	s.memory = heap + overhead;
	s.gpus = (int)jint(json_object_get(json_object_get(pod, "gpu"), "quantity"), 0);
	return s;
}

static unsigned executor_count(const json_t *spec)
{
	const json_t *da = json_object_get(spec, "dynamicAllocation");
	long long n = jint(json_object_get(json_object_get(spec, "executor"), "instances"), 2);

	if (json_is_true(json_object_get(da, "enabled"))) {
		long long lo = jint(json_object_get(da, "minExecutors"), 0);
		long long init = jint(json_object_get(da, "initialExecutors"), lo);

		n = init > lo ? init : lo;
	}
	return (unsigned)n;
}

static bool wants_gpu(const json_t *labels, const json_t *spec)
{
	const char *acc = json_string_value(json_object_get(labels, "accelerator"));

	return (acc && !strcmp(acc, "gpu")) ||
	       json_object_get(json_object_get(spec, "driver"), "gpu") ||
	       json_object_get(json_object_get(spec, "executor"), "gpu");
}

static bool fits(const struct router_node_role *role, struct pod_size s)
{
	return s.cores <= role->max_cores + 1e-9 && s.memory <= role->max_memory &&
	       s.gpus <= role->max_gpus;
}

/* The node role of c for this job: GPU jobs on GPU roles only, others
 * never there; the pool's preferred role first. NULL if none fits. */
static const struct router_node_role *pick_role(const struct router_cluster *c,
						const struct router_pool *pool, bool gpu,
						struct pod_size driver, struct pod_size exec)
{
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < c->nroles; i++) {
			const struct router_node_role *r = &c->roles[i];

			if ((r->max_gpus > 0) != gpu)
				continue;
			if (pass == 0 && (gpu || !pool->default_role || strcmp(pool->default_role, r->name)))
				continue;
			if (fits(r, driver) && fits(r, exec))
				return r;
		}
	return NULL;
}

static void explain_limits(const struct router *r, const struct router_pool *pool, bool gpu,
			   struct pod_size driver, struct pod_size exec, json_t *errors)
{
	const struct router_node_role *best = NULL;

	for (size_t m = 0; m < pool->nmembers; m++) {
		const struct router_cluster *c = &r->clusters[pool->members[m].cluster];

		for (size_t i = 0; i < c->nroles; i++)
			if ((c->roles[i].max_gpus > 0) == gpu &&
			    (!best || c->roles[i].max_cores > best->max_cores ||
			     c->roles[i].max_memory > best->max_memory))
				best = &c->roles[i];
	}
	if (!best) {
		add_error(errors, gpu ? "labels[accelerator]" : "spec",
			  "pool %s has no node role for %s jobs", pool->name, gpu ? "GPU" : "CPU");
		return;
	}
	for (int which = 0; which < 2; which++) {
		struct pod_size s = which ? exec : driver;
		const char *field = which ? "spec.executor" : "spec.driver";

		if (s.cores > best->max_cores + 1e-9)
			add_error(errors, field, "asks %.0f cores; node role %s allows at most %.0f",
				  s.cores, best->name, best->max_cores);
		if (s.memory > best->max_memory)
			add_error(errors, field, "asks %lld MiB with overhead; node role %s allows at most %lld MiB",
				  (long long)(s.memory >> 20), best->name, (long long)(best->max_memory >> 20));
		if (s.gpus > best->max_gpus)
			add_error(errors, field, "asks %d GPUs; node role %s allows at most %d",
				  s.gpus, best->name, best->max_gpus);
	}
}

static const char *label_text(const json_t *labels, char *out, size_t len)
{
	const char *key;
	json_t *v;
	size_t n = 0;

	out[0] = '\0';
	json_object_foreach((json_t *)(uintptr_t)labels, key, v)
		n += (size_t)snprintf(out + n, n < len ? len - n : 0, "%s%s=%s", n ? "," : "", key,
				      json_string_value(v));
	return *out ? out : "(none)";
}

/* Headroom left in ns after the job, as the smallest remaining fraction
 * over the limits that are set; negative if it does not fit. */
static double headroom(const struct router_namespace *ns, const struct router_usage *u,
		       const struct router_demand *d)
{
	double h = 1.0 - (double)(u->pods + d->pods) / (double)(ns->max_pods ? ns->max_pods : 1);

	if (ns->quota_cores > 0) {
		double c = 1.0 - (u->cores + d->cores) / ns->quota_cores;

		h = c < h ? c : h;
	}
	if (ns->quota_memory > 0) {
		double m = 1.0 - (double)(u->memory + d->memory) / (double)ns->quota_memory;

		h = m < h ? m : h;
	}
	if (ns->quota_gpus > 0) {
		double g = 1.0 - (double)(u->gpus + d->gpus) / ns->quota_gpus;

		h = g < h ? g : h;
	} else if (d->gpus > 0 && ns->quota_gpus == 0) {
		/* No GPU quota means no limit set, not a ban. */
	}
	return h;
}

bool router_namespace_fits(const struct router_namespace *ns, const struct router_usage *u,
			   const struct router_demand *d)
{
	return headroom(ns, u, d) >= -1e-9; /* sums of fractional cores */
}

static void layer(json_t *conf, const json_t *values, const char *source)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)(uintptr_t)values, key, v)
		json_object_set_new(conf, key, json_pack("{s:O, s:s}", "value", v, "source", source));
}

/* The user's layer: sparkConf, then the spec's resource fields, which
 * name the same properties (the Spark operator lets the fields win too). */
static json_t *user_layer(const json_t *spec)
{
	static const struct {
		const char *pod, *field, *key;
	} fields[] = {
		{"driver", "cores", "spark.driver.cores"},
		{"driver", "memory", "spark.driver.memory"},
		{"driver", "memoryOverhead", "spark.driver.memoryOverhead"},
		{"executor", "instances", "spark.executor.instances"},
		{"executor", "cores", "spark.executor.cores"},
		{"executor", "memory", "spark.executor.memory"},
		{"executor", "memoryOverhead", "spark.executor.memoryOverhead"},
	};
	json_t *user = json_deep_copy(json_object_get(spec, "sparkConf"));

	if (!user)
		user = json_object();
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		const json_t *v = json_object_get(json_object_get(spec, fields[i].pod), fields[i].field);
		char text[32];

		if (json_is_integer(v)) {
			snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
			json_object_set_new(user, fields[i].key, json_string(text));
		} else if (json_is_string(v)) {
			json_object_set(user, fields[i].key, (json_t *)(uintptr_t)v);
		}
	}
	return user;
}

static json_t *compose(const struct router_pool *pool, const struct router_cluster *c,
		       const struct router_namespace *ns, const json_t *spec)
{
	json_t *conf = json_object(), *user = user_layer(spec);
	char src[160];

	snprintf(src, sizeof(src), "pool:%s", pool->name);
	layer(conf, pool->defaults, src);
	if (c) {
		snprintf(src, sizeof(src), "cluster:%s", c->name);
		layer(conf, c->defaults, src);
	}
	layer(conf, user, "user");
	json_decref(user);
	if (c) {
		snprintf(src, sizeof(src), "cluster-override:%s", c->name);
		layer(conf, c->overrides, src);
	}
	if (ns) {
		snprintf(src, sizeof(src), "namespace-override:%s", ns->name);
		layer(conf, ns->overrides, src);
	}
	return conf;
}

static double gib(int64_t bytes)
{
	return (double)bytes / (double)(1LL << 30);
}

/* Why the role's nodes could never hold the job, as they are: each pod on
 * one node, all of them at once. False (why set) when they could not. */
static bool holds_ever(const struct router_capacity *cap, const char *role, struct pod_size driver,
		       struct pod_size exec, unsigned nexec, const struct router_demand *d, char *why, size_t len)
{
	const struct router_usage *big = &cap->largest;

	if (cap->nodes == 0) {
		snprintf(why, len, "node role %s has no Ready, schedulable node", role);
		return false;
	}
	for (int which = 0; which < 2; which++) {
		struct pod_size s = which ? exec : driver;
		const char *pod = which ? "an executor" : "the driver";

		if (which && nexec == 0)
			break;
		if (s.cores > big->cores + 1e-9 || s.memory > big->memory || s.gpus > big->gpus) {
			snprintf(why, len, "%s needs %g cores, %.1f GiB and %d GPUs; the largest node of role %s has"
				 " %g cores, %.1f GiB and %d GPUs", pod, s.cores, gib(s.memory), s.gpus, role, big->cores,
				 gib(big->memory), big->gpus);
			return false;
		}
	}
	if (d->cores > cap->total.cores + 1e-9 || d->memory > cap->total.memory || d->gpus > cap->total.gpus ||
	    d->pods > cap->total.pods) {
		snprintf(why, len, "the job needs %g cores, %.1f GiB and %d GPUs at once; the %u nodes of role %s"
			 " have %g cores, %.1f GiB and %d GPUs", d->cores, gib(d->memory), d->gpus, cap->nodes, role,
			 cap->total.cores, gib(cap->total.memory), cap->total.gpus);
		return false;
	}
	return true;
}

/* Whether what is free on the role's nodes holds the job now; why says
 * what is short when not. */
static bool holds_now(const struct router_capacity *cap, const char *role, const struct router_demand *d,
		      char *why, size_t len)
{
	if (d->cores <= cap->free.cores + 1e-9 && d->memory <= cap->free.memory && d->gpus <= cap->free.gpus &&
	    d->pods <= cap->free.pods)
		return true;
	snprintf(why, len, "node role %s has %g of %g cores, %.1f of %.1f GiB and %d of %d GPUs free; the job needs"
		 " %g cores, %.1f GiB and %d GPUs", role, cap->free.cores, cap->total.cores, gib(cap->free.memory),
		 gib(cap->total.memory), cap->free.gpus, cap->total.gpus, d->cores, gib(d->memory), d->gpus);
	return false;
}

static uint64_t hash_key(const char *key)
{
	uint64_t h = 1469598103934665603ULL;

	for (const char *p = key; p && *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h;
}

/* Spark properties the gateway decides, which no job may set. */
static void check_protected_conf(const json_t *user, json_t *errors)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)(uintptr_t)user, key, v) {
		const char *which = router_protected_key(key);
		char field[300];

		snprintf(field, sizeof(field), "spec.sparkConf[%s]", key);
		if (which)
			add_error(errors, field, "may not be set by a job (the gateway decides %s)", which);
	}
}

/* Spark properties the pool denies, or does not allow. */
static void check_pool_conf(const json_t *user, const struct router_pool *pool, json_t *errors)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)(uintptr_t)user, key, v) {
		char field[300];

		snprintf(field, sizeof(field), "spec.sparkConf[%s]", key);
		if (conf_listed(pool->conf_deny, key))
			add_error(errors, field, "pool %s does not take this property", pool->name);
		else if (json_array_size(pool->conf_allow) && !conf_listed(pool->conf_allow, key))
			add_error(errors, field, "pool %s takes only the properties it allows", pool->name);
	}
}

/* The pool of the first rule the labels match, else the default pool. */
static const struct router_pool *choose_pool(const struct router *r, const json_t *labels,
					     const struct router_rule **rule, json_t *reasons, json_t *errors)
{
	char text[512];

	*rule = NULL;
	for (size_t i = 0; i < r->nrules && !*rule; i++)
		if (gw_selector_matches(r->rules[i].selector, labels))
			*rule = &r->rules[i];
	if (*rule) {
		reason(reasons, "labels match rule %zu (%s): pool %s", (size_t)(*rule - r->rules) + 1, (*rule)->text,
		       r->pools[(*rule)->pool].name);
		return &r->pools[(*rule)->pool];
	}
	if (r->default_pool >= 0) {
		reason(reasons, "no rule matches: default pool %s", r->pools[r->default_pool].name);
		return &r->pools[r->default_pool];
	}
	add_error(errors, "labels", "no routing rule matches labels %s and there is no default pool",
		  label_text(labels, text, sizeof(text)));
	return NULL;
}

void router_refusals(const struct router *r, const json_t *labels, const json_t *spec, json_t *errors)
{
	const json_t *user = json_object_get(spec, "sparkConf");
	const struct router_rule *rule;
	const struct router_pool *pool;
	json_t *reasons = json_array();

	check_protected_conf(user, errors);
	if ((pool = choose_pool(r, labels, &rule, reasons, errors)))
		check_pool_conf(user, pool, errors);
	json_decref(reasons);
}

/* The rule's namespace group, else the first whose selector the labels match. */
static const struct router_group *choose_group(const struct router *r, const struct router_rule *rule,
					       const json_t *labels, json_t *reasons, json_t *errors)
{
	const struct router_group *group = rule && rule->group >= 0 ? &r->groups[rule->group] : NULL;
	char text[512];

	for (size_t i = 0; i < r->ngroups && !group; i++)
		if (gw_selector_matches(r->groups[i].selector, labels))
			group = &r->groups[i];
	if (!group) {
		add_error(errors, "labels", "no namespace group serves labels %s", label_text(labels, text, sizeof(text)));
		return NULL;
	}
	reason(reasons, "namespace group %s%s%s", group->name,
	       rule && rule->group >= 0 ? " (named by the rule)" : *group->selector_text ? " serves " : "",
	       rule && rule->group >= 0 ? "" : group->selector_text);
	return group;
}

/* Whether an empty namespace of the group would hold the job; an error
 * naming the widest when none would. */
static bool fits_a_namespace(const struct router_group *group, const struct router_demand *demand, json_t *errors)
{
	const struct router_usage empty = {0};
	const struct router_namespace *widest = NULL;
	double best = -1e300;
	char quota[160] = "";

	for (size_t n = 0; n < group->nnamespaces; n++) {
		double room = headroom(&group->namespaces[n], &empty, demand);

		if (room > best) {
			best = room;
			widest = &group->namespaces[n];
		}
	}
	if (!widest || best >= -1e-9)
		return true;
	if (widest->quota_cores > 0 || widest->quota_memory > 0 || widest->quota_gpus > 0)
		snprintf(quota, sizeof(quota), " and a quota of %g cores, %.1f GiB, %d GPUs", widest->quota_cores,
			 gib(widest->quota_memory), widest->quota_gpus);
	add_error(errors, "spec",
		  "the job needs %u pods, %g cores, %.1f GiB and %d GPUs at once; the largest namespace"
		  " of group %s, %s, has room for %u pods%s", demand->pods, demand->cores, gib(demand->memory),
		  demand->gpus, group->name, widest->name, widest->max_pods, quota);
	return false;
}

#define MAX_CANDIDATES 64

/* One placement under way: the job's shape and the clusters of its pool
 * that could take it. */
struct placing {
	const struct router *r;
	const struct router_live *live;
	const struct router_pin *pin;
	const struct router_pool *pool;
	const struct router_group *group;
	struct pod_size driver, exec;
	unsigned nexec;
	bool gpu;
	bool sql; /* runs Spark's SQL CLI, which spark-submit refuses in cluster mode */
	const struct router_namespace *shared_ns; /* where its shared server runs, for a shared job */
	struct router_decision *out;
	struct {
		size_t member;
		const struct router_node_role *role;
		const struct router_namespace *ns;
		double room;
		unsigned weight;
	} cand[MAX_CANDIDATES];
	size_t ncand, never, considered;
	unsigned total;
	char skipped[1024];       /* each cluster skipped, and why */
	char largest_place[512];  /* the largest node role seen, for a job too big */
	double largest_cores;
};

/* The namespace of the group with the most room left after the job on
 * cluster c; NULL with why when none has room. */
static const struct router_namespace *roomiest(const struct placing *pl, const struct router_cluster *c,
					       double *best_room, char *why, size_t len)
{
	const struct router_namespace *best = NULL;

	*best_room = -1;
	for (size_t n = 0; n < pl->group->nnamespaces; n++) {
		struct router_usage u = {0};
		double room;

		if (pl->live && pl->live->usage)
			pl->live->usage(pl->live->arg, c->name, pl->group->namespaces[n].name, &u);
		room = headroom(&pl->group->namespaces[n], &u, &pl->out->demand);
		if (room >= 0 && room > *best_room) {
			*best_room = room;
			best = &pl->group->namespaces[n];
		}
	}
	if (!best)
		snprintf(why, len, "no namespace of group %s has room", pl->group->name);
	return best;
}

/* Cluster member m of the pool: a candidate, or skipped with the reason
 * (counted as never when it could never hold the job). */
static void consider(struct placing *pl, size_t m)
{
	const struct router_live *live = pl->live;
	const struct router_cluster *c = &pl->r->clusters[pl->pool->members[m].cluster];
	const struct router_node_role *role = pick_role(c, pl->pool, pl->gpu, pl->driver, pl->exec);
	const struct router_namespace *best = NULL;
	double best_room = -1;
	char why[256] = "";
	struct router_capacity cap;
	bool nodes_known = !pl->pin && role && live && live->capacity && live->capacity(live->arg, c->name, role, &cap);

	if (pl->pin && strcmp(pl->pin->cluster, c->name))
		return; /* not where the job was placed before */
	pl->considered++;
	if (nodes_known && cap.total.cores > pl->largest_cores) {
		pl->largest_cores = cap.total.cores;
		snprintf(pl->largest_place, sizeof(pl->largest_place),
			 "cluster %s, node role %s: %g cores, %.1f GiB and %d GPUs on %u nodes (the largest"
			 " %g cores, %.1f GiB, %d GPUs)", c->name, role->name, cap.total.cores, gib(cap.total.memory),
			 cap.total.gpus, cap.nodes, cap.largest.cores, gib(cap.largest.memory), cap.largest.gpus);
	}
	if (pl->shared_ns) {
		/* A statement on a server already there: only rotation counts. */
		if (!pl->pin && live && live->usable && !live->usable(live->arg, c->name, why, sizeof(why)))
			best = NULL;
		else
			best = pl->shared_ns;
		best_room = 0;
	} else if (pl->sql && c->mode == ROUTER_SPARK_OPERATOR) {
		snprintf(why, sizeof(why), "its Spark operator submits in cluster mode, where Spark's SQL CLI does"
			 " not run (type SQL needs a driver-pod cluster)");
		pl->never++;
	} else if (!role) {
		snprintf(why, sizeof(why), "no node role fits");
		pl->never++;
	} else if (nodes_known && !holds_ever(&cap, role->name, pl->driver, pl->exec, pl->nexec, &pl->out->demand,
					      why, sizeof(why))) {
		pl->never++;
	} else if (pl->pin) {
		/* Placed before: it goes back there, whatever the state now. */
		for (size_t n = 0; n < pl->group->nnamespaces && !best; n++)
			if (!strcmp(pl->group->namespaces[n].name, pl->pin->namespace))
				best = &pl->group->namespaces[n];
		best_room = 0;
		if (!best)
			snprintf(why, sizeof(why), "namespace %s is no longer in group %s", pl->pin->namespace,
				 pl->group->name);
	} else if (live && live->usable && !live->usable(live->arg, c->name, why, sizeof(why))) {
		/* why says it */
	} else if (nodes_known && live->usage && !holds_now(&cap, role->name, &pl->out->demand, why, sizeof(why))) {
		/* why says it: the job waits for room */
	} else {
		best = roomiest(pl, c, &best_room, why, sizeof(why));
	}
	if (!best) {
		reason(pl->out->reasons, "cluster %s skipped: %s", c->name, why);
		snprintf(pl->skipped + strlen(pl->skipped), sizeof(pl->skipped) - strlen(pl->skipped), "%s%s: %s",
			 *pl->skipped ? "; " : "", c->name, why);
		return;
	}
	pl->cand[pl->ncand].member = m;
	pl->cand[pl->ncand].role = role;
	pl->cand[pl->ncand].ns = best;
	pl->cand[pl->ncand].room = best_room;
	pl->cand[pl->ncand].weight = live && live->weight ? live->weight(live->arg, c->name, pl->pool->members[m].weight)
							  : pl->pool->members[m].weight;
	pl->total += pl->cand[pl->ncand].weight;
	pl->ncand++;
}

/* A candidate by weight, the same one for the same job key. */
static void pick_weighted(struct placing *pl, const char *job_key)
{
	struct router_decision *out = pl->out;
	uint64_t pick = hash_key(job_key) % pl->total;
	size_t i = 0;

	while (pick >= pl->cand[i].weight) {
		pick -= pl->cand[i].weight;
		i++;
	}
	out->cluster = &pl->r->clusters[pl->pool->members[pl->cand[i].member].cluster];
	out->ns = pl->cand[i].ns;
	out->role = pl->cand[i].role;
	reason(out->reasons, "cluster %s: weight %u of %u among %zu usable", out->cluster->name, pl->cand[i].weight,
	       pl->total, pl->ncand);
	if (pl->shared_ns) {
		reason(out->reasons, "namespace %s: the pool's shared servers run there", out->ns->name);
		return;
	}
	reason(out->reasons, "namespace %s: most room (%.0f%% left after this job)", out->ns->name,
	       pl->cand[i].room * 100);
	reason(out->reasons, "node role %s%s", out->role->name, pl->gpu ? " (GPU)" : "");
}

/* What a job needs that a shared server cannot give it; NULL if nothing. */
static const char *needs_isolation(const struct placing *pl, const json_t *spec)
{
	if (json_object_get(spec, "image"))
		return "an image of its own";
	if (json_object_get(spec, "deps"))
		return "dependencies of its own";
	if (json_object_get(spec, "hadoopConf"))
		return "a Hadoop configuration of its own";
	return pl->gpu ? "GPUs" : NULL;
}

/* Shared or dedicated, and why (out->execution). False with errors when
 * the labels ask for what cannot be. */
static bool choose_execution(struct placing *pl, const json_t *labels, const json_t *spec, json_t *errors)
{
	const struct router_shared *sh = pl->pool->shared;
	struct router_decision *out = pl->out;
	const char *asked = json_string_value(json_object_get(labels, "execution"));
	const char *sql = json_string_value(json_object_get(spec, "sql")), *own = needs_isolation(pl, spec);
	double exec_cores = pl->nexec * pl->exec.cores;
	char kind[200] = "";

	if (asked && strcmp(asked, "shared") && strcmp(asked, "dedicated")) {
		add_error(errors, "labels.execution", "execution is shared or dedicated, not '%s'", asked);
		return false;
	}
	if (pl->sql && sql && router_sql_classify(sql, strlen(sql), kind, sizeof(kind)) == ROUTER_SQL_DDL)
		out->shared = true;
	if (!sh) {
		out->shared = false;
		snprintf(out->execution, sizeof(out->execution), "dedicated: pool %s declares no shared servers",
			 pl->pool->name);
	} else if (asked && !strcmp(asked, "dedicated")) {
		out->shared = false;
		snprintf(out->execution, sizeof(out->execution), "dedicated: label execution=dedicated");
	} else if (!pl->sql || !sql) {
		if (asked) {
			add_error(errors, "labels.execution", "shared servers run SQL statements: execution=shared needs"
				  " spec.type SQL with the statements in spec.sql");
			return false;
		}
		snprintf(out->execution, sizeof(out->execution), "dedicated: not SQL with its statements in spec.sql");
	} else if (own) {
		out->shared = false;
		snprintf(out->execution, sizeof(out->execution), "dedicated: it needs %s, which a shared server"
			 " does not give", own);
	} else if (asked) {
		out->shared = true;
		snprintf(out->execution, sizeof(out->execution), "shared: label execution=shared");
	} else if (out->shared) {
		snprintf(out->execution, sizeof(out->execution), "shared: %s", kind);
	} else if (sh->selector && gw_selector_matches(sh->selector, labels)) {
		out->shared = exec_cores <= sh->max_executor_cores;
		snprintf(out->execution, sizeof(out->execution), "%s: labels match %s and it asks for %g executor"
			 " cores (%s %g)", out->shared ? "shared" : "dedicated", sh->selector_text, exec_cores,
			 out->shared ? "at most" : "more than", sh->max_executor_cores);
	} else {
		snprintf(out->execution, sizeof(out->execution), "dedicated: %s", kind);
	}
	if (out->shared)
		pl->shared_ns = router_shared_namespace(pl->r, pl->pool);
	if (sh) /* a choice only where the pool has shared servers */
		reason(out->reasons, "execution %s", out->execution);
	return true;
}

/* Whether any cluster of the pool has a node role for the job's pods. */
static bool any_role_fits(const struct placing *pl)
{
	for (size_t m = 0; m < pl->pool->nmembers; m++)
		if (pick_role(&pl->r->clusters[pl->pool->members[m].cluster], pl->pool, pl->gpu, pl->driver, pl->exec))
			return true;
	return false;
}

enum router_result router_place(const struct router *r, const struct router_live *live,
				const struct router_pin *pin,
				const json_t *labels, const json_t *spec, const char *job_key,
				struct router_decision *out, json_t **errors, char *detail)
{
	const json_t *user = json_object_get(spec, "sparkConf");
	const struct router_rule *rule;
	struct placing place = {.r = r, .live = live, .pin = pin, .out = out, .largest_cores = -1,
			       .driver = pod_size(json_object_get(spec, "driver")),
			       .exec = pod_size(json_object_get(spec, "executor")),
			       .nexec = executor_count(spec), .gpu = wants_gpu(labels, spec),
			       .sql = router_is_sql(spec)};
	struct placing *pl = &place;
	enum router_result result = ROUTER_INVALID;

	memset(out, 0, sizeof(*out));
	*errors = json_array();
	out->reasons = json_array();
	check_protected_conf(user, *errors);
	if (!(pl->pool = choose_pool(r, labels, &rule, out->reasons, *errors)))
		goto invalid;
	check_pool_conf(user, pl->pool, *errors);
	if (json_array_size(*errors) || !(pl->group = choose_group(r, rule, labels, out->reasons, *errors)))
		goto invalid;
	out->pool = pl->pool;
	out->group = pl->group;
	if (!choose_execution(pl, labels, spec, *errors))
		goto invalid;
	if (out->shared) {
		for (size_t m = 0; m < pl->pool->nmembers && pl->ncand < MAX_CANDIDATES; m++)
			consider(pl, m);
		goto pick;
	}
	out->demand = (struct router_demand){
		.pods = 1 + pl->nexec,
		.cores = pl->driver.cores + pl->nexec * pl->exec.cores,
		.memory = pl->driver.memory + (int64_t)pl->nexec * pl->exec.memory,
		.gpus = pl->driver.gpus + (int)pl->nexec * pl->exec.gpus,
	};
	if (!any_role_fits(pl)) {
		explain_limits(r, pl->pool, pl->gpu, pl->driver, pl->exec, *errors);
		goto invalid;
	}
	/* Unless pinned, an empty namespace of the group must hold it. */
	if (json_array_size(*errors) || (!pin && !fits_a_namespace(pl->group, &out->demand, *errors)))
		goto invalid;
	for (size_t m = 0; m < pl->pool->nmembers && pl->ncand < MAX_CANDIDATES; m++)
		consider(pl, m);
	if (pl->ncand == 0 && pl->considered > 0 && pl->never == pl->considered) {
		add_error(*errors, "spec", "no cluster of pool %s could ever hold the job (%s); the largest place it"
			  " could go is %s", pl->pool->name, pl->skipped, *pl->largest_place ? pl->largest_place : "none");
		gw_seterr(detail, "no cluster of pool %s could ever hold the job", pl->pool->name);
		result = ROUTER_TOO_BIG;
		goto refused;
	}
pick:
	if (pl->ncand == 0 || pl->total == 0) {
		gw_seterr(detail, "no cluster of pool %s can take the job now (%s)", pl->pool->name,
			  *pl->skipped ? pl->skipped : "every weight is 0");
		json_decref(*errors);
		*errors = NULL;
		result = ROUTER_WAIT;
		goto refused;
	}
	pick_weighted(pl, job_key);
	out->conf = compose(pl->pool, out->cluster, out->ns, spec);
	json_decref(*errors);
	*errors = NULL;
	return ROUTER_OK;
invalid:
	gw_seterr(detail, "the job cannot be placed: %zu problem%s", json_array_size(*errors),
		  json_array_size(*errors) == 1 ? "" : "s");
refused:
	router_decision_release(out);
	return result;
}
