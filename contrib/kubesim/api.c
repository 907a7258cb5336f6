/* kubesim's REST API, on the Kubernetes wire format: discovery, CRUD with
 * Status errors, list with selectors and paging, watch streams, pod logs,
 * and the fault injection flags. Thread per connection, so that watch and
 * log streams may block waiting for changes. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <netinet/in.h>
#include <poll.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/buf.h"
#include "common/labels.h"
#include "common/timeutil.h"
#include "contrib/kubesim/kubesim.h"

#define MAX_BODY (4u << 20)
#define BOOKMARK_EVERY_MS 1000

struct request {
	struct gw_buf body;
	bool faulted;
};

static const char *jstr(const json_t *v)
{
	const char *s = json_string_value(v);

	return s ? s : "";
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned code, json_t *body)
{
	char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
	struct MHD_Response *r;
	enum MHD_Result ret;

	json_decref(body);
	if (!text)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned code, const char *text)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)(uintptr_t)text,
								  MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static json_t *status_object(unsigned code, const char *reason, const char *kind,
			     const char *name, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static json_t *status_object(unsigned code, const char *reason, const char *kind,
			     const char *name, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	json_t *s;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	s = json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:i}", "kind", "Status", "apiVersion", "v1",
		      "metadata", "status", "Failure", "message", msg, "reason", reason, "code", (int)code);
	if (kind || name)
		json_object_set_new(s, "details", json_pack("{s:s?, s:s?}", "name", name, "kind", kind));
	return s;
}

#define SEND_STATUS(c, code, reason, kind, name, ...) \
	send_json((c), (code), status_object((code), (reason), (kind), (name), __VA_ARGS__))

/* ---- discovery ---- */

static bool served(const struct ks_state *st, const struct ks_resource *r)
{
	return !r->operator_only || st->opts->operator_mode;
}

/* Reviews are answered, never stored, so they are not in ks_resources. */
static const char review_group[] = "authorization.k8s.io";

static json_t *resource_list(const struct ks_state *st, const char *group, const char *version)
{
	json_t *list = json_array();
	char gv[96];

	for (size_t i = 0; i < ks_nresources; i++) {
		const struct ks_resource *r = &ks_resources[i];
		json_t *e;
		char sub[96];

		if (strcmp(r->group, group) || strcmp(r->version, version) || !served(st, r))
			continue;
		e = json_pack("{s:s, s:s, s:b, s:s, s:[s, s, s, s, s, s, s]}", "name", r->name,
			      "singularName", r->singular, "namespaced", r->namespaced, "kind", r->kind,
			      "verbs", "create", "delete", "get", "list", "patch", "update", "watch");
		if (r->short_name)
			json_object_set_new(e, "shortNames", json_pack("[s]", r->short_name));
		if (*r->group && strcmp(r->group, "rbac.authorization.k8s.io") && strcmp(r->group, "scheduling.k8s.io"))
			json_object_set_new(e, "categories", json_pack("[s]", "all"));
		json_array_append_new(list, e);
		if (!strcmp(r->name, "pods"))
			json_array_append_new(list, json_pack("{s:s, s:s, s:b, s:s, s:[s]}", "name", "pods/log",
							      "singularName", "", "namespaced", true, "kind", "Pod", "verbs", "get"));
		if (!strcmp(r->name, "services"))
			json_array_append_new(list, json_pack("{s:s, s:s, s:b, s:s, s:[s, s, s, s, s, s, s]}", "name",
							      "services/proxy", "singularName", "", "namespaced", true,
							      "kind", "ServiceProxyOptions", "verbs", "create", "delete",
							      "get", "patch", "update", "connect", "head"));
		snprintf(sub, sizeof(sub), "%s/status", r->name);
		if (r->status_sub)
			json_array_append_new(list, json_pack("{s:s, s:s, s:b, s:s, s:[s, s, s]}", "name", sub,
							      "singularName", "", "namespaced", r->namespaced, "kind", r->kind,
							      "verbs", "get", "patch", "update"));
	}
	if (!strcmp(group, review_group) && !strcmp(version, "v1"))
		json_array_append_new(list, json_pack("{s:s, s:s, s:b, s:s, s:[s]}", "name", "selfsubjectaccessreviews",
						      "singularName", "selfsubjectaccessreview", "namespaced", false,
						      "kind", "SelfSubjectAccessReview", "verbs", "create"));
	snprintf(gv, sizeof(gv), "%s%s%s", group, *group ? "/" : "", version);
	return json_pack("{s:s, s:s, s:s, s:o}", "kind", "APIResourceList", "apiVersion", "v1",
			 "groupVersion", gv, "resources", list);
}

/* One version per group here, so it is the preferred one. */
static json_t *api_group(const char *group, const char *version)
{
	char gv[96];

	snprintf(gv, sizeof(gv), "%s/%s", group, version);
	return json_pack("{s:s, s:s, s:s, s:[{s:s, s:s}], s:{s:s, s:s}}", "kind", "APIGroup", "apiVersion", "v1",
			 "name", group, "versions", "groupVersion", gv, "version", version,
			 "preferredVersion", "groupVersion", gv, "version", version);
}

/* The served group's version, or NULL. */
static const char *group_version(const struct ks_state *st, const char *group)
{
	if (!strcmp(group, review_group))
		return "v1";
	for (size_t i = 0; i < ks_nresources; i++)
		if (*ks_resources[i].group && !strcmp(ks_resources[i].group, group) && served(st, &ks_resources[i]))
			return ks_resources[i].version;
	return NULL;
}

static json_t *group_list(const struct ks_state *st)
{
	json_t *groups = json_array();

	for (size_t i = 0; i < ks_nresources; i++) {
		const struct ks_resource *r = &ks_resources[i];
		bool seen = false;

		if (!*r->group || !served(st, r))
			continue;
		for (size_t j = 0; j < i && !seen; j++)
			seen = !strcmp(ks_resources[j].group, r->group);
		if (!seen) {
			json_t *g = api_group(r->group, r->version);

			json_object_del(g, "kind");
			json_object_del(g, "apiVersion");
			json_array_append_new(groups, g);
		}
	}
	{
		json_t *g = api_group(review_group, "v1");

		json_object_del(g, "kind");
		json_object_del(g, "apiVersion");
		json_array_append_new(groups, g);
	}
	return json_pack("{s:s, s:s, s:o}", "kind", "APIGroupList", "apiVersion", "v1", "groups", groups);
}

/* ---- paths ---- */

struct target {
	const struct ks_resource *res;
	char ns[254];  /* "" for cluster scope or all namespaces */
	char name[254];
	char sub[32];  /* "log", "status" or "" */
};

/* Splits /api/v1/... or /apis/G/V/... into a target; 0, or -1 if unknown. */
static int parse_target(const struct ks_state *st, const char *url, struct target *t)
{
	char group[64] = "", version[16], segs[5][254];
	const char *p;
	int n = 0;

	memset(t, 0, sizeof(*t));
	if (!strncmp(url, "/api/v1/", 8)) {
		snprintf(version, sizeof(version), "v1");
		p = url + 8;
	} else if (!strncmp(url, "/apis/", 6)) {
		const char *g = url + 6, *slash = strchr(g, '/'), *v;

		if (!slash || (size_t)(slash - g) >= sizeof(group))
			return -1;
		memcpy(group, g, (size_t)(slash - g));
		group[slash - g] = '\0';
		v = slash + 1;
		slash = strchr(v, '/');
		if (!slash || (size_t)(slash - v) >= sizeof(version))
			return -1;
		memcpy(version, v, (size_t)(slash - v));
		version[slash - v] = '\0';
		p = slash + 1;
	} else {
		return -1;
	}
	while (*p && n < 5) {
		size_t len = strcspn(p, "/");

		if (len == 0 || len >= sizeof(segs[0]))
			return -1;
		memcpy(segs[n], p, len);
		segs[n++][len] = '\0';
		p += len;
		if (*p == '/')
			p++;
	}
	if (*p || n == 0)
		return -1;
	if (!strcmp(segs[0], "namespaces") && n >= 3) {
		snprintf(t->ns, sizeof(t->ns), "%s", segs[1]);
		t->res = ks_resource_find(group, version, segs[2]);
		if (n >= 4)
			snprintf(t->name, sizeof(t->name), "%s", segs[3]);
		if (n == 5)
			snprintf(t->sub, sizeof(t->sub), "%s", segs[4]);
	} else if (n <= 2) {
		t->res = ks_resource_find(group, version, segs[0]);
		if (n == 2)
			snprintf(t->name, sizeof(t->name), "%s", segs[1]);
	} else {
		return -1;
	}
	if (!t->res || !served(st, t->res))
		return -1;
	if (t->res->namespaced == false && *t->ns)
		return -1;
	if (*t->sub && strcmp(t->sub, "status") && !(strcmp(t->sub, "log") == 0 && !strcmp(t->res->name, "pods")))
		return -1;
	return 0;
}

