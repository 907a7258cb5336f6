/* Cluster state, guarded by one mutex; small maps in jansson objects. */
#include "pool/pool.h"

#include "common/quantity.h"
#include "common/timeutil.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A reservation's end, in a min-heap by time: reservations lapse in the
 * order they end without a walk over all of them. An entry whose
 * reservation was released or renewed since is skipped when it comes up. */
struct lapse {
	int64_t until_ms;
	char *cluster, *job;
};

/* The nodes of a cluster a node role selects, with their sums and what is
 * free of them (millicores), kept as our pods bind and go, so that a
 * placement does not match every node's labels and taints again. Built
 * when first asked; dropped when the cluster's nodes or pods are replaced
 * wholesale; rebuilt when the role's selector or tolerations changed (a
 * policy reload). */
struct role_view {
	char *cluster, *role;
	json_t *selector, *tolerations;
	json_t *nodes; /* name -> true */
	unsigned count;
	struct router_usage total, largest;
	json_int_t free[4]; /* pods, millicores, memory, gpus */
};

struct pool {
	pthread_mutex_t lock; /* guards clusters, lapses and views */
	json_t *clusters;     /* name -> state object (below) */
	struct lapse *lapses;
	size_t nlapses, lapses_cap;
	struct role_view *views;
	size_t nviews;
	struct pool_options opts;
};

/* A cluster's state object:
 * {rotation, weight, healthy, good, bad, lastError,
 *  pods: {uid: [ns, cores, memory, gpus, job id or null, node or null]},
 *  usage: {ns: [pods, cores, memory, gpus]},
 *  jobs: {job id: [ns, pods, cores, memory, gpus, and the same four of its
 *         pods bound to nodes]} (what each job's pods hold),
 *  reserved: {job id: [ns, pods, cores, memory, gpus, until_ms, role]},
 *  nodes: {name: [labels, taints, pods, cores, memory, gpus]} or null,
 *  bound: {node: [pods, cores, memory, gpus]} (what our pods hold there),
 *  pending: {ns: [pods, millicores, memory, gpus]},
 *  pendingRole: {role: [pods, millicores, memory, gpus]}}
 * A namespace's usage is what its pods hold plus, for each job reserved
 * there, the part of its demand its pods do not hold yet: executors come
 * seconds after their driver, and until then their room stays taken. A
 * node role's likewise, with what is bound to its nodes. Those parts are
 * kept summed in pending and pendingRole (millicores: sums that go up and
 * down stay exact), so that a placement reads a sum instead of walking
 * every reservation of a burst. */
static json_t *cluster_state(struct pool *p, const char *name)
{
	json_t *c = json_object_get(p->clusters, name);

	if (!c) {
		c = json_pack("{s:i, s:i, s:b, s:i, s:i, s:n, s:{}, s:{}, s:{}, s:{}, s:n, s:{}, s:{}, s:{}}",
			      "rotation", POOL_ACTIVE, "weight", 0, "healthy", 1, "good", 0, "bad", 0, "lastError",
			      "pods", "usage", "jobs", "reserved", "nodes", "bound", "pending", "pendingRole");
		json_object_set_new(p->clusters, name, c);
	}
	return c;
}

static void drop_view(struct pool *p, size_t i)
{
	struct role_view *v = &p->views[i];

	free(v->cluster);
	free(v->role);
	json_decref(v->selector);
	json_decref(v->tolerations);
	json_decref(v->nodes);
	p->views[i] = p->views[--p->nviews];
}

/* The cluster's nodes or pods were replaced: its views are rebuilt when
 * next asked. */
static void drop_views(struct pool *p, const char *cluster)
{
	for (size_t i = p->nviews; i-- > 0;)
		if (!strcmp(p->views[i].cluster, cluster))
			drop_view(p, i);
}

