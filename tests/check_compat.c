/* Clients and drop-in compatibility: the Livy batch API (our requests from
 * Livy's documentation, and the npm livy-client) and the Batch Processing
 * Gateway API against a gateway with a simulated cluster; tokens across
 * the facades and the command line. */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>


#include "common/yamljson.h"
#include "gateway/compat/compat.h"
#include "tests/testutil.h"

static char *dir;
static struct tu_kubesim sim;
static struct tu_gateway gw;

/* Queue "etl" is team data's; "default" also serves requests naming none. */
static const char compat_yaml[] =
	"compat:\n"
	"  queues:\n"
	"    default: {team: adhoc}\n"
	"    etl: {team: data, priority: high}\n";

/* One cluster and the gateway, for the whole test case (the tests only
 * talk to them). */
static void start_fleet(void)
{
	tu_one_cluster_start(&dir, &sim, &gw, "compat", "compat", compat_yaml);
}

static void stop_fleet(void)
{
	tu_one_cluster_stop(&dir, &sim, &gw);
}

static struct tu_response call(const char *method, const char *path, const char *content_type, const char *body)
{
	char url[600], ct[128];
	const char *headers[2] = {NULL, NULL};
	struct tu_response r;

	snprintf(url, sizeof(url), "%s%s", gw.base, path);
	if (content_type) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
		headers[0] = ct;
	}
	ck_assert_int_eq(tu_http(method, url, headers, body, body ? strlen(body) : 0, &r), 0);
	return r;
}

static long status_of(const char *method, const char *path, const char *content_type, const char *body)
{
	struct tu_response r = call(method, path, content_type, body);
	long status = r.status;

	tu_response_release(&r);
	return status;
}

/* GET path until its JSON member `key` is want; the last answer. */
static json_t *poll_until(const char *path, const char *key, const char *want, int seconds)
{
	json_t *doc = NULL;

	for (int i = 0; i < seconds * 10; i++) {
		struct tu_response r = call("GET", path, NULL, NULL);

		json_decref(doc);
		doc = json_incref(r.json);
		tu_response_release(&r);
		if (!strcmp(json_string_value(json_object_get(doc, key)) ? json_string_value(json_object_get(doc, key)) : "",
			    want))
			return doc;
		usleep(100000);
	}
	ck_abort_msg("%s: %s never became %s (last %s)", path, key, want,
		     json_string_value(json_object_get(doc, key)));
	return NULL;
}

static const char *field_of_error(const json_t *problem, size_t i)
{
	return json_string_value(json_object_get(json_array_get(json_object_get(problem, "errors"), i), "field"));
}

/* ---- translation, without a server ---- */

START_TEST(test_livy_request_translation)
{
	json_t *queues = json_pack("{s:{s:s}}", "etl", "team", "data");
	struct compat_settings cs = {"3.5", queues};
	json_t *body = json_loads("{\"file\":\"s3a://b/pi.py\",\"proxyUser\":\"alice\",\"args\":[\"10\"],"
				  "\"jars\":[\"a.jar\"],\"pyFiles\":[\"u.py\"],\"files\":[\"f.txt\"],"
				  "\"archives\":[\"env.tgz\"],\"driverMemory\":\"2g\",\"driverCores\":2,"
				  "\"executorMemory\":\"4g\",\"executorCores\":3,\"numExecutors\":5,"
				  "\"name\":\"Daily ETL (v2)\",\"queue\":\"etl\","
				  "\"conf\":{\"spark.a\":\"x\",\"spark.b\":8,\"spark.c\":true}}",
				  0, NULL);
	json_t *out = NULL, *errors = NULL, *want;
	char detail[256];

	ck_assert_int_eq(compat_livy_submission(body, &cs, &out, &errors, detail), BODY_OK);
	want = json_loads("{\"name\":\"daily-etl-v2\",\"labels\":{\"team\":\"data\"},\"spec\":{"
			  "\"type\":\"Python\",\"sparkVersion\":\"3.5\",\"mainApplicationFile\":\"s3a://b/pi.py\","
			  "\"proxyUser\":\"alice\",\"arguments\":[\"10\"],"
			  "\"deps\":{\"jars\":[\"a.jar\"],\"pyFiles\":[\"u.py\"],\"files\":[\"f.txt\"],\"archives\":[\"env.tgz\"]},"
			  "\"driver\":{\"memory\":\"2g\",\"cores\":2},"
			  "\"executor\":{\"memory\":\"4g\",\"cores\":3,\"instances\":5},"
			  "\"sparkConf\":{\"spark.a\":\"x\",\"spark.b\":\"8\",\"spark.c\":\"true\"}}}",
			  0, NULL);
	ck_assert_msg(json_equal(out, want), "%s", json_dumps(out, JSON_SORT_KEYS));
	json_decref(want);
	json_decref(out);
	json_decref(body);

	/* A JAR is Scala's (its class is then required), R files are R's. */
	body = json_pack("{s:s, s:s}", "file", "x.jar", "className", "a.B");
	ck_assert_int_eq(compat_livy_submission(body, &cs, &out, &errors, detail), BODY_OK);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(out, "spec"), "type")), "Scala");
	ck_assert_str_eq(json_string_value(json_object_get(out, "name")), "livy-batch");
	ck_assert_int_eq(json_object_size(json_object_get(out, "labels")), 0);
	json_decref(out);
	json_decref(body);

	body = json_pack("{s:s, s:s, s:i}", "queue", "nope", "heartbeatTimeoutInSecond", "x", "ttl", 3);
	ck_assert_int_eq(compat_livy_submission(body, &cs, &out, &errors, detail), BODY_INVALID);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(json_array_size(errors), 4); /* two unknown fields, the queue, no file */
	json_decref(errors);
	json_decref(body);
	json_decref(queues);
}
END_TEST

