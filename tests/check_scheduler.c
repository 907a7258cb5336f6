/* Scheduler: dispatch order (priority with aging), the per-team queued
 * limit, queue visibility, the per-cluster request budget, and leases
 * shared by two gateway processes on one database. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "dispatch/dispatch.h"
#include "store/store.h"
#include "tests/testutil.h"

static char *dir;

static void setup(void)
{
	dir = tu_tmpdir("sched");
	ck_assert_ptr_nonnull(dir);
}

static void teardown(void)
{
	tu_rmtree(dir);
	free(dir);
}

static void store_submit(struct store *st, const char *name, int priority, char *id_out)
{
	struct store_op op = {.kind = STORE_OP_SUBMIT};

	op.submit.name = name;
	op.submit.user = "u";
	op.submit.labels_json = "{}";
	op.submit.spec_json = "{}";
	op.submit.priority = priority;
	ck_assert_int_eq(store_execute(st, &op), GW_OK);
	if (id_out)
		snprintf(id_out, STORE_ID_LEN, "%s", op.job.id);
	store_job_release(&op.job);
}

/* The queue's names in dispatch order. */
static void order(struct store *st, int64_t aging_ms, char *out, size_t len)
{
	struct dispatch_defaults defaults = {0};
	struct dispatch_pick picks[16];
	struct store_queue q;
	struct router *r;
	json_t *empty = json_object();
	char err[GW_ERRLEN];

	ck_assert_int_eq(router_load(empty, NULL, "none", &r, err), GW_OK);
	ck_assert_int_eq(store_queue_read(st, gw_now_ms(), aging_ms, 10, &q, err), GW_OK);
	ck_assert_uint_le(q.njobs, 16);
	ck_assert_int_eq(dispatch_order(r, &defaults, &q, NULL, NULL, picks), GW_OK);
	out[0] = '\0';
	for (size_t i = 0; i < q.njobs; i++)
		snprintf(out + strlen(out), len - strlen(out), "%s%s", i ? "," : "", q.jobs[picks[i].job].name);
	store_queue_release(&q);
	router_unref(r);
	json_decref(empty);
}

START_TEST(test_priority_then_age_with_aging)
{
	struct store_options o = {.synchronous_full = false};
	struct store *st;
	char path[700], err[GW_ERRLEN], names[256];

	snprintf(path, sizeof(path), "%s/q.db", dir);
	o.path = path;
	ck_assert_int_eq(store_open(&o, &st, err), GW_OK);
	store_submit(st, "low", 3, NULL);
	usleep(200000);
	store_submit(st, "normal", 2, NULL);
	store_submit(st, "critical", 0, NULL);
	store_submit(st, "high", 1, NULL);
	store_submit(st, "critical-2", 0, NULL);
	/* Without aging to speak of: by priority, then oldest first. */
	order(st, 3600 * 1000, names, sizeof(names));
	ck_assert_str_eq(names, "critical,critical-2,high,normal,low");
	/* A rank per 20 ms: the low job, waiting 200 ms longer, comes first. */
	order(st, 20, names, sizeof(names));
	ck_assert_str_eq(names, "low,critical,critical-2,high,normal");
	store_close(st);
}
END_TEST

static const char job_fmt[] =
	"{\"name\":\"q\",\"labels\":{\"team\":\"%s\",\"priority\":\"%s\"},\"spec\":{\"type\":\"Python\","
	"\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"a.py\"%s}}";

static struct tu_response submit(struct tu_gateway *gw, const char *team, const char *priority,
				  const char *key)
{
	char body[512], u[256];
	struct tu_response r;

	snprintf(body, sizeof(body), job_fmt, team, priority, "");
	snprintf(u, sizeof(u), "%s/api/v1/jobs", gw->base);
	ck_assert_int_eq(tu_post_json(u, body, key, &r), 0);
	return r;
}