/* ---- selection ---- */

struct field_req {
	char path[64];
	char value[254];
	bool negate;
};

struct selection {
	struct gw_selector *labels;
	struct field_req fields[8];
	int nfields;
};

static const char *field_value(const json_t *obj, const char *path)
{
	char part[64];
	const json_t *cur = obj;

	while (*path && cur) {
		size_t n = strcspn(path, ".");

		if (n >= sizeof(part))
			return NULL;
		memcpy(part, path, n);
		part[n] = '\0';
		cur = json_object_get(cur, part);
		path += n;
		if (*path == '.')
			path++;
	}
	return json_string_value(cur);
}

static int parse_fields(const char *text, struct selection *sel, char *err)
{
	while (text && *text) {
		size_t n = strcspn(text, ",");
		char item[320];
		char *op;
		struct field_req *f;

		if (n >= sizeof(item) || sel->nfields == 8) {
			gw_seterr(err, "field selector too long");
			return -1;
		}
		memcpy(item, text, n);
		item[n] = '\0';
		text += n + (text[n] == ',');
		f = &sel->fields[sel->nfields];
		op = strstr(item, "!=");
		f->negate = op != NULL;
		if (!op)
			op = strstr(item, "==");
		if (!op)
			op = strchr(item, '=');
		if (!op) {
			gw_seterr(err, "invalid field selector: '%s'", item);
			return -1;
		}
		*op = '\0';
		op += (op[1] == '=') ? 2 : 1;
		if (!strcmp(item, "metadata.name") || !strcmp(item, "metadata.namespace") ||
		    !strcmp(item, "status.phase") || !strcmp(item, "spec.nodeName") ||
		    !strncmp(item, "involvedObject.", 15) || !strcmp(item, "reason") ||
		    !strcmp(item, "type")) {
			snprintf(f->path, sizeof(f->path), "%s", item);
			snprintf(f->value, sizeof(f->value), "%s", op);
			sel->nfields++;
		} else {
			gw_seterr(err, "field label not supported: %s", item);
			return -1;
		}
	}
	return 0;
}

static bool selected(const struct selection *sel, const json_t *obj)
{
	for (int i = 0; i < sel->nfields; i++) {
		const char *v = field_value(obj, sel->fields[i].path);
		bool eq = !strcmp(v ? v : "", sel->fields[i].value);

		if (eq == sel->fields[i].negate)
			return false;
	}
	return !sel->labels ||
	       gw_selector_matches(sel->labels, json_object_get(json_object_get(obj, "metadata"), "labels"));
}

static int parse_selection(struct MHD_Connection *c, struct selection *sel, char *err)
{
	const char *ls = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "labelSelector");
	const char *fs = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "fieldSelector");

	memset(sel, 0, sizeof(*sel));
	if (ls && gw_selector_parse(ls, &sel->labels, err) != GW_OK)
		return -1;
	return parse_fields(fs, sel, err);
}

/* Does key belong to the resource (and namespace, when one is given)? */
static bool key_in_scope(const char *key, const struct target *t)
{
	size_t rl = strlen(t->res->name), nl = strlen(t->ns);

	if (strncmp(key, t->res->name, rl) || key[rl] != '/')
		return false;
	return !*t->ns || (!strncmp(key + rl + 1, t->ns, nl) && key[rl + 1 + nl] == '/');
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void quota_usage(struct ks_state *st, json_t *quota)
{
	const char *ns = ks_ns(quota), *key;
	json_t *obj;
	double cpu = 0, mem = 0;
	int pods = 0;
	char text[64], prefix[300];

	snprintf(prefix, sizeof(prefix), "pods/%s/", ns);
	json_object_foreach(st->pods, key, obj) {
		const char *phase = jstr(json_object_get(json_object_get(obj, "status"), "phase"));
		double c, m;

		if (strncmp(key, prefix, strlen(prefix)) || !strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"))
			continue;
		ks_pod_requests(obj, &c, &m);
		cpu += c;
		mem += m;
		pods++;
	}
	json_object_set_new(quota, "status", json_object());
	json_object_set(json_object_get(quota, "status"), "hard",
			json_object_get(json_object_get(quota, "spec"), "hard"));
	json_object_set_new(json_object_get(quota, "status"), "used", json_object());
	snprintf(text, sizeof(text), "%d", pods);
	json_object_set_new(json_object_get(json_object_get(quota, "status"), "used"), "pods", json_string(text));
	snprintf(text, sizeof(text), "%lldm", (long long)(cpu * 1000 + 0.5));
	json_object_set_new(json_object_get(json_object_get(quota, "status"), "used"), "requests.cpu", json_string(text));
	snprintf(text, sizeof(text), "%lld", (long long)mem);
	json_object_set_new(json_object_get(json_object_get(quota, "status"), "used"), "requests.memory", json_string(text));
}

static json_t *serve_copy(struct ks_state *st, const struct ks_resource *r, json_t *obj)
{
	json_t *copy = json_deep_copy(obj);

	if (!strcmp(r->name, "resourcequotas"))
		quota_usage(st, copy);
	return copy;
}

static void hex_encode(const char *in, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; in[i] && 2 * i + 2 < outlen; i++)
		snprintf(out + 2 * i, 3, "%02x", (unsigned char)in[i]);
	out[2 * i] = '\0';
}

static int hex_decode(const char *in, char *out, size_t outlen)
{
	size_t n = strlen(in);

	if (n % 2 || n / 2 >= outlen)
		return -1;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(in + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (char)v;
	}
	out[n / 2] = '\0';
	return 0;
}

/* "5s", "3m", "2h", "4d", as kubectl prints ages. */
/* What the client asked to see: a Table (kubectl's Accept: …;as=Table),
 * with whole objects in its rows when includeObject=Object. */
static bool wants_table(struct MHD_Connection *c, bool *whole_objects)
{
	const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
	const char *include = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "includeObject");

	*whole_objects = include && !strcmp(include, "Object");
	return accept && strstr(accept, "as=Table");
}