START_TEST(test_bpg_request_translation)
{
	struct compat_settings cs = {"3.5", NULL};
	json_t *body = json_loads("{\"applicationName\":\"Nightly\",\"sparkVersion\":\"3.4\",\"mainClass\":\"a.B\","
				  "\"mainApplicationFile\":\"s3a://b/app.jar\",\"arguments\":[\"1\"],"
				  "\"sparkConf\":{\"k\":\"v\"},\"driver\":{\"cores\":1,\"memory\":\"1g\"},"
				  "\"executor\":{\"instances\":2,\"cores\":1,\"memory\":\"2g\"},\"spotInstance\":true,"
				  "\"overheadFactor\":0.2,\"imagePullPolicy\":\"Always\"}",
				  0, NULL);
	json_t *out = NULL, *errors = NULL, *spec;
	char detail[256];

	ck_assert_int_eq(compat_bpg_submission(body, &cs, &out, &errors, detail), BODY_OK);
	spec = json_object_get(out, "spec");
	ck_assert_str_eq(json_string_value(json_object_get(out, "name")), "nightly");
	ck_assert_str_eq(json_string_value(json_object_get(spec, "type")), "Java"); /* BPG's guess for a class */
	ck_assert_str_eq(json_string_value(json_object_get(spec, "sparkVersion")), "3.4");
	ck_assert_str_eq(json_string_value(json_object_get(spec, "memoryOverheadFactor")), "0.2");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(spec, "executor"), "instances")), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(out, "labels"), "spot-instance")), "true");
	json_decref(out);
	json_decref(body);

	body = json_pack("{s:[], s:s, s:s}", "volumes", "clusterId", "c1", "mainApplicationFile", "a.py");
	ck_assert_int_eq(compat_bpg_submission(body, &cs, &out, &errors, detail), BODY_INVALID);
	ck_assert_int_eq(json_array_size(errors), 2);
	json_decref(errors);
	json_decref(body);
}
END_TEST

START_TEST(test_error_fields_in_client_names)
{
	json_t *e = json_pack("[{s:s}, {s:s}, {s:s}, {s:s}]", "field", "spec.driver.memory", "field",
			      "spec.deps.jars[2]", "field", "labels[priority]", "field", "name");

	compat_livy_fields(e);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(e, 0), "field")), "driverMemory");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(e, 1), "field")), "jars[2]");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(e, 2), "field")), "queue");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(e, 3), "field")), "name");
	json_decref(e);
	e = json_pack("[{s:s}, {s:s}]", "field", "spec.driver.memory", "field", "name");
	compat_bpg_fields(e);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(e, 0), "field")), "driver.memory");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(e, 1), "field")), "applicationName");
	json_decref(e);
}
END_TEST

