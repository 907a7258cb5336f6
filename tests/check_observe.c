/* Observability: request ids in answers and logs, /metrics read by the
 * Prometheus client library's own text-format parser, ETags with 304 and
 * the updatedSince cursor for cheap polling. */
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/quantity.h"
#include "common/timeutil.h"
#include "tests/testutil.h"

static char *dir;
static struct tu_gateway gw;

static void setup(void)
{
	dir = tu_tmpdir("observe");
	ck_assert_ptr_nonnull(dir);
}

static void teardown(void)
{
	int status = gw.pid > 0 ? tu_gateway_signal(&gw, SIGTERM) : 0;

	tu_rmtree(dir);
	free(dir);
	ck_assert_int_eq(status, 0);
}

static const char job_fmt[] =
	"{\"name\":\"o\",\"labels\":{\"team\":\"%s\"},\"spec\":{\"type\":\"Python\",\"sparkVersion\":\"3.5.1\","
	"\"mainApplicationFile\":\"a.py\",\"executor\":{\"instances\":1},"
	"\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"0.2\"}}}";

static char *submit(const char *team)
{
	char body[600];

	snprintf(body, sizeof(body), job_fmt, team);
	return tu_submit(gw.base, body);
}

/* /metrics through prometheus_client's parser: {sample name: [[labels, value]]}. */
static json_t *scrape(void)
{
	char url[200], path[700], cmd[1600];
	struct tu_response r;
	FILE *f, *p;
	json_t *parsed;

	snprintf(url, sizeof(url), "%s/metrics", gw.base);
	ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
	snprintf(path, sizeof(path), "%s/metrics.txt", dir);
	f = fopen(path, "w");
	fputs(r.body, f);
	fclose(f);
	tu_response_release(&r);
	/* Prometheus's own linter: names, types, help, units. */
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s", path);
	ck_assert_msg(system(cmd) == 0, "promtool check metrics found problems in %s", path);
	snprintf(cmd, sizeof(cmd),
		 "/usr/bin/python3 -c 'import json, sys\n"
		 "from prometheus_client.parser import text_string_to_metric_families as parse\n"
		 "out = {}\n"
		 "for family in parse(open(sys.argv[1]).read()):\n"
		 "    for s in family.samples:\n"
		 "        out.setdefault(s.name, []).append([s.labels, s.value])\n"
		 "print(json.dumps(out))' %s",
		 path);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	parsed = json_loadf(p, 0, NULL);
	ck_assert_int_eq(pclose(p), 0);
	ck_assert_ptr_nonnull(parsed);
	return parsed;
}

/* The value of the sample with these labels (all of them, given as
 * name, value pairs ending in NULL); -1 if there is none. */
static double sample(const json_t *m, const char *name, ...)
{
	size_t i;
	json_t *s;

	json_array_foreach(json_object_get(m, name), i, s) {
		const json_t *labels = json_array_get(s, 0);
		bool all = true;
		va_list ap;
		const char *k;

		va_start(ap, name);
		while (all && (k = va_arg(ap, const char *))) {
			const char *v = va_arg(ap, const char *);

			all = json_string_value(json_object_get(labels, k)) &&
			      !strcmp(json_string_value(json_object_get(labels, k)), v);
		}
		va_end(ap);
		if (all)
			return json_number_value(json_array_get(s, 1));
	}
	return -1;
}

START_TEST(test_request_ids)
{
	char url[200];
	const char *headers[] = {"X-Request-Id: trace-42.a_b", NULL};
	const char *bad[] = {"X-Request-Id: no spaces allowed", NULL};
	struct tu_response a, b, c;
	char log_line[64];

	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--set", "log.level=debug", NULL), 0);
	snprintf(url, sizeof(url), "%s/api/v1/jobs", gw.base);
	ck_assert_int_eq(tu_http("GET", url, headers, NULL, 0, &a), 0);
	ck_assert_str_eq(a.request_id, "trace-42.a_b");
	ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &b), 0);
	ck_assert_int_eq(tu_http("GET", url, bad, NULL, 0, &c), 0);
	ck_assert_int_gt(strlen(b.request_id), 8);
	ck_assert_str_ne(b.request_id, c.request_id);
	ck_assert_str_ne(c.request_id, "no spaces allowed");
	tu_response_release(&a);
	tu_response_release(&b);
	tu_response_release(&c);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	/* The log says which request a line is about. */
	snprintf(log_line, sizeof(log_line), "\"request_id\":\"trace-42.a_b\"");
	{
		FILE *f = fopen(gw.log, "r");
		char line[2048];
		bool found = false;

		ck_assert_ptr_nonnull(f);
		while (!found && fgets(line, sizeof(line), f))
			found = strstr(line, log_line) && strstr(line, "GET /api/v1/jobs 200");
		fclose(f);
		ck_assert(found);
	}
}
END_TEST

