/* The scheduler: what kube-scheduler's default plugins do for the pods of
 * a batch cluster. Filters in its order (NodeUnschedulable,
 * TaintToleration, NodeAffinity with nodeSelector, NodeResourcesFit for
 * cpu, memory, nvidia.com/gpu and the pod count), the node with the
 * least allocated cpu and memory among those that fit, and when none fits,
 * preemption of lower-priority pods (the fewest, lowest first). A pod
 * that no node takes gets PodScheduled=False, reason Unschedulable, with
 * the scheduler's message: "0/12 nodes are available: 4 Insufficient cpu,
 * 8 node(s) didn't match Pod's node affinity/selector. preemption: …". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/quantity.h"
#include "contrib/kubesim/kubesim.h"

enum { RES_CPU, RES_MEM, RES_GPU, NRES };

static const char *const res_names[NRES] = {"cpu", "memory", "nvidia.com/gpu"};

static const char *jstr(const json_t *v)
{
	const char *s = json_string_value(v);

	return s ? s : "";
}

static double quantity(const json_t *v)
{
	double q = 0;

	if (json_is_string(v) && gw_quantity_parse(json_string_value(v), &q) == 0)
		return q;
	return json_is_number(v) ? json_number_value(v) : 0;
}

/* What a pod asks of a node: its containers' requests (an extended
 * resource or a container without requests asks its limits, as the API
 * server defaults them). */
static void pod_demand(const json_t *pod, double out[NRES])
{
	json_t *containers = json_object_get(json_object_get(pod, "spec"), "containers");
	size_t i;
	json_t *c;

	memset(out, 0, sizeof(double) * NRES);
	json_array_foreach(containers, i, c) {
		json_t *res = json_object_get(c, "resources");
		json_t *req = json_object_get(res, "requests"), *lim = json_object_get(res, "limits");

		for (int r = 0; r < NRES; r++)
			out[r] += quantity(json_object_get(req, res_names[r]) ? json_object_get(req, res_names[r])
									 : json_object_get(lim, res_names[r]));
	}
}

int ks_admit_priority(struct ks_state *st, json_t *pod)
{
	json_t *spec = json_object_get(pod, "spec");
	const char *name = json_string_value(json_object_get(spec, "priorityClassName"));
	json_t *cls;

	if (!name || !*name) {
		json_object_set_new(spec, "priority", json_integer(0));
		return 0;
	}
	if (!(cls = ks_get(st, ks_resource_find("scheduling.k8s.io", "v1", "priorityclasses"), NULL, name)))
		return -1;
	json_object_set(spec, "priority", json_object_get(cls, "value"));
	return 0;
}

int ks_pod_priority(const json_t *pod)
{
	return (int)json_integer_value(json_object_get(json_object_get(pod, "spec"), "priority"));
}

static void release_nodes(struct ks_state *st)
{
	for (int i = 0; i < st->nnodes; i++) {
		json_decref(st->nodes[i].labels);
		json_decref(st->nodes[i].taints);
	}
	st->nnodes = 0;
}

void ks_nodes_release(struct ks_state *st)
{
	release_nodes(st);
	free(st->nodes);
	st->nodes = NULL;
	json_decref(st->node_index);
	st->node_index = NULL;
}

/* The nodes as stored: read again after any node is written. */
static void list_nodes(struct ks_state *st)
{
	const char *key;
	json_t *obj;

	release_nodes(st);
	if (!st->node_index)
		st->node_index = json_object();
	json_object_clear(st->node_index);
	json_object_foreach(st->objects, key, obj) {
		const json_t *status = json_object_get(obj, "status"), *alloc = json_object_get(status, "allocatable");
		struct ks_node *n;

		if (strncmp(key, "nodes/", 6))
			continue;
		if (st->nnodes == st->nodes_cap) {
			struct ks_node *more = realloc(st->nodes, (size_t)(st->nodes_cap = st->nodes_cap ? st->nodes_cap * 2 : 64) *
								    sizeof(*more));

			if (!more)
				return;
			st->nodes = more;
		}
		n = &st->nodes[st->nnodes];
		memset(n, 0, sizeof(*n));
		snprintf(n->name, sizeof(n->name), "%s", ks_name(obj));
		n->labels = json_incref(json_object_get(json_object_get(obj, "metadata"), "labels"));
		n->taints = json_incref(json_object_get(json_object_get(obj, "spec"), "taints"));
		n->unschedulable = json_is_true(json_object_get(json_object_get(obj, "spec"), "unschedulable"));
		for (int r = 0; r < NRES; r++)
			n->alloc[r] = quantity(json_object_get(alloc, res_names[r]));
		n->max_pods = json_object_get(alloc, "pods") ? (int)quantity(json_object_get(alloc, "pods")) : 110;
		json_object_set_new(st->node_index, n->name, json_integer(st->nnodes));
		st->nnodes++;
	}
	st->nodes_listed = true;
	st->nodes_known = false;
}