/* Every state has a word in each vocabulary; the ends are the clients'. */
START_TEST(test_state_vocabularies)
{
	static const char *const livy_states[] = {"not_started", "starting", "running", "success", "dead",
						  "killed", "shutting_down"};
	static const char *const bpg_states[] = {"SUBMITTED", "RUNNING", "COMPLETED", "FAILED", "SUBMISSION_FAILED",
						 "FAILING"};

	for (int st = 0; st < STORE_NSTATES; st++) {
		bool livy = false, bpg = false;

		for (size_t i = 0; i < sizeof(livy_states) / sizeof(*livy_states); i++)
			livy = livy || !strcmp(compat_livy_state((enum store_state)st), livy_states[i]);
		for (size_t i = 0; i < sizeof(bpg_states) / sizeof(*bpg_states); i++)
			bpg = bpg || !strcmp(compat_bpg_state((enum store_state)st), bpg_states[i]);
		ck_assert_msg(livy && bpg, "state %s", store_state_name((enum store_state)st));
	}
	ck_assert_str_eq(compat_livy_state(STORE_SUCCEEDED), "success");
	ck_assert_str_eq(compat_livy_state(STORE_FAILED), "dead");
	ck_assert_str_eq(compat_livy_state(STORE_CANCELLED), "killed");
	ck_assert_str_eq(compat_bpg_state(STORE_SUCCEEDED), "COMPLETED");
	ck_assert_str_eq(compat_bpg_state(STORE_REJECTED), "SUBMISSION_FAILED");
}
END_TEST

/* What describe and -o yaml print reads back as the same document. */
START_TEST(test_yaml_dump_round_trip)
{
	json_t *doc = json_loads("{\"s\":\"plain\",\"looks\":[\"true\",\"8\",\"1.5\",\"null\",\"\",\"a: b\",\"- x\"],"
				 "\"n\":8,\"f\":1.25,\"b\":false,\"z\":null,\"nested\":{\"k\":[{\"x\":\"y\"}],"
				 "\"multi\":\"line one\\nline two\"},\"e\":{},\"a\":[]}",
				 0, NULL);
	json_t *back = NULL;
	char *text = NULL, err[256];

	/* Found by fuzz_compat: a whole real, and a string holding a NUL. */
	json_object_set_new(doc, "whole", json_real(2.0));
	json_object_set_new(doc, "nul", json_stringn("a\0b", 3));
	ck_assert_int_eq(gw_yaml_dump(doc, &text, err), GW_OK);
	ck_assert_int_eq(gw_yaml_load_string(text, strlen(text), &back, NULL, err), GW_OK);
	ck_assert_msg(json_equal(doc, back), "%s", text);
	ck_assert_ptr_nonnull(strstr(text, "s: plain\n")); /* plain where it reads back the same */
	free(text);
	json_decref(back);
	json_decref(doc);
}
END_TEST

/* ---- Livy ---- */

/* The requests of Livy's REST API documentation: POST /batches with its
 * fields, then GET /batches, /batches/{id}, /state and /log. */
