/* Shared execution end to end: a pool's shared Spark servers on kubesim,
 * made and kept by the gateway, and small SQL jobs run on them as Livy
 * statements (through the API server's service proxy) instead of on a
 * driver each: routing and its reasons, the job's one state machine,
 * failure, cancel, cost, scaling by queue depth, a server that dies, and a
 * gateway killed while its jobs run. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "tests/testutil.h"

static char *dir;
static struct tu_kubesim sim;
static struct tu_gateway gw;
static char config[700];

#define POLICY                                                                                            \
	"pools:\n"                                                                                        \
	"  - name: sql\n    clusters: [shared]\n"                                                        \
	"    sharedServers: {namespace: spark-shared, minServers: 1, maxServers: 2, maxJobsPerServer: 2,\n" \
	"                    idleTimeoutSeconds: 2, cores: 4, memory: 8g, selector: workload=sql,\n"       \
	"                    maxExecutorCores: 4}\n"                                                     \
	"namespaceGroups:\n"                                                                             \
	"  - name: all\n    namespaces: [spark-jobs, spark-shared]\n"                                     \
	"dispatch: {probe_seconds: 1}\n"

static void setup(void)
{
	static const char *const modes[] = {"driver-pod"};

	dir = tu_tmpdir("shared");
	ck_assert_ptr_nonnull(dir);
	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "shared", "--namespace", "spark-shared", NULL), 0);
	tu_write_cluster_config(dir, &sim, modes, 1, POLICY, config, sizeof(config));
	ck_assert_msg(tu_gateway_start(&gw, dir, "--config", config, NULL) == 0, "gateway did not start");
}

static void teardown(void)
{
	tu_gateway_signal(&gw, SIGTERM);
	tu_kubesim_stop(&sim);
	tu_rmtree(dir);
	free(dir);
}

static char *submit_sql(const char *sql, const char *labels, const char *seconds, const char *exit_code)
{
	char body[2048];

	snprintf(body, sizeof(body),
		 "{\"name\":\"q\",\"labels\":{\"team\":\"t\"%s},\"spec\":{\"type\":\"SQL\",\"sparkVersion\":\"3.5.1\","
		 "\"sql\":\"%s\",\"executor\":{\"instances\":1,\"cores\":1},"
		 "\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"%s\",\"spark.kubesim.exitCode\":\"%s\"}}}",
		 labels ? labels : "", sql, seconds, exit_code);
	return tu_submit(gw.base, body);
}

/* The shared servers' pods on the cluster. */
static json_t *server_pods(void)
{
	char url[300];

	snprintf(url, sizeof(url), "%s/api/v1/namespaces/spark-shared/pods?labelSelector=sparkgw%%2Fshared-pool%%3Dsql",
		 sim.base);
	return tu_get_json(url);
}

static size_t running_servers(void)
{
	json_t *list = server_pods(), *pod;
	size_t i, n = 0;

	json_array_foreach(json_object_get(list, "items"), i, pod)
		n += !strcmp(json_string_value(json_object_get(json_object_get(pod, "status"), "phase")), "Running") &&
		     !json_object_get(json_object_get(pod, "metadata"), "deletionTimestamp");
	json_decref(list);
	return n;
}

static void wait_servers(size_t want, int seconds)
{
	size_t n = 0;

	for (int i = 0; i < seconds * 10 && (n = running_servers()) != want; i++)
		usleep(100000);
	ck_assert_uint_eq(n, want);
}

/* Pods of the job (a driver, executors): none for a statement. */
static size_t job_pods(const char *id)
{
	char url[300];
	json_t *list;
	size_t n;

	snprintf(url, sizeof(url), "%s/api/v1/pods?labelSelector=sparkgw%%2Fjob-id%%3D%s", sim.base, id);
	list = tu_get_json(url);
	n = json_array_size(json_object_get(list, "items"));
	json_decref(list);
	return n;
}

/* A Livy request to a server, through kubesim's service proxy. */
static json_t *livy_get(const char *server, const char *rest)
{
	char url[400];

	snprintf(url, sizeof(url), "%s/api/v1/namespaces/spark-shared/services/%s:8998/proxy/%s", sim.base, server, rest);
	return tu_get_json(url);
}

static const char *placement_str(json_t *job, const char *key)
{
	return json_string_value(json_object_get(json_object_get(job, "placement"), key));
}

