/* Lifecycle policies: restartPolicy OnFailure runs, cleanup of finished
 * jobs' cluster objects after their time to live, and pruning of finished
 * jobs past the retention. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "common/timeutil.h"
#include "store/store.h"
#include "tests/testutil.h"

static char *dir;

static void setup(void)
{
	dir = tu_tmpdir("life");
	ck_assert_ptr_nonnull(dir);
}

static void teardown(void)
{
	tu_rmtree(dir);
	free(dir);
}

static const char job_fmt[] =
	"{\"name\":\"l\",\"labels\":{\"team\":\"t\"},\"spec\":{\"type\":\"Python\","
	"\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"a.py\","
	"\"executor\":{\"instances\":1}%s,"
	"\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"%s\",\"spark.kubesim.exitCode\":\"%s\"}}}";

static void start(struct tu_kubesim *sim, struct tu_gateway *gw, const char *mode, const char *extra)
{
	char cfg[700];

	ck_assert_int_eq(tu_kubesim_start(sim, dir, "life", !strcmp(mode, "spark-operator") ? "--operator" : NULL,
					  NULL), 0);
	tu_write_cluster_config(dir, sim, &mode, 1, extra, cfg, sizeof(cfg));
	ck_assert_int_eq(tu_gateway_start(gw, dir, "--config", cfg, NULL), 0);
}

static void stop(struct tu_kubesim *sim, struct tu_gateway *gw)
{
	ck_assert_int_eq(tu_gateway_signal(gw, SIGTERM), 0);
	tu_kubesim_stop(sim);
}

/* Names of the objects of a kind the cluster has for the job. */
static size_t objects(const struct tu_kubesim *sim, const char *kind_path, const char *id, char *names,
		      size_t len)
{
	char u[400];
	json_t *list;
	size_t i, n;
	json_t *it;

	snprintf(u, sizeof(u), "%s%s?labelSelector=sparkgw%%2Fjob-id%%3D%s", sim->base, kind_path, id);
	list = tu_get_json(u);
	n = json_array_size(json_object_get(list, "items"));
	if (names) {
		names[0] = '\0';
		json_array_foreach(json_object_get(list, "items"), i, it)
			snprintf(names + strlen(names), len - strlen(names), "%s%s", i ? "," : "",
				 json_string_value(json_object_get(json_object_get(it, "metadata"), "name")));
	}
	json_decref(list);
	return n;
}

/* A failing job under OnFailure with two retries runs three times, each
 * run in its events, each a new driver; the last failure is its end. */
static void restarts_in(const char *mode)
{
	struct tu_kubesim sim = {0};
	struct tu_gateway gw;
	char body[700], u[300], names[400];
	json_t *job, *events;
	int restarts = 0, submitted = 0;
	size_t i;
	json_t *e;
	char *id;

	start(&sim, &gw, mode, NULL);
	snprintf(body, sizeof(body), job_fmt,
		 ",\"restartPolicy\":{\"type\":\"OnFailure\",\"onFailureRetries\":2,\"onFailureRetryInterval\":1}",
		 "0.2", "3");
	id = tu_submit(gw.base, body);
	job = tu_wait_job(gw.base, id, "FAILED", 30000);
	ck_assert_ptr_nonnull(job);
	ck_assert_int_eq(json_integer_value(json_object_get(job, "run")), 3);
	ck_assert_schema("Job", job);
	json_decref(job);
	snprintf(u, sizeof(u), "%s/api/v1/jobs/%s/events", gw.base, id);
	events = tu_get_json(u);
	json_array_foreach(json_object_get(events, "items"), i, e) {
		const char *reason = json_string_value(json_object_get(e, "reason"));
		const char *state = json_string_value(json_object_get(e, "state"));

		if (!strcmp(reason, "Restarting")) {
			char want[64];

			restarts++;
			ck_assert_str_eq(state, "QUEUED");
			snprintf(want, sizeof(want), "run %d failed (", restarts);
			ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(e, "message")), want));
			snprintf(want, sizeof(want), "run %d of 3 starts in 1 s", restarts + 1);
			ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(e, "message")), want));
		}
		submitted += !strcmp(state, "SUBMITTED");
	}
	ck_assert_int_eq(restarts, 2);
	ck_assert_int_eq(submitted, 3);
	json_decref(events);
	/* The failed runs' objects went with their restart; the last run's stay. */
	if (!strcmp(mode, "driver-pod")) {
		/* The last run's driver, and its executor while it is deleted. */
		size_t npods = objects(&sim, "/api/v1/pods", id, names, sizeof(names));
		char *name = strtok(names, ",");

		ck_assert_msg(npods >= 1 && npods <= 2, "%zu pods", npods);
		snprintf(u, sizeof(u), "%s-r3-driver", id);
		ck_assert_str_eq(name, u);
		snprintf(u, sizeof(u), "%s-r3-exec-", id);
		if ((name = strtok(NULL, ",")))
			ck_assert_msg(!strncmp(name, u, strlen(u)), "pod %s is not of the last run", name);
	} else {
		ck_assert_uint_eq(objects(&sim, "/apis/sparkoperator.k8s.io/v1beta2/sparkapplications", id, names,
					  sizeof(names)), 1);
		snprintf(u, sizeof(u), "%s-r3", id);
		ck_assert_str_eq(names, u);
	}
	free(id);
	stop(&sim, &gw);
}