START_TEST(test_livy_batch_lifecycle)
{
	struct tu_response r;
	json_t *batch, *job;
	char path[200];
	long long id;

	r = call("POST", "/livy/batches", "application/json",
		 "{\"file\":\"local:///opt/spark/examples/jars/spark-examples.jar\","
		 "\"className\":\"org.apache.spark.examples.SparkPi\",\"args\":[\"100\"],"
		 "\"driverMemory\":\"1g\",\"driverCores\":1,\"executorMemory\":\"1g\",\"executorCores\":1,"
		 "\"numExecutors\":2,\"name\":\"SparkPi\",\"queue\":\"etl\","
		 "\"conf\":{\"spark.kubesim.durationSeconds\":\"1\"}}");
	ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
	ck_assert_schema("LivyBatch", r.json);
	ck_assert(json_is_integer(json_object_get(r.json, "id")));
	id = (long long)json_integer_value(json_object_get(r.json, "id"));
	snprintf(path, sizeof(path), "/livy/batches/%lld", id);
	ck_assert_str_eq(r.location, path);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "name")), "sparkpi");
	ck_assert(json_is_object(json_object_get(r.json, "appInfo")));
	ck_assert(json_is_array(json_object_get(r.json, "log")));
	ck_assert_ptr_nonnull(json_object_get(r.json, "appId")); /* null until it runs, as Livy's */
	tu_response_release(&r);

	batch = poll_until(path, "state", "success", 30);
	ck_assert_schema("LivyBatch", batch);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(batch, "appId")), "j"));
	ck_assert(json_is_string(json_object_get(json_object_get(batch, "appInfo"), "driverLogUrl")));
	ck_assert_str_eq(json_string_value(json_object_get(batch, "owner")), "anonymous");
	/* It is an ordinary job: queue etl gave it team data's labels. */
	snprintf(path, sizeof(path), "%s/api/v1/jobs/%s", gw.base, json_string_value(json_object_get(batch, "appId")));
	job = tu_get_json(path);
	ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "SUCCEEDED");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(job, "labels"), "team")), "data");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(job, "labels"), "priority")), "high");
	json_decref(job);
	json_decref(batch);

	snprintf(path, sizeof(path), "/livy/batches/%lld/state", id);
	r = call("GET", path, NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "id")), id);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "state")), "success");
	tu_response_release(&r);

	/* The driver's log, paged as Livy pages it. */
	snprintf(path, sizeof(path), "/livy/batches/%lld/log?from=1&size=2", id);
	r = call("GET", path, NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "from")), 1);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "log")), 2);
	ck_assert_int_ge(json_integer_value(json_object_get(r.json, "total")), 5);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_array_get(json_object_get(r.json, "log"), 0)), "INFO"));
	tu_response_release(&r);
	snprintf(path, sizeof(path), "/livy/batches/%lld/log?size=1", id); /* the last line */
	r = call("GET", path, NULL, NULL);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_array_get(json_object_get(r.json, "log"), 0)),
				     "Successfully stopped SparkContext"));
	tu_response_release(&r);
}
END_TEST

/* GET /batches pages by position, oldest first; total counts them all. */
START_TEST(test_livy_list_pages)
{
	struct tu_response r;
	long long ids[3];
	json_t *sessions;
	int64_t total;

	for (int i = 0; i < 3; i++) {
		r = call("POST", "/livy/batches", "application/json", "{\"file\":\"local:///p.py\"}");
		ck_assert_int_eq(r.status, 201);
		ids[i] = (long long)json_integer_value(json_object_get(r.json, "id"));
		tu_response_release(&r);
	}
	r = call("GET", "/livy/batches", NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_schema("LivyBatchList", r.json);
	total = json_integer_value(json_object_get(r.json, "total"));
	ck_assert_int_ge(total, 3);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "from")), 0);
	ck_assert_int_eq((int64_t)json_array_size(json_object_get(r.json, "sessions")), total);
	tu_response_release(&r);

	{
		char path[100];

		snprintf(path, sizeof(path), "/livy/batches?from=%lld&size=2", (long long)total - 3);
		r = call("GET", path, NULL, NULL);
	}
	sessions = json_object_get(r.json, "sessions");
	ck_assert_int_eq(json_array_size(sessions), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(sessions, 0), "id")), ids[0]);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(sessions, 1), "id")), ids[1]);
	tu_response_release(&r);
}
END_TEST

START_TEST(test_livy_failure_and_delete)
{
	struct tu_response r;
	json_t *batch;
	char path[100];

	r = call("POST", "/livy/batches", "application/json",
		 "{\"file\":\"local:///fail.py\",\"conf\":{\"spark.kubesim.durationSeconds\":\"1\","
		 "\"spark.kubesim.exitCode\":\"2\"}}");
	ck_assert_int_eq(r.status, 201);
	snprintf(path, sizeof(path), "/livy/batches/%lld", (long long)json_integer_value(json_object_get(r.json, "id")));
	tu_response_release(&r);
	json_decref(poll_until(path, "state", "dead", 30));

	r = call("POST", "/livy/batches", "application/json",
		 "{\"file\":\"local:///long.py\",\"conf\":{\"spark.kubesim.durationSeconds\":\"120\"}}");
	ck_assert_int_eq(r.status, 201);
	snprintf(path, sizeof(path), "/livy/batches/%lld", (long long)json_integer_value(json_object_get(r.json, "id")));
	tu_response_release(&r);
	json_decref(poll_until(path, "state", "running", 30));
	r = call("DELETE", path, NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "msg")), "deleted");
	tu_response_release(&r);
	batch = poll_until(path, "state", "killed", 30);
	json_decref(batch);
	/* Deleting it again is no error, as in Livy. */
	ck_assert_int_eq(status_of("DELETE", path, NULL, NULL), 200);
}
END_TEST