struct pool *pool_new(const struct pool_options *opts)
{
	struct pool *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	p->clusters = json_object();
	p->opts.unhealthy_after = opts && opts->unhealthy_after ? opts->unhealthy_after : 3;
	p->opts.healthy_after = opts && opts->healthy_after ? opts->healthy_after : 2;
	return p;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	json_decref(p->clusters);
	for (size_t i = 0; i < p->nlapses; i++) {
		free(p->lapses[i].cluster);
		free(p->lapses[i].job);
	}
	free(p->lapses);
	while (p->nviews)
		drop_view(p, p->nviews - 1);
	free(p->views);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

static const char *const rotation_names[] = {"active", "cordoned", "draining"};

const char *pool_rotation_name(enum pool_rotation r)
{
	return (unsigned)r < 3 ? rotation_names[r] : "unknown";
}

int pool_rotation_parse(const char *name)
{
	for (int i = 0; i < 3; i++)
		if (!strcmp(name, rotation_names[i]))
			return i;
	return -1;
}

void pool_set_rotation(struct pool *p, const char *cluster, enum pool_rotation r)
{
	pthread_mutex_lock(&p->lock);
	json_object_set_new(cluster_state(p, cluster), "rotation", json_integer(r));
	pthread_mutex_unlock(&p->lock);
}

void pool_set_weight(struct pool *p, const char *cluster, unsigned weight)
{
	pthread_mutex_lock(&p->lock);
	json_object_set_new(cluster_state(p, cluster), "weight", json_integer(weight));
	pthread_mutex_unlock(&p->lock);
}

enum pool_rotation pool_rotation_of(struct pool *p, const char *cluster)
{
	enum pool_rotation r;