static enum MHD_Result do_list(struct ks_state *st, struct MHD_Connection *c, const struct target *t)
{
	const char *limit_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
	const char *cont = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "continue");
	long limit = limit_s ? strtol(limit_s, NULL, 10) : 0;
	char err[GW_ERRLEN], after[600] = "", rv[24], list_kind[96], api_version[96];
	struct selection sel;
	const char **keys;
	size_t nkeys = 0, i, remaining = 0;
	json_t *items, *list, *obj, *of_kind;
	const char *key;
	bool whole_objects;

	if (parse_selection(c, &sel, err)) {
		gw_selector_free(sel.labels);
		return SEND_STATUS(c, 400, "BadRequest", NULL, NULL, "%s", err);
	}
	if (cont && hex_decode(cont, after, sizeof(after))) {
		gw_selector_free(sel.labels);
		return SEND_STATUS(c, 400, "BadRequest", NULL, NULL, "continue key is not valid");
	}
	pthread_mutex_lock(&st->lock);
	of_kind = json_object_get(st->of_resource, t->res->name);
	keys = malloc((json_object_size(of_kind) + 1) * sizeof(*keys));
	json_object_foreach(of_kind, key, obj)
		if (key_in_scope(key, t) && strcmp(key, after) > 0 && selected(&sel, obj))
			keys[nkeys++] = key;
	qsort(keys, nkeys, sizeof(*keys), cmp_keys);
	items = json_array();
	for (i = 0; i < nkeys && (limit <= 0 || (long)i < limit); i++)
		json_array_append_new(items, serve_copy(st, t->res, json_object_get(st->objects, keys[i])));
	snprintf(rv, sizeof(rv), "%lld", (long long)st->rv);
	ks_api_version(t->res, api_version, sizeof(api_version));
	snprintf(list_kind, sizeof(list_kind), "%sList", t->res->kind);
	list = json_pack("{s:s, s:s, s:{s:s}, s:o}", "kind", list_kind, "apiVersion", api_version,
			 "metadata", "resourceVersion", rv, "items", items);
	if (i < nkeys) {
		char token[1300];

		hex_encode(keys[i - 1], token, sizeof(token));
		remaining = nkeys - i;
		json_object_set_new(json_object_get(list, "metadata"), "continue", json_string(token));
		json_object_set_new(json_object_get(list, "metadata"), "remainingItemCount",
				    json_integer((json_int_t)remaining));
	}
	pthread_mutex_unlock(&st->lock);
	free(keys);
	gw_selector_free(sel.labels);
	if (wants_table(c, &whole_objects)) {
		json_t *table = ks_table(t->res, json_object_get(list, "items"), rv, true, whole_objects);

		json_object_set(json_object_get(table, "metadata"), "continue",
				json_object_get(json_object_get(list, "metadata"), "continue"));
		json_decref(list);
		return send_json(c, 200, table);
	}
	return send_json(c, 200, list);
}

/* ---- watch ---- */

struct watch {
	struct ks_state *st;
	int fd;       /* the client's socket, to see it close while idle */
	struct target t;
	struct selection sel;
	int64_t next_rv;  /* events after this are still to send */
	struct gw_buf out;
	size_t out_off;
	int64_t deadline_ms, drop_at_ms, bookmark_at_ms;
	bool bookmarks, done;
	bool counted; /* in st->watches_open */
	/* Events as one-row Tables (kubectl get -w), the columns in the
	 * first only. */
	bool table, table_objects, columns_sent;
};

static const char *str_rv(const json_t *obj)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
}

/* Counts a watch of resource opening (+1) or ending (-1); st->lock held. */
static void count_watch(struct ks_state *st, const char *resource, int delta)
{
	json_int_t open = json_integer_value(json_object_get(st->watches_open, resource)) + delta;

	json_object_set_new(st->watches_open, resource, json_integer(open));
	if (open > json_integer_value(json_object_get(st->watches_peak, resource)))
		json_object_set_new(st->watches_peak, resource, json_integer(open));
}

static void watch_emit(struct watch *w, const char *type, json_t *obj)
{
	json_t *ev;

	if (w->table && strcmp(type, "ERROR") && strcmp(type, "BOOKMARK")) {
		json_t *one = json_pack("[o]", obj);

		obj = ks_table(w->t.res, one, str_rv(obj), !w->columns_sent, w->table_objects);
		w->columns_sent = true;
		json_decref(one);
	}
	ev = json_pack("{s:s, s:o}", "type", type, "object", obj);
	char *text = json_dumps(ev, JSON_COMPACT);

	if (text) {
		if (gw_buf_append(&w->out, text, strlen(text)) == GW_OK)
			(void)!gw_buf_append(&w->out, "\n", 1);
		free(text);
	}
	json_decref(ev);
}

/* Under the lock: queue every matching event after next_rv. */
static void watch_collect(struct watch *w)
{
	struct ks_state *st = w->st;
	int64_t first;

	if (st->log_len == 0 || w->next_rv >= st->rv)
		return;
	first = st->log[st->log_start].rv;
	for (int64_t rv = w->next_rv + 1 > first ? w->next_rv + 1 : first; rv <= st->rv; rv++) {
		struct ks_event *e = &st->log[(st->log_start + (size_t)(rv - first)) % st->log_cap];
		char key[600];

		if (e->res != w->t.res)
			continue;
		ks_key(e->res, ks_ns(e->obj), ks_name(e->obj), key, sizeof(key));
		if (key_in_scope(key, &w->t) && selected(&w->sel, e->obj))
			watch_emit(w, e->type, json_deep_copy(e->obj));
	}
	w->next_rv = st->rv;
}

/* Whether the peer closed the connection (it sends nothing on a watch). */
static bool client_gone(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};

	return fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static ssize_t watch_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct watch *w = cls;
	struct ks_state *st = w->st;

	(void)pos;
	for (;;) {
		int64_t now, wake, gone;
		struct timespec until;

		if (w->out_off < w->out.len) {
			size_t n = w->out.len - w->out_off < max ? w->out.len - w->out_off : max;

			memcpy(buf, w->out.data + w->out_off, n);
			w->out_off += n;
			if (w->out_off == w->out.len) {
				w->out.len = 0;
				w->out_off = 0;
			}
			return (ssize_t)n;
		}
		if (w->done)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (client_gone(w->fd))
			return MHD_CONTENT_READER_END_WITH_ERROR;
		now = gw_now_ms();
		if (w->drop_at_ms && now >= w->drop_at_ms)
			return MHD_CONTENT_READER_END_WITH_ERROR; /* a dropped connection */
		if (now >= w->deadline_ms)
			return MHD_CONTENT_READER_END_OF_STREAM;
		pthread_mutex_lock(&st->lock);
		gone = json_integer_value(json_object_get(st->compacted_of, w->t.res->name));
		if (w->next_rv < gone) {
			watch_emit(w, "ERROR", status_object(410, "Expired", NULL, NULL,
				   "too old resource version: %lld (%lld)", (long long)w->next_rv,
				   (long long)gone));
			w->done = true;
		} else {
			watch_collect(w);
			if (w->out.len == 0 && w->bookmarks && now >= w->bookmark_at_ms) {
				char rv[24], api_version[96];

				snprintf(rv, sizeof(rv), "%lld", (long long)w->next_rv);
				ks_api_version(w->t.res, api_version, sizeof(api_version));
				watch_emit(w, "BOOKMARK", json_pack("{s:s, s:s, s:{s:s}}", "kind", w->t.res->kind,
								    "apiVersion", api_version, "metadata",
								    "resourceVersion", rv));
				w->bookmark_at_ms = now + BOOKMARK_EVERY_MS;
			}
			if (w->out.len == 0 && !st->stopping) {
				wake = w->deadline_ms;
				if (w->bookmarks && w->bookmark_at_ms < wake)
					wake = w->bookmark_at_ms;
				if (w->drop_at_ms && w->drop_at_ms < wake)
					wake = w->drop_at_ms;
				/* Short waits: a client that hung up is noticed
				 * at once, not at the next event. */
				if (wake > now + 20)
					wake = now + 20;
				until.tv_sec = wake / 1000;
				until.tv_nsec = (wake % 1000) * 1000000L;
				pthread_cond_timedwait(&st->changed, &st->lock, &until);
			}
			if (st->stopping)
				w->done = true;
		}
		pthread_mutex_unlock(&st->lock);
	}
}

static void watch_free(void *cls)
{
	struct watch *w = cls;

	if (w->counted) {
		pthread_mutex_lock(&w->st->lock);
		count_watch(w->st, w->t.res->name, -1);
		pthread_mutex_unlock(&w->st->lock);
	}
	gw_buf_release(&w->out);
	gw_selector_free(w->sel.labels);
	free(w);
}

