/* kubesim's object store: objects by key, a global resourceVersion, the
 * event log that watches read, deletion with finalizers and owner
 * references, and garbage collection. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/timeutil.h"
#include "contrib/kubesim/kubesim.h"

static const char *jstr(const json_t *v)
{
	const char *s = json_string_value(v);

	return s ? s : "";
}

#define LOG_CAP 65536

const struct ks_resource ks_resources[] = {
	{"namespaces", "namespace", "Namespace", "", "v1", false, "ns", false, false},
	{"pods", "pod", "Pod", "", "v1", true, "po", false, true},
	{"services", "service", "Service", "", "v1", true, "svc", false, true},
	{"configmaps", "configmap", "ConfigMap", "", "v1", true, "cm", false, false},
	{"secrets", "secret", "Secret", "", "v1", true, NULL, false, false},
	{"serviceaccounts", "serviceaccount", "ServiceAccount", "", "v1", true, "sa", false, false},
	{"events", "event", "Event", "", "v1", true, "ev", false, false},
	{"resourcequotas", "resourcequota", "ResourceQuota", "", "v1", true, "quota", false, true},
	{"nodes", "node", "Node", "", "v1", false, "no", false, true},
	{"deployments", "deployment", "Deployment", "apps", "v1", true, "deploy", false, true},
	{"poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", "policy", "v1", true,
	 "pdb", false, true},
	{"clusterroles", "clusterrole", "ClusterRole", "rbac.authorization.k8s.io", "v1", false, NULL,
	 false, false},
	{"clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", "rbac.authorization.k8s.io",
	 "v1", false, NULL, false, false},
	{"roles", "role", "Role", "rbac.authorization.k8s.io", "v1", true, NULL, false, false},
	{"rolebindings", "rolebinding", "RoleBinding", "rbac.authorization.k8s.io", "v1", true, NULL,
	 false, false},
	{"priorityclasses", "priorityclass", "PriorityClass", "scheduling.k8s.io", "v1", false, "pc",
	 false, false},
	{"sparkapplications", "sparkapplication", "SparkApplication",
	 "sparkoperator.k8s.io", "v1beta2", true, "sparkapp", true, true},
	/* The Prometheus operator's CRD, as on clusters that scrape the
	 * gateway with it. */
	{"servicemonitors", "servicemonitor", "ServiceMonitor", "monitoring.coreos.com", "v1", true,
	 "smon", false, false},
	/* Volcano's gang scheduling: a pod naming a group waits until the
	 * group is admitted (sched.c). */
	{"podgroups", "podgroup", "PodGroup", "scheduling.volcano.sh", "v1beta1", true, "pg", false, true},
};
const size_t ks_nresources = sizeof(ks_resources) / sizeof(ks_resources[0]);

const struct ks_resource *ks_resource_find(const char *group, const char *version,
					   const char *name)
{
	for (size_t i = 0; i < ks_nresources; i++)
		if (!strcmp(ks_resources[i].group, group) &&
		    !strcmp(ks_resources[i].version, version) &&
		    !strcmp(ks_resources[i].name, name))
			return &ks_resources[i];
	return NULL;
}

void ks_api_version(const struct ks_resource *r, char *out, size_t len)
{
	if (*r->group)
		snprintf(out, len, "%s/%s", r->group, r->version);
	else
		snprintf(out, len, "%s", r->version);
}

uint64_t ks_random(struct ks_state *st)
{
	/* xorshift64*: reproducible enough, and no global state. */
	st->rng ^= st->rng >> 12;
	st->rng ^= st->rng << 25;
	st->rng ^= st->rng >> 27;
	return st->rng * 2685821657736338717ULL;
}

void ks_new_uid(struct ks_state *st, char out[37])
{
	uint64_t a = ks_random(st), b = ks_random(st);

	snprintf(out, 37, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
		 (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
		 (unsigned)(0x8000 | ((b >> 48) & 0x3fff)),
		 (unsigned long long)(b & 0xffffffffffffULL));
}

void ks_now_rfc3339(char out[32])
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *ks_ns(const json_t *obj)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), "namespace"));
}