	pthread_mutex_lock(&p->lock);
	r = (enum pool_rotation)json_integer_value(json_object_get(cluster_state(p, cluster), "rotation"));
	pthread_mutex_unlock(&p->lock);
	return r;
}

void pool_report(struct pool *p, const char *cluster, bool ok, const char *detail)
{
	json_t *c;
	json_int_t good, bad;

	pthread_mutex_lock(&p->lock);
	c = cluster_state(p, cluster);
	good = ok ? json_integer_value(json_object_get(c, "good")) + 1 : 0;
	bad = ok ? 0 : json_integer_value(json_object_get(c, "bad")) + 1;
	json_object_set_new(c, "good", json_integer(good));
	json_object_set_new(c, "bad", json_integer(bad));
	if (!ok)
		json_object_set_new(c, "lastError", json_string(detail ? detail : "failed"));
	/* Out after a run of failures; back only after a run of successes. */
	if (bad >= p->opts.unhealthy_after)
		json_object_set_new(c, "healthy", json_false());
	else if (good >= p->opts.healthy_after)
		json_object_set_new(c, "healthy", json_true());
	pthread_mutex_unlock(&p->lock);
}

bool pool_healthy(struct pool *p, const char *cluster)
{
	bool h;

	pthread_mutex_lock(&p->lock);
	h = json_is_true(json_object_get(cluster_state(p, cluster), "healthy"));
	pthread_mutex_unlock(&p->lock);
	return h;
}

/* Adds sign times one pod's requests to the sums in u from index at:
 * [pods, cores, memory, gpus]. */
static void add_pod(json_t *u, size_t at, int sign, double cores, int64_t memory, int gpus)
{
	json_array_set_new(u, at, json_integer(json_integer_value(json_array_get(u, at)) + sign));
	json_array_set_new(u, at + 1, json_real(json_real_value(json_array_get(u, at + 1)) + sign * cores));
	json_array_set_new(u, at + 2, json_integer(json_integer_value(json_array_get(u, at + 2)) + sign * memory));
	json_array_set_new(u, at + 3, json_integer(json_integer_value(json_array_get(u, at + 3)) + sign * gpus));
}

/* What is left of amounts a when amounts b are taken (each four from its
 * index: pods, cores, memory, gpus), none of it below 0; cores in
 * millicores. A reservation less what its job's pods hold, or a node less
 * what our pods hold there. */
static void left_over(const json_t *a, size_t a_at, const json_t *b, size_t b_at, json_int_t out[4])
{
	double cores = json_real_value(json_array_get(a, a_at + 1)) - json_real_value(json_array_get(b, b_at + 1));

	out[0] = json_integer_value(json_array_get(a, a_at)) - json_integer_value(json_array_get(b, b_at));
	out[1] = (json_int_t)(cores * 1000 + (cores < 0 ? -0.5 : 0.5));
	out[2] = json_integer_value(json_array_get(a, a_at + 2)) - json_integer_value(json_array_get(b, b_at + 2));
	out[3] = json_integer_value(json_array_get(a, a_at + 3)) - json_integer_value(json_array_get(b, b_at + 3));
	for (int i = 0; i < 4; i++)
		out[i] = out[i] > 0 ? out[i] : 0;
}

/* What is free of node name in c: [pods, millicores, memory, gpus]. */
static void node_free(json_t *c, const char *name, json_int_t out[4])
{
	left_over(json_object_get(json_object_get(c, "nodes"), name), 2,
		  json_object_get(json_object_get(c, "bound"), name), 0, out);
}

/* Takes node's free room out of (sign -1) or back into (1) the views of
 * cluster that hold the node: around a change to what is bound there. */
static void views_count(struct pool *p, const char *cluster, json_t *c, const char *node, int sign)
{
	json_int_t f[4];
	bool known = false;

	for (size_t i = 0; i < p->nviews; i++) {
		struct role_view *v = &p->views[i];

		if (strcmp(v->cluster, cluster) || !json_object_get(v->nodes, node))
			continue;
		if (!known)
			node_free(c, node, f);
		known = true;
		for (int k = 0; k < 4; k++)
			v->free[k] += sign * f[k];
	}
}

static void add_sums(json_t *sums, const char *key, int sign, const json_int_t v[4])
{
	json_t *a = json_object_get(sums, key);

	if (!a) {
		a = json_pack("[I, I, I, I]", (json_int_t)0, (json_int_t)0, (json_int_t)0, (json_int_t)0);
		json_object_set_new(sums, key, a);
	}
	for (size_t i = 0; i < 4; i++)
		json_array_set_new(a, i, json_integer(json_integer_value(json_array_get(a, i)) + sign * v[i]));
}

/* Moves job's reservation (if any) into (sign 1) or out of (-1) the
 * cluster's pending sums. Every change to a reservation or to what its
 * job's pods hold is bracketed: out before, in after. */
static void account(json_t *c, const char *job, int sign)
{
	json_t *res = json_object_get(json_object_get(c, "reserved"), job);
	json_t *held = json_object_get(json_object_get(c, "jobs"), job);
	const char *role = json_string_value(json_array_get(res, 6));
	json_int_t v[4];

	if (!res)
		return;
	left_over(res, 1, held, 1, v);
	add_sums(json_object_get(c, "pending"), json_string_value(json_array_get(res, 0)), sign, v);
	if (role) {
		left_over(res, 1, held, 5, v);
		add_sums(json_object_get(c, "pendingRole"), role, sign, v);
	}
}

static void drop_reservation(json_t *c, const char *job)
{
	account(c, job, -1);
	json_object_del(json_object_get(c, "reserved"), job);
}

/* The pending sums again from every reservation, after what the jobs hold
 * was replaced wholesale. */
static void recount(json_t *c)
{
	json_t *res;
	const char *job;

	json_object_set_new(c, "pending", json_object());
	json_object_set_new(c, "pendingRole", json_object());
	json_object_foreach(json_object_get(c, "reserved"), job, res)
		account(c, job, 1);
}

static void lapse_swap(struct pool *p, size_t a, size_t b)
{
	struct lapse t = p->lapses[a];

	p->lapses[a] = p->lapses[b];
	p->lapses[b] = t;
}

static bool lapse_push(struct pool *p, const char *cluster, const char *job, int64_t until_ms)
{
	size_t i = p->nlapses;

	if (p->nlapses == p->lapses_cap) {
		size_t cap = p->lapses_cap ? 2 * p->lapses_cap : 64;
		struct lapse *grown = realloc(p->lapses, cap * sizeof(*grown));

		if (!grown)
			return false;
		p->lapses = grown;
		p->lapses_cap = cap;
	}
	p->lapses[i] = (struct lapse){.until_ms = until_ms, .cluster = strdup(cluster), .job = strdup(job)};
	if (!p->lapses[i].cluster || !p->lapses[i].job) {
		free(p->lapses[i].cluster);
		free(p->lapses[i].job);
		return false;
	}
	p->nlapses++;
	for (; i > 0 && p->lapses[(i - 1) / 2].until_ms > p->lapses[i].until_ms; i = (i - 1) / 2)
		lapse_swap(p, i, (i - 1) / 2);
	return true;
}

/* Drops the reservations that ended before now. Caller holds the lock. */
static void lapse_due(struct pool *p, int64_t now)
{
	while (p->nlapses && p->lapses[0].until_ms < now) {
		struct lapse top = p->lapses[0];
		json_t *c = json_object_get(p->clusters, top.cluster);
		json_t *res = json_object_get(json_object_get(c, "reserved"), top.job);

		if (res && json_integer_value(json_array_get(res, 5)) == top.until_ms)
			drop_reservation(c, top.job);
		free(top.cluster);
		free(top.job);
		p->lapses[0] = p->lapses[--p->nlapses];
		for (size_t i = 0;;) {
			size_t l = 2 * i + 1, r = l + 1, m = i;

			if (l < p->nlapses && p->lapses[l].until_ms < p->lapses[m].until_ms)
				m = l;
			if (r < p->nlapses && p->lapses[r].until_ms < p->lapses[m].until_ms)
				m = r;
			if (m == i)
				break;
			lapse_swap(p, i, m);
			i = m;
		}
	}
}

/* One pod's requests in or out of its namespace's, its job's and its
 * node's sums. */
static void count_pod(struct pool *p, const char *cluster, json_t *c, const char *ns, const char *job_id,
		      const char *node, int sign, double cores, int64_t memory, int gpus)
{
	json_t *usage = json_object_get(c, "usage"), *jobs = json_object_get(c, "jobs");
	json_t *u = json_object_get(usage, ns), *j, *b;

	if (!u) {
		u = json_pack("[i, f, I, i]", 0, 0.0, (json_int_t)0, 0);
		json_object_set_new(usage, ns, u);
	}
	add_pod(u, 0, sign, cores, memory, gpus);
	if (node) {
		if (!(b = json_object_get(json_object_get(c, "bound"), node))) {
			b = json_pack("[i, f, I, i]", 0, 0.0, (json_int_t)0, 0);
			json_object_set_new(json_object_get(c, "bound"), node, b);
		}
		views_count(p, cluster, c, node, -1);
		add_pod(b, 0, sign, cores, memory, gpus);
		views_count(p, cluster, c, node, 1);
	}
	if (!job_id)
		return;
	account(c, job_id, -1);
	if (!(j = json_object_get(jobs, job_id))) {
		j = json_pack("[s, i, f, I, i, i, f, I, i]", ns, 0, 0.0, (json_int_t)0, 0, 0, 0.0, (json_int_t)0, 0);
		json_object_set_new(jobs, job_id, j);
	}
	add_pod(j, 1, sign, cores, memory, gpus);
	if (node)
		add_pod(j, 5, sign, cores, memory, gpus);
	account(c, job_id, 1);
}

void pool_pod(struct pool *p, const char *cluster, const char *uid, const char *job_id,
	      const char *ns, const char *node, bool active, double cores, int64_t memory, int gpus)
{
	json_t *c, *pods, *old;
	bool was_counted;

	if (node && !*node)
		node = NULL;
	pthread_mutex_lock(&p->lock);
	c = cluster_state(p, cluster);
	pods = json_object_get(c, "pods");
	old = json_object_get(pods, uid);
	was_counted = old != NULL;
	if (old) { /* take the old view out first: it may have been bound since */
		count_pod(p, cluster, c, json_string_value(json_array_get(old, 0)), json_string_value(json_array_get(old, 4)),
			  json_string_value(json_array_get(old, 5)), -1, json_real_value(json_array_get(old, 1)),
			  json_integer_value(json_array_get(old, 2)), (int)json_integer_value(json_array_get(old, 3)));
		json_object_del(pods, uid);
	}
	if (active) {
		json_object_set_new(pods, uid, json_pack("[s, f, I, i, s?, s?]", ns, cores, (json_int_t)memory, gpus,
							 job_id, node));
		count_pod(p, cluster, c, ns, job_id, node, 1, cores, memory, gpus);
	}
	/* Its pods were there and are all gone (after the update, not in
	 * its middle): the job left, and so does its reservation, whichever
	 * process dispatched it. */
	if (was_counted && job_id && json_integer_value(json_array_get(json_object_get(json_object_get(c, "jobs"), job_id), 1)) <= 0) {
		drop_reservation(c, job_id);
		json_object_del(json_object_get(c, "jobs"), job_id);
	}
	pthread_mutex_unlock(&p->lock);
}

/* A quantity's value, 0 when absent or malformed. */
static double quantity(const json_t *v)
{
	double q = 0;

	return json_string_value(v) && gw_quantity_parse(json_string_value(v), &q) == 0 ? q : 0;
}

void pool_set_nodes(struct pool *p, const char *cluster, const json_t *items)
{
	json_t *nodes = items ? json_object() : NULL, *n;
	json_t *ready_type = json_string("Ready"), *true_status = json_string("True");
	size_t i;

	json_array_foreach((json_t *)(uintptr_t)items, i, n) {
		json_t *alloc = json_object_get(json_object_get(n, "status"), "allocatable");
		json_t *taints = json_array(), *t, *cond, *q;
		const char *name = json_string_value(json_object_get(json_object_get(n, "metadata"), "name"));
		json_t *labels = json_object_get(json_object_get(n, "metadata"), "labels");
		const char *key;
		bool ready = false;
		double gpus = 0;
		size_t k;

		json_array_foreach(json_object_get(json_object_get(n, "status"), "conditions"), k, cond)
			if (json_equal(json_object_get(cond, "type"), ready_type))
				ready = json_equal(json_object_get(cond, "status"), true_status);
		if (!name || !ready || json_is_true(json_object_get(json_object_get(n, "spec"), "unschedulable"))) {
			json_decref(taints);
			continue;
		}
		/* Only the taints that keep pods off; PreferNoSchedule does not. */
		json_array_foreach(json_object_get(json_object_get(n, "spec"), "taints"), k, t) {
			const char *effect = json_string_value(json_object_get(t, "effect"));

			if (effect && (!strcmp(effect, "NoSchedule") || !strcmp(effect, "NoExecute")))
				json_array_append(taints, t);
		}
		json_object_foreach(alloc, key, q)
			if (strstr(key, "gpu"))
				gpus += quantity(q);
		json_object_set_new(nodes, name,
				    json_pack("[o, o, I, f, I, I]", labels ? json_incref(labels) : json_object(),
					      taints, (json_int_t)quantity(json_object_get(alloc, "pods")),
					      quantity(json_object_get(alloc, "cpu")),
					      (json_int_t)quantity(json_object_get(alloc, "memory")), (json_int_t)gpus));
	}
	json_decref(ready_type);
	json_decref(true_status);
	pthread_mutex_lock(&p->lock);
	json_object_set_new(cluster_state(p, cluster), "nodes", nodes ? nodes : json_null());
	drop_views(p, cluster);
	pthread_mutex_unlock(&p->lock);
}

/* A toleration (core/v1) admits the taint, as the scheduler matches them. */
static bool tolerates(const json_t *tol, const json_t *taint)
{
	const char *key = json_string_value(json_object_get(tol, "key"));
	const char *op = json_string_value(json_object_get(tol, "operator"));
	const char *effect = json_string_value(json_object_get(tol, "effect"));
	const char *value = json_string_value(json_object_get(tol, "value"));
	const char *tkey = json_string_value(json_object_get(taint, "key"));
	const char *tvalue = json_string_value(json_object_get(taint, "value"));

	if (effect && *effect && strcmp(effect, json_string_value(json_object_get(taint, "effect"))))
		return false;
	if (op && !strcmp(op, "Exists"))
		return !key || !*key || (tkey && !strcmp(key, tkey));
	return key && tkey && !strcmp(key, tkey) && !strcmp(value ? value : "", tvalue ? tvalue : "");
}

/* The node (an entry of "nodes") is one the role's pods may land on. */
static bool role_selects(const struct router_node_role *role, const json_t *node)
{
	const json_t *labels = json_array_get(node, 0), *taint, *v;
	const char *key;
	size_t i;

	json_object_foreach((json_t *)(uintptr_t)role->node_selector, key, v)
		if (!json_equal(json_object_get(labels, key), v))
			return false;
	json_array_foreach(json_array_get(node, 1), i, taint) {
		bool ok = false;
		size_t k;
		json_t *tol;

		json_array_foreach(role->tolerations, k, tol)
			ok = ok || tolerates(tol, taint);
		if (!ok)
			return false;
	}
	return true;
}

static void usage_max(struct router_usage *a, const struct router_usage *b)
{
	a->pods = b->pods > a->pods ? b->pods : a->pods;
	a->cores = b->cores > a->cores ? b->cores : a->cores;
	a->memory = b->memory > a->memory ? b->memory : a->memory;
	a->gpus = b->gpus > a->gpus ? b->gpus : a->gpus;
}

/* a less what is given, none of it below 0; negative amounts take nothing. */
static void usage_sub(struct router_usage *a, double pods, double cores, double memory, double gpus)
{
	pods = pods > 0 ? pods : 0;
	cores = cores > 0 ? cores : 0;
	memory = memory > 0 ? memory : 0;
	gpus = gpus > 0 ? gpus : 0;
	a->pods = pods >= a->pods ? 0 : a->pods - (unsigned)pods;
	a->cores = cores >= a->cores ? 0 : a->cores - cores;
	a->memory = memory >= (double)a->memory ? 0 : a->memory - (int64_t)memory;
	a->gpus = gpus >= a->gpus ? 0 : a->gpus - (int)gpus;
}

/* What reservations on key (a namespace: sums "pending", at 1; a node role:
 * "pendingRole", at 5) take that their pods do not hold yet, less skip's
 * part (a job left out). */
static void pending_of(json_t *c, const char *sums, const char *key, size_t at, const char *skip, json_int_t v[4])
{
	json_t *a = json_object_get(json_object_get(c, sums), key);
	json_t *res = skip ? json_object_get(json_object_get(c, "reserved"), skip) : NULL;
	const char *on = json_string_value(json_array_get(res, at == 1 ? 0 : 6));
	json_int_t own[4];

	for (size_t i = 0; i < 4; i++)
		v[i] = json_integer_value(json_array_get(a, i));
	if (!on || strcmp(on, key))
		return;
	left_over(res, 1, json_object_get(json_object_get(c, "jobs"), skip), at, own);
	for (size_t i = 0; i < 4; i++)
		v[i] -= own[i];
}

/* Equal JSON, or both absent. */
static bool same(const json_t *a, const json_t *b)
{
	return a == b || (a && b && json_equal(a, b));
}

/* The view of role on cluster c, built now if there is none or the role
 * changed; NULL when out of memory. Caller holds the lock; c's nodes are
 * known. */
static struct role_view *role_view(struct pool *p, const char *cluster, json_t *c,
				   const struct router_node_role *role)
{
	struct role_view *v = NULL, *grown;
	json_t *n;
	const char *name;

	for (size_t i = 0; i < p->nviews && !v; i++)
		if (!strcmp(p->views[i].cluster, cluster) && !strcmp(p->views[i].role, role->name))
			v = &p->views[i];
	if (v && same(v->selector, role->node_selector) && same(v->tolerations, role->tolerations))
		return v;
	if (v)
		drop_view(p, (size_t)(v - p->views));
	if (!(grown = realloc(p->views, (p->nviews + 1) * sizeof(*grown))))
		return NULL;
	p->views = grown;
	v = &p->views[p->nviews];
	*v = (struct role_view){.cluster = strdup(cluster), .role = strdup(role->name),
				.selector = json_deep_copy(role->node_selector),
				.tolerations = json_deep_copy(role->tolerations), .nodes = json_object()};
	p->nviews++;
	if (!v->cluster || !v->role || !v->nodes) {
		drop_view(p, p->nviews - 1);
		return NULL;
	}
	json_object_foreach(json_object_get(c, "nodes"), name, n) {
		struct router_usage u = {.pods = (unsigned)json_integer_value(json_array_get(n, 2)),
					 .cores = json_real_value(json_array_get(n, 3)),
					 .memory = json_integer_value(json_array_get(n, 4)),
					 .gpus = (int)json_integer_value(json_array_get(n, 5))};
		json_int_t f[4];

		if (!role_selects(role, n))
			continue;
		json_object_set_new(v->nodes, name, json_true());
		v->count++;
		v->total.pods += u.pods;
		v->total.cores += u.cores;
		v->total.memory += u.memory;
		v->total.gpus += u.gpus;
		usage_max(&v->largest, &u);
		node_free(c, name, f);
		for (int k = 0; k < 4; k++)
			v->free[k] += f[k];
	}
	return v;
}

/* What the role's nodes hold in cluster c, and what is free of it: less
 * our pods bound there and what jobs reserved on the role have not bound
 * yet (skip: a job left out). False when c's nodes are not known. Caller
 * holds the lock and has let lapsed reservations go. */
static bool role_capacity(struct pool *p, const char *cluster, json_t *c, const struct router_node_role *role,
			  const char *skip, struct router_capacity *out)
{
	json_int_t pending[4];
	struct role_view *v;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(json_object_get(c, "nodes")) || !(v = role_view(p, cluster, c, role)))
		return false;
	out->nodes = v->count;
	out->total = v->total;
	out->largest = v->largest;
	out->free = (struct router_usage){.pods = (unsigned)v->free[0], .cores = (double)v->free[1] / 1000,
					  .memory = v->free[2], .gpus = (int)v->free[3]};
	/* Each reservation's part is at least 0, so taking their sum at once
	 * is taking them one by one. */
	pending_of(c, "pendingRole", role->name, 5, skip, pending);
	usage_sub(&out->free, (double)pending[0], (double)pending[1] / 1000, (double)pending[2], (double)pending[3]);
	return true;
}