START_TEST(test_on_failure_runs_again_driver_pod)
{
	restarts_in("driver-pod");
}
END_TEST

START_TEST(test_on_failure_runs_again_operator)
{
	restarts_in("spark-operator");
}
END_TEST

/* Objects are deleted after the job's timeToLiveSeconds, else after the
 * configured default; the job itself stays. */
START_TEST(test_cleanup_after_time_to_live)
{
	struct tu_kubesim sim = {0};
	struct tu_gateway gw;
	char body[700], *brief, *kept;
	json_t *job;
	bool gone = false;

	start(&sim, &gw, "driver-pod", "scheduler: {cleanup_after_seconds: 3600}\n");
	snprintf(body, sizeof(body), job_fmt, ",\"timeToLiveSeconds\":1", "0.2", "0");
	brief = tu_submit(gw.base, body);
	snprintf(body, sizeof(body), job_fmt, "", "0.2", "0");
	kept = tu_submit(gw.base, body);
	json_decref(tu_wait_job(gw.base, brief, "SUCCEEDED", 15000));
	json_decref(tu_wait_job(gw.base, kept, "SUCCEEDED", 15000));
	ck_assert_uint_eq(objects(&sim, "/api/v1/services", brief, NULL, 0), 1);
	for (int t = 0; t < 100 && !gone; t++) {
		gone = objects(&sim, "/api/v1/pods", brief, NULL, 0) == 0 &&
		       objects(&sim, "/api/v1/services", brief, NULL, 0) == 0 &&
		       objects(&sim, "/api/v1/configmaps", brief, NULL, 0) == 0;
		usleep(100000);
	}
	ck_assert(gone);
	ck_assert_uint_eq(objects(&sim, "/api/v1/pods", kept, NULL, 0), 1);
	job = tu_wait_job(gw.base, brief, "SUCCEEDED", 1000);
	ck_assert_ptr_nonnull(job);
	json_decref(job);
	free(brief);
	free(kept);
	stop(&sim, &gw);
}
END_TEST

/* Past the retention a finished job is gone, with its idempotency key;
 * jobs still running are not touched. */
START_TEST(test_retention_prunes_finished_jobs)
{
	struct tu_kubesim sim = {0};
	struct tu_gateway gw;
	struct tu_response r;
	char body[700], u[300], *done_id, *running;
	json_t *job;
	int status = 200;

	start(&sim, &gw, "driver-pod", "store: {retention_seconds: 1}\nscheduler: {cleanup_after_seconds: 0}\n");
	snprintf(body, sizeof(body), job_fmt, "", "30", "0");
	running = tu_submit(gw.base, body);
	snprintf(body, sizeof(body), job_fmt, "", "0.2", "0");
	snprintf(u, sizeof(u), "%s/api/v1/jobs", gw.base);
	ck_assert_int_eq(tu_post_json(u, body, "key-1", &r), 0);
	ck_assert_int_eq(r.status, 201);
	done_id = strdup(json_string_value(json_object_get(r.json, "id")));
	tu_response_release(&r);
	json_decref(tu_wait_job(gw.base, done_id, "SUCCEEDED", 15000));
	snprintf(u, sizeof(u), "%s/api/v1/jobs/%s", gw.base, done_id);
	for (int t = 0; t < 100 && status == 200; t++) {
		ck_assert_int_eq(tu_http("GET", u, NULL, NULL, 0, &r), 0);
		status = (int)r.status;
		tu_response_release(&r);
		usleep(100000);
	}
	ck_assert_int_eq(status, 404);
	/* The key went with the job: the same request is a new job now. */
	snprintf(u, sizeof(u), "%s/api/v1/jobs", gw.base);
	ck_assert_int_eq(tu_post_json(u, body, "key-1", &r), 0);
	ck_assert_int_eq(r.status, 201);
	ck_assert_str_ne(json_string_value(json_object_get(r.json, "id")), done_id);
	tu_response_release(&r);
	job = tu_wait_job(gw.base, running, "RUNNING", 1000);
	ck_assert_ptr_nonnull(job);
	json_decref(job);
	free(done_id);
	free(running);
	stop(&sim, &gw);
}
END_TEST