const char *ks_name(const json_t *obj)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
}

void ks_key(const struct ks_resource *r, const char *ns, const char *name,
	    char *out, size_t len)
{
	snprintf(out, len, "%s/%s/%s", r->name, r->namespaced && ns ? ns : "", name);
}

int ks_state_init(struct ks_state *st, const struct ks_options *opts)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->changed, NULL);
	st->opts = opts;
	st->objects = json_object();
	st->pods = json_object();
	st->livy = json_object();
	st->apps = json_object();
	st->of_resource = json_object();
	st->last_rv_of = json_object();
	st->compacted_of = json_object();
	st->dependents = json_object();
	st->gc_check = json_object();
	st->foreground = json_object();
	st->pods_touched = json_object();
	st->drivers_ending = json_object();
	st->watches_open = json_object();
	st->watches_peak = json_object();
	st->log_cap = LOG_CAP;
	st->log = calloc(st->log_cap, sizeof(*st->log));
	st->rng = (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)st << 16) ^ 0x9e3779b97f4a7c15ULL;
	st->tokens = opts->throttle_qps;
	st->openapi = ks_openapi_new(opts);
	return st->objects && st->log && st->openapi ? 0 : -1;
}

void ks_state_release(struct ks_state *st)
{
	for (size_t i = 0; i < st->log_len; i++)
		json_decref(st->log[(st->log_start + i) % st->log_cap].obj);
	free(st->log);
	free(st->tls_cert_pem);
	free(st->tls_key_pem);
	json_decref(st->objects);
	json_decref(st->pods);
	json_decref(st->livy);
	json_decref(st->apps);
	json_decref(st->of_resource);
	json_decref(st->last_rv_of);
	json_decref(st->compacted_of);
	json_decref(st->dependents);
	json_decref(st->gc_check);
	json_decref(st->foreground);
	for (size_t i = 0; i < st->lapses_len; i++)
		free(st->lapses[(st->lapses_start + i) % st->lapses_cap].key);
	free(st->lapses);
	json_decref(st->pods_touched);
	json_decref(st->drivers_ending);
	json_decref(st->watches_open);
	json_decref(st->watches_peak);
	ks_nodes_release(st);
	ks_openapi_free(st->openapi);
	pthread_cond_destroy(&st->changed);
	pthread_mutex_destroy(&st->lock);
}

static void append_event(struct ks_state *st, const char *type,
			 const struct ks_resource *r, json_t *obj)
{
	struct ks_event *e;

	if (st->log_len == st->log_cap) { /* drop the oldest: it is compacted */
		e = &st->log[st->log_start];
		json_object_set_new(st->compacted_of, e->res->name, json_integer(e->rv));
		json_decref(e->obj);
		st->log_start = (st->log_start + 1) % st->log_cap;
		st->log_len--;
	}
	e = &st->log[(st->log_start + st->log_len) % st->log_cap];
	e->rv = st->rv;
	e->type = type;
	e->res = r;
	json_object_set_new(st->last_rv_of, r->name, json_integer(st->rv));
	e->obj = json_deep_copy(obj);
	st->log_len++;
	pthread_cond_broadcast(&st->changed);
}

static void stamp_rv(struct ks_state *st, json_t *obj)
{
	char rv[24];

	snprintf(rv, sizeof(rv), "%lld", (long long)++st->rv);
	json_object_set_new(json_object_get(obj, "metadata"), "resourceVersion", json_string(rv));
}

json_t *ks_get(struct ks_state *st, const struct ks_resource *r, const char *ns,
	       const char *name)
{
	char key[512];

	ks_key(r, ns, name, key, sizeof(key));
	return json_object_get(st->objects, key);
}

static bool is_pods(const struct ks_resource *r)
{
	return !*r->group && !strcmp(r->name, "pods");
}