/* Every metric the Grafana dashboard and the alert rules in contrib/
 * use is one the gateway exports. */
static void monitoring_files_use_real_metrics(void)
{
	static const char *const files[] = {"contrib/monitoring/grafana-dashboard.json",
					    "contrib/monitoring/alerts.yaml"};
	char url[200];
	struct tu_response r;

	snprintf(url, sizeof(url), "%s/metrics", gw.base);
	ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), 0);
	for (size_t f = 0; f < 2; f++) {
		FILE *in = fopen(files[f], "r");
		char text[65536], *p;
		size_t n, used = 0;

		ck_assert_ptr_nonnull(in);
		n = fread(text, 1, sizeof(text) - 1, in);
		fclose(in);
		text[n] = '\0';
		for (p = strstr(text, "sparkgw_"); p; p = strstr(p + 1, "sparkgw_")) {
			char name[128], want[160];
			size_t len = strspn(p, "abcdefghijklmnopqrstuvwxyz_");

			snprintf(name, sizeof(name), "%.*s", (int)len, p);
			for (const char *suffix = "_bucket"; suffix; suffix = !strcmp(suffix, "_bucket") ? "_sum"
									 : !strcmp(suffix, "_sum") ? "_count" : NULL)
				if (strlen(name) > strlen(suffix) && !strcmp(name + strlen(name) - strlen(suffix), suffix))
					name[strlen(name) - strlen(suffix)] = '\0';
			snprintf(want, sizeof(want), "# TYPE %s ", name);
			ck_assert_msg(strstr(r.body, want), "%s uses %s, which /metrics does not have", files[f], name);
			used++;
		}
		ck_assert_uint_ge(used, 8);
	}
	tu_response_release(&r);
}