/* The demand fits in what is free. */
static bool capacity_fits(const struct router_capacity *cap, const struct router_demand *d)
{
	return d->pods <= cap->free.pods && d->cores <= cap->free.cores + 1e-9 && d->memory <= cap->free.memory &&
	       d->gpus <= cap->free.gpus;
}

/* What ns holds in c: its pods, and what reserved jobs' pods do not hold
 * yet (skip: a job left out). Caller holds the lock and has let lapsed
 * reservations go. */
static void namespace_usage(json_t *c, const char *ns, const char *skip, struct router_usage *out)
{
	json_t *u = json_object_get(json_object_get(c, "usage"), ns);
	json_int_t pending[4];

	pending_of(c, "pending", ns, 1, skip, pending);
	out->pods = (unsigned)(json_integer_value(json_array_get(u, 0)) + pending[0]);
	out->cores = json_real_value(json_array_get(u, 1)) + (double)pending[1] / 1000;
	out->memory = json_integer_value(json_array_get(u, 2)) + pending[2];
	out->gpus = (int)(json_integer_value(json_array_get(u, 3)) + pending[3]);
}

bool pool_reserve(struct pool *p, const char *cluster, const char *job_id, const struct router_namespace *ns,
		  const struct router_node_role *role, const struct router_demand *d, bool force, int64_t ttl_ms)
{
	struct router_usage u;
	struct router_capacity cap;
	int64_t now = gw_now_ms();
	bool fits;
	json_t *c;

	pthread_mutex_lock(&p->lock);
	lapse_due(p, now);
	c = cluster_state(p, cluster);
	namespace_usage(c, ns->name, job_id, &u);
	fits = force || (router_namespace_fits(ns, &u, d) &&
			 (!role || !role_capacity(p, cluster, c, role, job_id, &cap) || capacity_fits(&cap, d)));
	/* Without its end in the heap a reservation would never lapse. */
	fits = fits && lapse_push(p, cluster, job_id, now + ttl_ms);
	if (fits) {
		account(c, job_id, -1);
		json_object_set_new(json_object_get(c, "reserved"), job_id,
				    json_pack("[s, i, f, I, i, I, s?]", ns->name, (int)d->pods, d->cores,
					      (json_int_t)d->memory, d->gpus, (json_int_t)(now + ttl_ms),
					      role ? role->name : NULL));
		account(c, job_id, 1);
	}
	pthread_mutex_unlock(&p->lock);
	return fits;
}