/* Whether a pod holds its node's resources: bound and not ended. */
static bool holds_node(const json_t *pod)
{
	const char *phase = jstr(json_object_get(json_object_get(pod, "status"), "phase"));

	return pod && json_object_get(json_object_get(pod, "spec"), "nodeName") && strcmp(phase, "Succeeded") &&
	       strcmp(phase, "Failed");
}

/* Keeps the pod index, the tick's to-do and the nodes' usage in step with
 * a pod written (old: NULL when new) or removed (pod: NULL). */
static void pod_written(struct ks_state *st, const char *key, const json_t *old, json_t *pod)
{
	if (pod) {
		json_object_set(st->pods, key, pod);
		json_object_set_new(st->pods_touched, key, json_true());
	} else {
		json_object_del(st->pods, key);
		json_object_del(st->pods_touched, key);
		json_object_del(st->drivers_ending, key);
	}
	if (holds_node(old) != holds_node(pod))
		st->nodes_known = false;
}

static const struct ks_resource *resource_of_kind(const char *api_version, const char *kind)
{
	for (size_t i = 0; i < ks_nresources; i++) {
		char v[96];

		ks_api_version(&ks_resources[i], v, sizeof(v));
		if (!strcmp(ks_resources[i].kind, kind) && !strcmp(v, api_version))
			return &ks_resources[i];
	}
	return NULL;
}

/* Whether the owner a reference names exists: the object of that kind and
 * name in the dependent's namespace, with that uid (Kubernetes' collector
 * checks the identity, not just a uid). */
static bool owner_exists(struct ks_state *st, const json_t *obj, const json_t *ref)
{
	const struct ks_resource *r = resource_of_kind(jstr(json_object_get(ref, "apiVersion")),
						       jstr(json_object_get(ref, "kind")));
	json_t *owner = r ? ks_get(st, r, r->namespaced ? ks_ns(obj) : NULL,
				   jstr(json_object_get(ref, "name"))) : NULL;

	return owner && !strcmp(jstr(json_object_get(json_object_get(owner, "metadata"), "uid")),
				jstr(json_object_get(ref, "uid")));
}

/* An object with owners, none of which exists, is garbage. */
static bool orphaned(struct ks_state *st, const json_t *obj)
{
	json_t *refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences"), *ref;
	size_t i;

	json_array_foreach(refs, i, ref)
		if (owner_exists(st, obj, ref))
			return false;
	return json_array_size(refs) > 0;
}

/* Notes when an Event lapses; oldest first, as they are made. */
static void remember_lapse(struct ks_state *st, const char *key)
{
	struct ks_lapse *l;

	if (st->lapses_len == st->lapses_cap) {
		size_t cap = st->lapses_cap ? st->lapses_cap * 2 : 1024;
		struct ks_lapse *grown = malloc(cap * sizeof(*grown));

		if (!grown)
			return;
		for (size_t i = 0; i < st->lapses_len; i++)
			grown[i] = st->lapses[(st->lapses_start + i) % st->lapses_cap];
		free(st->lapses);
		st->lapses = grown;
		st->lapses_cap = cap;
		st->lapses_start = 0;
	}
	l = &st->lapses[(st->lapses_start + st->lapses_len) % st->lapses_cap];
	if (!(l->key = strdup(key)))
		return;
	l->at_ms = gw_now_ms() + (int64_t)(st->opts->event_ttl_s * 1000);
	st->lapses_len++;
}

/* Keeps of_resource in step with objects: obj stored under key, or gone (NULL). */
static void index_resource(struct ks_state *st, const struct ks_resource *r, const char *key, json_t *obj)
{
	json_t *set = json_object_get(st->of_resource, r->name);

	if (!set)
		json_object_set_new(st->of_resource, r->name, set = json_object());
	if (obj)
		json_object_set(set, key, obj);
	else
		json_object_del(set, key);
}

static json_t *owner_refs(const json_t *obj)
{
	return json_object_get(json_object_get(obj, "metadata"), "ownerReferences");
}