/* Refusals carry Livy's "msg" and name Livy's fields. */
START_TEST(test_livy_refusals)
{
	struct tu_response r;

	r = call("POST", "/livy/batches", "application/json", "{\"file\":");
	ck_assert_int_eq(r.status, 400);
	ck_assert(json_is_string(json_object_get(r.json, "msg")));
	ck_assert_str_eq(r.content_type, "application/problem+json");
	tu_response_release(&r);

	r = call("POST", "/livy/batches", "application/json",
		 "{\"file\":\"a.jar\",\"className\":\"a.B\",\"driverMemory\":\"lots\",\"numExecutors\":-1}");
	ck_assert_int_eq(r.status, 422);
	ck_assert_schema("Problem", r.json);
	ck_assert_str_eq(field_of_error(r.json, 0), "driverMemory");
	ck_assert_str_eq(field_of_error(r.json, 1), "numExecutors");
	tu_response_release(&r);

	r = call("POST", "/livy/batches", "application/json", "{\"file\":\"a.py\",\"queue\":\"nope\",\"kind\":\"spark\"}");
	ck_assert_int_eq(r.status, 422);
	ck_assert_str_eq(field_of_error(r.json, 0), "kind");
	ck_assert_str_eq(field_of_error(r.json, 1), "queue");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "errors"), 1),
								       "message")), "etl"));
	tu_response_release(&r);

	r = call("GET", "/livy/batches/987654", NULL, NULL);
	ck_assert_int_eq(r.status, 404);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "msg")), "Session '987654' not found.");
	tu_response_release(&r);
	ck_assert_int_eq(status_of("GET", "/livy/batches/x1/state", NULL, NULL), 404);
	ck_assert_int_eq(status_of("GET", "/livy/batches?size=0", NULL, NULL), 400);
	ck_assert_int_eq(status_of("PUT", "/livy/batches", NULL, NULL), 405);
	/* Livy's interactive sessions are not served. */
	ck_assert_int_eq(status_of("POST", "/livy/sessions", "application/json", "{\"kind\":\"pyspark\"}"), 404);
}
END_TEST

/* The published client (npm livy-client) runs a batch to success, kills
 * another and lists both (tests/livy/livy_client.test.js). */
START_TEST(test_livy_npm_client)
{
	char cmd[1200], log[700], line[512];
	int rc;
	FILE *f;

	snprintf(log, sizeof(log), "%s/livy-client.log", dir);
	snprintf(cmd, sizeof(cmd), "timeout 120 node tests/livy/livy_client.test.js %s /livy > %s 2>&1", gw.base, log);
	rc = system(cmd);
	if (rc != 0 && (f = fopen(log, "r"))) {
		while (fgets(line, sizeof(line), f))
			fprintf(stderr, "livy-client: %s", line);
		fclose(f);
	}
	ck_assert_msg(rc == 0, "node tests/livy/livy_client.test.js exited %d", rc);
}
END_TEST

/* ---- BPG ---- */