void pool_release(struct pool *p, const char *job_id)
{
	const char *name;
	json_t *c;

	pthread_mutex_lock(&p->lock);
	json_object_foreach(p->clusters, name, c)
		drop_reservation(c, job_id);
	pthread_mutex_unlock(&p->lock);
}

void pool_forget_pods(struct pool *p, const char *cluster)
{
	json_t *c;

	pthread_mutex_lock(&p->lock);
	c = cluster_state(p, cluster);
	json_object_set_new(c, "pods", json_object());
	json_object_set_new(c, "usage", json_object());
	json_object_set_new(c, "jobs", json_object());
	json_object_set_new(c, "bound", json_object());
	recount(c);
	drop_views(p, cluster);
	pthread_mutex_unlock(&p->lock);
}

json_t *pool_usage(struct pool *p, const char *cluster)
{
	json_t *c, *u, *out, *held, *v;
	const char *ns, *job;

	pthread_mutex_lock(&p->lock);
	c = cluster_state(p, cluster);
	out = json_deep_copy(json_object_get(c, "usage"));
	json_object_foreach(out, ns, u)
		json_array_append_new(u, json_object());
	json_object_foreach(json_object_get(c, "jobs"), job, held) {
		v = json_array_get(json_object_get(out, json_string_value(json_array_get(held, 0))), 4);
		json_object_set_new(v, job, json_pack("[O, O, O, O]", json_array_get(held, 1), json_array_get(held, 2),
						      json_array_get(held, 3), json_array_get(held, 4)));
	}
	pthread_mutex_unlock(&p->lock);
	return out;
}