static long long count_rows(const char *db_path, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	long long n = -1;

	ck_assert_int_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* Pruning goes in batches of the size asked, takes every row of a job
 * along, and keeps finished jobs whose cluster objects still exist. */
START_TEST(test_prune_in_batches)
{
	struct store_options o = {.synchronous_full = false};
	struct store *st;
	char path[700], err[GW_ERRLEN];
	struct store_op op;
	unsigned pruned[4] = {0};

	snprintf(path, sizeof(path), "%s/prune.db", dir);
	o.path = path;
	ck_assert_int_eq(store_open(&o, &st, err), GW_OK);
	for (int i = 0; i < 450; i++) {
		char key[32];

		snprintf(key, sizeof(key), "k%d", i);
		memset(&op, 0, sizeof(op));
		op.kind = STORE_OP_SUBMIT;
		op.submit = (struct store_submission){.name = "p", .user = "u", .labels_json = "{\"team\":\"t\"}",
						      .spec_json = "{}", .idempotency_key = key, .ttl_s = -1};
		ck_assert_int_eq(store_execute(st, &op), GW_OK);
		store_job_release(&op.job);
	}
	/* One more, placed on a cluster and failed: its objects are not cleaned yet. */
	memset(&op, 0, sizeof(op));
	op.kind = STORE_OP_SUBMIT;
	op.submit = (struct store_submission){.name = "placed", .user = "u", .labels_json = "{}", .spec_json = "{}",
					      .ttl_s = -1};
	ck_assert_int_eq(store_execute(st, &op), GW_OK);
	{
		char id[STORE_ID_LEN];

		snprintf(id, sizeof(id), "%s", op.job.id);
		store_job_release(&op.job);
		op = (struct store_op){.kind = STORE_OP_CLAIM, .job_id = id, .reason = "Dispatching",
				       .cluster = "c", .namespace = "ns", .lease_owner = "me",
				       .lease_until_ms = gw_now_ms() + 10000};
		ck_assert_int_eq(store_execute(st, &op), GW_OK);
		store_job_release(&op.job);
		op = (struct store_op){.kind = STORE_OP_TRANSITION, .job_id = id, .to = STORE_FAILED, .reason = "X"};
		ck_assert_int_eq(store_execute(st, &op), GW_OK);
		store_job_release(&op.job);
	}
	/* Cancel the 450 queued ones: finished, never placed. */
	{
		struct store_job *jobs;
		size_t n;

		ck_assert_int_eq(store_jobs_in_state(st, STORE_QUEUED, NULL, 1000, &jobs, &n, err), GW_OK);
		ck_assert_uint_eq(n, 450);
		for (size_t i = 0; i < n; i++) {
			op = (struct store_op){.kind = STORE_OP_CANCEL, .job_id = jobs[i].id, .reason = "Deleted"};
			ck_assert_int_eq(store_execute(st, &op), GW_OK);
			store_job_release(&op.job);
		}
		store_jobs_free(jobs, n);
	}
	for (int i = 0; i < 4; i++) {
		op = (struct store_op){.kind = STORE_OP_PRUNE, .limit = 200, .before_ms = gw_now_ms() + 1000};
		ck_assert_int_eq(store_execute(st, &op), GW_OK);
		pruned[i] = op.pruned;
	}
	ck_assert_uint_eq(pruned[0], 200);
	ck_assert_uint_eq(pruned[1], 200);
	ck_assert_uint_eq(pruned[2], 50);
	ck_assert_uint_eq(pruned[3], 0);
	store_close(st);
	ck_assert_int_eq(count_rows(path, "SELECT count(*) FROM jobs"), 1);
	ck_assert_int_eq(count_rows(path, "SELECT count(*) FROM job_labels"), 0);
	ck_assert_int_eq(count_rows(path, "SELECT count(*) FROM idempotency_keys"), 0);
	ck_assert_int_eq(count_rows(path, "SELECT count(*) FROM job_events e JOIN jobs j ON j.seq = e.job_seq"
					  " WHERE j.name = 'placed'"),
			 count_rows(path, "SELECT count(*) FROM job_events"));
	/* The sweep reads the partial index of finished jobs, not the table. */
	ck_assert_int_eq(count_rows(path, "SELECT count(*) FROM pragma_index_list('jobs')"
					  " WHERE name = 'jobs_finished' AND partial = 1"), 1);
}
END_TEST

Suite *lifecycle_suite(void)
{
	Suite *s = suite_create("lifecycle");
	TCase *tc = tcase_create("policies");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_on_failure_runs_again_driver_pod);
	tcase_add_test(tc, test_on_failure_runs_again_operator);
	tcase_add_test(tc, test_cleanup_after_time_to_live);
	tcase_add_test(tc, test_retention_prunes_finished_jobs);
	tcase_add_test(tc, test_prune_in_batches);
	suite_add_tcase(s, tc);
	return s;
}