static enum MHD_Result do_watch(struct ks_state *st, struct MHD_Connection *c, const struct target *t)
{
	const char *rv_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "resourceVersion");
	const char *timeout = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "timeoutSeconds");
	const char *bm = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "allowWatchBookmarks");
	struct watch *w = calloc(1, sizeof(*w));
	struct MHD_Response *r;
	enum MHD_Result ret;
	char err[GW_ERRLEN];
	int64_t now = gw_now_ms();

	const union MHD_ConnectionInfo *info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);

	w->st = st;
	w->t = *t;
	w->fd = info ? info->connect_fd : -1;
	gw_buf_init(&w->out, 64u << 20);
	if (parse_selection(c, &w->sel, err)) {
		watch_free(w);
		return SEND_STATUS(c, 400, "BadRequest", NULL, NULL, "%s", err);
	}
	w->deadline_ms = now + (timeout ? strtoll(timeout, NULL, 10) : 1800) * 1000;
	if (st->opts->drop_watch_after_s > 0)
		w->drop_at_ms = now + (int64_t)(st->opts->drop_watch_after_s * 1000);
	w->bookmarks = bm && !strcmp(bm, "true");
	w->table = wants_table(c, &w->table_objects);
	w->bookmark_at_ms = now + BOOKMARK_EVERY_MS;
	pthread_mutex_lock(&st->lock);
	if (rv_s && *rv_s && strcmp(rv_s, "0")) {
		w->next_rv = strtoll(rv_s, NULL, 10);
	} else {
		/* No version: the current state as ADDED events, then changes. */
		const char *key;
		json_t *obj;
		json_t *of_kind = json_object_get(st->of_resource, t->res->name);
		const char **keys = malloc((json_object_size(of_kind) + 1) * sizeof(*keys));
		size_t n = 0;

		json_object_foreach(of_kind, key, obj)
			if (key_in_scope(key, t) && selected(&w->sel, obj))
				keys[n++] = key;
		qsort(keys, n, sizeof(*keys), cmp_keys);
		for (size_t i = 0; i < n; i++)
			watch_emit(w, "ADDED", serve_copy(st, t->res, json_object_get(st->objects, keys[i])));
		free(keys);
		w->next_rv = st->rv;
	}
	count_watch(st, t->res->name, 1);
	w->counted = true;
	pthread_mutex_unlock(&st->lock);
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, watch_read, w, watch_free);
	MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* Prometheus text: the API server's gauge of open watches, and kubesim's
 * own peak of it (how many clients ever watched a resource at once). */
static enum MHD_Result send_metrics(struct ks_state *st, struct MHD_Connection *c)
{
	struct gw_buf out;
	const char *name;
	json_t *v;
	char line[256];
	bool ok = true;
	enum MHD_Result ret;

	gw_buf_init(&out, 1u << 20);
	pthread_mutex_lock(&st->lock);
	snprintf(line, sizeof(line), "# TYPE apiserver_longrunning_requests gauge\n");
	ok = ok && gw_buf_append(&out, line, strlen(line)) == GW_OK;
	json_object_foreach(st->watches_open, name, v) {
		snprintf(line, sizeof(line), "apiserver_longrunning_requests{verb=\"WATCH\",resource=\"%s\"} %lld\n",
			 name, (long long)json_integer_value(v));
		ok = ok && gw_buf_append(&out, line, strlen(line)) == GW_OK;
	}
	snprintf(line, sizeof(line), "# TYPE kubesim_watches_peak gauge\n");
	ok = ok && gw_buf_append(&out, line, strlen(line)) == GW_OK;
	json_object_foreach(st->watches_peak, name, v) {
		snprintf(line, sizeof(line), "kubesim_watches_peak{resource=\"%s\"} %lld\n", name,
			 (long long)json_integer_value(v));
		ok = ok && gw_buf_append(&out, line, strlen(line)) == GW_OK;
	}
	pthread_mutex_unlock(&st->lock);
	ret = ok ? send_text(c, 200, out.data) : SEND_STATUS(c, 500, "InternalError", NULL, NULL, "out of memory");
	gw_buf_release(&out);
	return ret;
}

/* ---- pod logs ---- */

/* One line in log4j's default Spark layout, "yy/MM/dd HH:mm:ss LEVEL ...". */
static void log_line(struct gw_buf *b, int64_t ms, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void log_line(struct gw_buf *b, int64_t ms, const char *fmt, ...)
{
	time_t secs = (time_t)(ms / 1000);
	char line[600];
	struct tm tm;
	va_list ap;
	int n;

	gmtime_r(&secs, &tm);
	n = snprintf(line, sizeof(line), "%02d/%02d/%02d %02d:%02d:%02d ", tm.tm_year % 100,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	(void)!gw_buf_append(b, line, strlen(line));
}

/* The driver's log so far: a Spark application's usual lines, one batch of
 * progress a second of its run. */
static char *pod_log(struct ks_state *st, const json_t *pod, bool *ended)
{
	const char *started = json_string_value(json_object_get(json_object_get(json_object_get(pod, "metadata"), "annotations"), "kubesim.io/started-ms"));
	const char *phase = jstr(json_object_get(json_object_get(pod, "status"), "phase"));
	const char *role = json_string_value(json_object_get(json_object_get(json_object_get(pod, "metadata"), "labels"), "spark-role"));
	int64_t t0 = started ? strtoll(started, NULL, 10) : gw_now_ms(), now = gw_now_ms();
	json_t *conf = ks_spark_conf(st, pod);
	double secs = strtod(conf && json_object_get(conf, "spark.kubesim.durationSeconds")
				     ? json_string_value(json_object_get(conf, "spark.kubesim.durationSeconds")) : "5", NULL);
	struct gw_buf b;
	int64_t end;

	*ended = !strcmp(phase, "Succeeded") || !strcmp(phase, "Failed");
	end = *ended ? t0 + (int64_t)(secs * 1000) : now;
	gw_buf_init(&b, 1u << 20);
	if (role && !strcmp(role, "executor")) {
		log_line(&b, t0, "INFO CoarseGrainedExecutorBackend: Started daemon with process name: 1@%s\n", ks_name(pod));
		log_line(&b, t0, "INFO Executor: Starting executor ID %s on host %s\n", ks_name(pod), "10.0.0.1");
	} else {
		log_line(&b, t0, "INFO SparkContext: Running Spark version 3.5.1\n");
		log_line(&b, t0, "INFO SparkContext: Submitted application: %s\n", ks_name(pod));
		log_line(&b, t0, "INFO Utils: Successfully started service 'sparkDriver' on port 7078.\n");
		log_line(&b, t0, "INFO SparkUI: Bound SparkUI to 0.0.0.0, and started at http://10.0.0.1:4040\n");
		log_line(&b, t0, "INFO ExecutorPodsAllocator: Going to request %s executors from Kubernetes for ResourceProfile Id: 0\n",
			 conf && json_object_get(conf, "spark.executor.instances") ? json_string_value(json_object_get(conf, "spark.executor.instances")) : "2");
		for (int64_t t = t0 + 1000, task = 0; t <= end && t < t0 + (int64_t)(secs * 1000); t += 1000, task++)
			log_line(&b, t, "INFO TaskSetManager: Finished task %lld.0 in stage 0.0 (TID %lld) in 1000 ms on 10.0.0.1 (executor 1)\n",
				 (long long)task, (long long)task);
		if (*ended) {
			const char *code = conf ? json_string_value(json_object_get(conf, "spark.kubesim.exitCode")) : NULL;

			if (!strcmp(phase, "Succeeded"))
				log_line(&b, end, "INFO DAGScheduler: Job 0 finished: reduce at SparkPi.scala:38, took %.1f s\n", secs);
			else
				log_line(&b, end, "ERROR SparkContext: Error running job, exit code %s\n", code ? code : "137");
			log_line(&b, end, "INFO SparkContext: Successfully stopped SparkContext\n");
		}
	}
	json_decref(conf);
	return b.data ? b.data : strdup("");
}

static const char *tail_lines(const char *text, long n)
{
	const char *p = text + strlen(text);

	if (n < 0)
		return text;
	if (n == 0)
		return p;
	if (p > text && p[-1] == '\n')
		p--;
	while (p > text) {
		if (p[-1] == '\n' && --n == 0)
			return p;
		p--;
	}
	return text;
}

struct log_follow {
	struct ks_state *st;
	char ns[254], name[254];
	size_t sent; /* bytes of the full log already sent */
	char *pending;
	size_t pending_off;
	bool done;
};

static ssize_t log_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct log_follow *f = cls;

	(void)pos;
	for (;;) {
		json_t *pod;
		bool ended = false;
		char *text;
		struct timespec pause = {0, 100 * 1000000L};

		if (f->pending && f->pending[f->pending_off]) {
			size_t n = strlen(f->pending + f->pending_off);

			n = n < max ? n : max;
			memcpy(buf, f->pending + f->pending_off, n);
			f->pending_off += n;
			return (ssize_t)n;
		}
		free(f->pending);
		f->pending = NULL;
		if (f->done)
			return MHD_CONTENT_READER_END_OF_STREAM;
		pthread_mutex_lock(&f->st->lock);
		pod = ks_get(f->st, ks_resource_find("", "v1", "pods"), f->ns, f->name);
		text = pod ? pod_log(f->st, pod, &ended) : NULL;
		pthread_mutex_unlock(&f->st->lock);
		if (!pod || ended)
			f->done = true;
		if (text && strlen(text) > f->sent) {
			f->pending = strdup(text + f->sent);
			f->pending_off = 0;
			f->sent = strlen(text);
		}
		free(text);
		if (!f->pending && !f->done)
			nanosleep(&pause, NULL);
	}
}

static void log_free(void *cls)
{
	struct log_follow *f = cls;

	free(f->pending);
	free(f);
}

static enum MHD_Result do_log(struct ks_state *st, struct MHD_Connection *c, const struct target *t)
{
	const char *tail = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "tailLines");
	const char *follow = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "follow");
	json_t *pod;
	char *text;
	const char *phase;
	bool ended;
	enum MHD_Result ret;

	pthread_mutex_lock(&st->lock);
	pod = ks_get(st, t->res, t->ns, t->name);
	if (!pod) {
		pthread_mutex_unlock(&st->lock);
		return SEND_STATUS(c, 404, "NotFound", "pods", t->name, "pods \"%s\" not found", t->name);
	}
	phase = jstr(json_object_get(json_object_get(pod, "status"), "phase"));
	if (!strcmp(phase, "Pending")) {
		const char *cname = jstr(json_object_get(json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0), "name"));

		pthread_mutex_unlock(&st->lock);
		return SEND_STATUS(c, 400, "BadRequest", NULL, NULL,
				   "container \"%s\" in pod \"%s\" is waiting to start: ContainerCreating", cname, t->name);
	}
	text = pod_log(st, pod, &ended);
	pthread_mutex_unlock(&st->lock);
	if (follow && !strcmp(follow, "true") && !ended) {
		struct log_follow *f = calloc(1, sizeof(*f));
		struct MHD_Response *r;

		f->st = st;
		snprintf(f->ns, sizeof(f->ns), "%s", t->ns);
		snprintf(f->name, sizeof(f->name), "%s", t->name);
		f->pending = strdup(tail_lines(text, tail ? strtol(tail, NULL, 10) : -1));
		f->sent = strlen(text);
		free(text);
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, log_read, f, log_free);
		MHD_add_response_header(r, "Content-Type", "text/plain");
		ret = MHD_queue_response(c, 200, r);
		MHD_destroy_response(r);
		return ret;
	}
	ret = send_text(c, 200, tail_lines(text, tail ? strtol(tail, NULL, 10) : -1));
	free(text);
	return ret;
}