void pool_set_usage(struct pool *p, const char *cluster, const json_t *usage)
{
	json_t *c, *u, *jobs = json_object(), *held;
	const char *ns, *job;

	/* The watcher's per-job sums, so that this process's reservations
	 * count only what their pods do not hold yet, as on the watcher. */
	json_object_foreach((json_t *)(uintptr_t)usage, ns, u)
		json_object_foreach(json_array_get(u, 4), job, held)
			json_object_set_new(jobs, job, json_pack("[s, O, O, O, O]", ns, json_array_get(held, 0),
								 json_array_get(held, 1), json_array_get(held, 2),
								 json_array_get(held, 3)));
	pthread_mutex_lock(&p->lock);
	c = cluster_state(p, cluster);
	json_object_foreach(json_object_get(c, "jobs"), job, held)
		if (!json_object_get(jobs, job))
			json_object_del(json_object_get(c, "reserved"), job);
	json_object_set_new(c, "pods", json_object());
	json_object_set_new(c, "usage", json_deep_copy(usage));
	json_object_set_new(c, "jobs", jobs);
	json_object_set_new(c, "bound", json_object());
	recount(c);
	drop_views(p, cluster);
	pthread_mutex_unlock(&p->lock);
}

/* {count, cores, memoryBytes, gpus} of the Ready, schedulable nodes, or
 * null when they are not known. */