START_TEST(test_bpg_submission_lifecycle)
{
	static const char yaml[] = "applicationName: Nightly Report\n"
				   "sparkVersion: \"3.5\"\n"
				   "mainApplicationFile: s3a://jobs/report.py\n"
				   "arguments: [--day, \"2026-11-26\"]\n"
				   "queue: etl\n"
				   "sparkConf:\n"
				   "  spark.kubesim.durationSeconds: \"1\"\n"
				   "  spark.hadoop.fs.s3a.secret.key: hunter2-not-for-eyes\n"
				   "driver: {cores: 1, memory: 1g}\n"
				   "executor: {instances: 1, cores: 1, memory: 1g}\n";
	struct tu_response r;
	char path[200], id[64];
	json_t *status;

	r = call("POST", "/skatev2/spark", "text/yaml", yaml);
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r.json, "submissionId")));
	tu_response_release(&r);

	snprintf(path, sizeof(path), "/skatev2/spark/%s/status", id);
	status = poll_until(path, "applicationState", "COMPLETED", 30);
	ck_assert_schema("BpgStatus", status);
	ck_assert(json_is_integer(json_object_get(status, "creationTime")));
	ck_assert(json_is_integer(json_object_get(status, "terminationTime")));
	ck_assert(json_is_integer(json_object_get(status, "duration")));
	ck_assert_int_eq(json_integer_value(json_object_get(status, "executionAttempts")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(status, "sparkApplicationId")), id);
	json_decref(status);

	snprintf(path, sizeof(path), "/skatev2/spark/%s/driver", id);
	r = call("GET", path, NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(r.json, "podName")), id));
	ck_assert(json_is_integer(json_object_get(r.json, "startTime")));
	tu_response_release(&r);

	snprintf(path, sizeof(path), "/skatev2/spark/%s/describe", id);
	r = call("GET", path, NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "--- Spark Spec ---\n"));
	ck_assert_ptr_nonnull(strstr(r.body, "mainApplicationFile: s3a://jobs/report.py"));
	ck_assert_ptr_nonnull(strstr(r.body, "--- Spark Application Events ---\n"));
	ck_assert_ptr_nonnull(strstr(r.body, "DriverRunning"));
	ck_assert_ptr_null(strstr(r.body, "hunter2"));
	tu_response_release(&r);

	snprintf(path, sizeof(path), "/skatev2/log?subId=%s", id);
	r = call("GET", path, NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "Successfully stopped SparkContext"));
	tu_response_release(&r);
	snprintf(path, sizeof(path), "/skatev2/log?appId=%s&execId=1", id);
	ck_assert_int_eq(status_of("GET", path, NULL, NULL), 400);
}
END_TEST

START_TEST(test_bpg_json_delete_and_refusals)
{
	struct tu_response r;
	char path[200], id[64];
	json_t *status;

	r = call("POST", "/skatev2/spark", "application/json",
		 "{\"mainApplicationFile\":\"s3a://jobs/long.py\",\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"120\"}}");
	ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r.json, "submissionId")));
	tu_response_release(&r);
	snprintf(path, sizeof(path), "/skatev2/spark/%s/status", id);
	json_decref(poll_until(path, "applicationState", "RUNNING", 30));
	snprintf(path, sizeof(path), "/skatev2/spark/%s", id);
	r = call("DELETE", path, NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert(json_is_object(r.json));
	tu_response_release(&r);
	snprintf(path, sizeof(path), "/skatev2/spark/%s/status", id);
	status = poll_until(path, "applicationState", "FAILED", 30);
	ck_assert_schema("BpgStatus", status);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(status, "applicationErrorMessage")),
				     "cancelled: "));
	json_decref(status);

	r = call("POST", "/skatev2/spark", "application/json",
		 "{\"mainApplicationFile\":\"a.py\",\"volumes\":[],\"driver\":{\"memory\":\"lots\"}}");
	ck_assert_int_eq(r.status, 422);
	ck_assert_str_eq(field_of_error(r.json, 0), "volumes");
	tu_response_release(&r);
	r = call("POST", "/skatev2/spark", "application/json", "{\"mainApplicationFile\":\"a.py\",\"driver\":{\"memory\":\"lots\"}}");
	ck_assert_int_eq(r.status, 422);
	ck_assert_str_eq(field_of_error(r.json, 0), "driver.memory");
	tu_response_release(&r);
	ck_assert_int_eq(status_of("POST", "/skatev2/spark", "text/yaml", "applicationName: [unclosed\n"), 400);
	ck_assert_int_eq(status_of("GET", "/skatev2/spark/j0000000000000000000x/status", NULL, NULL), 404);
	ck_assert_int_eq(status_of("GET", "/skatev2/log", NULL, NULL), 400);
}
END_TEST

/* ---- with tokens ---- */

/* A token made with `sparkgw token create ARGS`. */
static char *new_token(const char *data, const char *args)
{
	char create[300];
	int status;
	char *t;

	snprintf(create, sizeof(create), "create %s", args);
	t = tu_token_cli(data, create, &status);
	ck_assert_msg(status == 0, "token %s: %s", create, t);
	return t;
}

