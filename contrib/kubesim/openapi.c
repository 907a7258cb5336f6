/* kubesim's OpenAPI documents, built from the vendored upstream schemas
 * (tests/k8s/schemas) the way an API server publishes them: /openapi/v3
 * lists one document per group-version, each with its paths (the
 * operations carry x-kubernetes-group-version-kind and the fieldValidation
 * parameter, which is how kubectl learns that the server validates) and
 * the schemas they use; /openapi/v2 is the same definitions as Swagger
 * 2.0. Custom resources take their CRD's schema (SparkApplication,
 * PodGroup); kinds the vendored files do not describe
 * (PodDisruptionBudget, ServiceMonitor) get one that keeps any spec. Loaded on first use:
 * most kubesims never serve them. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kubesim.h"

struct ks_openapi {
	pthread_mutex_t lock;
	const struct ks_options *opts;
	bool loaded;
	char err[GW_ERRLEN];
	json_t *schemas;  /* every schema by name, as the documents hold them */
	json_t *by_kind;  /* "group/version/Kind" -> schema name */
	json_t *texts;    /* "api/v1", "apis/G/V" -> serialized document */
	char *root, *v2;  /* /openapi/v3 and /openapi/v2 */
};

static const char schema_prefix[] = "#/components/schemas/";

struct ks_openapi *ks_openapi_new(const struct ks_options *opts)
{
	struct ks_openapi *oa = calloc(1, sizeof(*oa));

	if (!oa)
		return NULL;
	pthread_mutex_init(&oa->lock, NULL);
	oa->opts = opts;
	return oa;
}

void ks_openapi_free(struct ks_openapi *oa)
{
	if (!oa)
		return;
	json_decref(oa->schemas);
	json_decref(oa->by_kind);
	json_decref(oa->texts);
	free(oa->root);
	free(oa->v2);
	pthread_mutex_destroy(&oa->lock);
	free(oa);
}

static json_t *load(const char *dir, const char *file, char *err)
{
	char path[1024];
	json_error_t jerr;
	json_t *doc;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	doc = json_load_file(path, 0, &jerr);
	if (!doc)
		gw_seterr(err, "%s: %s", path, jerr.text);
	return doc;
}

/* Calls fn with every object of v that refers to a schema ("$ref":
 * "#/components/schemas/NAME") and that schema's name. */
static void each_ref(json_t *v, void (*fn)(json_t *holder, const char *name, void *arg), void *arg)
{
	const char *key;
	json_t *item;
	size_t i;

	if (json_is_array(v)) {
		json_array_foreach(v, i, item)
			each_ref(item, fn, arg);
		return;
	}
	json_object_foreach(v, key, item) {
		const char *ref = json_string_value(item);

		if (!strcmp(key, "$ref") && ref && !strncmp(ref, schema_prefix, sizeof(schema_prefix) - 1))
			fn(v, ref + sizeof(schema_prefix) - 1, arg);
		else if (json_is_object(item) || json_is_array(item))
			each_ref(item, fn, arg);
	}
}

struct schema_copy {
	json_t *dst;
	const json_t *src;
};

/* Copies the schema called name from src into dst, with every schema it
 * refers to. */
static void copy_schema(json_t *holder, const char *name, void *arg)
{
	struct schema_copy *c = arg;
	json_t *s = json_object_get(c->src, name);

	(void)holder;
	if (!s || json_object_get(c->dst, name))
		return;
	json_object_set(c->dst, name, s);
	each_ref(s, copy_schema, c);
}

static bool has_kind(const json_t *schema, const struct ks_resource *r)
{
	size_t i;
	json_t *gvk;

	json_array_foreach(json_object_get(schema, "x-kubernetes-group-version-kind"), i, gvk)
		if (!strcmp(json_string_value(json_object_get(gvk, "group")), r->group) &&
		    !strcmp(json_string_value(json_object_get(gvk, "version")), r->version) &&
		    !strcmp(json_string_value(json_object_get(gvk, "kind")), r->kind))
			return true;
	return false;
}