START_TEST(test_metrics_parse_and_count)
{
	struct tu_kubesim sim = {0};
	static const char *const mode = "driver-pod";
	char cfg[700], *ids[3];
	json_t *m;

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "m", NULL), 0);
	tu_write_cluster_config(dir, &sim, &mode, 1, NULL, cfg, sizeof(cfg));
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	for (int i = 0; i < 3; i++)
		ids[i] = submit("metered");
	for (int i = 0; i < 3; i++) {
		json_t *job = tu_wait_job(gw.base, ids[i], "SUCCEEDED", 20000);

		ck_assert_ptr_nonnull(job);
		json_decref(job);
		free(ids[i]);
	}
	m = scrape();
	ck_assert_double_eq(sample(m, "sparkgw_jobs", "state", "SUCCEEDED", NULL), 3);
	ck_assert_double_eq(sample(m, "sparkgw_jobs", "state", "QUEUED", NULL), 0);
	ck_assert_double_eq(sample(m, "sparkgw_submissions_total", "outcome", "accepted", NULL), 3);
	ck_assert_double_eq(sample(m, "sparkgw_http_requests_total", "route", "/api/v1/jobs", "method", "POST",
				   "code", "201", NULL), 3);
	ck_assert_double_ge(sample(m, "sparkgw_http_request_duration_seconds_count", "route", "/api/v1/jobs",
				   "method", "POST", NULL), 3);
	/* Three objects a job in driver-pod mode. */
	ck_assert_double_eq(sample(m, "sparkgw_apiserver_requests_total", "cluster", "m", "verb", "POST",
				   "code", "201", NULL), 9);
	ck_assert_double_eq(sample(m, "sparkgw_dispatches_total", "cluster", "m", "outcome", "created", NULL), 3);
	ck_assert_double_eq(sample(m, "sparkgw_dispatch_latency_seconds_count", NULL), 3);
	/* Its buckets go on to hours, so that a backlog reads as a number. */
	ck_assert_double_eq(sample(m, "sparkgw_dispatch_latency_seconds_bucket", "le", "3600", NULL), 3);
	ck_assert_double_eq(sample(m, "sparkgw_dispatch_latency_seconds_bucket", "le", "86400", NULL), 3);
	ck_assert_double_ge(sample(m, "sparkgw_watch_restarts_total", "cluster", "m", "resource", "pods", NULL), 1);
	ck_assert_double_eq(sample(m, "sparkgw_cluster_healthy", "cluster", "m", NULL), 1);
	ck_assert_double_ge(sample(m, "sparkgw_store_commit_seconds_count", NULL), 3);
	ck_assert_double_eq(sample(m, "sparkgw_store_commit_seconds_bucket", "le", "+Inf", NULL),
			    sample(m, "sparkgw_store_commit_seconds_count", NULL));
	ck_assert_double_eq(sample(m, "sparkgw_jobs_finished_total", "state", "SUCCEEDED", "reason", "Completed", NULL), 3);
	ck_assert_double_eq(sample(m, "sparkgw_build_info", "version", GW_VERSION, NULL), 1);
	/* The process collector's series, as Prometheus clients name them. */
	ck_assert_double_lt(fabs(sample(m, "process_start_time_seconds", NULL) - (double)time(NULL)), 120);
	ck_assert_double_gt(sample(m, "process_resident_memory_bytes", NULL), 1 << 20);
	ck_assert_double_gt(sample(m, "process_open_fds", NULL), 3);
	ck_assert_double_gt(sample(m, "process_max_fds", NULL), sample(m, "process_open_fds", NULL));
	ck_assert_double_gt(sample(m, "process_cpu_seconds_total", NULL), 0);
	json_decref(m);
	monitoring_files_use_real_metrics();
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	tu_kubesim_stop(&sim);

	/* Queue depth, by pool and team, with no cluster to drain it. */
	ck_assert_int_eq(tu_gateway_start(&gw, dir, NULL), 0);
	free(submit("waiting"));
	free(submit("waiting"));
	m = scrape();
	ck_assert_double_eq(sample(m, "sparkgw_queue_depth", "team", "waiting", NULL), 2);
	json_decref(m);
	/* A queued job cancelled ends there, and is counted with its reason. */
	{
		char *id = submit("waiting"), url[200];
		struct tu_response r;

		snprintf(url, sizeof(url), "%s/api/v1/jobs/%s", gw.base, id);
		ck_assert_int_eq(tu_http("DELETE", url, NULL, NULL, 0, &r), 0);
		ck_assert_int_eq(r.status, 200);
		tu_response_release(&r);
		ck_assert_int_eq(tu_http("DELETE", url, NULL, NULL, 0, &r), 0); /* again: no second ending */
		tu_response_release(&r);
		free(id);
	}
	m = scrape();
	ck_assert_double_eq(sample(m, "sparkgw_jobs_finished_total", "state", "CANCELLED", "reason", "CancelledByUser",
				   NULL), 1);
	json_decref(m);
}
END_TEST

