/* Job texts and their cache. */
#include "gateway/api/jobview.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/redact.h"
#include "common/timeutil.h"

/* ---- rendering ---- */

/* Every field but labels and spec, which are spliced in as stored. */
static json_t *job_head(const struct store_job *job)
{
	char created[GW_TIME_LEN], updated[GW_TIME_LEN], rv[24], self[64], events[72], logs[72], ui[72];
	json_t *out;

	gw_time_format(job->created_ms, created);
	gw_time_format(job->updated_ms, updated);
	snprintf(rv, sizeof(rv), "%lld", (long long)job->rv);
	snprintf(self, sizeof(self), "/api/v1/jobs/%s", job->id);
	snprintf(events, sizeof(events), "/api/v1/jobs/%s/events", job->id);
	snprintf(logs, sizeof(logs), "/api/v1/jobs/%s/logs", job->id);
	snprintf(ui, sizeof(ui), "/api/v1/jobs/%s/ui/", job->id);
	out = json_pack("{s:s, s:s, s:s, s:s, s:s?, s:s?, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s}}",
			"id", job->id, "name", job->name, "user", job->user,
			"state", store_state_name(job->state),
			"reason", job->reason, "message", job->message,
			"createdAt", created, "updatedAt", updated,
			"resourceVersion", rv,
			"links", "self", self, "events", events, "logs", logs, "ui", ui);
	if (!out)
		return NULL;
	if (job->cluster) {
		json_t *stored = job->placement_json ? json_loads(job->placement_json, 0, NULL) : NULL;
		json_t *p = json_pack("{s:s, s:s?}", "cluster", job->cluster, "namespace", job->namespace);
		static const char *const keep[] = {"pool", "namespaceGroup", "nodeRole", "execution",
							     "executionReason", "sharedServer", "reasons"};

		for (size_t i = 0; stored && i < sizeof(keep) / sizeof(keep[0]); i++)
			if (json_object_get(stored, keep[i]))
				json_object_set(p, keep[i], json_object_get(stored, keep[i]));
		json_decref(stored);
		json_object_set_new(out, "placement", p);
	} else {
		json_object_set_new(out, "placement", json_null());
	}
	json_object_set_new(out, "run", json_integer(job->run > 1 ? job->run : 1));
	json_object_set_new(out, "driver", job->driver_pod
			    ? json_pack("{s:s, s:s?, s:s*}", "podName", job->driver_pod, "sparkUI", job->spark_ui,
					"sparkApplicationId", job->spark_app_id)
			    : json_null());
	return out;
}

const char *jobview_spec_shown(const struct store_job *job, char **owned)
{
	json_t *doc;

	*owned = NULL;
	if (job->spec_shown_json && *job->spec_shown_json)
		return job->spec_shown_json;
	if (job->spec_shown_json || !gw_redact_may_apply(job->spec_json))
		return job->spec_json; /* "": nothing in it was secret */
	/* A row from before redacted specs were kept. */
	doc = json_loads(job->spec_json, 0, NULL);
	gw_redact_document(doc);
	*owned = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(doc);
	return *owned ? *owned : "{}";
}