START_TEST(test_team_queue_limit_and_visibility)
{
	struct tu_gateway gw;
	struct tu_response r;
	char cfg[700], u[300];
	json_t *q, *items;
	FILE *f;

	snprintf(cfg, sizeof(cfg), "%s/gw.yaml", dir);
	f = fopen(cfg, "w");
	fputs("scheduler: {max_queued_per_team: 3}\n", f);
	fclose(f);
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	r = submit(&gw, "x", "low", "first");
	ck_assert_int_eq(r.status, 201);
	tu_response_release(&r);
	r = submit(&gw, "x", "normal", NULL);
	tu_response_release(&r);
	r = submit(&gw, "x", "critical", NULL);
	ck_assert_int_eq(r.status, 201);
	tu_response_release(&r);
	/* The fourth of team x is refused, and nothing is stored. */
	r = submit(&gw, "x", "high", NULL);
	ck_assert_int_eq(r.status, 429);
	ck_assert_str_eq(r.retry_after, "10");
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "type")), "urn:sparkgw:problem:queue-full");
	ck_assert_schema("Problem", r.json);
	tu_response_release(&r);
	/* A retry of an accepted submission still gets its job. */
	r = submit(&gw, "x", "low", "first");
	ck_assert_int_eq(r.status, 200);
	tu_response_release(&r);
	r = submit(&gw, "y", "low", NULL);
	ck_assert_int_eq(r.status, 201);
	tu_response_release(&r);
	r = submit(&gw, "x", "nope", NULL);
	ck_assert_int_eq(r.status, 422);
	tu_response_release(&r);

	snprintf(u, sizeof(u), "%s/api/v1/queue", gw.base);
	q = tu_get_json(u);
	ck_assert_schema("Queue", q);
	items = json_object_get(q, "items");
	ck_assert_int_eq(json_array_size(items), 4);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "priority")), "critical");
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(items, 0), "position")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 3), "priority")), "low");
	json_decref(q);
	snprintf(u, sizeof(u), "%s/api/v1/queue?team=y", gw.base);
	q = tu_get_json(u);
	ck_assert_int_eq(json_array_size(json_object_get(q, "items")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(q, "items"), 0), "team")), "y");
	json_decref(q);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
}
END_TEST

static int64_t event_ms(const char *base, const char *id, const char *state)
{
	char u[300];
	json_t *ev = NULL;
	int64_t at = 0;
	size_t i;
	json_t *e;

	snprintf(u, sizeof(u), "%s/api/v1/jobs/%s/events", base, id);
	ev = tu_get_json(u);
	json_array_foreach(json_object_get(ev, "items"), i, e)
		if (!strcmp(json_string_value(json_object_get(e, "state")), state))
			gw_time_parse(json_string_value(json_object_get(e, "time")), &at);
	json_decref(ev);
	return at;
}

/* 20 jobs at once are 60 creates: at 20 requests a second with a second's
 * burst, the last is made no sooner than 2 s after the first. */
START_TEST(test_cluster_request_rate_holds_under_a_burst)
{
	struct tu_kubesim sim = {0};
	struct tu_gateway gw;
	static const char *const mode = "driver-pod";
	char cfg[700], *ids[20];
	int64_t first = INT64_MAX, last = 0;

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "rl", NULL), 0);
	tu_write_cluster_config(dir, &sim, &mode, 1, "scheduler: {cluster_qps: 20}\n", cfg, sizeof(cfg));
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	for (int i = 0; i < 20; i++) {
		struct tu_response r = submit(&gw, "burst", "normal", NULL);

		ck_assert_int_eq(r.status, 201);
		ids[i] = strdup(json_string_value(json_object_get(r.json, "id")));
		tu_response_release(&r);
	}
	for (int i = 0; i < 20; i++) {
		json_t *job = tu_wait_job(gw.base, ids[i], NULL, 30000);
		int64_t at;

		ck_assert_ptr_nonnull(job);
		json_decref(job);
		at = event_ms(gw.base, ids[i], "SUBMITTED");
		ck_assert_int_gt(at, 0);
		first = at < first ? at : first;
		last = at > last ? at : last;
		free(ids[i]);
	}
	ck_assert_msg(last - first >= 1800, "60 creates took %lld ms", (long long)(last - first));
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	tu_kubesim_stop(&sim);
}
END_TEST

/* Two gateways on one database and one cluster, 1,000 jobs submitted to
 * both in turn: every job dispatched, none twice. */
START_TEST(test_two_processes_share_the_queue)
{
	enum { JOBS = 1000 };
	struct tu_kubesim sim = {0};
	struct tu_gateway a, b;
	static const char *const mode = "driver-pod";
	char cfg[700], **ids = calloc(JOBS, sizeof(*ids)), url[400];
	json_t *list;
	size_t i;
	json_t *pod;

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "shared", NULL), 0);
	tu_write_cluster_config(dir, &sim, &mode, 1, "scheduler: {cluster_qps: 2000}\n", cfg, sizeof(cfg));
	ck_assert_int_eq(tu_gateway_start(&a, dir, "--config", cfg, NULL), 0);
	ck_assert_int_eq(tu_gateway_start(&b, dir, "--config", cfg, NULL), 0);
	for (int j = 0; j < JOBS; j++) {
		char body[512];

		snprintf(body, sizeof(body), job_fmt, "shared", "normal",
			 ",\"executor\":{\"instances\":1},\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"0.1\"}");
		ids[j] = tu_submit((j % 2 ? &a : &b)->base, body);
	}
	for (int j = 0; j < JOBS; j++) {
		json_t *job = tu_wait_job(j % 3 ? a.base : b.base, ids[j], NULL, 120000);

		ck_assert_ptr_nonnull(job);
		ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "SUCCEEDED");
		json_decref(job);
	}
	/* One driver pod per job, none twice. */
	snprintf(url, sizeof(url), "%s/api/v1/pods?labelSelector=spark-role%%3Ddriver", sim.base);
	list = tu_get_json(url);
	ck_assert_int_eq(json_array_size(json_object_get(list, "items")), JOBS);
	{
		json_t *seen = json_object();

		json_array_foreach(json_object_get(list, "items"), i, pod) {
			const char *job = json_string_value(json_object_get(
				json_object_get(json_object_get(pod, "metadata"), "labels"), "sparkgw/job-id"));

			ck_assert_ptr_null(json_object_get(seen, job));
			json_object_set_new(seen, job, json_true());
		}
		for (int j = 0; j < JOBS; j++)
			ck_assert_ptr_nonnull(json_object_get(seen, ids[j]));
		json_decref(seen);
	}
	json_decref(list);
	for (int j = 0; j < JOBS; j++)
		free(ids[j]);
	free(ids);
	ck_assert_int_eq(tu_gateway_signal(&a, SIGTERM), 0);
	ck_assert_int_eq(tu_gateway_signal(&b, SIGTERM), 0);
	tu_kubesim_stop(&sim);
}
END_TEST