static size_t events_with_reason(const char *id, const char *reason)
{
	char url[300];
	json_t *list, *ev;
	size_t i, n = 0;

	snprintf(url, sizeof(url), "%s/api/v1/jobs/%s/events", gw.base, id);
	list = tu_get_json(url);
	json_array_foreach(json_object_get(list, "items"), i, ev)
		n += !strcmp(json_string_value(json_object_get(ev, "reason")) ? json_string_value(json_object_get(ev, "reason")) : "", reason);
	json_decref(list);
	return n;
}

START_TEST(test_ddl_runs_as_a_statement_on_a_shared_server)
{
	struct tu_response r;
	char url[300];
	char *ddl, *dml;
	json_t *job, *sql;

	wait_servers(1, 20); /* minServers, made by the gateway */
	/* The dry run says where and why. */
	snprintf(url, sizeof(url), "%s/api/v1/jobs?dryRun=true", gw.base);
	ck_assert_int_eq(tu_post_json(url, "{\"name\":\"d\",\"labels\":{\"team\":\"t\"},\"spec\":{\"type\":\"SQL\","
					   "\"sparkVersion\":\"3.5.1\",\"sql\":\"CREATE TABLE t (a INT); -- SELECT\\nSET x=1\"}}",
			 NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	sql = json_object_get(json_object_get(r.json, "placement"), "sql");
	ck_assert_str_eq(json_string_value(json_object_get(sql, "execution")), "shared");
	ck_assert_msg(strstr(json_string_value(json_object_get(sql, "executionReason")), "DDL"), "%s", r.body);
	tu_response_release(&r);

	ddl = submit_sql("CREATE TABLE t (a INT); SET x=1", NULL, "1", "0");
	job = tu_wait_job(gw.base, ddl, "SUCCEEDED", 20000);
	ck_assert_ptr_nonnull(job);
	ck_assert_str_eq(placement_str(job, "execution"), "shared");
	ck_assert_str_eq(placement_str(job, "namespace"), "spark-shared");
	ck_assert_str_eq(placement_str(job, "sharedServer"), "sql-shared-0");
	ck_assert_msg(strstr(json_string_value(json_object_get(job, "message")), "statement succeeded"), "%s",
		      json_string_value(json_object_get(job, "message")));
	ck_assert_uint_eq(job_pods(ddl), 0);
	ck_assert_uint_eq(events_with_reason(ddl, "StatementSubmitted"), 1);
	ck_assert_uint_eq(events_with_reason(ddl, "StatementRunning"), 1);
	json_decref(job);

	/* DML goes by the normal rules: a driver of its own. */
	dml = submit_sql("INSERT INTO t SELECT 1", NULL, "1", "0");
	job = tu_wait_job(gw.base, dml, "SUCCEEDED", 30000);
	ck_assert_ptr_nonnull(job);
	ck_assert_str_eq(placement_str(job, "execution"), "dedicated");
	ck_assert_uint_ge(job_pods(dml), 1);
	json_decref(job);
	free(ddl);
	free(dml);
}
END_TEST

START_TEST(test_labels_size_and_isolation_decide)
{
	struct tu_response r;
	char url[300];
	json_t *dec;
	static const struct {
		const char *labels, *extra, *want, *why;
	} cases[] = {
		{",\"workload\":\"sql\"", "", "shared", "labels match workload=sql"},
		{",\"workload\":\"sql\"", ",\"executor\":{\"instances\":8,\"cores\":1}", "dedicated", "8 executor cores (more than 4)"},
		{",\"execution\":\"shared\"", "", "shared", "label execution=shared"},
		{",\"execution\":\"shared\"", ",\"image\":\"my/spark:1\"", "dedicated", "an image of its own"},
		{",\"execution\":\"dedicated\"", "", "dedicated", "label execution=dedicated"},
	};

	snprintf(url, sizeof(url), "%s/api/v1/jobs?dryRun=true", gw.base);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char body[1024];

		snprintf(body, sizeof(body), "{\"name\":\"d\",\"labels\":{\"team\":\"t\"%s},\"spec\":{\"type\":\"SQL\","
			 "\"sparkVersion\":\"3.5.1\",\"sql\":\"SELECT 1\"%s}}", cases[i].labels, cases[i].extra);
		ck_assert_int_eq(tu_post_json(url, body, NULL, &r), 0);
		ck_assert_int_eq(r.status, 200);
		dec = json_object_get(json_object_get(r.json, "placement"), "sql");
		ck_assert_msg(dec && !strcmp(json_string_value(json_object_get(dec, "execution")), cases[i].want) &&
			      strstr(json_string_value(json_object_get(dec, "executionReason")), cases[i].why),
			      "case %zu: %.300s", i, dec ? json_dumps(dec, JSON_COMPACT) : r.body);
		tu_response_release(&r);
	}
	/* Shared servers run SQL: asking a jar to run on one is refused. */
	ck_assert_int_eq(tu_post_json(url, "{\"name\":\"d\",\"labels\":{\"team\":\"t\",\"execution\":\"shared\"},\"spec\":"
					   "{\"type\":\"Java\",\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"a.jar\","
					   "\"mainClass\":\"A\"}}", NULL, &r), 0);
	ck_assert_int_eq(r.status, 422);
	ck_assert_msg(strstr(r.body, "labels.execution"), "%.300s", r.body);
	tu_response_release(&r);
}
END_TEST

START_TEST(test_failure_cancel_and_cost)
{
	struct tu_response r;
	char url[300], from[GW_TIME_LEN], *failing, *slow, *after[2];
	json_t *job, *sessions, *usage, *it;
	double core_s = 0;
	size_t i;

	wait_servers(1, 20);
	failing = submit_sql("DROP TABLE t", NULL, "0.2", "1");
	job = tu_wait_job(gw.base, failing, NULL, 20000);
	ck_assert_ptr_nonnull(job);
	ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "FAILED");
	ck_assert_str_eq(json_string_value(json_object_get(job, "reason")), "StatementFailed");
	ck_assert_msg(strstr(json_string_value(json_object_get(job, "message")), "AnalysisException"), "%s",
		      json_string_value(json_object_get(job, "message")));
	json_decref(job);

	slow = submit_sql("ALTER TABLE t ADD COLUMNS (b INT)", NULL, "60", "0");
	json_decref(tu_wait_job(gw.base, slow, "RUNNING", 20000));
	snprintf(url, sizeof(url), "%s/api/v1/jobs/%s", gw.base, slow);
	ck_assert_int_eq(tu_http("DELETE", url, NULL, NULL, 0, &r), 0);
	ck_assert_int_lt(r.status, 300);
	tu_response_release(&r);
	job = tu_wait_job(gw.base, slow, "CANCELLED", 20000);
	ck_assert_ptr_nonnull(job);
	json_decref(job);
	/* Its session went with it; the failed one's too. */
	sessions = livy_get("sql-shared-0", "sessions");
	ck_assert_ptr_nonnull(sessions);
	ck_assert_int_eq(json_integer_value(json_object_get(sessions, "total")), 0);
	json_decref(sessions);
	/* ... and so did its slot: two more jobs both fit on the one server. */
	for (int k = 0; k < 2; k++)
		after[k] = submit_sql("USE db", NULL, "1", "0");
	for (int k = 0; k < 2; k++) {
		job = tu_wait_job(gw.base, after[k], "SUCCEEDED", 20000);
		ck_assert_ptr_nonnull(job);
		ck_assert_str_eq(placement_str(job, "sharedServer"), "sql-shared-0");
		json_decref(job);
		free(after[k]);
	}

	/* Cost: a slot's share of the server (4 cores over 2 slots) while it
	 * ran: 2 cores for about the 0.2 s the failing one ran. */
	gw_time_format(gw_now_ms() - 3600 * 1000, from);
	snprintf(url, sizeof(url), "%s/api/v1/usage?groupBy=job&from=%s", gw.base, from);
	usage = tu_get_json(url);
	ck_assert_ptr_nonnull(usage);
	json_array_foreach(json_object_get(usage, "items"), i, it)
		if (!strcmp(json_string_value(json_object_get(it, "key")), failing))
			core_s = json_number_value(json_object_get(it, "coreSeconds"));
	ck_assert_msg(core_s > 0.3 && core_s < 0.6, "%g core-seconds: %s", core_s, json_dumps(usage, JSON_COMPACT));
	json_decref(usage);
	free(failing);
	free(slow);
}
END_TEST