/* Adds (or drops) key as a dependent of each owner obj names. */
static void index_owners(struct ks_state *st, const char *key, const json_t *obj, bool add)
{
	size_t i;
	json_t *ref;

	json_array_foreach(owner_refs(obj), i, ref) {
		const char *uid = jstr(json_object_get(ref, "uid"));
		json_t *set = json_object_get(st->dependents, uid);

		if (add) {
			if (!set)
				json_object_set_new(st->dependents, uid, set = json_object());
			json_object_set_new(set, key, json_true());
		} else if (set) {
			json_object_del(set, key);
			if (!json_object_size(set))
				json_object_del(st->dependents, uid);
		}
	}
}

static void check_later(struct ks_state *st, const char *key)
{
	json_object_set_new(st->gc_check, key, json_true());
	st->gc_due = true;
}

/* Snapshot of a set's keys, for walks that change it. */
static json_t *keys_of(const json_t *set)
{
	json_t *keys = json_array(), *v;
	const char *key;

	json_object_foreach((json_t *)(uintptr_t)set, key, v)
		json_array_append_new(keys, json_string(key));
	return keys;
}

void ks_insert(struct ks_state *st, const struct ks_resource *r, json_t *obj)
{
	json_t *meta = json_object_get(obj, "metadata");
	char key[512], uid[37], now[32], api_version[96];

	ks_new_uid(st, uid);
	ks_now_rfc3339(now);
	ks_api_version(r, api_version, sizeof(api_version));
	json_object_set_new(obj, "apiVersion", json_string(api_version));
	json_object_set_new(obj, "kind", json_string(r->kind));
	json_object_set_new(meta, "uid", json_string(uid));
	json_object_set_new(meta, "creationTimestamp", json_string(now));
	if (*r->group)
		json_object_set_new(meta, "generation", json_integer(1));
	stamp_rv(st, obj);
	ks_key(r, ks_ns(obj), ks_name(obj), key, sizeof(key));
	json_object_set(st->objects, key, obj);
	index_resource(st, r, key, obj);
	if (is_pods(r))
		pod_written(st, key, NULL, obj);
	if (!strcmp(r->name, "sparkapplications"))
		json_object_set(st->apps, key, obj);
	if (!strcmp(r->name, "events") && st->opts->event_ttl_s > 0)
		remember_lapse(st, key);
	if (!strcmp(r->name, "nodes"))
		st->nodes_listed = false;
	index_owners(st, key, obj, true);
	if (orphaned(st, obj))
		check_later(st, key);
	append_event(st, "ADDED", r, obj);
	json_decref(obj);
}

void ks_update(struct ks_state *st, const struct ks_resource *r, json_t *obj)
{
	char key[512];

	stamp_rv(st, obj);
	ks_key(r, ks_ns(obj), ks_name(obj), key, sizeof(key));
	if (is_pods(r))
		pod_written(st, key, json_object_get(st->objects, key), obj);
	if (!strcmp(r->name, "sparkapplications"))
		json_object_set(st->apps, key, obj);
	if (!strcmp(r->name, "nodes"))
		st->nodes_listed = false;
	index_owners(st, key, json_object_get(st->objects, key), false);
	index_owners(st, key, obj, true);
	json_object_set(st->objects, key, obj);
	index_resource(st, r, key, obj);
	append_event(st, "MODIFIED", r, obj);
	json_decref(obj);
}

void ks_remove(struct ks_state *st, const struct ks_resource *r, const char *ns,
	       const char *name)
{
	char key[512];
	json_t *obj;

	ks_key(r, ns, name, key, sizeof(key));
	obj = json_incref(json_object_get(st->objects, key));
	if (!obj)
		return;
	if (is_pods(r))
		pod_written(st, key, obj, NULL);
	json_object_del(st->apps, key);
	if (!strcmp(r->name, "nodes"))
		st->nodes_listed = false;
	json_object_del(st->objects, key);
	index_resource(st, r, key, NULL);
	json_object_del(st->foreground, key);
	index_owners(st, key, obj, false);
	/* What it owned is checked by the next collection. */
	{
		json_t *set = json_object_get(st->dependents, jstr(json_object_get(json_object_get(obj, "metadata"), "uid")));
		const char *dep;
		json_t *v;

		json_object_foreach(set, dep, v)
			check_later(st, dep);
	}
	/* A DELETED event carries the last state with a fresh resourceVersion. */
	stamp_rv(st, obj);
	append_event(st, "DELETED", r, obj);
	json_decref(obj);
}