static struct ks_node *node_named(struct ks_state *st, const char *name)
{
	json_t *i = json_object_get(st->node_index, name);

	return i ? &st->nodes[json_integer_value(i)] : NULL;
}

/* What the pods bound to each node hold (not yet ended). */
static void count_usage(struct ks_state *st)
{
	const char *key;
	json_t *pod;

	for (int i = 0; i < st->nnodes; i++) {
		memset(st->nodes[i].used, 0, sizeof(st->nodes[i].used));
		st->nodes[i].pods = 0;
	}
	json_object_foreach(st->pods, key, pod) {
		const char *phase = jstr(json_object_get(json_object_get(pod, "status"), "phase"));
		struct ks_node *n = node_named(st, jstr(json_object_get(json_object_get(pod, "spec"), "nodeName")));
		double d[NRES];

		if (!n || !strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"))
			continue;
		pod_demand(pod, d);
		for (int r = 0; r < NRES; r++)
			n->used[r] += d[r];
		n->pods++;
	}
	st->nodes_known = true;
}

static void ensure_nodes(struct ks_state *st)
{
	if (!st->nodes_listed)
		list_nodes(st);
	if (!st->nodes_known)
		count_usage(st);
}

/* A toleration matches a taint: same effect (or any), and the same key
 * with Exists or the same value (an empty key with Exists: every taint). */
static bool tolerates(const json_t *tolerations, const json_t *taint)
{
	size_t i;
	json_t *t;

	json_array_foreach(tolerations, i, t) {
		const char *key = jstr(json_object_get(t, "key")), *op = jstr(json_object_get(t, "operator"));
		const char *effect = jstr(json_object_get(t, "effect"));
		bool exists = !strcmp(op, "Exists");

		if (*effect && strcmp(effect, jstr(json_object_get(taint, "effect"))))
			continue;
		if (!*key && exists)
			return true;
		if (strcmp(key, jstr(json_object_get(taint, "key"))))
			continue;
		if (exists || !strcmp(jstr(json_object_get(t, "value")), jstr(json_object_get(taint, "value"))))
			return true;
	}
	return false;
}

/* The first NoSchedule or NoExecute taint of the node the pod does not
 * tolerate; NULL when it tolerates them all. */
static const json_t *untolerated(const struct ks_node *n, const json_t *pod)
{
	const json_t *tolerations = json_object_get(json_object_get(pod, "spec"), "tolerations");
	size_t i;
	json_t *taint;

	json_array_foreach(n->taints, i, taint) {
		const char *effect = jstr(json_object_get(taint, "effect"));

		if ((!strcmp(effect, "NoSchedule") || !strcmp(effect, "NoExecute")) && !tolerates(tolerations, taint))
			return taint;
	}
	return NULL;
}

/* One node selector requirement: In, NotIn, Exists, DoesNotExist, Gt, Lt. */
static bool requirement_holds(const json_t *labels, const json_t *req)
{
	const char *op = jstr(json_object_get(req, "operator"));
	const json_t *have = json_object_get(labels, jstr(json_object_get(req, "key")));
	const json_t *values = json_object_get(req, "values");
	size_t i;
	json_t *v;

	if (!strcmp(op, "Exists"))
		return have != NULL;
	if (!strcmp(op, "DoesNotExist"))
		return have == NULL;
	if (!have)
		return false;
	if (!strcmp(op, "Gt") || !strcmp(op, "Lt")) {
		long long mine = strtoll(jstr(have), NULL, 10), bound = strtoll(jstr(json_array_get(values, 0)), NULL, 10);

		return !strcmp(op, "Gt") ? mine > bound : mine < bound;
	}
	json_array_foreach(values, i, v)
		if (!strcmp(jstr(v), jstr(have)))
			return !strcmp(op, "In");
	return !strcmp(op, "NotIn");
}

/* nodeSelector, then required node affinity: any term whose requirements
 * all hold (matchFields on metadata.name too). */
static bool affinity_holds(const struct ks_node *n, const json_t *pod)
{
	const json_t *spec = json_object_get(pod, "spec"), *terms;
	const char *key;
	json_t *v, *term;
	size_t i, j;

	json_object_foreach(json_object_get(spec, "nodeSelector"), key, v)
		if (strcmp(jstr(v), jstr(json_object_get(n->labels, key))))
			return false;
	terms = json_object_get(json_object_get(json_object_get(json_object_get(spec, "affinity"), "nodeAffinity"),
						"requiredDuringSchedulingIgnoredDuringExecution"), "nodeSelectorTerms");
	if (!json_is_array(terms))
		return true;
	json_array_foreach(terms, i, term) {
		json_t *fields = json_pack("{s:s}", "metadata.name", n->name), *req;
		bool all = json_array_size(json_object_get(term, "matchExpressions")) ||
			   json_array_size(json_object_get(term, "matchFields"));

		json_array_foreach(json_object_get(term, "matchExpressions"), j, req)
			all = all && requirement_holds(n->labels, req);
		json_array_foreach(json_object_get(term, "matchFields"), j, req)
			all = all && requirement_holds(fields, req);
		json_decref(fields);
		if (all)
			return true;
	}
	return false;
}

/* Why the node cannot take the pod as it stands, or NULL. Reasons are the
 * scheduler's; reasons[] gets each insufficient resource (NodeResourcesFit
 * says them all), and *resource_only says whether resources were all
 * that failed (preemption could help). */
static int node_fails(const struct ks_node *n, const json_t *pod, const double d[NRES], const double used[NRES],
		      int pods, char reasons[][128], bool *resource_only)
{
	const json_t *taint;
	int k = 0;

	*resource_only = false;
	if (n->unschedulable) {
		snprintf(reasons[k++], 128, "node(s) were unschedulable");
		return k;
	}
	if ((taint = untolerated(n, pod))) {
		snprintf(reasons[k++], 128, "node(s) had untolerated taint {%s: %s}", jstr(json_object_get(taint, "key")),
			 jstr(json_object_get(taint, "value")));
		return k;
	}
	if (!affinity_holds(n, pod)) {
		snprintf(reasons[k++], 128, "node(s) didn't match Pod's node affinity/selector");
		return k;
	}
	if (pods + 1 > n->max_pods)
		snprintf(reasons[k++], 128, "Too many pods");
	for (int r = 0; r < NRES; r++)
		if (d[r] > 0 && used[r] + d[r] > n->alloc[r] + 1e-9)
			snprintf(reasons[k++], 128, "Insufficient %s", res_names[r]);
	*resource_only = k > 0;
	return k;
}

/* Adds a reason to the histogram {reason: nodes}. */
static void count_reason(json_t *hist, const char *reason)
{
	json_object_set_new(hist, reason, json_integer(json_integer_value(json_object_get(hist, reason)) + 1));
}

static int by_text(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "0/N nodes are available: 1 Insufficient cpu, 3 …." with the reasons as
 * kube-scheduler sorts them (by their text). */
static void fit_message(const json_t *hist, int nnodes, char *out, size_t len)
{
	char items[32][160], *sorted[32];
	size_t n = 0, at;
	const char *reason;
	json_t *count;

	json_object_foreach((json_t *)(uintptr_t)hist, reason, count) {
		if (n == 32)
			break;
		snprintf(items[n], sizeof(items[n]), "%lld %s", (long long)json_integer_value(count), reason);
		sorted[n] = items[n];
		n++;
	}
	qsort(sorted, n, sizeof(sorted[0]), by_text);
	at = (size_t)snprintf(out, len, "0/%d nodes are available", nnodes);
	for (size_t i = 0; i < n && at < len; i++)
		at += (size_t)snprintf(out + at, len - at, "%s%s", i ? ", " : ": ", sorted[i]);
	if (at < len)
		snprintf(out + at, len - at, ".");
}

struct victim {
	const char *key;
	int priority;
	double d[NRES];
};

static int by_priority(const void *a, const void *b)
{
	const struct victim *x = a, *y = b;

	return (x->priority > y->priority) - (x->priority < y->priority);
}

/* The lower-priority pods whose removal from n lets the pod fit, lowest
 * priority first and as few as will do; their count, or -1 when removing
 * them all would not be enough. */
static int pick_victims(struct ks_state *st, const struct ks_node *n, const json_t *pod, const double d[NRES],
			struct victim *out, int cap)
{
	int prio = ks_pod_priority(pod), nv = 0, taken = 0, pods = n->pods;
	double used[NRES];
	const char *key;
	json_t *other;
	char reasons[NRES + 2][128];
	bool resource_only;

	json_object_foreach(st->pods, key, other) {
		const char *phase = jstr(json_object_get(json_object_get(other, "status"), "phase"));

		if (nv == cap || strcmp(jstr(json_object_get(json_object_get(other, "spec"), "nodeName")), n->name) ||
		    !strcmp(phase, "Succeeded") || !strcmp(phase, "Failed") ||
		    json_object_get(json_object_get(other, "metadata"), "deletionTimestamp") ||
		    ks_pod_priority(other) >= prio)
			continue;
		out[nv].key = key;
		out[nv].priority = ks_pod_priority(other);
		pod_demand(other, out[nv].d);
		nv++;
	}
	qsort(out, (size_t)nv, sizeof(out[0]), by_priority);
	memcpy(used, n->used, sizeof(used));
	while (node_fails(n, pod, d, used, pods, reasons, &resource_only) > 0) {
		if (taken == nv)
			return -1;
		for (int r = 0; r < NRES; r++)
			used[r] -= out[taken].d[r];
		pods--;
		taken++;
	}
	return taken;
}

static void set_scheduled(json_t *pod, const char *status, const char *reason, const char *message)
{
	json_t *st = json_object_get(pod, "status"), *conds = json_object_get(st, "conditions"), *c;
	char now[32];

	ks_now_rfc3339(now);
	if (!conds)
		json_object_set_new(st, "conditions", conds = json_array());
	for (size_t i = 0; i < json_array_size(conds); i++)
		if (!strcmp(jstr(json_object_get(json_array_get(conds, i), "type")), "PodScheduled")) {
			json_array_remove(conds, i);
			break;
		}
	c = json_pack("{s:s, s:s, s:s}", "type", "PodScheduled", "status", status, "lastTransitionTime", now);
	if (reason)
		json_object_set_new(c, "reason", json_string(reason));
	if (message)
		json_object_set_new(c, "message", json_string(message));
	json_array_append_new(conds, c);
}

static const char *scheduled_message(const json_t *pod)
{
	json_t *conds = json_object_get(json_object_get(pod, "status"), "conditions"), *c;
	size_t i;

	json_array_foreach(conds, i, c)
		if (!strcmp(jstr(json_object_get(c, "type")), "PodScheduled"))
			return jstr(json_object_get(c, "message"));
	return NULL;
}

static void bind(struct ks_state *st, json_t *pod, struct ks_node *n, const double d[NRES])
{
	char msg[512];

	for (int r = 0; r < NRES; r++)
		n->used[r] += d[r];
	n->pods++;
	pod = json_deep_copy(pod);
	json_object_set_new(json_object_get(pod, "spec"), "nodeName", json_string(n->name));
	json_object_del(json_object_get(pod, "status"), "nominatedNodeName");
	set_scheduled(pod, "True", NULL, NULL);
	snprintf(msg, sizeof(msg), "Successfully assigned %s/%s to %s", ks_ns(pod), ks_name(pod), n->name);
	ks_record_event(st, pod, "Normal", "Scheduled", msg);
	ks_update(st, ks_resource_find("", "v1", "pods"), pod);
	st->nodes_known = true; /* its binding is counted above */
}

/* Evicts victims from n for pod, as the scheduler's preemption does: each
 * gets DisruptionTarget and is deleted gracefully; the pod is nominated to
 * n and binds once they are gone. */
static void preempt(struct ks_state *st, json_t *pod, const struct ks_node *n, const struct victim *v, int nv)
{
	const struct ks_resource *pods = ks_resource_find("", "v1", "pods");
	char msg[512];

	for (int i = 0; i < nv; i++) {
		json_t *victim = json_object_get(st->objects, v[i].key), *copy;
		json_t *conds;

		if (!victim)
			continue;
		copy = json_deep_copy(victim);
		conds = json_object_get(json_object_get(copy, "status"), "conditions");
		if (!conds)
			json_object_set_new(json_object_get(copy, "status"), "conditions", conds = json_array());
		json_array_append_new(conds, json_pack("{s:s, s:s, s:s, s:s}", "type", "DisruptionTarget", "status",
						       "True", "reason", "PreemptionByScheduler", "message",
						       "Kubernetes default scheduler: preempting to accommodate a higher priority pod"));
		snprintf(msg, sizeof(msg), "Preempted by pod %s on node %s",
			 jstr(json_object_get(json_object_get(pod, "metadata"), "uid")), n->name);
		ks_record_event(st, copy, "Normal", "Preempted", msg);
		ks_update(st, pods, copy);
		ks_delete(st, pods, json_object_get(st->objects, v[i].key), "Background");
	}
	pod = json_deep_copy(pod);
	json_object_set_new(json_object_get(pod, "status"), "nominatedNodeName", json_string(n->name));
	ks_update(st, pods, pod);
}

/* Says why the pod is not scheduled (PodScheduled=False, Unschedulable),
 * once per change, as the scheduler's events are. */
static void unschedulable(struct ks_state *st, json_t *pod, const char *msg)
{
	char key[512];
	json_t *now;

	if (scheduled_message(pod) && !strcmp(scheduled_message(pod), msg))
		return;
	ks_key(ks_resource_find("", "v1", "pods"), ks_ns(pod), ks_name(pod), key, sizeof(key));
	now = json_object_get(st->objects, key);
	pod = json_deep_copy(now ? now : pod);
	set_scheduled(pod, "False", "Unschedulable", msg);
	ks_record_event(st, pod, "Warning", "FailedScheduling", msg);
	ks_update(st, ks_resource_find("", "v1", "pods"), pod);
}

static const char *group_of(const json_t *pod)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(pod, "metadata"), "annotations"),
						 "scheduling.k8s.io/group-name"));
}