START_TEST(test_etag_and_updated_since)
{
	struct tu_kubesim sim = {0};
	static const char *const mode = "driver-pod";
	char cfg[700], url[300], etag[64], cursor[32], header[100], *a, *b;
	struct tu_response r;
	json_t *job;
	const char *headers[2] = {header, NULL};

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "poll", NULL), 0);
	tu_write_cluster_config(dir, &sim, &mode, 1, NULL, cfg, sizeof(cfg));
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	a = submit("poll");
	job = tu_wait_job(gw.base, a, "SUCCEEDED", 20000);
	ck_assert_ptr_nonnull(job);
	json_decref(job);

	snprintf(url, sizeof(url), "%s/api/v1/jobs/%s", gw.base, a);
	ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 200);
	snprintf(etag, sizeof(etag), "W/\"%s\"", json_string_value(json_object_get(r.json, "resourceVersion")));
	ck_assert_str_eq(r.etag, etag);
	tu_response_release(&r);
	snprintf(header, sizeof(header), "If-None-Match: %s", etag);
	ck_assert_int_eq(tu_http("GET", url, headers, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 304);
	ck_assert_str_eq(r.etag, etag);
	ck_assert(r.body == NULL || !*r.body);
	tu_response_release(&r);
	snprintf(header, sizeof(header), "If-None-Match: W/\"1\"");
	ck_assert_int_eq(tu_http("GET", url, headers, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 200);
	tu_response_release(&r);

	/* Every change since the cursor, oldest first, then nothing new. */
	snprintf(url, sizeof(url), "%s/api/v1/jobs?updatedSince=0", gw.base);
	job = tu_get_json(url);
	ck_assert_schema("JobList", job);
	ck_assert_int_eq(json_array_size(json_object_get(job, "items")), 1);
	snprintf(cursor, sizeof(cursor), "%s", json_string_value(json_object_get(job, "cursor")));
	ck_assert_str_eq(cursor, json_string_value(json_object_get(json_array_get(json_object_get(job, "items"), 0),
								    "resourceVersion")));
	json_decref(job);
	snprintf(url, sizeof(url), "%s/api/v1/jobs?updatedSince=%s", gw.base, cursor);
	job = tu_get_json(url);
	ck_assert_int_eq(json_array_size(json_object_get(job, "items")), 0);
	ck_assert_str_eq(json_string_value(json_object_get(job, "cursor")), cursor);
	json_decref(job);
	b = submit("poll");
	job = tu_get_json(url);
	ck_assert_int_ge(json_array_size(json_object_get(job, "items")), 1);
	for (size_t i = 0; i < json_array_size(json_object_get(job, "items")); i++)
		ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(job, "items"), i),
								   "id")), b);
	json_decref(job);
	snprintf(url, sizeof(url), "%s/api/v1/jobs?updatedSince=x", gw.base);
	ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 400);
	tu_response_release(&r);
	free(a);
	free(b);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	tu_kubesim_stop(&sim);
}
END_TEST

/* Hand computation from the cluster's own pods: requests times the time
 * between startTime and the container's finishedAt. */
static void expected_usage(const struct tu_kubesim *sim, const char *id, double *core_s, double *gib_s)
{
	char u[400];
	json_t *pods;
	size_t i;
	json_t *pod;

	snprintf(u, sizeof(u), "%s/api/v1/pods?labelSelector=sparkgw%%2Fjob-id%%3D%s", sim->base, id);
	pods = tu_get_json(u);
	ck_assert_int_eq(json_array_size(json_object_get(pods, "items")), 1); /* the driver alone */
	json_array_foreach(json_object_get(pods, "items"), i, pod) {
		const json_t *status = json_object_get(pod, "status");
		const json_t *req = json_object_get(json_object_get(json_array_get(json_object_get(
			json_object_get(pod, "spec"), "containers"), 0), "resources"), "requests");
		int64_t start = 0, end = 0;
		double cpu = 0, mem = 0;

		ck_assert_int_eq(gw_time_parse(json_string_value(json_object_get(status, "startTime")), &start), 0);
		ck_assert_int_eq(gw_time_parse(json_string_value(json_object_get(json_object_get(json_object_get(
			json_array_get(json_object_get(status, "containerStatuses"), 0), "state"), "terminated"),
			"finishedAt")), &end), 0);
		ck_assert_int_eq(gw_quantity_parse(json_string_value(json_object_get(req, "cpu")), &cpu), 0);
		ck_assert_int_eq(gw_quantity_parse(json_string_value(json_object_get(req, "memory")), &mem), 0);
		*core_s += cpu * (double)(end - start) / 1000;
		*gib_s += mem / (1 << 30) * (double)(end - start) / 1000;
	}
	json_decref(pods);
}

static json_t *usage(const char *query)
{
	char u[400], from[GW_TIME_LEN];
	json_t *out;

	gw_time_format(gw_now_ms() - 3600 * 1000, from);
	snprintf(u, sizeof(u), "%s/api/v1/usage?from=%s&%s", gw.base, from, query);
	out = tu_get_json(u);
	ck_assert_ptr_nonnull(out);
	ck_assert_schema("Usage", out);
	return out;
}

static const json_t *usage_of(const json_t *u, const char *key)
{
	size_t i;
	json_t *it;

	json_array_foreach(json_object_get(u, "items"), i, it)
		if (!strcmp(json_string_value(json_object_get(it, "key")), key))
			return it;
	return NULL;
}