static const struct ks_resource *resource_of(const char *key)
{
	size_t n = strcspn(key, "/");

	for (size_t i = 0; i < ks_nresources; i++)
		if (strlen(ks_resources[i].name) == n && !strncmp(ks_resources[i].name, key, n))
			return &ks_resources[i];
	return NULL;
}

static bool has_finalizer(const json_t *obj, const char *name)
{
	json_t *fins = json_object_get(json_object_get(obj, "metadata"), "finalizers");
	size_t i;
	json_t *f;

	json_array_foreach(fins, i, f)
		if (!strcmp(jstr(f), name))
			return true;
	return false;
}

void ks_delete(struct ks_state *st, const struct ks_resource *r, json_t *obj,
	       const char *propagation)
{
	json_t *meta = json_object_get(obj, "metadata"), *copy, *keys;
	char uid[64], now[32];
	size_t i;
	json_t *k;

	if (json_object_get(meta, "deletionTimestamp"))
		return; /* already being deleted */
	/* A copy: updating the stored object below frees obj. */
	snprintf(uid, sizeof(uid), "%s", jstr(json_object_get(meta, "uid")));
	ks_now_rfc3339(now);
	keys = keys_of(json_object_get(st->dependents, uid));
	if (propagation && !strcmp(propagation, "Orphan")) {
		json_array_foreach(keys, i, k) {
			json_t *dep = json_object_get(st->objects, json_string_value(k));
			json_t *refs, *kept;
			size_t j;
			json_t *ref;

			if (!dep)
				continue;
			dep = json_deep_copy(dep);
			refs = json_object_get(json_object_get(dep, "metadata"), "ownerReferences");
			kept = json_array();
			json_array_foreach(refs, j, ref)
				if (strcmp(jstr(json_object_get(ref, "uid")), uid))
					json_array_append(kept, ref);
			json_object_set_new(json_object_get(dep, "metadata"), "ownerReferences", kept);
			ks_update(st, resource_of(json_string_value(k)), dep);
		}
	}
	copy = json_deep_copy(obj);
	meta = json_object_get(copy, "metadata");
	if (propagation && !strcmp(propagation, "Foreground")) {
		json_t *fins = json_object_get(meta, "finalizers");

		if (!fins)
			json_object_set_new(meta, "finalizers", fins = json_array());
		json_array_append_new(fins, json_string("foregroundDeletion"));
		json_object_set_new(meta, "deletionTimestamp", json_string(now));
		json_object_set_new(meta, "deletionGracePeriodSeconds", json_integer(0));
		{
			char key[512];

			ks_key(r, ks_ns(copy), ks_name(copy), key, sizeof(key));
			json_object_set_new(st->foreground, key, json_true());
			st->gc_due = true;
		}
		ks_update(st, r, copy);
		json_array_foreach(keys, i, k) {
			json_t *dep = json_object_get(st->objects, json_string_value(k));

			if (dep)
				ks_delete(st, resource_of(json_string_value(k)), dep, "Background");
		}
	} else if (!strcmp(r->name, "pods") && json_object_get(json_object_get(copy, "spec"), "nodeName") &&
		   !json_object_get(meta, "finalizers")) {
		/* A running pod terminates first; the kubelet removes it. */
		json_object_set_new(meta, "deletionTimestamp", json_string(now));
		json_object_set_new(meta, "deletionGracePeriodSeconds", json_integer(0));
		ks_update(st, r, copy);
	} else if (json_array_size(json_object_get(meta, "finalizers"))) {
		json_object_set_new(meta, "deletionTimestamp", json_string(now));
		ks_update(st, r, copy);
	} else {
		ks_remove(st, r, ks_ns(copy), ks_name(copy));
		json_decref(copy);
	}
	json_decref(keys);
}