/* The job's text in a new block, after `room` bytes left for the caller. */
static char *render(const struct store_job *job, size_t room, size_t *len)
{
	json_t *head = job_head(job);
	char *head_text = head ? json_dumps(head, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	char *redacted = NULL, *out = NULL;
	const char *spec;
	size_t hl, ll, sl;

	json_decref(head);
	if (!head_text)
		return NULL;
	spec = jobview_spec_shown(job, &redacted);
	hl = strlen(head_text) - 1; /* without its closing brace */
	ll = strlen(job->labels_json);
	sl = strlen(spec);
	out = malloc(room + hl + ll + sl + sizeof(",\"labels\":,\"spec\":}"));
	if (out) {
		char *p = out + room;

		memcpy(p, head_text, hl), p += hl;
		memcpy(p, ",\"labels\":", 10), p += 10;
		memcpy(p, job->labels_json, ll), p += ll;
		memcpy(p, ",\"spec\":", 8), p += 8;
		memcpy(p, spec, sl), p += sl;
		*p++ = '}';
		*p = '\0';
		*len = (size_t)(p - out) - room;
	}
	free(head_text);
	free(redacted);
	return out;
}

char *jobview_render(const struct store_job *job, size_t *len)
{
	return render(job, 0, len);
}

/* ---- the cache ---- */

#define BUCKETS 16384

struct node {
	struct node *by_id, *by_seq; /* hash chains */
	struct node *prev, *next;    /* least recently used first */
	struct jobview_entry *e;
};

struct jobview {
	pthread_mutex_t lock;
	size_t max_bytes, bytes;
	uint64_t epoch;
	struct node *ids[BUCKETS], *seqs[BUCKETS];
	struct node *oldest, *newest;
};

/* The reference count sits before the entry, apart from its fields. */
struct counted {
	atomic_int refs;
	struct jobview_entry e;
};

#define COUNTED(entry) ((struct counted *)((char *)(entry) - offsetof(struct counted, e)))

static size_t id_bucket(const char *id)
{
	uint32_t h = 2166136261u;

	for (; *id; id++)
		h = (h ^ (unsigned char)*id) * 16777619u;
	return h % BUCKETS;
}

static size_t seq_bucket(int64_t seq)
{
	return (size_t)((uint64_t)seq * 0x9e3779b97f4a7c15ull >> 50) % BUCKETS;
}

struct jobview *jobview_new(size_t max_bytes)
{
	struct jobview *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	pthread_mutex_init(&v->lock, NULL);
	v->max_bytes = max_bytes;
	return v;
}

void jobview_release(struct jobview_entry *e)
{
	if (e && atomic_fetch_sub(&COUNTED(e)->refs, 1) == 1)
		free(COUNTED(e));
}

static void unlink_node(struct jobview *v, struct node *n)
{
	struct node **p;

	for (p = &v->ids[id_bucket(n->e->id)]; *p != n; p = &(*p)->by_id)
		;
	*p = n->by_id;
	for (p = &v->seqs[seq_bucket(n->e->seq)]; *p != n; p = &(*p)->by_seq)
		;
	*p = n->by_seq;
	if (n->prev)
		n->prev->next = n->next;
	else
		v->oldest = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		v->newest = n->prev;
	v->bytes -= n->e->len;
	jobview_release(n->e);
	free(n);
}

void jobview_free(struct jobview *v)
{
	if (!v)
		return;
	while (v->oldest)
		unlink_node(v, v->oldest);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

static struct node *find(struct jobview *v, const char *id)
{
	struct node *n = v->ids[id_bucket(id)];

	while (n && strcmp(n->e->id, id))
		n = n->by_id;
	return n;
}

struct jobview_entry *jobview_get(struct jobview *v, const char *id)
{
	struct jobview_entry *e = NULL;
	struct node *n;

	pthread_mutex_lock(&v->lock);
	if ((n = find(v, id))) {
		e = n->e;
		atomic_fetch_add(&COUNTED(e)->refs, 1);
		if (n != v->newest) { /* most recently used last */
			if (n->prev)
				n->prev->next = n->next;
			else
				v->oldest = n->next;
			n->next->prev = n->prev;
			n->prev = v->newest;
			n->next = NULL;
			v->newest->next = n;
			v->newest = n;
		}
	}
	pthread_mutex_unlock(&v->lock);
	return e;
}

uint64_t jobview_epoch(struct jobview *v)
{
	uint64_t e;

	pthread_mutex_lock(&v->lock);
	e = v->epoch;
	pthread_mutex_unlock(&v->lock);
	return e;
}

struct jobview_entry *jobview_put(struct jobview *v, uint64_t epoch, const struct store_job *job)
{
	size_t len;
	struct counted *c = (struct counted *)(void *)render(job, sizeof(*c), &len);
	struct node *n;

	if (!c)
		return NULL;
	atomic_init(&c->refs, 1);
	c->e.seq = job->seq;
	c->e.rv = job->rv;
	c->e.state = job->state;
	snprintf(c->e.id, sizeof(c->e.id), "%s", job->id);
	snprintf(c->e.team, sizeof(c->e.team), "%s", job->team ? job->team : "");
	c->e.len = len;
	c->e.text = (const char *)(c + 1); /* rendered there */
	if (len > v->max_bytes / 8 || !(n = calloc(1, sizeof(*n))))
		return &c->e;
	pthread_mutex_lock(&v->lock);
	if (v->epoch != epoch || find(v, c->e.id)) {
		pthread_mutex_unlock(&v->lock);
		free(n);
		return &c->e;
	}
	atomic_fetch_add(&c->refs, 1);
	n->e = &c->e;
	n->by_id = v->ids[id_bucket(c->e.id)];
	v->ids[id_bucket(c->e.id)] = n;
	n->by_seq = v->seqs[seq_bucket(c->e.seq)];
	v->seqs[seq_bucket(c->e.seq)] = n;
	n->prev = v->newest;
	if (v->newest)
		v->newest->next = n;
	else
		v->oldest = n;
	v->newest = n;
	v->bytes += len;
	while (v->bytes > v->max_bytes && v->oldest != n)
		unlink_node(v, v->oldest);
	pthread_mutex_unlock(&v->lock);
	return &c->e;
}

void jobview_invalidate(void *arg, const int64_t *seqs, size_t n)
{
	struct jobview *v = arg;

	pthread_mutex_lock(&v->lock);
	v->epoch++;
	if (n == 0) {
		while (v->oldest)
			unlink_node(v, v->oldest);
	}
	for (size_t i = 0; i < n; i++) {
		struct node *x = v->seqs[seq_bucket(seqs[i])];

		while (x && x->e->seq != seqs[i])
			x = x->by_seq;
		if (x)
			unlink_node(v, x);
	}
	pthread_mutex_unlock(&v->lock);
}