#define ck_usage(u, key, want_core, want_gib)                                                        \
	do {                                                                                     \
		const json_t *it_ = usage_of((u), (key));                                           \
		ck_assert_msg(it_, "no usage for %s", (key));                                       \
		ck_assert_double_eq_tol(json_real_value(json_object_get(it_, "coreSeconds")), (want_core), 1e-6); \
		ck_assert_double_eq_tol(json_real_value(json_object_get(it_, "memoryGiBSeconds")), (want_gib), 1e-6); \
	} while (0)

START_TEST(test_usage_by_team_and_label)
{
	struct tu_kubesim sim = {0};
	static const char *const mode = "driver-pod";
	static const char spec_fmt[] =
		"{\"name\":\"u\",\"labels\":{\"team\":\"%s\"%s},\"spec\":{\"type\":\"Python\","
		"\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"a.py\",\"driver\":{\"cores\":%d,"
		"\"memory\":\"%s\"},\"executor\":{\"instances\":0},"
		"\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"%s\"}}}";
	char cfg[700], body[700], *a, *b, *c, *d;
	double a_core = 0, a_gib = 0, b_core = 0, b_gib = 0, c_core = 0, c_gib = 0;
	json_t *u, *job;

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "u", NULL), 0);
	tu_write_cluster_config(dir, &sim, &mode, 1,
				"pools: [{name: p, clusters: [u], prices: {coreHour: 3.6, memoryGiBHour: 0.36}}]\n",
				cfg, sizeof(cfg));
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	snprintf(body, sizeof(body), spec_fmt, "ads", ",\"env\":\"prod\"", 2, "2g", "2");
	a = tu_submit(gw.base, body);
	snprintf(body, sizeof(body), spec_fmt, "ads", ",\"env\":\"dev\"", 1, "1g", "3");
	b = tu_submit(gw.base, body);
	snprintf(body, sizeof(body), spec_fmt, "search", "", 1, "4g", "1");
	c = tu_submit(gw.base, body);
	json_decref(tu_wait_job(gw.base, a, "SUCCEEDED", 20000));
	json_decref(tu_wait_job(gw.base, b, "SUCCEEDED", 20000));
	json_decref(tu_wait_job(gw.base, c, "SUCCEEDED", 20000));
	expected_usage(&sim, a, &a_core, &a_gib);
	expected_usage(&sim, b, &b_core, &b_gib);
	expected_usage(&sim, c, &c_core, &c_gib);
	ck_assert_double_gt(a_core, 0);
	usleep(300000); /* the watcher's last records commit */

	u = usage("groupBy=team");
	ck_usage(u, "ads", a_core + b_core, a_gib + b_gib);
	ck_usage(u, "search", c_core, c_gib);
	/* 3.6 a core-hour and 0.36 a GiB-hour: a thousandth a core-second. */
	ck_assert_double_eq_tol(json_real_value(json_object_get(usage_of(u, "ads"), "cost")),
				(a_core + b_core) / 1000 + (a_gib + b_gib) / 10000, 1e-9);
	json_decref(u);
	u = usage("groupBy=label:env");
	ck_usage(u, "prod", a_core, a_gib);
	ck_usage(u, "dev", b_core, b_gib);
	ck_usage(u, "", c_core, c_gib);
	json_decref(u);
	u = usage("groupBy=job");
	ck_usage(u, a, a_core, a_gib);
	ck_usage(u, c, c_core, c_gib);
	json_decref(u);
	u = usage("groupBy=user"); /* none named one: all anonymous */
	ck_usage(u, "anonymous", a_core + b_core + c_core, a_gib + b_gib + c_gib);
	json_decref(u);

	/* One job's pods, for its page: what each held, the total and its cost. */
	{
		char url[300];
		json_t *pods, *pod, *total;

		snprintf(url, sizeof(url), "%s/api/v1/jobs/%s/pods", gw.base, a);
		pods = tu_get_json(url);
		ck_assert_ptr_nonnull(pods);
		ck_assert_schema("JobPods", pods);
		ck_assert_int_eq(json_array_size(json_object_get(pods, "items")), 1);
		pod = json_array_get(json_object_get(pods, "items"), 0);
		ck_assert_str_eq(json_string_value(json_object_get(pod, "role")), "driver");
		ck_assert_int_eq(json_integer_value(json_object_get(pod, "coresMilli")), 2000);
		ck_assert(json_is_string(json_object_get(pod, "endedAt")));
		total = json_object_get(pods, "total");
		ck_assert_double_eq_tol(json_real_value(json_object_get(total, "coreSeconds")), a_core, 1e-6);
		ck_assert_double_eq_tol(json_real_value(json_object_get(total, "cost")), a_core / 1000 + a_gib / 10000,
					1e-9);
		json_decref(pods);
	}

	/* A restart lists the same pods again: nothing is counted twice. */
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	usleep(500000);
	u = usage("groupBy=team");
	ck_usage(u, "ads", a_core + b_core, a_gib + b_gib);
	json_decref(u);

	/* A running job counts up to now. */
	snprintf(body, sizeof(body), spec_fmt, "live", "", 1, "1g", "30");
	d = tu_submit(gw.base, body);
	job = tu_wait_job(gw.base, d, "RUNNING", 10000);
	ck_assert_ptr_nonnull(job);
	json_decref(job);
	usleep(1200000);
	u = usage("groupBy=team");
	{
		double first = json_real_value(json_object_get(usage_of(u, "live"), "coreSeconds")), second;

		json_decref(u);
		usleep(1000000);
		u = usage("groupBy=team");
		second = json_real_value(json_object_get(usage_of(u, "live"), "coreSeconds"));
		ck_assert_double_gt(first, 0);
		ck_assert_double_eq_tol(second - first, 1.0, 0.3);
	}
	json_decref(u);
	{
		char url[300];
		struct tu_response r;

		snprintf(url, sizeof(url), "%s/api/v1/usage?groupBy=pool", gw.base);
		ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), 0);
		ck_assert_int_eq(r.status, 400);
		tu_response_release(&r);
	}
	free(a);
	free(b);
	free(c);
	free(d);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	tu_kubesim_stop(&sim);
}
END_TEST

