/* Prometheus metrics: counters, gauges and histograms by name and label
 * set, rendered in the text exposition format. Thread-safe; one registry
 * per process, passed to the modules that record into it. */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stddef.h>

struct gw_metrics;

/* GW_HISTOGRAM: buckets from 0.5 ms to 10 s; GW_HISTOGRAM_LONG, for
 * waits: 0.1 s to a day. */
enum gw_metric_type { GW_COUNTER, GW_GAUGE, GW_HISTOGRAM, GW_HISTOGRAM_LONG };

struct gw_metrics *gw_metrics_new(void);
void gw_metrics_free(struct gw_metrics *m);

/* Declares a family once, before recording into it: its type and help. */
void gw_metrics_family(struct gw_metrics *m, const char *name, enum gw_metric_type type,
		       const char *help);
/* labels is the inside of the braces, already escaped (name="v",...), or
 * "" for none. A NULL registry records nothing. */
void gw_metrics_add(struct gw_metrics *m, const char *name, const char *labels, double v);
void gw_metrics_set(struct gw_metrics *m, const char *name, const char *labels, double v);
/* Histograms: seconds, in the family's buckets. */
void gw_metrics_observe(struct gw_metrics *m, const char *name, const char *labels, double v);
/* Drops every series of a gauge family (before setting it afresh). */
void gw_metrics_clear(struct gw_metrics *m, const char *name);

/* The exposition text (new string), families in declaration order. */
char *gw_metrics_render(struct gw_metrics *m);

/* Escapes a label value for the exposition format into out. */
void gw_metrics_escape(const char *value, char *out, size_t len);

#endif