/* An API server slower than the lease: the dispatching process renews its
 * lease, so the other never takes a live dispatch over (each job claimed
 * once: one attempt). */
START_TEST(test_lease_renewed_while_the_api_server_is_slow)
{
	struct tu_kubesim sim = {0};
	struct tu_gateway a, b;
	static const char *const mode = "driver-pod";
	char cfg[700], *ids[6];

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "slow", "--latency-ms", "600", NULL), 0);
	tu_write_cluster_config(dir, &sim, &mode, 1, "dispatch: {lease_seconds: 1}\n", cfg, sizeof(cfg));
	ck_assert_int_eq(tu_gateway_start(&a, dir, "--config", cfg, NULL), 0);
	ck_assert_int_eq(tu_gateway_start(&b, dir, "--config", cfg, NULL), 0);
	for (int i = 0; i < 6; i++) {
		char body[512];

		snprintf(body, sizeof(body), job_fmt, "slow", "normal",
			 ",\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"0.1\"}");
		ids[i] = tu_submit((i % 2 ? &a : &b)->base, body);
	}
	for (int i = 0; i < 6; i++) {
		json_t *job = tu_wait_job(a.base, ids[i], NULL, 30000);

		ck_assert_ptr_nonnull(job);
		ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "SUCCEEDED");
		json_decref(job);
		free(ids[i]);
	}
	ck_assert_int_eq(tu_store_sql(a.data, "SELECT count(*) FROM jobs"), 6);
	ck_assert_int_eq(tu_store_sql(a.data, "SELECT max(attempts) FROM jobs"), 1);
	ck_assert_int_eq(tu_gateway_signal(&a, SIGTERM), 0);
	ck_assert_int_eq(tu_gateway_signal(&b, SIGTERM), 0);
	tu_kubesim_stop(&sim);
}
END_TEST

/* With two running jobs allowed per team, a third waits and says why. */
START_TEST(test_team_running_limit)
{
	struct tu_kubesim sim = {0};
	struct tu_gateway gw;
	static const char *const mode = "driver-pod";
	char cfg[700], *ids[5], u[300];
	bool saw_quota = false;

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "quota", NULL), 0);
	tu_write_cluster_config(dir, &sim, &mode, 1, "scheduler: {max_running_per_team: 2}\n", cfg, sizeof(cfg));
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	for (int i = 0; i < 5; i++) {
		char body[512];

		snprintf(body, sizeof(body), job_fmt, "capped", "normal",
			 ",\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"1\"}");
		ids[i] = tu_submit(gw.base, body);
	}
	/* Sample while they run: never more than two active at once. */
	for (int t = 0; t < 60; t++) {
		int active = 0, done = 0;

		for (int i = 0; i < 5; i++) {
			json_t *job;
			const char *st;

			snprintf(u, sizeof(u), "%s/api/v1/jobs/%s", gw.base, ids[i]);
			job = tu_get_json(u);
			st = json_string_value(json_object_get(job, "state"));
			active += !strcmp(st, "DISPATCHING") || !strcmp(st, "SUBMITTED") || !strcmp(st, "RUNNING");
			done += !strcmp(st, "SUCCEEDED");
			if (json_object_get(job, "waitReason") &&
			    strstr(json_string_value(json_object_get(job, "waitReason")), "QuotaExceeded: team capped"))
				saw_quota = true;
			json_decref(job);
		}
		ck_assert_int_le(active, 2);
		if (done == 5)
			break;
		usleep(100000);
	}
	ck_assert(saw_quota);
	for (int i = 0; i < 5; i++) {
		json_t *job = tu_wait_job(gw.base, ids[i], "SUCCEEDED", 20000);

		ck_assert_ptr_nonnull(job);
		json_decref(job);
		free(ids[i]);
	}
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	tu_kubesim_stop(&sim);
}
END_TEST