/* ---- writes ---- */

static json_t *merge_patch(json_t *target, json_t *patch)
{
	const char *key;
	json_t *v;

	if (!json_is_object(patch)) {
		json_decref(target);
		return json_incref(patch);
	}
	if (!json_is_object(target)) {
		json_decref(target);
		target = json_object();
	}
	json_object_foreach(patch, key, v) {
		if (json_is_null(v))
			json_object_del(target, key);
		else
			json_object_set_new(target, key, merge_patch(json_incref(json_object_get(target, key)), v));
	}
	return target;
}

/* Validation the API server does for every create. */
static json_t *validate_new(struct ks_state *st, const struct target *t, json_t *obj)
{
	json_t *meta = json_object_get(obj, "metadata");
	const char *name = json_string_value(json_object_get(meta, "name"));
	char why[GW_ERRLEN];

	if (!name || !gw_dns1123_subdomain_valid(name, why)) {
		json_t *s = status_object(422, "Invalid", t->res->kind, name ? name : "",
					  "%s \"%s\" is invalid: metadata.name: Invalid value: \"%s\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
					  t->res->kind, name ? name : "", name ? name : "");
		json_object_set_new(json_object_get(s, "details"), "causes",
				    json_pack("[{s:s, s:s, s:s}]", "reason", "FieldValueInvalid", "message",
					      "Invalid value", "field", "metadata.name"));
		return s;
	}
	if (t->res->namespaced && !ks_get(st, ks_resource_find("", "v1", "namespaces"), NULL, t->ns))
		return status_object(404, "NotFound", "namespaces", t->ns, "namespaces \"%s\" not found", t->ns);
	if (!strcmp(t->res->name, "pods")) {
		json_t *containers = json_object_get(json_object_get(obj, "spec"), "containers");
		size_t i;
		json_t *ctr;

		if (json_array_size(containers) == 0)
			return status_object(422, "Invalid", "Pod", name,
					     "Pod \"%s\" is invalid: spec.containers: Required value", name);
		json_array_foreach(containers, i, ctr)
			if (!json_string_value(json_object_get(ctr, "image")) ||
			    !*json_string_value(json_object_get(ctr, "image")))
				return status_object(422, "Invalid", "Pod", name,
						     "Pod \"%s\" is invalid: spec.containers[%zu].image: Required value", name, i);
		/* Priority admission: the class's value, or a refusal. */
		if (ks_admit_priority(st, obj) < 0)
			return status_object(403, "Forbidden", "pods", name,
					     "pods \"%s\" is forbidden: no PriorityClass with name %s was found", name,
					     json_string_value(json_object_get(json_object_get(obj, "spec"),
									       "priorityClassName")));
	}
	if (ks_get(st, t->res, t->ns, name))
		return status_object(409, "AlreadyExists", t->res->name, name, "%s \"%s\" already exists",
				     t->res->name, name);
	return NULL;
}

enum write { WRITE_PUT, WRITE_MERGE_PATCH, WRITE_STRATEGIC_PATCH };

/* Secrets take stringData as the API server does: into data, base64. */
static void fold_string_data(const struct ks_resource *r, json_t *obj)
{
	json_t *strings = json_object_get(obj, "stringData"), *data, *v;
	const char *key;

	if (strcmp(r->name, "secrets") || !json_is_object(strings))
		return;
	data = json_object_get(obj, "data");
	if (!json_is_object(data))
		json_object_set_new(obj, "data", data = json_object());
	json_object_foreach(strings, key, v) {
		const char *text = json_string_value(v) ? json_string_value(v) : "";
		size_t len = strlen(text);
		char *b64 = malloc(4 * ((len + 2) / 3) + 1);

		if (!b64)
			continue;
		EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)text, (int)len);
		json_object_set_new(data, key, json_string(b64));
		free(b64);
	}
	json_object_del(obj, "stringData");
}

/* fieldValidation=Strict: an unknown field refuses the write, as the
 * API server's strict decoding does; Warn and Ignore accept it (kubesim
 * sends no warnings). NULL when the object may be written. */
static json_t *strict_fields(struct ks_state *st, struct MHD_Connection *c, const struct target *t,
			     json_t *obj)
{
	const char *mode = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "fieldValidation");
	char path[512];

	if (!mode || strcmp(mode, "Strict") || ks_openapi_unknown_field(st->openapi, t->res, obj, path, sizeof(path)) != 1)
		return NULL;
	return status_object(400, "BadRequest", NULL, NULL,
			     "%s in version \"%s\" cannot be handled as a %s: strict decoding error: unknown field \"%s\"",
			     t->res->kind, t->res->version, t->res->kind, path);
}

static bool dry_run(struct MHD_Connection *c)
{
	const char *dry = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "dryRun");

	return dry && !strcmp(dry, "All");
}