/* Volcano's gang admission, for a pod that goes to Volcano and names a
 * PodGroup: the group is admitted (Inqueue) once minMember of its pods
 * exist and the nodes have room for its minResources; until then its
 * pods wait, saying so. An admitted group's pods are scheduled as any. */
static bool gang_admits(struct ks_state *st, json_t *pod)
{
	const char *scheduler = json_string_value(json_object_get(json_object_get(pod, "spec"), "schedulerName"));
	const char *group = group_of(pod), *key;
	const struct ks_resource *groups = ks_resource_find("scheduling.volcano.sh", "v1beta1", "podgroups");
	json_t *pg, *spec, *min, *member, *status;
	double free_[NRES] = {0}, want[NRES];
	int members = 0, pending = 0, min_member;
	char msg[512];

	if (!scheduler || strcmp(scheduler, "volcano") || !group)
		return true;
	if (!(pg = ks_get(st, groups, ks_ns(pod), group))) {
		snprintf(msg, sizeof(msg), "pod group %s is not found", group);
		unschedulable(st, pod, msg);
		return false;
	}
	status = json_object_get(pg, "status");
	if (!strcmp(jstr(json_object_get(status, "phase")), "Inqueue") ||
	    !strcmp(jstr(json_object_get(status, "phase")), "Running"))
		return true;
	json_object_foreach(st->pods, key, member) {
		const char *phase = jstr(json_object_get(json_object_get(member, "status"), "phase"));

		if (!strcmp(ks_ns(member), ks_ns(pod)) && group_of(member) && !strcmp(group_of(member), group) &&
		    (!strcmp(phase, "Pending") || !strcmp(phase, "Running"))) {
			members++;
			pending += !strcmp(phase, "Pending");
		}
	}
	spec = json_object_get(pg, "spec");
	min = json_object_get(spec, "minResources");
	min_member = json_is_integer(json_object_get(spec, "minMember")) ? (int)json_integer_value(json_object_get(spec, "minMember")) : 1;
	want[RES_CPU] = quantity(json_object_get(min, "cpu"));
	want[RES_MEM] = quantity(json_object_get(min, "memory"));
	want[RES_GPU] = quantity(json_object_get(min, "nvidia.com/gpu"));
	ensure_nodes(st);
	for (int i = 0; i < st->nnodes; i++)
		if (!st->nodes[i].unschedulable)
			for (int r = 0; r < NRES; r++)
				free_[r] += st->nodes[i].alloc[r] - st->nodes[i].used[r];
	if (members >= min_member && want[RES_CPU] <= free_[RES_CPU] + 1e-9 && want[RES_MEM] <= free_[RES_MEM] &&
	    want[RES_GPU] <= free_[RES_GPU]) {
		pg = json_deep_copy(pg);
		json_object_set_new(pg, "status", json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "phase", "Inqueue",
							      "conditions", "type", "Scheduled", "status", "True", "reason",
							      "tasks in gang are ready to be scheduled"));
		ks_update(st, groups, pg);
		return true;
	}
	/* Volcano's words for a gang it holds back. */
	snprintf(msg, sizeof(msg), "%d/%d tasks in gang unschedulable: pod group is not ready, %d Pending, %d minAvailable%s",
		 pending, members, pending, min_member,
		 members >= min_member ? "; the cluster has no room for the group's minResources" : "");
	if (strcmp(jstr(json_object_get(status, "phase")), "Pending")) {
		pg = json_deep_copy(pg);
		json_object_set_new(pg, "status", json_pack("{s:s, s:[{s:s, s:s, s:s, s:s}]}", "phase", "Pending",
							      "conditions", "type", "Unschedulable", "status", "True",
							      "reason", "NotEnoughResources", "message", msg));
		ks_update(st, groups, pg);
	}
	unschedulable(st, pod, msg);
	return false;
}

