/* The metrics registry: families and their series behind one lock, and
 * the text exposition /metrics serves. */
#include "common/metrics.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"

/* Bucket bounds in seconds, ascending, ended by 0: for requests and
 * commits, and for waits (a backlog's hours read as numbers, not +Inf). */
static const double short_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
				       0.1,    0.25,  0.5,    1,     2.5,  5,     10, 0};
static const double long_buckets[] = {0.1, 0.25, 0.5, 1,    2.5,  5,    10,   30,    60, 120,
				      300, 600,  1800, 3600, 7200, 14400, 28800, 86400, 0};
#define NBUCKETS (sizeof(long_buckets) / sizeof(long_buckets[0]) - 1)

struct series {
	char *labels;
	double value;            /* counter, gauge; histogram: the sum */
	unsigned long long count; /* histogram */
	unsigned long long bucket[NBUCKETS];
};

struct family {
	char *name, *help;
	enum gw_metric_type type;
	const double *buckets;
	struct series *series;
	size_t n, cap;
};

struct gw_metrics {
	pthread_mutex_t lock;
	struct family *families;
	size_t n, cap;
	json_t *index; /* "name" -> family index; "name{labels}" -> series index */
};

struct gw_metrics *gw_metrics_new(void)
{
	struct gw_metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	pthread_mutex_init(&m->lock, NULL);
	if (!(m->index = json_object())) {
		gw_metrics_free(m);
		return NULL;
	}
	return m;
}

void gw_metrics_free(struct gw_metrics *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		for (size_t j = 0; j < m->families[i].n; j++)
			free(m->families[i].series[j].labels);
		free(m->families[i].series);
		free(m->families[i].name);
		free(m->families[i].help);
	}
	free(m->families);
	json_decref(m->index);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

void gw_metrics_family(struct gw_metrics *m, const char *name, enum gw_metric_type type,
		       const char *help)
{
	struct family *f;

	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	if (!json_object_get(m->index, name)) {
		if (m->n == m->cap) {
			struct family *more = realloc(m->families, (m->cap = m->cap ? m->cap * 2 : 16) * sizeof(*more));

			if (!more)
				goto out;
			m->families = more;
		}
		f = &m->families[m->n];
		memset(f, 0, sizeof(*f));
		f->name = strdup(name);
		f->help = strdup(help);
		f->type = type == GW_HISTOGRAM_LONG ? GW_HISTOGRAM : type;
		f->buckets = type == GW_HISTOGRAM_LONG ? long_buckets : short_buckets;
		if (f->name && f->help && !json_object_set_new(m->index, name, json_integer((json_int_t)m->n)))
			m->n++;
	}
out:
	pthread_mutex_unlock(&m->lock);
}

/* The series, added if new, and its family in *fam (may be NULL); NULL
 * for an undeclared family. Lock held. */
static struct series *series_of(struct gw_metrics *m, const char *name, const char *labels,
				const struct family **fam)
{
	json_t *fi = json_object_get(m->index, name), *si;
	struct family *f;
	char key[512];

	if (!fi)
		return NULL;
	f = &m->families[json_integer_value(fi)];
	if (fam)
		*fam = f;
	snprintf(key, sizeof(key), "%s{%s}", name, labels);
	if ((si = json_object_get(m->index, key)))
		return &f->series[json_integer_value(si)];
	if (f->n == f->cap) {
		struct series *more = realloc(f->series, (f->cap = f->cap ? f->cap * 2 : 8) * sizeof(*more));

		if (!more)
			return NULL;
		f->series = more;
	}
	memset(&f->series[f->n], 0, sizeof(f->series[f->n]));
	if (!(f->series[f->n].labels = strdup(labels)) ||
	    json_object_set_new(m->index, key, json_integer((json_int_t)f->n))) {
		free(f->series[f->n].labels);
		return NULL;
	}
	return &f->series[f->n++];
}