static enum MHD_Result do_create(struct ks_state *st, struct MHD_Connection *c,
				 const struct target *t, json_t *obj)
{
	json_t *meta = json_object_get(obj, "metadata"), *err, *stored;
	const char *gen = json_string_value(json_object_get(meta, "generateName"));
	const char *body_ns = json_string_value(json_object_get(meta, "namespace"));

	if (!json_is_object(meta))
		json_object_set_new(obj, "metadata", meta = json_object());
	if (body_ns && t->res->namespaced && strcmp(body_ns, t->ns)) {
		json_decref(obj);
		return SEND_STATUS(c, 400, "BadRequest", NULL, NULL,
				   "the namespace of the provided object does not match the namespace sent on the request");
	}
	if (t->res->namespaced)
		json_object_set_new(meta, "namespace", json_string(t->ns));
	fold_string_data(t->res, obj);
	if ((err = strict_fields(st, c, t, obj))) {
		json_decref(obj);
		return send_json(c, 400, err);
	}
	pthread_mutex_lock(&st->lock);
	if (!json_object_get(meta, "name") && gen) {
		char name[300];
		static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";

		snprintf(name, sizeof(name), "%s", gen);
		for (int i = 0; i < 5; i++)
			name[strlen(gen) + (size_t)i] = alphabet[ks_random(st) % (sizeof(alphabet) - 1)];
		name[strlen(gen) + 5] = '\0';
		json_object_set_new(meta, "name", json_string(name));
	}
	if (!strcmp(t->res->name, "pods")) {
		json_t *status = json_object_get(obj, "status");

		if (!json_is_object(status))
			json_object_set_new(obj, "status", status = json_object());
		json_object_set_new(status, "phase", json_string("Pending"));
		json_object_set_new(status, "qosClass", json_string("Burstable"));
		if (!json_object_get(json_object_get(obj, "spec"), "restartPolicy"))
			json_object_set_new(json_object_get(obj, "spec"), "restartPolicy", json_string("Always"));
	}
	if (!strcmp(t->res->name, "namespaces"))
		json_object_set_new(obj, "status", json_pack("{s:s}", "phase", "Active"));
	if ((err = validate_new(st, t, obj))) {
		pthread_mutex_unlock(&st->lock);
		json_decref(obj);
		return send_json(c, (unsigned)json_integer_value(json_object_get(err, "code")), err);
	}
	if (dry_run(c)) {
		pthread_mutex_unlock(&st->lock);
		return send_json(c, 201, obj);
	}
	stored = json_incref(obj);
	ks_insert(st, t->res, obj);
	obj = serve_copy(st, t->res, stored);
	json_decref(stored);
	pthread_mutex_unlock(&st->lock);
	return send_json(c, 201, obj);
}

static enum MHD_Result do_update(struct ks_state *st, struct MHD_Connection *c,
				 const struct target *t, json_t *obj, enum write how)
{
	json_t *cur, *next, *err;
	const char *want_rv;

	pthread_mutex_lock(&st->lock);
	cur = ks_get(st, t->res, t->ns, t->name);
	if (!cur) {
		pthread_mutex_unlock(&st->lock);
		json_decref(obj);
		return SEND_STATUS(c, 404, "NotFound", t->res->name, t->name, "%s \"%s\" not found",
				   t->res->name, t->name);
	}
	want_rv = json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
	if (want_rv && strcmp(want_rv, jstr(json_object_get(json_object_get(cur, "metadata"), "resourceVersion")))) {
		pthread_mutex_unlock(&st->lock);
		json_decref(obj);
		return SEND_STATUS(c, 409, "Conflict", t->res->name, t->name,
				   "Operation cannot be fulfilled on %s \"%s\": the object has been modified; please apply your changes to the latest version and try again",
				   t->res->name, t->name);
	}
	if (how == WRITE_MERGE_PATCH) {
		next = merge_patch(json_deep_copy(cur), obj);
	} else if (how == WRITE_STRATEGIC_PATCH) {
		next = ks_openapi_strategic_merge(st->openapi, t->res, json_deep_copy(cur), obj);
	} else if (!strcmp(t->sub, "status")) {
		next = json_deep_copy(cur);
		json_object_set(next, "status", json_object_get(obj, "status"));
	} else {
		next = json_deep_copy(obj);
		/* Identity and status are the server's. */
		json_object_set(next, "status", json_object_get(cur, "status"));
		json_object_set(json_object_get(next, "metadata"), "uid",
				json_object_get(json_object_get(cur, "metadata"), "uid"));
		json_object_set(json_object_get(next, "metadata"), "creationTimestamp",
				json_object_get(json_object_get(cur, "metadata"), "creationTimestamp"));
		json_object_set(json_object_get(next, "metadata"), "name", json_object_get(json_object_get(cur, "metadata"), "name"));
		json_object_set(json_object_get(next, "metadata"), "namespace", json_object_get(json_object_get(cur, "metadata"), "namespace"));
	}
	json_object_set(next, "kind", json_object_get(cur, "kind"));
	json_object_set(next, "apiVersion", json_object_get(cur, "apiVersion"));
	json_decref(obj);
	fold_string_data(t->res, next);
	if ((err = strict_fields(st, c, t, next))) {
		pthread_mutex_unlock(&st->lock);
		json_decref(next);
		return send_json(c, 400, err);
	}
	if (dry_run(c)) {
		pthread_mutex_unlock(&st->lock);
		return send_json(c, 200, next);
	}
	json_incref(next);
	ks_update(st, t->res, next);
	obj = serve_copy(st, t->res, next);
	json_decref(next);
	pthread_mutex_unlock(&st->lock);
	return send_json(c, 200, obj);
}

static enum MHD_Result do_delete(struct ks_state *st, struct MHD_Connection *c,
				 const struct target *t, const json_t *opts)
{
	const char *prop = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "propagationPolicy");
	json_t *cur, *after, *body;

	if (!prop)
		prop = json_string_value(json_object_get(opts, "propagationPolicy"));
	pthread_mutex_lock(&st->lock);
	cur = ks_get(st, t->res, t->ns, t->name);
	if (!cur) {
		pthread_mutex_unlock(&st->lock);
		return SEND_STATUS(c, 404, "NotFound", t->res->name, t->name, "%s \"%s\" not found",
				   t->res->name, t->name);
	}
	body = json_deep_copy(cur);
	if (dry_run(c)) {
		pthread_mutex_unlock(&st->lock);
		return send_json(c, 200, body);
	}
	ks_delete(st, t->res, cur, prop ? prop : "Background");
	after = ks_get(st, t->res, t->ns, t->name);
	if (after) { /* still terminating or finalizing: show that state */
		json_decref(body);
		body = json_deep_copy(after);
	}
	pthread_mutex_unlock(&st->lock);
	return send_json(c, 200, body);
}

/* ---- dispatch ---- */

/* 1 for /apis/GROUP, 2 for /apis/GROUP/VERSION of a served group, else 0. */
static int discovery_target(const struct ks_state *st, const char *url, char group[64], const char **version)
{
	const char *g, *slash;
	size_t len;

	if (strncmp(url, "/apis/", 6))
		return 0;
	g = url + 6;
	slash = strchr(g, '/');
	len = slash ? (size_t)(slash - g) : strlen(g);
	if (len >= 64)
		return 0;
	memcpy(group, g, len);
	group[len] = '\0';
	if (!(*version = group_version(st, group)))
		return 0;
	if (!slash)
		return 1;
	return strcmp(slash + 1, *version) ? 0 : 2;
}

/* /openapi/v2, /openapi/v3 and /openapi/v3/<group-version> (the ?hash
 * a client adds is only for its cache). */
static enum MHD_Result send_openapi(struct ks_state *st, struct MHD_Connection *c, const char *url)
{
	const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Accept");
	const char *which = NULL, *text;
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!strcmp(url, "/openapi/v2")) {
		/* No protobuf here: a client that takes only that is told so. */
		if (accept && strstr(accept, "protobuf") && !strstr(accept, "json") && !strstr(accept, "*/*"))
			return SEND_STATUS(c, 406, "NotAcceptable", NULL, NULL,
					   "only the following media types are accepted: application/json");
		which = "v2";
	} else if (!strcmp(url, "/openapi/v3")) {
		which = "v3";
	} else if (!strncmp(url, "/openapi/v3/", 12)) {
		which = url + 12;
	}
	if (!which || !(text = ks_openapi_document(st->openapi, which)))
		return SEND_STATUS(c, 404, "NotFound", NULL, NULL, "the server could not find the requested resource");
	r = MHD_create_response_from_buffer(strlen(text), (void *)(uintptr_t)text, MHD_RESPMEM_PERSISTENT);
	MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/* Reads a protobuf varint; false past end. */