static json_t *node_totals(json_t *c)
{
	json_t *nodes = json_object_get(c, "nodes"), *n;
	double cores = 0;
	json_int_t memory = 0, gpus = 0;
	const char *name;

	if (!json_is_object(nodes))
		return json_null();
	json_object_foreach(nodes, name, n) {
		cores += json_real_value(json_array_get(n, 3));
		memory += json_integer_value(json_array_get(n, 4));
		gpus += json_integer_value(json_array_get(n, 5));
	}
	return json_pack("{s:I, s:f, s:I, s:I}", "count", (json_int_t)json_object_size(nodes), "cores", cores,
			 "memoryBytes", memory, "gpus", gpus);
}

json_t *pool_snapshot(struct pool *p)
{
	json_t *out = json_object();
	const char *name, *ns;
	json_t *c, *u;

	pthread_mutex_lock(&p->lock);
	json_object_foreach(p->clusters, name, c) {
		json_t *nss = json_object();

		json_object_foreach(json_object_get(c, "usage"), ns, u)
			json_object_set_new(nss, ns, json_pack("{s:O, s:O, s:O, s:O}", "pods",
							       json_array_get(u, 0), "cores", json_array_get(u, 1),
							       "memoryBytes", json_array_get(u, 2), "gpus",
							       json_array_get(u, 3)));
		json_object_set_new(out, name, json_pack("{s:s, s:O, s:O, s:O, s:o, s:o}", "rotation",
			pool_rotation_name((enum pool_rotation)json_integer_value(json_object_get(c, "rotation"))),
			"weightOverride", json_object_get(c, "weight"), "healthy", json_object_get(c, "healthy"),
			"lastError", json_object_get(c, "lastError"), "namespaces", nss, "nodes", node_totals(c)));
	}
	pthread_mutex_unlock(&p->lock);
	return out;
}