void gw_metrics_add(struct gw_metrics *m, const char *name, const char *labels, double v)
{
	struct series *s;

	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	if ((s = series_of(m, name, labels, NULL)))
		s->value += v;
	pthread_mutex_unlock(&m->lock);
}

void gw_metrics_set(struct gw_metrics *m, const char *name, const char *labels, double v)
{
	struct series *s;

	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	if ((s = series_of(m, name, labels, NULL)))
		s->value = v;
	pthread_mutex_unlock(&m->lock);
}

void gw_metrics_observe(struct gw_metrics *m, const char *name, const char *labels, double v)
{
	const struct family *f;
	struct series *s;

	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	if ((s = series_of(m, name, labels, &f))) {
		s->value += v;
		s->count++;
		for (size_t i = 0; f->buckets[i] > 0; i++)
			if (v <= f->buckets[i])
				s->bucket[i]++;
	}
	pthread_mutex_unlock(&m->lock);
}

void gw_metrics_clear(struct gw_metrics *m, const char *name)
{
	json_t *fi;
	struct family *f;

	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	if ((fi = json_object_get(m->index, name))) {
		f = &m->families[json_integer_value(fi)];
		for (size_t i = 0; i < f->n; i++) {
			char key[512];

			snprintf(key, sizeof(key), "%s{%s}", name, f->series[i].labels);
			json_object_del(m->index, key);
			free(f->series[i].labels);
		}
		f->n = 0;
	}
	pthread_mutex_unlock(&m->lock);
}

void gw_metrics_escape(const char *value, char *out, size_t len)
{
	size_t n = 0;

	for (; value && *value && n + 3 < len; value++) {
		if (*value == '\\' || *value == '"') {
			out[n++] = '\\';
			out[n++] = *value;
		} else if (*value == '\n') {
			out[n++] = '\\';
			out[n++] = 'n';
		} else {
			out[n++] = *value;
		}
	}
	out[n] = '\0';
}

/* The 64 MiB cap is never near: a failed append only shortens the page. */
static void put(struct gw_buf *b, const char *text)
{
	if (gw_buf_append(b, text, strlen(text)) != GW_OK)
		return;
}

/* name{labels,extra} value, or name value without labels. */
static void line(struct gw_buf *b, const char *name, const char *suffix, const char *labels,
		 const char *extra, double v)
{
	char text[1024];
	bool any = *labels || *extra;

	snprintf(text, sizeof(text), "%s%s%s%s%s%s%s %.17g\n", name, suffix, any ? "{" : "", labels,
		 *labels && *extra ? "," : "", extra, any ? "}" : "", v);
	put(b, text);
}

char *gw_metrics_render(struct gw_metrics *m)
{
	struct gw_buf b;
	char *out;

	gw_buf_init(&b, 64u << 20);
	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < m->n; i++) {
		const struct family *f = &m->families[i];
		static const char *const types[] = {"counter", "gauge", "histogram"};
		char head[600];

		snprintf(head, sizeof(head), "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
			 types[f->type]);
		put(&b, head);
		for (size_t j = 0; j < f->n; j++) {
			const struct series *s = &f->series[j];

			if (f->type != GW_HISTOGRAM) {
				line(&b, f->name, "", s->labels, "", s->value);
				continue;
			}
			for (size_t k = 0; f->buckets[k] > 0; k++) {
				char le[32];

				snprintf(le, sizeof(le), "le=\"%g\"", f->buckets[k]);
				line(&b, f->name, "_bucket", s->labels, le, (double)s->bucket[k]);
			}
			line(&b, f->name, "_bucket", s->labels, "le=\"+Inf\"", (double)s->count);
			line(&b, f->name, "_sum", s->labels, "", s->value);
			line(&b, f->name, "_count", s->labels, "", (double)s->count);
		}
	}
	pthread_mutex_unlock(&m->lock);
	out = b.data ? b.data : strdup(""); /* the buffer's text becomes the caller's */
	return out;
}