void ks_collect_garbage(struct ks_state *st)
{
	json_t *keys = keys_of(st->gc_check), *obj, *k;
	size_t i;

	json_object_clear(st->gc_check);
	json_array_foreach(keys, i, k) {
		obj = json_object_get(st->objects, json_string_value(k));
		if (obj && orphaned(st, obj))
			ks_delete(st, resource_of(json_string_value(k)), obj, "Background");
	}
	json_decref(keys);
	/* Foreground deletions finish once no dependent is left. */
	keys = keys_of(st->foreground);
	json_array_foreach(keys, i, k) {
		const struct ks_resource *r = resource_of(json_string_value(k));
		json_t *copy, *fins, *kept, *f;
		size_t j;

		obj = json_object_get(st->objects, json_string_value(k));
		if (!obj || !has_finalizer(obj, "foregroundDeletion")) {
			json_object_del(st->foreground, json_string_value(k));
			continue;
		}
		if (json_object_get(st->dependents, jstr(json_object_get(json_object_get(obj, "metadata"), "uid"))))
			continue;
		json_object_del(st->foreground, json_string_value(k));
		copy = json_deep_copy(obj);
		fins = json_object_get(json_object_get(copy, "metadata"), "finalizers");
		kept = json_array();
		json_array_foreach(fins, j, f)
			if (strcmp(json_string_value(f), "foregroundDeletion"))
				json_array_append(kept, f);
		if (json_array_size(kept) == 0 &&
		    !(r == &ks_resources[1] && json_object_get(json_object_get(copy, "spec"), "nodeName"))) {
			json_decref(kept);
			json_decref(copy);
			ks_remove(st, r, ks_ns(obj), ks_name(obj));
			continue;
		}
		json_object_set_new(json_object_get(copy, "metadata"), "finalizers", kept);
		ks_update(st, r, copy);
	}
	json_decref(keys);
	st->gc_due = json_object_size(st->gc_check) || json_object_size(st->foreground);
}

void ks_record_event(struct ks_state *st, json_t *obj, const char *type,
		     const char *reason, const char *message)
{
	const struct ks_resource *events = ks_resource_find("", "v1", "events");
	const char *ns = ks_ns(obj) ? ks_ns(obj) : "default";
	char name[300], now[32];
	json_t *ev;

	ks_now_rfc3339(now);
	snprintf(name, sizeof(name), "%s.%llx", ks_name(obj),
		 (unsigned long long)(ks_random(st) & 0xffffffffffULL));
	ev = json_pack("{s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s?, s:s}, s:s, s:s, s:s,"
		       " s:s, s:s, s:i, s:{s:s}}",
		       "metadata", "name", name, "namespace", ns,
		       "involvedObject", "kind", json_string_value(json_object_get(obj, "kind")),
		       "apiVersion", json_string_value(json_object_get(obj, "apiVersion")),
		       "name", ks_name(obj), "namespace", ks_ns(obj),
		       "uid", json_string_value(json_object_get(json_object_get(obj, "metadata"), "uid")),
		       "type", type, "reason", reason, "message", message,
		       "firstTimestamp", now, "lastTimestamp", now, "count", 1,
		       "source", "component", "kubesim");
	if (!ev)
		return;
	ks_insert(st, events, ev);
}

void ks_expire_events(struct ks_state *st, int64_t now_ms)
{
	const struct ks_resource *events = ks_resource_find("", "v1", "events");

	while (st->lapses_len && st->lapses[st->lapses_start].at_ms <= now_ms) {
		struct ks_lapse *l = &st->lapses[st->lapses_start];
		json_t *ev = json_incref(json_object_get(st->objects, l->key));

		if (ev)
			ks_remove(st, events, ks_ns(ev), ks_name(ev));
		json_decref(ev);
		free(l->key);
		st->lapses_start = (st->lapses_start + 1) % st->lapses_cap;
		st->lapses_len--;
	}
}