static struct tu_response call_as(const struct tu_gateway *g, const char *token, const char *method, const char *path,
				  const char *body)
{
	char url[600], auth[200];
	const char *headers[] = {"Content-Type: application/json", auth, NULL};
	struct tu_response r;

	snprintf(url, sizeof(url), "%s%s", g->base, path);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	ck_assert_int_eq(tu_http(method, url, headers, body, body ? strlen(body) : 0, &r), 0);
	return r;
}

/* The facades serve each token its own teams' jobs, as the native API
 * does; the command line takes its token from a flag or the environment. */
START_TEST(test_tokens_scope_the_facades_and_cli)
{
	struct tu_gateway g;
	char *tdir = tu_tmpdir("compat-auth"), *ads, *search, path[200], id[64], env_token[120], env_url[100];
	struct tu_response r;
	struct tu_cli_run run;
	long long batch;

	ck_assert_ptr_nonnull(tdir);
	dir = tdir;
	ads = new_token(tdir, "--team ads --role submitter --owner alice");
	search = new_token(tdir, "--team search --role submitter --owner bob");
	ck_assert_int_eq(tu_gateway_start(&g, tdir, "--set", "auth.mode=token", NULL), 0);

	r = call_as(&g, ads, "POST", "/livy/batches", "{\"file\":\"a.py\"}");
	ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
	batch = (long long)json_integer_value(json_object_get(r.json, "id"));
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "owner")), "alice");
	tu_response_release(&r);
	snprintf(path, sizeof(path), "/livy/batches/%lld", batch);
	r = call_as(&g, search, "GET", path, NULL);
	ck_assert_int_eq(r.status, 404);
	tu_response_release(&r);
	r = call_as(&g, search, "GET", "/livy/batches", NULL);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "total")), 0);
	tu_response_release(&r);
	r = call_as(&g, ads, "GET", "/livy/batches", NULL);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "total")), 1);
	tu_response_release(&r);
	r = call_as(&g, search, "DELETE", path, NULL);
	ck_assert_int_eq(r.status, 404);
	tu_response_release(&r);

	r = call_as(&g, search, "POST", "/skatev2/spark", "{\"mainApplicationFile\":\"a.py\"}");
	ck_assert_int_eq(r.status, 200);
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r.json, "submissionId")));
	tu_response_release(&r);
	snprintf(path, sizeof(path), "/skatev2/spark/%s/status", id);
	r = call_as(&g, ads, "GET", path, NULL);
	ck_assert_int_eq(r.status, 404);
	tu_response_release(&r);
	r = call_as(&g, "sgw_not-a-token", "GET", path, NULL);
	ck_assert_int_eq(r.status, 401);
	tu_response_release(&r);

	/* The command line: refused without a token, served with one. */
	tu_cli(&run, dir, NULL, "get", id, "-s", g.base, NULL);
	ck_assert_int_eq(run.status, 1);
	ck_assert_ptr_nonnull(strstr(run.err, "401"));
	tu_cli(&run, dir, NULL, "get", id, "-s", g.base, "--token", search, NULL);
	ck_assert_msg(run.status == 0, "%s", run.err);
	snprintf(env_token, sizeof(env_token), "SPARKGW_TOKEN=%s", search);
	snprintf(env_url, sizeof(env_url), "SPARKGW_URL=%s", g.base);
	{
		const char *env[] = {env_token, env_url, NULL};

		tu_cli(&run, dir, env, "list", NULL);
		ck_assert_int_eq(run.status, 0);
		ck_assert_ptr_nonnull(strstr(run.out, id));
	}
	ck_assert_int_eq(tu_gateway_signal(&g, SIGTERM), 0);
	free(ads);
	free(search);
	tu_rmtree(tdir);
	free(tdir);
	dir = NULL;
}
END_TEST

/* compat.livy_prefix moves the Livy API (or turns it off); metrics name
 * its routes the same wherever it is. GET /batches lists a day's jobs. */