static bool is_png(const char *path)
{
	static const unsigned char magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	unsigned char head[8] = {0};
	FILE *f = fopen(path, "rb");
	bool ok;

	if (!f)
		return false;
	ok = fread(head, 1, 8, f) == 8 && !memcmp(head, magic, 8);
	fclose(f);
	return ok;
}

/* The dashboard in headless Chromium (tests/browser/dashboard.test.js):
 * no console errors, a job appears and changes state, cancel cancels. */
START_TEST(test_dashboard_in_a_browser)
{
	struct tu_kubesim sim = {0};
	static const char *const mode = "driver-pod";
	static const char *const shots[] = {"queued.png", "jobs.png", "job.png", "fleet.png", "usage.png"};
	char cfg[700], cmd[1200];
	int status;

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "web", NULL), 0);
	tu_write_cluster_config(dir, &sim, &mode, 1,
				"pools: [{name: web, clusters: [web], prices: {coreHour: 0.04, memoryGiBHour: 0.005}}]\n", cfg,
				sizeof(cfg));
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	snprintf(cmd, sizeof(cmd), "node tests/browser/dashboard.test.js %s %s > %s/browser.log 2>&1", gw.base, dir, dir);
	status = system(cmd);
	if (status != 0) {
		char log[700], line[512];
		FILE *f;

		snprintf(log, sizeof(log), "%s/browser.log", dir);
		if ((f = fopen(log, "r"))) {
			while (fgets(line, sizeof(line), f))
				fprintf(stderr, "browser: %s", line);
			fclose(f);
		}
	}
	ck_assert_int_eq(status, 0);
	for (size_t i = 0; i < sizeof(shots) / sizeof(shots[0]); i++) {
		char path[700];

		snprintf(path, sizeof(path), "%s/%s", dir, shots[i]);
		ck_assert_msg(is_png(path), "no screenshot %s", shots[i]);
	}
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	tu_kubesim_stop(&sim);
}
END_TEST

Suite *observe_suite(void)
{
	Suite *s = suite_create("observe");
	TCase *tc = tcase_create("metrics");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_request_ids);
	tcase_add_test(tc, test_metrics_parse_and_count);
	tcase_add_test(tc, test_etag_and_updated_since);
	tcase_add_test(tc, test_usage_by_team_and_label);
	tcase_add_test(tc, test_dashboard_in_a_browser);
	suite_add_tcase(s, tc);
	return s;
}