/* ---- the router's view ---- */

static bool live_usable(void *arg, const char *cluster, char *why, size_t len)
{
	struct pool *p = arg;
	json_t *c;
	enum pool_rotation r;
	bool healthy;

	pthread_mutex_lock(&p->lock);
	c = cluster_state(p, cluster);
	r = (enum pool_rotation)json_integer_value(json_object_get(c, "rotation"));
	healthy = json_is_true(json_object_get(c, "healthy"));
	if (!healthy)
		snprintf(why, len, "unhealthy (%s)", json_string_value(json_object_get(c, "lastError"))
							     ? json_string_value(json_object_get(c, "lastError")) : "");
	pthread_mutex_unlock(&p->lock);
	if (r != POOL_ACTIVE) {
		snprintf(why, len, "%s", pool_rotation_name(r));
		return false;
	}
	return healthy;
}

static unsigned live_weight(void *arg, const char *cluster, unsigned configured)
{
	struct pool *p = arg;
	json_int_t w;

	pthread_mutex_lock(&p->lock);
	w = json_integer_value(json_object_get(cluster_state(p, cluster), "weight"));
	pthread_mutex_unlock(&p->lock);
	return w > 0 ? (unsigned)w : configured;
}

static void live_usage(void *arg, const char *cluster, const char *ns, struct router_usage *out)
{
	struct pool *p = arg;

	pthread_mutex_lock(&p->lock);
	lapse_due(p, gw_now_ms());
	namespace_usage(cluster_state(p, cluster), ns, NULL, out);
	pthread_mutex_unlock(&p->lock);
}

static bool live_capacity(void *arg, const char *cluster, const struct router_node_role *role,
			  struct router_capacity *out)
{
	struct pool *p = arg;
	bool known;

	pthread_mutex_lock(&p->lock);
	lapse_due(p, gw_now_ms());
	known = role_capacity(p, cluster, cluster_state(p, cluster), role, NULL, out);
	pthread_mutex_unlock(&p->lock);
	return known;
}

struct router_live pool_live(struct pool *p)
{
	return (struct router_live){.usable = live_usable, .weight = live_weight,
				    .usage = live_usage, .capacity = live_capacity, .arg = p};
}