void ks_schedule(struct ks_state *st, json_t *pod)
{
	json_t *hist = json_object(), *preempt_hist = json_object();
	struct ks_node *best = NULL, *target = NULL;
	double d[NRES], best_free = -1;
	struct victim victims[256];
	int ntarget = -1;
	char reasons[NRES + 2][128], msg[1024], more[512];
	const char *nominated = json_string_value(json_object_get(json_object_get(pod, "status"), "nominatedNodeName"));
	bool resource_only;

	if (!gang_admits(st, pod))
		goto out;
	ensure_nodes(st);
	pod_demand(pod, d);
	for (int i = 0; i < st->nnodes; i++) {
		struct ks_node *n = &st->nodes[i];
		int k = node_fails(n, pod, d, n->used, n->pods, reasons, &resource_only);

		if (k == 0) {
			/* Least allocated, as NodeResourcesFit scores it: the
			 * share of cpu and memory left, a pod without requests
			 * counted as 100m and 200Mi; of equal nodes, the one with
			 * fewest pods (so such pods spread). */
			double cpu = d[RES_CPU] > 0 ? d[RES_CPU] : 0.1;
			double mem = d[RES_MEM] > 0 ? d[RES_MEM] : 200.0 * 1024 * 1024;
			double left = (n->alloc[RES_CPU] > 0 ? 1 - (n->used[RES_CPU] + cpu) / n->alloc[RES_CPU] : 0) / 2 +
				      (n->alloc[RES_MEM] > 0 ? 1 - (n->used[RES_MEM] + mem) / n->alloc[RES_MEM] : 0) / 2;

			left -= n->pods * 1e-9;
			if (left > best_free) {
				best_free = left;
				best = n;
			}
			continue;
		}
		for (int r = 0; r < k; r++)
			count_reason(hist, reasons[r]);
		if (!resource_only) {
			count_reason(preempt_hist, "Preemption is not helpful for scheduling");
		} else if (!nominated) {
			int nv = pick_victims(st, n, pod, d, victims, 256);

			if (nv < 0)
				count_reason(preempt_hist, "No preemption victims found for incoming pod");
			else if (ntarget < 0 || nv < ntarget)
				ntarget = nv, target = n;
		}
	}
	if (best) {
		bind(st, pod, best, d);
		goto out;
	}
	/* Victims leave gracefully: the nominated pod waits for its node. */
	if (target && ntarget > 0 && pick_victims(st, target, pod, d, victims, 256) == ntarget)
		preempt(st, pod, target, victims, ntarget);
	fit_message(hist, st->nnodes, msg, sizeof(msg));
	if (!target && !nominated && json_object_size(preempt_hist)) {
		fit_message(preempt_hist, st->nnodes, more, sizeof(more));
		snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), " preemption: %s", more);
	}
	/* On the pod as it is now (preemption may have nominated it). */
	unschedulable(st, pod, msg);
out:
	json_decref(hist);
	json_decref(preempt_hist);
}