/* Past max_queue_depth new submissions are shed at once; the depth is
 * counted again after a restart and falls when jobs leave the queue. */
START_TEST(test_admission_sheds_when_the_queue_is_deep)
{
	struct tu_gateway gw;
	struct tu_response r;
	char cfg[700], u[300], first[32] = "";
	FILE *f;

	snprintf(cfg, sizeof(cfg), "%s/gw.yaml", dir);
	f = fopen(cfg, "w");
	fputs("scheduler: {max_queue_depth: 4}\n", f);
	fclose(f);
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	for (int i = 0; i < 4; i++) {
		r = submit(&gw, "t", "normal", NULL);
		ck_assert_int_eq(r.status, 201);
		if (!*first)
			snprintf(first, sizeof(first), "%s", json_string_value(json_object_get(r.json, "id")));
		tu_response_release(&r);
	}
	r = submit(&gw, "t", "normal", NULL);
	ck_assert_int_eq(r.status, 429);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "type")), "urn:sparkgw:problem:overloaded");
	ck_assert_str_eq(r.retry_after, "5");
	tu_response_release(&r);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	r = submit(&gw, "t", "normal", NULL);
	ck_assert_int_eq(r.status, 429);
	tu_response_release(&r);
	/* A queued job cancelled leaves the queue: room for one more. */
	snprintf(u, sizeof(u), "%s/api/v1/jobs/%s", gw.base, first);
	ck_assert_int_eq(tu_http("DELETE", u, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 200);
	tu_response_release(&r);
	r = submit(&gw, "t", "normal", NULL);
	ck_assert_int_eq(r.status, 201);
	tu_response_release(&r);
	r = submit(&gw, "t", "normal", NULL);
	ck_assert_int_eq(r.status, 429);
	tu_response_release(&r);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
}
END_TEST

/* The configured default (2 s) cancels a job without a label; a label says
 * otherwise either way: 1 s is cancelled, 60 s runs on. */
START_TEST(test_max_run_time)
{
	struct tu_kubesim sim = {0};
	struct tu_gateway gw;
	static const char *const mode = "driver-pod";
	static const char *const limits[] = {"1", "", "60"};
	char cfg[700], u[400], body[512], *ids[3];
	json_t *job, *pods;

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "deadline", NULL), 0);
	tu_write_cluster_config(dir, &sim, &mode, 1, "scheduler: {max_run_seconds: 2}\n", cfg, sizeof(cfg));
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	for (int i = 0; i < 3; i++) {
		char label[64] = "";

		if (*limits[i])
			snprintf(label, sizeof(label), ",\"max-run-seconds\":\"%s\"", limits[i]);
		snprintf(body, sizeof(body),
			 "{\"name\":\"slow\",\"labels\":{\"team\":\"t\"%s},"
			 "\"spec\":{\"type\":\"Python\",\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"a.py\","
			 "\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"30\"}}}", label);
		ids[i] = tu_submit(gw.base, body);
	}
	for (int i = 0; i < 2; i++) {
		job = tu_wait_job(gw.base, ids[i], "CANCELLED", 15000);
		ck_assert_ptr_nonnull(job);
		ck_assert_str_eq(json_string_value(json_object_get(job, "reason")), "DeadlineExceeded");
		json_decref(job);
		snprintf(u, sizeof(u), "%s/api/v1/pods?labelSelector=sparkgw%%2Fjob-id%%3D%s", sim.base, ids[i]);
		pods = tu_get_json(u);
		ck_assert_int_eq(json_array_size(json_object_get(pods, "items")), 0);
		json_decref(pods);
	}
	job = tu_wait_job(gw.base, ids[2], "RUNNING", 5000);
	ck_assert_ptr_nonnull(job);
	json_decref(job);
	for (int i = 0; i < 3; i++)
		free(ids[i]);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	tu_kubesim_stop(&sim);
}
END_TEST

Suite *scheduler_suite(void)
{
	Suite *s = suite_create("scheduler");
	TCase *tc = tcase_create("queue");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_priority_then_age_with_aging);
	tcase_add_test(tc, test_team_queue_limit_and_visibility);
	tcase_add_test(tc, test_cluster_request_rate_holds_under_a_burst);
	tcase_add_test(tc, test_two_processes_share_the_queue);
	tcase_add_test(tc, test_lease_renewed_while_the_api_server_is_slow);
	tcase_add_test(tc, test_team_running_limit);
	tcase_add_test(tc, test_admission_sheds_when_the_queue_is_deep);
	tcase_add_test(tc, test_max_run_time);
	suite_add_tcase(s, tc);
	return s;
}
