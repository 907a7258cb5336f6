/* GET /metrics: the Prometheus text exposition. Counters and histograms
 * are kept as things happen; gauges of state (jobs by state, the queue by
 * pool and team, cluster health) are read at the scrape. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "common/metrics.h"
#include "gateway/api/api.h"
#include "pool/pool.h"

/* When this process started, in seconds since the epoch: its start in
 * clock ticks after boot (/proc/self/stat's 22nd field) plus boot time. */
static double start_time(void)
{
	char line[1024], *p;
	unsigned long long ticks = 0, btime = 0;
	FILE *f = fopen("/proc/self/stat", "r");

	if (!f)
		return 0;
	p = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL; /* the name may hold spaces */
	fclose(f);
	/* After ")": state is field 3, starttime field 22. */
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
			 &ticks) != 1)
		return 0;
	if (!(f = fopen("/proc/stat", "r")))
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "btime %llu", &btime) == 1)
			break;
	fclose(f);
	return (double)btime + (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

void gateway_metrics_declare(struct gw_metrics *m)
{
	gw_metrics_family(m, "sparkgw_build_info", GW_GAUGE, "1, with the version and commit this gateway was built from.");
	gw_metrics_set(m, "sparkgw_build_info", "version=\"" GW_VERSION "\",commit=\"" GW_GIT_COMMIT "\"", 1);
	/* The names and meanings of Prometheus clients' process collector. */
	gw_metrics_family(m, "process_cpu_seconds_total", GW_COUNTER, "Total user and system CPU time spent in seconds.");
	gw_metrics_family(m, "process_resident_memory_bytes", GW_GAUGE, "Resident memory size in bytes.");
	gw_metrics_family(m, "process_virtual_memory_bytes", GW_GAUGE, "Virtual memory size in bytes.");
	gw_metrics_family(m, "process_open_fds", GW_GAUGE, "Number of open file descriptors.");
	gw_metrics_family(m, "process_max_fds", GW_GAUGE, "Maximum number of open file descriptors.");
	gw_metrics_family(m, "process_start_time_seconds", GW_GAUGE,
			  "Start time of the process since unix epoch in seconds.");
	gw_metrics_set(m, "process_start_time_seconds", "", start_time());
	gw_metrics_family(m, "sparkgw_jobs", GW_GAUGE, "Jobs in the store by state.");
	gw_metrics_family(m, "sparkgw_queue_depth", GW_GAUGE, "Queued jobs by pool and team.");
	gw_metrics_family(m, "sparkgw_cluster_healthy", GW_GAUGE,
			  "1 when the cluster answers its health probes and calls, else 0.");
	gw_metrics_family(m, "sparkgw_cluster_schedulable", GW_GAUGE,
			  "1 when the cluster takes new jobs (active rotation and healthy), else 0.");
}

static void read_process(struct gw_metrics *m)
{
	struct rusage ru;
	struct rlimit lim;
	unsigned long long pages_total = 0, pages_resident = 0;
	long page = sysconf(_SC_PAGESIZE);
	FILE *statm = fopen("/proc/self/statm", "r");
	DIR *fds = opendir("/proc/self/fd");

	if (getrusage(RUSAGE_SELF, &ru) == 0)
		gw_metrics_set(m, "process_cpu_seconds_total", "",
			       (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
				       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	if (statm && fscanf(statm, "%llu %llu", &pages_total, &pages_resident) == 2) {
		gw_metrics_set(m, "process_virtual_memory_bytes", "", (double)pages_total * (double)page);
		gw_metrics_set(m, "process_resident_memory_bytes", "", (double)pages_resident * (double)page);
	}
	if (statm)
		fclose(statm);
	if (fds) {
		unsigned n = 0;

		while (readdir(fds))
			n++;
		closedir(fds);
		gw_metrics_set(m, "process_open_fds", "", n > 3 ? n - 3 : 0); /* less ".", ".." and the listing's own */
	}
	if (getrlimit(RLIMIT_NOFILE, &lim) == 0)
		gw_metrics_set(m, "process_max_fds", "", (double)lim.rlim_cur);
}

/* Scrape-time gauges, set afresh so that gone series go. */
static enum gw_err read_gauges(struct request *rq, char *err)
{
	struct gw_metrics *m = rq->services->metrics;
	struct router *r = router_holder_get(rq->services->policy);
	struct router_live live = pool_live(rq->services->pool);
	json_t *counts, *queued;
	enum gw_err rc = store_state_counts(rq->store, &counts, &queued, err);
	const char *state;
	json_t *v;
	size_t i;

	gw_metrics_clear(m, "sparkgw_jobs");
	gw_metrics_clear(m, "sparkgw_queue_depth");
	gw_metrics_clear(m, "sparkgw_cluster_healthy");
	gw_metrics_clear(m, "sparkgw_cluster_schedulable");
	read_process(m);
	json_object_foreach(counts, state, v) {
		char labels[64];

		snprintf(labels, sizeof(labels), "state=\"%s\"", state);
		gw_metrics_set(m, "sparkgw_jobs", labels, (double)json_integer_value(v));
	}
	json_array_foreach(queued, i, v) {
		char pool[200], team[200], labels[450];

		gw_metrics_escape(json_string_value(json_object_get(v, "pool")), pool, sizeof(pool));
		gw_metrics_escape(json_string_value(json_object_get(v, "team")), team, sizeof(team));
		snprintf(labels, sizeof(labels), "pool=\"%s\",team=\"%s\"", pool, team);
		gw_metrics_set(m, "sparkgw_queue_depth", labels,
			       (double)json_integer_value(json_object_get(v, "count")));
	}
	for (i = 0; i < r->nclusters; i++) {
		char name[200], labels[220], why[GW_ERRLEN];

		gw_metrics_escape(r->clusters[i].name, name, sizeof(name));
		snprintf(labels, sizeof(labels), "cluster=\"%s\"", name);
		gw_metrics_set(m, "sparkgw_cluster_healthy", labels,
			       pool_healthy(rq->services->pool, r->clusters[i].name) ? 1 : 0);
		gw_metrics_set(m, "sparkgw_cluster_schedulable", labels,
			       live.usable(live.arg, r->clusters[i].name, why, sizeof(why)) ? 1 : 0);
	}
	json_decref(counts);
	json_decref(queued);
	router_unref(r);
	return rc;
}

enum MHD_Result api_metrics(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	struct MHD_Response *resp;
	char err[GW_ERRLEN], *text;
	enum gw_err rc;

	(void)id;
	if (!rq->services->metrics)
		return http_reply_problem(&rq->http, 404, "not-found", "metrics are off", NULL);
	if ((rc = read_gauges(rq, err)))
		return gateway_reply_store_error(rq, rc, err);
	text = gw_metrics_render(rq->services->metrics);
	resp = text ? MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE) : NULL;
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
	return http_queue(&rq->http, 200, resp);
}