static bool pb_varint(const unsigned char **p, const unsigned char *end, uint64_t *v)
{
	*v = 0;
	for (int shift = 0; *p < end && shift < 64; shift += 7) {
		unsigned char b = *(*p)++;

		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return true;
	}
	return false;
}

/* The bytes of length-delimited field want in a protobuf message, or
 * NULL. */
static const unsigned char *pb_field(const unsigned char *p, size_t len, unsigned want, size_t *out)
{
	const unsigned char *end = p + len;
	uint64_t key, n;

	while (p && p < end && pb_varint(&p, end, &key)) {
		switch (key & 7) {
		case 0: if (!pb_varint(&p, end, &n)) return NULL; break;
		case 1: p += 8; break;
		case 5: p += 4; break;
		case 2:
			if (!pb_varint(&p, end, &n) || n > (uint64_t)(end - p))
				return NULL;
			if ((key >> 3) == want) {
				*out = (size_t)n;
				return p;
			}
			p += n;
			break;
		default: return NULL;
		}
	}
	return NULL;
}

/* The spec of a SelfSubjectAccessReview sent as Kubernetes protobuf (as
 * kubectl auth can-i sends it): the "k8s\0" envelope's runtime.Unknown
 * holds the object, whose field 2 is the spec. */
static json_t *review_spec_from_protobuf(const char *body, size_t len)
{
	static const char *const resource_fields[] = {"namespace", "verb", "group", "version",
						      "resource", "subresource", "name"};
	static const char *const path_fields[] = {"path", "verb"};
	const unsigned char *raw, *spec, *attrs;
	size_t raw_len, spec_len, attrs_len, n;
	json_t *out;

	if (len < 4 || memcmp(body, "k8s", 4) ||
	    !(raw = pb_field((const unsigned char *)body + 4, len - 4, 2, &raw_len)) ||
	    !(spec = pb_field(raw, raw_len, 2, &spec_len)))
		return NULL;
	out = json_object();
	for (unsigned which = 1; which <= 2; which++) {
		const char *const *names = which == 1 ? resource_fields : path_fields;
		size_t count = which == 1 ? 7 : 2;
		json_t *attr;

		if (!(attrs = pb_field(spec, spec_len, which, &attrs_len)))
			continue;
		attr = json_object();
		for (unsigned f = 1; f <= count; f++) {
			const unsigned char *text = pb_field(attrs, attrs_len, f, &n);

			if (text)
				json_object_set_new(attr, names[f - 1], json_stringn((const char *)text, n));
		}
		json_object_set_new(out, which == 1 ? "resourceAttributes" : "nonResourceAttributes", attr);
	}
	return out;
}

/* GET /api/v1/namespaces/NS/services/NAME[:PORT]/proxy[/PATH]; 0 when
 * url is not that. */
static int proxy_target(const char *url, char ns[128], char service[256], const char **path)
{
	const char *p = url + strlen("/api/v1/namespaces/"), *slash, *end;

	if (strncmp(url, "/api/v1/namespaces/", 19) || !(slash = strchr(p, '/')) || (size_t)(slash - p) >= 128 ||
	    strncmp(slash, "/services/", 10))
		return 0;
	snprintf(ns, 128, "%.*s", (int)(slash - p), p);
	p = slash + 10;
	if (!(end = strchr(p, '/')) || (size_t)(end - p) >= 256 || strncmp(end, "/proxy", 6) ||
	    (end[6] && end[6] != '/'))
		return 0;
	snprintf(service, 256, "%.*s", (int)(end - p), p);
	*path = end[6] ? end + 7 : "";
	return 1;
}

static enum MHD_Result send_proxied(struct ks_state *st, struct MHD_Connection *c, const char *ns,
				    const char *service, const char *path, const char *method,
				    const struct request *rq)
{
	struct ks_proxied out;
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (ks_service_proxy(st, ns, service, path,
			     MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Forwarded-Context"), method,
			     rq->body.data ? rq->body.data : "", rq->body.len, &out))
		return SEND_STATUS(c, out.code, out.code == 404 ? "NotFound" : "ServiceUnavailable",
				   out.code == 404 ? "services" : NULL, NULL, "%s", out.message);
	r = MHD_create_response_from_buffer(out.len, out.body, MHD_RESPMEM_MUST_FREE);
	MHD_add_response_header(r, "Content-Type", out.content_type);
	if (*out.location)
		MHD_add_response_header(r, "Location", out.location);
	ret = MHD_queue_response(c, out.code, r);
	MHD_destroy_response(r);
	return ret;
}

/* kubectl auth can-i: kubesim authorizes every request it authenticated
 * (there is no RBAC evaluation), and says so. The answer is JSON, which
 * kubectl accepts beside protobuf. */
static enum MHD_Result review_access(struct MHD_Connection *c, const struct request *rq)
{
	const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
	const char *body = rq->body.data ? rq->body.data : "";
	json_t *review = NULL, *spec;

	if (ct && !strncmp(ct, "application/vnd.kubernetes.protobuf", 35)) {
		if ((spec = review_spec_from_protobuf(body, rq->body.len)))
			review = json_pack("{s:s, s:s, s:{}, s:o}", "kind", "SelfSubjectAccessReview", "apiVersion",
					   "authorization.k8s.io/v1", "metadata", "spec", spec);
	} else {
		review = json_loadb(body, rq->body.len, 0, NULL);
	}
	if (!json_is_object(review) || !json_is_object(json_object_get(review, "spec"))) {
		json_decref(review);
		return SEND_STATUS(c, 400, "BadRequest", NULL, NULL, "a SelfSubjectAccessReview needs a spec");
	}
	json_object_set_new(review, "status", json_pack("{s:b, s:s}", "allowed", true, "reason",
						       "kubesim allows every authenticated request"));
	return send_json(c, 201, review);
}

static bool authorized(const struct ks_state *st, struct MHD_Connection *c)
{
	const char *auth;
	char want[512];

	if (!st->opts->token)
		return true;
	auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	snprintf(want, sizeof(want), "Bearer %s", st->opts->token);
	return auth && !strcmp(auth, want);
}

/* Token bucket over all API requests; false when over --throttle-qps. */
static bool take_token(struct ks_state *st)
{
	int64_t now = gw_now_ms();
	bool ok;

	if (st->opts->throttle_qps <= 0)
		return true;
	pthread_mutex_lock(&st->lock);
	st->tokens += (double)(now - st->tokens_at_ms) / 1000.0 * st->opts->throttle_qps;
	if (st->tokens > st->opts->throttle_qps)
		st->tokens = st->opts->throttle_qps;
	st->tokens_at_ms = now;
	ok = st->tokens >= 1.0;
	if (ok)
		st->tokens -= 1.0;
	pthread_mutex_unlock(&st->lock);
	return ok;
}