static json_t *gvk_of(const struct ks_resource *r)
{
	return json_pack("{s:s, s:s, s:s}", "group", r->group, "version", r->version, "kind", r->kind);
}

/* "monitoring.coreos.com" -> "com.coreos.monitoring", as the API server
 * names a custom resource's schema. */
static void reversed_group(const char *group, char *out, size_t len)
{
	const char *end = group + strlen(group);

	out[0] = '\0';
	while (end > group) {
		const char *dot = end;
		size_t at = strlen(out);

		while (dot > group && dot[-1] != '.')
			dot--;
		snprintf(out + at, len - at, "%s%.*s", at ? "." : "", (int)(end - dot), dot);
		end = dot > group ? dot - 1 : group;
	}
}

/* A schema for a kind the vendored files lack: a custom resource's
 * (SparkApplication, from the operator's CRD), or one that keeps any
 * spec and status. */
static json_t *custom_schema(const struct ks_resource *r, const json_t *crd)
{
	json_t *s = crd ? json_deep_copy(crd) : json_pack(
		"{s:s, s:s, s:{s:{s:s, s:b}, s:{s:s, s:b}}}", "type", "object",
		"description", "kubesim does not vendor this kind's schema: spec and status are not checked.",
		"properties", "spec", "type", "object", "x-kubernetes-preserve-unknown-fields", true,
		"status", "type", "object", "x-kubernetes-preserve-unknown-fields", true);
	json_t *props = json_object_get(s, "properties");

	json_object_del(s, "$schema");
	json_object_del(s, "$id");
	json_object_del(s, "title");
	json_object_del(s, "$comment");
	json_object_set_new(props, "apiVersion", json_pack("{s:s}", "type", "string"));
	json_object_set_new(props, "kind", json_pack("{s:s}", "type", "string"));
	json_object_set_new(props, "metadata", json_pack("{s:[{s:s}]}", "allOf", "$ref",
							   "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
	json_object_set_new(s, "x-kubernetes-group-version-kind", json_pack("[o]", gvk_of(r)));
	return s;
}

/* A kind the API server itself serves, not a custom resource. */
static bool builtin(const struct ks_resource *r)
{
	static const char *const groups[] = {"", "apps", "policy", "rbac.authorization.k8s.io", "scheduling.k8s.io"};

	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		if (!strcmp(r->group, groups[i]))
			return true;
	return false;
}

static json_t *operation(const struct ks_resource *r, const char *action, const char *schema, bool validates)
{
	char ref[256];
	json_t *op, *params = json_array();

	snprintf(ref, sizeof(ref), "%s%s", schema_prefix, schema);
	op = json_pack("{s:s, s:o, s:s, s:{s:{s:s, s:{s:{s:{s:s}}}}}}", "operationId", action,
		       "x-kubernetes-group-version-kind", gvk_of(r), "x-kubernetes-action", action,
		       "responses", "200", "description", "OK", "content", "application/json", "schema", "$ref", ref);
	json_array_append_new(params, json_pack("{s:s, s:s, s:{s:s, s:b}}", "name", "dryRun", "in", "query",
						"schema", "type", "string", "uniqueItems", true));
	if (validates)
		json_array_append_new(params, json_pack("{s:s, s:s, s:s, s:{s:s, s:b}}", "name", "fieldValidation",
							"in", "query", "description",
							"Strict: an unknown field is an error (kubesim checks unknown fields only)",
							"schema", "type", "string", "uniqueItems", true));
	json_object_set_new(op, "parameters", params);
	if (!strcmp(action, "post") || !strcmp(action, "put"))
		json_object_set_new(op, "requestBody", json_pack("{s:{s:{s:{s:s}}}}", "content", "application/json",
								 "schema", "$ref", ref));
	if (!strcmp(action, "patch")) {
		/* What kubectl looks for to choose its patch type: custom
		 * resources take no strategic merge patch. */
		json_t *types = json_object();
		static const char *const patch_types[] = {"application/apply-patch+yaml", "application/json-patch+json",
							  "application/merge-patch+json",
							  "application/strategic-merge-patch+json"};

		for (size_t i = 0; i < sizeof(patch_types) / sizeof(patch_types[0]); i++)
			if (i < 3 || builtin(r))
				json_object_set_new(types, patch_types[i], json_pack("{s:{s:s}}", "schema", "$ref",
					"#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"));
		json_object_set_new(op, "requestBody", json_pack("{s:o}", "content", types));
	}
	return op;
}

static void add_paths(json_t *paths, const struct ks_resource *r, const char *schema)
{
	char base[256], item[300];

	snprintf(base, sizeof(base), "/%s%s/%s%s/%s", *r->group ? "apis/" : "api", r->group, r->version,
		 r->namespaced ? "/namespaces/{namespace}" : "", r->name);
	snprintf(item, sizeof(item), "%s/{name}", base);
	json_object_set_new(paths, base, json_pack("{s:o, s:o}", "get", operation(r, "list", schema, false),
						   "post", operation(r, "post", schema, true)));
	json_object_set_new(paths, item, json_pack("{s:o, s:o, s:o, s:o}", "get", operation(r, "get", schema, false),
						   "put", operation(r, "put", schema, true),
						   "patch", operation(r, "patch", schema, true),
						   "delete", operation(r, "delete", schema, false)));
}

/* A v3 schema reference as Swagger 2.0 writes it. */
static void to_v2_ref(json_t *holder, const char *name, void *arg)
{
	char v2[512];

	(void)arg;
	snprintf(v2, sizeof(v2), "#/definitions/%s", name);
	json_object_set_new(holder, "$ref", json_string(v2));
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static int build(struct ks_openapi *oa, const char *dir)
{
	json_t *core = NULL, *extra = NULL, *sched = NULL, *crd = NULL, *pg = NULL, *src = NULL, *docs = NULL;
	json_t *root_paths, *v2, *doc;
	const char *gv;
	char *text;
	int rc = -1;

	if (!(core = load(dir, "k8s-api-v1-openapi.json", oa->err)) ||
	    !(extra = load(dir, "k8s-apps-rbac-v1-openapi.json", oa->err)) ||
	    !(sched = load(dir, "k8s-scheduling-v1-openapi.json", oa->err)) ||
	    !(crd = load(dir, "sparkapplication-v1beta2.schema.json", oa->err)) ||
	    !(pg = load(dir, "podgroup-v1beta1.schema.json", oa->err)))
		goto fail;
	src = json_deep_copy(json_object_get(json_object_get(core, "components"), "schemas"));
	json_object_update(src, json_object_get(json_object_get(extra, "components"), "schemas"));
	json_object_update(src, json_object_get(json_object_get(sched, "components"), "schemas"));
	oa->schemas = json_object();
	oa->by_kind = json_object();
	docs = json_pack("{s:O}", "api/v1", core); /* upstream's, as it is */
	json_object_update(oa->schemas, src);
	for (size_t i = 0; i < ks_nresources; i++) {
		const struct ks_resource *r = &ks_resources[i];
		const char *name = NULL, *key;
		json_t *s, *schemas;
		char gvpath[128], custom[256], kind[160];

		if (r->operator_only && !oa->opts->operator_mode)
			continue;
		json_object_foreach(src, key, s)
			if (has_kind(s, r)) {
				name = key;
				break;
			}
		if (!name) {
			char rev[96];

			reversed_group(r->group, rev, sizeof(rev));
			snprintf(custom, sizeof(custom), "%s%s.%s.%s", *r->group ? "" : "io.k8s.api.core.",
				 rev, r->version, r->kind);
			if (!strcmp(r->group, "policy"))
				snprintf(custom, sizeof(custom), "io.k8s.api.policy.%s.%s", r->version, r->kind);
			name = custom;
			json_object_set_new(oa->schemas, name,
					    custom_schema(r, !strcmp(r->kind, "SparkApplication") ? crd
							     : !strcmp(r->kind, "PodGroup") ? pg : NULL));
		}
		snprintf(kind, sizeof(kind), "%s/%s/%s", r->group, r->version, r->kind);
		json_object_set_new(oa->by_kind, kind, json_string(name));
		if (!*r->group)
			continue;
		snprintf(gvpath, sizeof(gvpath), "apis/%s/%s", r->group, r->version);
		if (!(doc = json_object_get(docs, gvpath))) {
			doc = json_pack("{s:s, s:{s:s, s:s}, s:{}, s:{s:{}}}", "openapi", "3.0.0", "info", "title",
					"Kubernetes", "version", "v1.32.0-kubesim", "paths", "components", "schemas");
			json_object_set_new(docs, gvpath, doc);
		}
		schemas = json_object_get(json_object_get(doc, "components"), "schemas");
		copy_schema(NULL, name, &(struct schema_copy){.dst = schemas, .src = oa->schemas});
		add_paths(json_object_get(doc, "paths"), r, name);
	}
	oa->texts = json_object();
	root_paths = json_object();
	json_object_foreach(docs, gv, doc) {
		char url[256];

		text = json_dumps(doc, JSON_COMPACT);
		snprintf(url, sizeof(url), "/openapi/v3/%s?hash=%016llX", gv, (unsigned long long)fnv1a(text));
		json_object_set_new(oa->texts, gv, json_string(text));
		json_object_set_new(root_paths, gv, json_pack("{s:s}", "serverRelativeURL", url));
		free(text);
	}
	doc = json_pack("{s:o}", "paths", root_paths);
	oa->root = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	v2 = json_deep_copy(oa->schemas);
	each_ref(v2, to_v2_ref, NULL);
	doc = json_pack("{s:s, s:{s:s, s:s}, s:{}, s:o}", "swagger", "2.0", "info", "title", "Kubernetes",
			"version", "v1.32.0-kubesim", "paths", "definitions", v2);
	oa->v2 = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	rc = 0;
fail:
	json_decref(core);
	json_decref(extra);
	json_decref(sched);
	json_decref(crd);
	json_decref(pg);
	json_decref(src);
	json_decref(docs);
	return rc;
}

static int ensure_loaded(struct ks_openapi *oa)
{
	int rc = 0;

	pthread_mutex_lock(&oa->lock);
	if (!oa->loaded) {
		if (!oa->opts->openapi_dir) {
			gw_seterr(oa->err, "kubesim was started without --openapi");
			rc = -1;
		} else {
			rc = build(oa, oa->opts->openapi_dir);
		}
		oa->loaded = rc == 0;
		if (rc)
			fprintf(stderr, "kubesim: openapi: %s\n", oa->err);
	}
	pthread_mutex_unlock(&oa->lock);
	return rc;
}

const char *ks_openapi_document(struct ks_openapi *oa, const char *which)
{
	if (ensure_loaded(oa))
		return NULL;
	if (!strcmp(which, "v3"))
		return oa->root;
	if (!strcmp(which, "v2"))
		return oa->v2;
	return json_string_value(json_object_get(oa->texts, which));
}

/* The schema a reference or allOf wrapper stands for. */
static const json_t *resolve(const struct ks_openapi *oa, const json_t *s)
{
	for (int depth = 0; s && depth < 8; depth++) {
		const char *ref = json_string_value(json_object_get(s, "$ref"));
		const json_t *all = json_object_get(s, "allOf");

		if (ref && !strncmp(ref, schema_prefix, sizeof(schema_prefix) - 1))
			s = json_object_get(oa->schemas, ref + sizeof(schema_prefix) - 1);
		else if (json_array_size(all) == 1)
			s = json_array_get(all, 0);
		else
			return s;
	}
	return s;
}

static bool unknown_in(const struct ks_openapi *oa, const json_t *schema, json_t *v,
		       char *path, size_t len)
{
	size_t at = strlen(path);

	schema = resolve(oa, schema);
	if (!schema || json_is_true(json_object_get(schema, "x-kubernetes-preserve-unknown-fields")))
		return false;
	if (json_is_object(v)) {
		const json_t *props = json_object_get(schema, "properties");
		const json_t *more = json_object_get(schema, "additionalProperties");
		const char *key;
		json_t *item;

		if (!props && !json_is_object(more))
			return false; /* free-form, as RawExtension */
		json_object_foreach(v, key, item) {
			const json_t *sub = props ? json_object_get(props, key) : NULL;

			snprintf(path + at, len - at, "%s%s", at ? "." : "", key);
			if (!sub && !json_is_object(more))
				return true;
			if (unknown_in(oa, sub ? sub : more, item, path, len))
				return true;
		}
	} else if (json_is_array(v) && json_object_get(schema, "items")) {
		size_t i;
		json_t *item;

		json_array_foreach(v, i, item) {
			snprintf(path + at, len - at, "[%zu]", i);
			if (unknown_in(oa, json_object_get(schema, "items"), item, path, len))
				return true;
		}
	}
	path[at] = '\0';
	return false;
}

int ks_openapi_unknown_field(struct ks_openapi *oa, const struct ks_resource *r, json_t *obj,
			     char *path, size_t len)
{
	char kind[160];
	const json_t *schema;

	path[0] = '\0';
	if (ensure_loaded(oa))
		return -1;
	snprintf(kind, sizeof(kind), "%s/%s/%s", r->group, r->version, r->kind);
	schema = json_object_get(oa->schemas, json_string_value(json_object_get(oa->by_kind, kind)));
	return schema && unknown_in(oa, schema, obj, path, len) ? 1 : 0;
}

/* ---- strategic merge patch ---- */

static bool directive(const char *key)
{
	return key[0] == '$';
}

/* The patch's value as stored: without patch directives. */
static json_t *plain(json_t *v)
{
	const char *key;
	json_t *item, *out;
	size_t i;

	if (json_is_array(v)) {
		out = json_array();
		json_array_foreach(v, i, item)
			json_array_append_new(out, plain(item));
		return out;
	}
	if (!json_is_object(v))
		return json_incref(v);
	out = json_object();
	json_object_foreach(v, key, item)
		if (!directive(key))
			json_object_set_new(out, key, plain(item));
	return out;
}

static json_t *smp(const struct ks_openapi *oa, const json_t *schema, json_t *target, json_t *patch);

/* Index of the element of list that key identifies with want; -1. */
static ssize_t find_element(json_t *list, const char *key, const json_t *want)
{
	size_t i;
	json_t *item;

	json_array_foreach(list, i, item)
		if (key ? json_equal(json_object_get(item, key), want) : json_equal(item, want))
			return (ssize_t)i;
	return -1;
}

/* Merges a list whose schema says patch strategy "merge": elements with
 * the same merge key are merged (or removed by "$patch": "delete"),
 * others appended; primitive lists are a union. order is the patch's
 * $setElementOrder for the list, when it sent one. */
static json_t *merge_list(const struct ks_openapi *oa, const json_t *items, const char *key, json_t *target,
			  json_t *patch, json_t *order)
{
	json_t *out = json_is_array(target) ? json_deep_copy(target) : json_array(), *p, *sorted;
	size_t i;

	json_decref(target);
	json_array_foreach(patch, i, p) {
		const json_t *id = key ? json_object_get(p, key) : p;
		ssize_t at = id ? find_element(out, key, id) : -1;
		const char *op = json_string_value(json_object_get(p, "$patch"));

		if (op && !strcmp(op, "delete")) {
			if (at >= 0)
				json_array_remove(out, (size_t)at);
		} else if (at >= 0 && key) {
			json_array_set_new(out, (size_t)at, smp(oa, items, json_incref(json_array_get(out, (size_t)at)), p));
		} else if (at < 0) {
			json_array_append_new(out, plain(p));
		}
	}
	if (!json_is_array(order))
		return out;
	sorted = json_array();
	json_array_foreach(order, i, p) {
		ssize_t at = find_element(out, key, key ? json_object_get(p, key) : p);

		if (at >= 0) {
			json_array_append(sorted, json_array_get(out, (size_t)at));
			json_array_remove(out, (size_t)at);
		}
	}
	json_array_extend(sorted, out);
	json_decref(out);
	return sorted;
}

/* Applies patch to target (stolen) as the API server applies a strategic
 * merge patch: maps merge, lists with a patch-merge-key merge by it, and
 * the $patch, $retainKeys, $setElementOrder and $deleteFromPrimitiveList
 * directives act. NULL when "$patch": "delete" removes target. */
static json_t *smp(const struct ks_openapi *oa, const json_t *schema, json_t *target, json_t *patch)
{
	const char *op, *key;
	const json_t *props, *more, *retain;
	json_t *v;

	schema = resolve(oa, schema);
	if (!json_is_object(patch)) {
		json_decref(target);
		return plain(patch);
	}
	op = json_string_value(json_object_get(patch, "$patch"));
	if (op && !strcmp(op, "delete")) {
		json_decref(target);
		return NULL;
	}
	if ((op && !strcmp(op, "replace")) || !json_is_object(target)) {
		json_decref(target);
		return plain(patch);
	}
	props = json_object_get(schema, "properties");
	more = json_object_get(schema, "additionalProperties");
	json_object_foreach(patch, key, v) {
		const json_t *sub = props ? json_object_get(props, key) : NULL;
		json_t *cur = json_incref(json_object_get(target, key)), *next;

		if (!sub && json_is_object(more))
			sub = more;
		if (directive(key)) {
			json_decref(cur);
			if (!strncmp(key, "$deleteFromPrimitiveList/", 25) && json_is_array(v)) {
				json_t *list = json_object_get(target, key + 25), *gone;
				size_t i;

				json_array_foreach(v, i, gone)
					for (ssize_t at; (at = find_element(list, NULL, gone)) >= 0;)
						json_array_remove(list, (size_t)at);
			}
			continue;
		}
		if (json_is_null(v)) {
			json_decref(cur);
			json_object_del(target, key);
			continue;
		}
		sub = resolve(oa, sub);
		if (json_is_array(v) && sub) {
			const char *strategy = json_string_value(json_object_get(sub, "x-kubernetes-patch-strategy"));
			const char *merge_key = json_string_value(json_object_get(sub, "x-kubernetes-patch-merge-key"));
			char order[300];

			snprintf(order, sizeof(order), "$setElementOrder/%s", key);
			if (strategy && strstr(strategy, "merge")) {
				json_object_set_new(target, key, merge_list(oa, json_object_get(sub, "items"), merge_key,
									cur, v, json_object_get(patch, order)));
				continue;
			}
		}
		next = smp(oa, sub, cur, v);
		if (next)
			json_object_set_new(target, key, next);
		else
			json_object_del(target, key);
	}
	retain = json_object_get(patch, "$retainKeys");
	if (json_is_array(retain)) {
		void *tmp;

		json_object_foreach_safe(target, tmp, key, v) {
			bool kept = false;
			size_t i;
			json_t *name;

			json_array_foreach(retain, i, name)
				kept = kept || !strcmp(json_string_value(name) ? json_string_value(name) : "", key);
			if (!kept)
				json_object_del(target, key);
		}
	}
	return target;
}

json_t *ks_openapi_strategic_merge(struct ks_openapi *oa, const struct ks_resource *r, json_t *target,
				   json_t *patch)
{
	char kind[160];
	const json_t *schema = NULL;
	json_t *out;

	if (!ensure_loaded(oa)) {
		snprintf(kind, sizeof(kind), "%s/%s/%s", r->group, r->version, r->kind);
		schema = json_object_get(oa->schemas, json_string_value(json_object_get(oa->by_kind, kind)));
	}
	out = smp(oa, schema, target, patch);
	return out ? out : json_object();
}