START_TEST(test_scales_with_queue_and_replaces_a_dead_server)
{
	char *ids[5], url[300];
	struct tu_response r;
	json_t *job;
	int lost = 0, waiting = -1;
	char reasons[512] = "";

	wait_servers(1, 20);
	/* Five jobs, two slots a server, two servers at most: the fifth waits. */
	for (int i = 0; i < 5; i++)
		ids[i] = submit_sql("CREATE TABLE x (a INT)", NULL, "20", "0");
	wait_servers(2, 20);
	/* Which one waits is the fair-share order's choice. */
	for (int i = 0; i < 100 && waiting < 0; i++) {
		for (int j = 0; j < 5 && waiting < 0; j++) {
			const char *why;

			snprintf(url, sizeof(url), "%s/api/v1/jobs/%s", gw.base, ids[j]);
			job = tu_get_json(url);
			why = json_string_value(json_object_get(job, "waitReason"));
			if (why && strstr(why, "SharedServerBusy: 2 of pool sql's 2 shared servers on shared ready"))
				waiting = j;
			json_decref(job);
		}
		usleep(100000);
	}
	ck_assert_int_ge(waiting, 0);

	/* A server dies under its jobs: they fail saying so; it is replaced. */
	for (int i = 0; i < 5; i++)
		if (i != waiting)
			json_decref(tu_wait_job(gw.base, ids[i], "RUNNING", 20000));
	snprintf(url, sizeof(url), "%s/api/v1/namespaces/spark-shared/pods/sql-shared-1?gracePeriodSeconds=0", sim.base);
	ck_assert_int_eq(tu_http("DELETE", url, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 200);
	tu_response_release(&r);
	for (int i = 0; i < 5; i++) {
		if (i == waiting)
			continue;
		job = tu_wait_job(gw.base, ids[i], NULL, 30000);
		ck_assert_ptr_nonnull(job);
		lost += !strcmp(json_string_value(json_object_get(job, "reason")), "SharedServerLost");
		snprintf(reasons + strlen(reasons), sizeof(reasons) - strlen(reasons), " %s",
			 json_string_value(json_object_get(job, "reason")));
		json_decref(job);
	}
	ck_assert_msg(lost == 2, "%s", reasons);
	job = tu_wait_job(gw.base, ids[waiting], "SUCCEEDED", 40000);
	ck_assert_ptr_nonnull(job);
	json_decref(job);
	/* Idle past its timeout, the server above the minimum goes. */
	wait_servers(1, 20);
	for (int i = 0; i < 5; i++)
		free(ids[i]);
}
END_TEST

START_TEST(test_kill_minus_nine_runs_nothing_twice)
{
	char *ids[2];
	json_t *job;

	wait_servers(1, 20);
	ids[0] = submit_sql("CREATE TABLE k1 (a INT)", NULL, "4", "0");
	ids[1] = submit_sql("CREATE TABLE k2 (a INT)", NULL, "4", "0");
	json_decref(tu_wait_job(gw.base, ids[0], "RUNNING", 20000));
	json_decref(tu_wait_job(gw.base, ids[1], "RUNNING", 20000));
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGKILL), 128 + SIGKILL);
	ck_assert_msg(tu_gateway_restart(&gw, dir, "--config", config, NULL) == 0, "gateway did not restart");
	for (int i = 0; i < 2; i++) {
		job = tu_wait_job(gw.base, ids[i], "SUCCEEDED", 30000);
		ck_assert_ptr_nonnull(job);
		ck_assert_uint_eq(events_with_reason(ids[i], "StatementSubmitted"), 1);
		json_decref(job);
		free(ids[i]);
	}
	/* The server the gateway made before is kept, not made again. */
	ck_assert_uint_eq(running_servers(), 1);
}
END_TEST

Suite *shared_suite(void)
{
	Suite *s = suite_create("shared");
	TCase *tc = tcase_create("shared");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_ddl_runs_as_a_statement_on_a_shared_server);
	tcase_add_test(tc, test_labels_size_and_isolation_decide);
	tcase_add_test(tc, test_failure_cancel_and_cost);
	tcase_add_test(tc, test_scales_with_queue_and_replaces_a_dead_server);
	tcase_add_test(tc, test_kill_minus_nine_runs_nothing_twice);
	suite_add_tcase(s, tc);
	return s;
}