static enum MHD_Result handle_api(struct ks_state *st, struct MHD_Connection *c,
				  const char *url, const char *method, struct request *rq)
{
	struct target t;
	json_t *body = NULL;
	bool watch = false;
	const char *w = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "watch");

	if (parse_target(st, url, &t))
		return SEND_STATUS(c, 404, "NotFound", NULL, NULL, "the server could not find the requested resource");
	watch = w && (!strcmp(w, "true") || !strcmp(w, "1"));
	if (rq->body.len) {
		json_error_t jerr;

		body = json_loadb(rq->body.data, rq->body.len, 0, &jerr);
		if (!body)
			return SEND_STATUS(c, 400, "BadRequest", NULL, NULL, "invalid JSON: %s", jerr.text);
	}
	if (!strcmp(method, "GET")) {
		json_decref(body);
		if (!strcmp(t.sub, "log"))
			return do_log(st, c, &t);
		if (!*t.name)
			return watch ? do_watch(st, c, &t) : do_list(st, c, &t);
		{
			json_t *obj;

			pthread_mutex_lock(&st->lock);
			obj = ks_get(st, t.res, t.ns, t.name);
			obj = obj ? serve_copy(st, t.res, obj) : NULL;
			pthread_mutex_unlock(&st->lock);
			if (!obj)
				return SEND_STATUS(c, 404, "NotFound", t.res->name, t.name, "%s \"%s\" not found",
						   t.res->name, t.name);
			return send_json(c, 200, obj);
		}
	}
	if (!strcmp(method, "POST") && !*t.name) {
		if (!json_is_object(body)) {
			json_decref(body);
			return SEND_STATUS(c, 400, "BadRequest", NULL, NULL, "the body must be a JSON object");
		}
		return do_create(st, c, &t, body);
	}
	if ((!strcmp(method, "PUT") || !strcmp(method, "PATCH")) && *t.name) {
		const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");

		if (!json_is_object(body)) {
			json_decref(body);
			return SEND_STATUS(c, 400, "BadRequest", NULL, NULL, "the body must be a JSON object");
		}
		if (!strcmp(method, "PUT"))
			return do_update(st, c, &t, body, WRITE_PUT);
		if (ct && !strncmp(ct, "application/merge-patch+json", 28))
			return do_update(st, c, &t, body, WRITE_MERGE_PATCH);
		if (ct && !strncmp(ct, "application/strategic-merge-patch+json", 38))
			return do_update(st, c, &t, body, WRITE_STRATEGIC_PATCH);
		json_decref(body);
		return SEND_STATUS(c, 415, "UnsupportedMediaType", NULL, NULL,
				   "the body of the request was in an unknown format - accepted media types include: application/merge-patch+json, application/strategic-merge-patch+json");
	}
	if (!strcmp(method, "DELETE") && *t.name) {
		enum MHD_Result ret = do_delete(st, c, &t, body);

		json_decref(body);
		return ret;
	}
	json_decref(body);
	return SEND_STATUS(c, 405, "MethodNotAllowed", NULL, NULL, "the server does not allow this method on the requested resource");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version,
				  const char *upload, size_t *upload_size, void **con_cls)
{
	struct ks_state *st = cls;
	struct request *rq = *con_cls;
	enum MHD_Result ret;
	bool is_api;
	char group[64], proxy_ns[128], proxy_service[256];
	const char *group_v, *proxy_path;

	(void)version;
	if (!rq) {
		rq = calloc(1, sizeof(*rq));
		gw_buf_init(&rq->body, MAX_BODY);
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_size) {
		if (gw_buf_append(&rq->body, upload, *upload_size) != GW_OK)
			rq->faulted = true;
		*upload_size = 0;
		return MHD_YES;
	}
	if (rq->faulted)
		return SEND_STATUS(c, 413, "RequestEntityTooLarge", NULL, NULL, "the request is too large");
	if (!strcmp(url, "/healthz") || !strcmp(url, "/readyz") || !strcmp(url, "/livez"))
		return send_text(c, 200, "ok");
	if (!authorized(st, c))
		return SEND_STATUS(c, 401, "Unauthorized", NULL, NULL, "Unauthorized");
	is_api = !strncmp(url, "/api/", 5) || !strncmp(url, "/apis/", 6);
	if (is_api && !take_token(st)) {
		json_t *s = status_object(429, "TooManyRequests", NULL, NULL, "Too many requests, please try again later.");
		char *text = json_dumps(s, JSON_COMPACT);
		struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);

		json_decref(s);
		MHD_add_response_header(r, "Content-Type", "application/json");
		MHD_add_response_header(r, "Retry-After", "1");
		ret = MHD_queue_response(c, 429, r);
		MHD_destroy_response(r);
		return ret;
	}
	if (is_api && st->opts->error_rate > 0) {
		double roll;

		pthread_mutex_lock(&st->lock);
		roll = (double)(ks_random(st) % 1000000) / 1e6;
		pthread_mutex_unlock(&st->lock);
		if (roll < st->opts->error_rate)
			return SEND_STATUS(c, 500, "InternalError", NULL, NULL,
					   "Internal error occurred: injected by kubesim --error-rate");
	}
	if (!strcmp(url, "/metrics"))
		ret = send_metrics(st, c);
	else if (!strcmp(url, "/version"))
		ret = send_json(c, 200, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
						  "major", "1", "minor", "32", "gitVersion", "v1.32.0-kubesim",
						  "gitCommit", "0000000000000000000000000000000000000000",
						  "gitTreeState", "clean", "buildDate", "2026-01-01T00:00:00Z",
						  "goVersion", "go1.23", "compiler", "gc", "platform", "linux/amd64"));
	else if (!strcmp(url, "/api"))
		ret = send_json(c, 200, json_pack("{s:s, s:[s], s:[{s:s, s:s}]}", "kind", "APIVersions",
						  "versions", "v1", "serverAddressByClientCIDRs",
						  "clientCIDR", "0.0.0.0/0", "serverAddress", st->opts->listen));
	else if (!strcmp(url, "/apis"))
		ret = send_json(c, 200, group_list(st));
	else if (!strncmp(url, "/openapi/", 9))
		ret = send_openapi(st, c, url);
	else if (!strcmp(url, "/api/v1"))
		ret = send_json(c, 200, resource_list(st, "", "v1"));
	else if (discovery_target(st, url, group, &group_v) == 1)
		ret = send_json(c, 200, api_group(group, group_v));
	else if (discovery_target(st, url, group, &group_v) == 2)
		ret = send_json(c, 200, resource_list(st, group, group_v));
	else if (!strcmp(url, "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"))
		ret = strcmp(method, "POST") ? SEND_STATUS(c, 405, "MethodNotAllowed", NULL, NULL,
							   "the server does not allow this method on the requested resource")
					     : review_access(c, rq);
	else if (proxy_target(url, proxy_ns, proxy_service, &proxy_path))
		ret = send_proxied(st, c, proxy_ns, proxy_service, proxy_path, method, rq);
	else if (is_api)
		ret = handle_api(st, c, url, method, rq);
	else
		ret = SEND_STATUS(c, 404, "NotFound", NULL, NULL, "the server could not find the requested resource");
	/* Latency after the work: a client that gives up meanwhile has still
	 * caused the change, as with a slow real API server. */
	if (is_api && st->opts->latency_ms > 0) {
		struct timespec d = {st->opts->latency_ms / 1000, (st->opts->latency_ms % 1000) * 1000000L};

		nanosleep(&d, NULL);
	}
	return ret;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *con_cls;

	(void)cls;
	(void)c;
	(void)toe;
	if (rq) {
		gw_buf_release(&rq->body);
		free(rq);
	}
	*con_cls = NULL;
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	struct gw_buf b;
	char chunk[4096];
	size_t n;

	if (!f)
		return NULL;
	gw_buf_init(&b, 1u << 20);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (gw_buf_append(&b, chunk, n) != GW_OK)
			break;
	fclose(f);
	return b.data;
}

struct MHD_Daemon *ks_api_start(struct ks_state *st, char *err)
{
	const char *colon = strrchr(st->opts->listen, ':');
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD;
	struct MHD_Daemon *d;
	struct sockaddr_in addr = {.sin_family = AF_INET};
	char host[64];
	char *cert = NULL, *key = NULL;

	if (!colon || (size_t)(colon - st->opts->listen) >= sizeof(host)) {
		gw_seterr(err, "--listen must be HOST:PORT");
		return NULL;
	}
	memcpy(host, st->opts->listen, (size_t)(colon - st->opts->listen));
	host[colon - st->opts->listen] = '\0';
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		gw_seterr(err, "--listen host must be an IPv4 address");
		return NULL;
	}
	addr.sin_port = htons((uint16_t)strtoul(colon + 1, NULL, 10));
	if (st->opts->tls_cert) {
		cert = read_file(st->opts->tls_cert);
		key = read_file(st->opts->tls_key);
		if (!cert || !key) {
			gw_seterr(err, "cannot read --tls-cert or --tls-key");
			free(cert);
			free(key);
			return NULL;
		}
		flags |= MHD_USE_TLS;
	}
	d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, st,
			     MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
			     MHD_OPTION_NOTIFY_COMPLETED, on_completed, st,
			     MHD_OPTION_CONNECTION_TIMEOUT, 120u,
			     cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert,
			     MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_END);
	/* The TLS layer keeps pointers to these for the daemon's lifetime. */
	st->tls_cert_pem = cert;
	st->tls_key_pem = key;
	if (!d)
		gw_seterr(err, "cannot listen on %s: %s", st->opts->listen, strerror(errno));
	return d;
}