START_TEST(test_livy_prefix_setting)
{
	char *tdir = tu_tmpdir("compat-prefix"), url[200], err[512];
	struct tu_gateway g;
	struct tu_response r;
	const char *json[] = {"Content-Type: application/json", NULL};
	bool counted = false;

	ck_assert_ptr_nonnull(tdir);
	ck_assert_int_eq(tu_gateway_start(&g, tdir, "--set", "compat.livy_prefix=/api/livy", NULL), 0);
	snprintf(url, sizeof(url), "%s/api/livy/batches", g.base);
	ck_assert_int_eq(tu_http("POST", url, json, "{\"file\":\"a.py\"}", strlen("{\"file\":\"a.py\"}"), &r), 0);
	ck_assert_int_eq(r.status, 201);
	ck_assert_str_eq(r.location, "/api/livy/batches/1");
	tu_response_release(&r);
	snprintf(url, sizeof(url), "%s/livy/batches", g.base);
	ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 404);
	tu_response_release(&r);
	/* A request is counted once its answer is sent: the count may come
	 * a moment after the client has the answer. */
	snprintf(url, sizeof(url), "%s/metrics", g.base);
	for (int i = 0; i < 50 && !counted; i++) {
		ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), 0);
		counted = strstr(r.body, "route=\"/livy/batches\",method=\"POST\",code=\"201\"") != NULL;
		tu_response_release(&r);
		if (!counted)
			usleep(20000);
	}
	ck_assert(counted);
	ck_assert_int_eq(tu_gateway_signal(&g, SIGTERM), 0);

	/* Submitted two days ago: past compat.livy_list_seconds (a day), out
	 * of the list, still there by its id. */
	{
		ck_assert_int_gt(tu_store_sql(tdir, "UPDATE jobs SET created_ms = created_ms - 2 * 86400000"), 0);
	}
	ck_assert_int_eq(tu_gateway_start(&g, tdir, "--set", "compat.livy_prefix=/api/livy", NULL), 0);
	snprintf(url, sizeof(url), "%s/api/livy/batches", g.base);
	ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(r.json, "total")), 0);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "sessions")), 0);
	tu_response_release(&r);
	snprintf(url, sizeof(url), "%s/api/livy/batches/1", g.base);
	ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 200);
	tu_response_release(&r);
	ck_assert_int_eq(tu_gateway_signal(&g, SIGTERM), 0);

	ck_assert_int_eq(tu_gateway_start(&g, tdir, "--set", "compat.livy_prefix=off", NULL), 0);
	snprintf(url, sizeof(url), "%s/livy/batches/1", g.base);
	ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 404);
	tu_response_release(&r);
	ck_assert_int_eq(tu_gateway_signal(&g, SIGTERM), 0);

	ck_assert_int_eq(tu_run_gateway(err, sizeof(err), "--set", "compat.livy_prefix=livy/", NULL), 2);
	ck_assert_ptr_nonnull(strstr(err, "compat.livy_prefix"));
	tu_rmtree(tdir);
	free(tdir);
}
END_TEST

Suite *compat_suite(void)
{
	Suite *s = suite_create("compat");
	TCase *unit = tcase_create("translation");
	TCase *livy = tcase_create("livy");
	TCase *bpg = tcase_create("bpg");
	TCase *tokens = tcase_create("settings");

	tcase_add_test(unit, test_livy_request_translation);
	tcase_add_test(unit, test_bpg_request_translation);
	tcase_add_test(unit, test_error_fields_in_client_names);
	tcase_add_test(unit, test_state_vocabularies);
	tcase_add_test(unit, test_yaml_dump_round_trip);
	suite_add_tcase(s, unit);

	tcase_add_unchecked_fixture(livy, start_fleet, stop_fleet);
	tcase_set_timeout(livy, 180);
	tcase_add_test(livy, test_livy_batch_lifecycle);
	tcase_add_test(livy, test_livy_list_pages);
	tcase_add_test(livy, test_livy_failure_and_delete);
	tcase_add_test(livy, test_livy_refusals);
	tcase_add_test(livy, test_livy_npm_client);
	suite_add_tcase(s, livy);

	tcase_add_unchecked_fixture(bpg, start_fleet, stop_fleet);
	tcase_set_timeout(bpg, 120);
	tcase_add_test(bpg, test_bpg_submission_lifecycle);
	tcase_add_test(bpg, test_bpg_json_delete_and_refusals);
	suite_add_tcase(s, bpg);


	tcase_add_test(tokens, test_tokens_scope_the_facades_and_cli);
	tcase_add_test(tokens, test_livy_prefix_setting);
	suite_add_tcase(s, tokens);
	return s;
}
