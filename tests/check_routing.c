/* Routing end to end: the gateway with two kubesim clusters and a policy.
 * Weights over many jobs, cordon and uncordon (kept across restarts),
 * health, a full namespace sending jobs to the next, GPU jobs on GPU
 * roles, dry runs, and reloads under load. */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testutil.h"

static char *dir;
static struct tu_kubesim sims[2];
static struct tu_gateway gw;
static char config[700];

#define POLICY                                                                                     \
	"pools:\n"                                                                                 \
	"  - name: batch\n    clusters: [{name: a, weight: %d}, {name: b, weight: 1}]\n"            \
	"    defaults: {spark.eventLog.enabled: 'true'}\n"                                          \
	"namespaceGroups:\n"                                                                      \
	"  - name: small\n    selector: team=small\n"                                              \
	"    namespaces: [{name: ns-one, maxPods: 2}, {name: ns-two, maxPods: 2}]\n"                \
	"  - name: all\n    namespaces: [spark-jobs]\n"                                             \
	"dispatch: {probe_seconds: 1, image_pull_timeout_seconds: 5}\n"

static void write_config(int weight_a)
{
	static const char *const modes[] = {"driver-pod", "driver-pod"};
	char extra[1024];

	snprintf(extra, sizeof(extra), POLICY, weight_a);
	tu_write_cluster_config(dir, sims, modes, 2, extra, config, sizeof(config));
}

/* Cluster b's nodes: CPU ones and a GPU one, told apart by a label. */
#define B_NODES "--node-pool", "cpu,count=3,cpu=16,memory=64Gi,label=accel=none", "--node-pool", \
		"gpu,count=1,cpu=16,memory=64Gi,gpus=4,label=accel=gpu"

static void setup(void)
{
	memset(sims, 0, sizeof(sims));
	dir = tu_tmpdir("routing");
	ck_assert_ptr_nonnull(dir);
	ck_assert_int_eq(tu_kubesim_start(&sims[0], dir, "a", "--namespace", "ns-one", "--namespace",
					  "ns-two", NULL), 0);
	ck_assert_int_eq(tu_kubesim_start(&sims[1], dir, "b", "--namespace", "ns-one", "--namespace",
					  "ns-two", B_NODES, NULL), 0);
	write_config(3);
	ck_assert_msg(tu_gateway_start(&gw, dir, "--config", config, NULL) == 0, "gateway did not start");
}

static void teardown(void)
{
	tu_gateway_signal(&gw, SIGTERM);
	tu_kubesim_stop(&sims[0]);
	tu_kubesim_stop(&sims[1]);
	tu_rmtree(dir);
	free(dir);
}

static char *submit_as(const char *team, const char *extra_labels, int seconds, int instances)
{
	char body[1024];

	snprintf(body, sizeof(body),
		 "{\"name\":\"routed\",\"labels\":{\"team\":\"%s\"%s},\"spec\":{\"type\":\"Python\","
		 "\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"local:///a.py\","
		 "\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"%d\"},"
		 "\"executor\":{\"instances\":%d,\"cores\":1,\"memory\":\"1g\"}}}",
		 team, extra_labels ? extra_labels : "", seconds, instances);
	return tu_submit(gw.base, body);
}

/* The job once placed (whatever state it has reached by then). */
static json_t *placed(const char *id)
{
	char url[256];

	snprintf(url, sizeof(url), "%s/api/v1/jobs/%s", gw.base, id);
	for (int i = 0; i < 400; i++) {
		json_t *job = tu_get_json(url);

		if (json_is_object(json_object_get(job, "placement")))
			return job;
		json_decref(job);
		usleep(25000);
	}
	ck_abort_msg("job %s was never placed", id);
	return NULL;
}

static const char *cluster_of(json_t *job)
{
	return json_string_value(json_object_get(json_object_get(job, "placement"), "cluster"));
}

static struct tu_response post(const char *path, const char *body)
{
	static const char *const json[] = {"Content-Type: application/json", NULL};
	struct tu_response r;
	char url[300];

	snprintf(url, sizeof(url), "%s%s", gw.base, path);
	ck_assert_int_eq(tu_http(body && *body == '{' && strstr(path, "clusters/") && !strstr(path, "/cordon") &&
				 !strstr(path, "/uncordon") && !strstr(path, "/drain") ? "PATCH" : "POST",
				 url, json, body, body ? strlen(body) : 0, &r), 0);
	return r;
}

START_TEST(test_weights_over_many_jobs)
{
	int on_a = 0, n = 60;

	for (int i = 0; i < n; i++) {
		char *id = submit_as("t", NULL, 1, 1);
		json_t *job = placed(id);

		on_a += !strcmp(cluster_of(job), "a");
		ck_assert_str_eq(json_string_value(json_object_get(json_object_get(job, "placement"), "pool")), "batch");
		json_decref(job);
		free(id);
	}
	/* 3:1 of 60 is 45; a binomial's sd is 3.4: 12 is over 3.5 sd. */
	ck_assert_msg(abs(on_a - 45) <= 12, "a got %d of %d", on_a, n);
}
END_TEST

START_TEST(test_cordon_drain_uncordon)
{
	struct tu_response r;
	char *running = NULL;
	json_t *job, *cl;
	char url[256];

	/* A job already running on b finishes although b is cordoned. */
	for (int i = 0; i < 40 && !running; i++) {
		char *id = submit_as("t", NULL, 2, 1);

		job = placed(id);
		if (!strcmp(cluster_of(job), "b"))
			running = id;
		else
			free(id);
		json_decref(job);
	}
	ck_assert_ptr_nonnull(running);
	r = post("/api/v1/clusters/b/cordon", NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_schema("Cluster", r.json);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "rotation")), "cordoned");
	tu_response_release(&r);
	for (int i = 0; i < 12; i++) {
		char *id = submit_as("t", NULL, 1, 1);

		job = placed(id);
		ck_assert_str_eq(cluster_of(job), "a");
		json_decref(job);
		free(id);
	}
	job = tu_wait_job(gw.base, running, NULL, 20000);
	ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "SUCCEEDED");
	json_decref(job);
	free(running);

	/* Kept across a restart. */
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", config, NULL), 0);
	snprintf(url, sizeof(url), "%s/api/v1/clusters/b", gw.base);
	cl = tu_get_json(url);
	ck_assert_str_eq(json_string_value(json_object_get(cl, "rotation")), "cordoned");
	json_decref(cl);

	r = post("/api/v1/clusters/a/drain", NULL);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "rotation")), "draining");
	tu_response_release(&r);
	/* Nothing usable: a job waits in the queue rather than fail. */
	{
		char *id = submit_as("t", NULL, 1, 1);

		usleep(1500000);
		job = tu_wait_job(gw.base, id, "QUEUED", 1000);
		ck_assert_ptr_nonnull(job);
		json_decref(job);
		r = post("/api/v1/clusters/b/uncordon", NULL);
		ck_assert_str_eq(json_string_value(json_object_get(r.json, "rotation")), "active");
		tu_response_release(&r);
		job = placed(id);
		ck_assert_str_eq(cluster_of(job), "b");
		json_decref(job);
		free(id);
	}
	/* a has drained once its jobs are done. */
	for (int i = 0; i < 100; i++) {
		snprintf(url, sizeof(url), "%s/api/v1/clusters/a", gw.base);
		cl = tu_get_json(url);
		if (json_is_true(json_object_get(cl, "drained"))) {
			json_decref(cl);
			break;
		}
		ck_assert_msg(i < 99, "a never drained");
		json_decref(cl);
		usleep(200000);
	}
	r = post("/api/v1/clusters/a", "{\"weight\":0,\"colour\":1}");
	ck_assert_int_eq(r.status, 422);
	tu_response_release(&r);
	r = post("/api/v1/clusters/nope/cordon", NULL);
	ck_assert_int_eq(r.status, 404);
	tu_response_release(&r);
}
END_TEST

START_TEST(test_unhealthy_cluster_leaves_and_returns)
{
	char url[256];
	json_t *cl = NULL;

	tu_kubesim_stop(&sims[1]);
	snprintf(url, sizeof(url), "%s/api/v1/clusters/b", gw.base);
	for (int i = 0; i < 100; i++) {
		json_decref(cl);
		cl = tu_get_json(url);
		if (json_is_false(json_object_get(cl, "healthy")))
			break;
		usleep(100000);
	}
	ck_assert(json_is_false(json_object_get(cl, "healthy")));
	json_decref(cl);
	cl = NULL;
	for (int i = 0; i < 10; i++) {
		char *id = submit_as("t", NULL, 1, 1);
		json_t *job = placed(id);

		ck_assert_str_eq(cluster_of(job), "a");
		json_decref(job);
		free(id);
	}
	sims[1].keep_port = true;
	ck_assert_int_eq(tu_kubesim_start(&sims[1], dir, "b", "--namespace", "ns-one", "--namespace", "ns-two",
					  B_NODES, NULL), 0);
	for (int i = 0; i < 100; i++) {
		json_decref(cl);
		cl = tu_get_json(url);
		if (json_is_true(json_object_get(cl, "healthy")))
			break;
		usleep(100000);
	}
	ck_assert(json_is_true(json_object_get(cl, "healthy")));
	json_decref(cl);
}
END_TEST

START_TEST(test_full_namespace_sends_jobs_to_the_next)
{
	/* ns-one and ns-two hold 2 pods each on both clusters; a job is a
	 * driver and one executor, so four jobs fill every slot, each in its
	 * own, and the fifth waits for room. */
	char *ids[5], seen[4][64];
	json_t *job;

	for (int i = 0; i < 4; i++) {
		ids[i] = submit_as("small", NULL, 3, 1);
		job = placed(ids[i]);
		snprintf(seen[i], sizeof(seen[i]), "%s/%s", cluster_of(job),
			 json_string_value(json_object_get(json_object_get(job, "placement"), "namespace")));
		for (int j = 0; j < i; j++)
			ck_assert_str_ne(seen[i], seen[j]);
		json_decref(job);
	}
	ids[4] = submit_as("small", NULL, 1, 1);
	usleep(1000000);
	job = tu_wait_job(gw.base, ids[4], "QUEUED", 200);
	ck_assert_msg(job != NULL, "the fifth job should wait for room");
	json_decref(job);
	job = tu_wait_job(gw.base, ids[4], "SUCCEEDED", 20000);
	ck_assert_ptr_nonnull(job);
	json_decref(job);
	for (int i = 0; i < 5; i++)
		free(ids[i]);
}
END_TEST

/* GPU jobs land on GPU node roles only, and CPU jobs never do: the driver
 * pods on the cluster carry the role's node selector. */
START_TEST(test_gpu_jobs_on_gpu_roles)
{
	char path[700];
	FILE *f;

	tu_gateway_signal(&gw, SIGTERM);
	snprintf(path, sizeof(path), "%s/kubeconfig", dir);
	f = fopen(config, "w");
	fprintf(f, "clusters:\n"
		   "  - {name: a, kubeconfig: %s, context: a, namespace: spark-jobs}\n"
		   "  - name: b\n    kubeconfig: %s\n    context: b\n    namespace: spark-jobs\n"
		   "    nodeRoles:\n"
		   "      - {name: cpu, nodeSelector: {accel: none}}\n"
		   "      - {name: gpu, maxPod: {gpus: 4}, nodeSelector: {accel: gpu}}\n", path, path);
	fclose(f);
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", config, NULL), 0);
	for (int i = 0; i < 6; i++) {
		bool gpu = i % 2 == 0;
		char *id = submit_as("t", gpu ? ",\"accelerator\":\"gpu\"" : NULL, 1, 1), url[300];
		json_t *job = placed(id), *pod;
		const char *cluster = cluster_of(job);

		ck_assert_str_eq(json_string_value(json_object_get(json_object_get(job, "placement"), "nodeRole")),
				 gpu ? "gpu" : !strcmp(cluster, "b") ? "cpu" : "default");
		if (gpu)
			ck_assert_str_eq(cluster, "b");
		snprintf(url, sizeof(url), "%s/api/v1/namespaces/spark-jobs/pods/%s-driver",
			 sims[!strcmp(cluster, "b")].base, id);
		pod = tu_get_json(url);
		ck_assert_ptr_nonnull(pod);
		if (!strcmp(cluster, "b"))
			ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(pod, "spec"),
											   "nodeSelector"), "accel")),
					 gpu ? "gpu" : "none");
		json_decref(pod);
		json_decref(job);
		free(id);
	}
}
END_TEST

START_TEST(test_dry_run_explains_and_stores_nothing)
{
	char u[256], body[1024];
	struct tu_response r, before, after;
	json_t *conf;

	snprintf(u, sizeof(u), "%s/api/v1/jobs?limit=1000", gw.base);
	ck_assert_int_eq(tu_http("GET", u, NULL, NULL, 0, &before), 0);
	snprintf(body, sizeof(body),
		 "{\"name\":\"dry\",\"labels\":{\"team\":\"t\"},\"spec\":{\"type\":\"Python\",\"sparkVersion\":\"3.5.1\","
		 "\"mainApplicationFile\":\"local:///a.py\",\"sparkConf\":{\"spark.sql.shuffle.partitions\":\"8\"}}}");
	snprintf(u, sizeof(u), "%s/api/v1/jobs?dryRun=true", gw.base);
	ck_assert_int_eq(tu_post_json(u, body, NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_schema("DryRun", r.json);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "placeable")), "now");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "placement"), "pool")), "batch");
	ck_assert_int_ge(json_array_size(json_object_get(json_object_get(r.json, "placement"), "reasons")), 4);
	conf = json_object_get(json_object_get(r.json, "placement"), "conf");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(conf, "spark.eventLog.enabled"), "source")),
			 "pool:batch");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(conf, "spark.sql.shuffle.partitions"), "source")),
			 "user");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(conf, "spark.kubernetes.namespace"), "source")),
			 "gateway");
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "manifests")), 3);
	tu_response_release(&r);
	snprintf(u, sizeof(u), "%s/api/v1/jobs?limit=1000", gw.base);
	ck_assert_int_eq(tu_http("GET", u, NULL, NULL, 0, &after), 0);
	ck_assert_int_eq(json_array_size(json_object_get(after.json, "items")),
			 json_array_size(json_object_get(before.json, "items")));
	tu_response_release(&before);
	tu_response_release(&after);

	/* Unplaceable submissions are refused at once, naming the problem. */
	snprintf(body, sizeof(body),
		 "{\"name\":\"bad\",\"spec\":{\"type\":\"Python\",\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"a.py\","
		 "\"sparkConf\":{\"spark.kubernetes.namespace\":\"kube-system\"}}}");
	snprintf(u, sizeof(u), "%s/api/v1/jobs", gw.base);
	ck_assert_int_eq(tu_post_json(u, body, NULL, &r), 0);
	ck_assert_int_eq(r.status, 422);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "type")), "urn:sparkgw:problem:unplaceable");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "errors"), 0), "field")),
			 "spec.sparkConf[spark.kubernetes.namespace]");
	tu_response_release(&r);
}
END_TEST

static json_t *dry_run_sql(const char *sql_json, long want_status)
{
	char u[256], body[2048];
	struct tu_response r;
	json_t *out;

	snprintf(body, sizeof(body),
		 "{\"name\":\"sql\",\"labels\":{\"team\":\"t\"},\"spec\":{\"type\":\"SQL\",\"sparkVersion\":\"3.5.1\","
		 "\"sql\":%s}}", sql_json);
	snprintf(u, sizeof(u), "%s/api/v1/jobs?dryRun=true", gw.base);
	ck_assert_int_eq(tu_post_json(u, body, NULL, &r), 0);
	ck_assert_msg(r.status == want_status, "%ld: %s", r.status, r.body);
	out = json_incref(r.json);
	tu_response_release(&r);
	return out;
}

/* A SQL job says in its dry run whether its statements are DDL only, read
 * past strings and comments, and runs Spark's SQL CLI on them. */
START_TEST(test_sql_jobs_classified_and_run)
{
	json_t *dry = dry_run_sql("\"-- INSERT INTO t VALUES (1);\\nCREATE TABLE t (a INT) COMMENT 'no; SELECT';"
				  " SET spark.sql.x=1\"", 200);
	json_t *sql = json_object_get(json_object_get(dry, "placement"), "sql"), *args = NULL, *m;
	size_t i;
	char *id;

	ck_assert_schema("DryRun", dry);
	ck_assert_str_eq(json_string_value(json_object_get(sql, "statements")), "DDL");
	ck_assert_str_eq(json_string_value(json_object_get(sql, "reason")), "all 2 statements are DDL (CREATE, SET)");
	ck_assert_str_eq(json_string_value(json_object_get(sql, "execution")), "dedicated");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(sql, "executionReason")), "no shared servers"));
	json_array_foreach(json_object_get(dry, "manifests"), i, m)
		if (!strcmp(json_string_value(json_object_get(m, "kind")), "Pod"))
			args = json_object_get(json_array_get(json_object_get(json_object_get(m, "spec"), "containers"), 0),
					       "args");
	ck_assert_str_eq(json_string_value(json_array_get(args, 4)), "org.apache.spark.sql.hive.thriftserver.SparkSQLCLIDriver");
	ck_assert_str_eq(json_string_value(json_array_get(args, 6)), "-e");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_array_get(args, 7)), "CREATE TABLE t"));
	json_decref(dry);

	dry = dry_run_sql("\"CREATE TABLE t USING parquet AS SELECT * FROM s\"", 200);
	sql = json_object_get(json_object_get(dry, "placement"), "sql");
	ck_assert_str_eq(json_string_value(json_object_get(sql, "statements")), "DML");
	ck_assert_str_eq(json_string_value(json_object_get(sql, "reason")),
			 "statement 1 is CREATE TABLE ... AS a query, which writes data");
	json_decref(dry);

	/* Statements that do not lex are refused at submission, not on a cluster. */
	dry = dry_run_sql("\"DROP TABLE t; SELECT 'open\"", 422);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(dry, "errors"), 0), "field")),
			 "spec.sql");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(json_array_get(json_object_get(dry, "errors"), 0),
								       "message")), "unterminated string starting at offset 21"));
	json_decref(dry);

	id = tu_submit(gw.base, "{\"name\":\"ddl\",\"labels\":{\"team\":\"t\"},\"spec\":{\"type\":\"SQL\",\"sparkVersion\":"
				"\"3.5.1\",\"sql\":\"CREATE TABLE t (a INT)\",\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"1\"}}}");
	dry = tu_wait_job(gw.base, id, NULL, 20000);
	ck_assert_ptr_nonnull(dry);
	ck_assert_str_eq(json_string_value(json_object_get(dry, "state")), "SUCCEEDED");
	json_decref(dry);
	free(id);
}
END_TEST

/* Seven mistakes of four kinds — fields, a label, a missing field, a
 * protected Spark conf key the policy refuses — all in one answer. */
START_TEST(test_all_problems_in_one_answer)
{
	static const char body[] =
		"{\"name\":\"Bad_Name\",\"colour\":1,\"labels\":{\"team\":\"-ads\"},\"spec\":{\"type\":\"Python\","
		"\"mainApplicationFile\":\"a.py\",\"executor\":{\"memory\":\"lots\"},\"driver\":{\"cores\":0},"
		"\"sparkConf\":{\"spark.kubernetes.namespace\":\"kube-system\"}}}";
	static const char *const fields[] = {"name", "colour", "labels[team]", "spec.sparkVersion",
					     "spec.executor.memory", "spec.driver.cores",
					     "spec.sparkConf[spark.kubernetes.namespace]"};
	struct tu_response r;
	char u[256];

	snprintf(u, sizeof(u), "%s/api/v1/jobs", gw.base);
	ck_assert_int_eq(tu_post_json(u, body, NULL, &r), 0);
	ck_assert_int_eq(r.status, 422);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "type")), "urn:sparkgw:problem:validation-failed");
	ck_assert_msg(json_array_size(json_object_get(r.json, "errors")) == 7, "%s", r.body);
	for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++) {
		bool found = false;
		size_t i;
		json_t *e;

		json_array_foreach(json_object_get(r.json, "errors"), i, e)
			found = found || !strcmp(json_string_value(json_object_get(e, "field")), fields[f]);
		ck_assert_msg(found, "no error for %s in %s", fields[f], r.body);
	}
	tu_response_release(&r);
}
END_TEST

START_TEST(test_stored_job_shows_placement_and_conf)
{
	char *id = submit_as("t", NULL, 1, 1), u[256];
	json_t *job = tu_wait_job(gw.base, id, NULL, 20000), *conf;

	ck_assert_ptr_nonnull(job);
	ck_assert_schema("Job", job);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(job, "placement"), "namespaceGroup")), "all");
	ck_assert_int_ge(json_array_size(json_object_get(json_object_get(job, "placement"), "reasons")), 4);
	snprintf(u, sizeof(u), "%s/api/v1/jobs/%s/conf", gw.base, id);
	conf = tu_get_json(u);
	ck_assert_schema("ComposedConf", json_object_get(conf, "conf"));
	snprintf(u, sizeof(u), "%s/api/v1/pools", gw.base);
	{
		json_t *pools = tu_get_json(u);

		ck_assert_schema("PoolList", pools);
		json_decref(pools);
	}
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(conf, "conf"),
									   "spark.kubernetes.driver.pod.name"), "value")),
			 json_string_value(json_object_get(json_object_get(job, "driver"), "podName")));
	json_decref(conf);
	json_decref(job);
	free(id);
}
END_TEST

struct loader_arg {
	int ok, n;
};

static void *submit_many(void *arg)
{
	struct loader_arg *a = arg;
	char body[512], u[256];

	snprintf(u, sizeof(u), "%s/api/v1/jobs", gw.base);
	snprintf(body, sizeof(body),
		 "{\"name\":\"load\",\"labels\":{\"team\":\"load\"},\"spec\":{\"type\":\"Python\",\"sparkVersion\":\"3.5.1\","
		 "\"mainApplicationFile\":\"a.py\",\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"1\"},"
		 "\"executor\":{\"instances\":1}}}");
	for (int i = 0; i < a->n; i++) {
		struct tu_response r;

		if (tu_post_json(u, body, NULL, &r) == 0 && r.status == 201)
			a->ok++;
		tu_response_release(&r);
	}
	return NULL;
}

START_TEST(test_reload_under_load_drops_nothing)
{
	struct loader_arg arg = {.n = 80};
	pthread_t th;
	struct tu_response r;
	char u[256];
	json_t *list;
	FILE *f;

	pthread_create(&th, NULL, submit_many, &arg);
	for (int i = 0; i < 6; i++) {
		write_config(i % 2 ? 1 : 5);
		r = post("/api/v1/admin/reload", NULL);
		ck_assert_int_eq(r.status, 200);
		tu_response_release(&r);
		usleep(50000);
	}
	/* An invalid policy is refused with file, line and reason; the old
	 * one stays in force. */
	f = fopen(config, "a");
	fputs("routing:\n  defaultPool: nowhere\n", f);
	fclose(f);
	r = post("/api/v1/admin/reload", NULL);
	ck_assert_int_eq(r.status, 422);
	ck_assert_msg(strstr(json_string_value(json_object_get(r.json, "detail")), "gateway.yaml: line") &&
		      strstr(json_string_value(json_object_get(r.json, "detail")), "no pool named 'nowhere'"),
		      "%s", r.body);
	tu_response_release(&r);
	pthread_join(th, NULL);
	ck_assert_int_eq(arg.ok, arg.n);
	snprintf(u, sizeof(u), "%s/api/v1/jobs?labelSelector=team%%3Dload&limit=1000", gw.base);
	for (int i = 0; i < 200; i++) {
		size_t done = 0, n;
		size_t k;
		json_t *j;

		list = tu_get_json(u);
		n = json_array_size(json_object_get(list, "items"));
		json_array_foreach(json_object_get(list, "items"), k, j)
			done += strcmp(json_string_value(json_object_get(j, "state")), "QUEUED") != 0;
		json_decref(list);
		ck_assert_int_eq(n, arg.n);
		if (done == n)
			break;
		ck_assert_msg(i < 199, "only %zu of %zu dispatched", done, n);
		usleep(100000);
	}
	/* SIGHUP reloads too, and an invalid file leaves the gateway serving. */
	kill(gw.pid, SIGHUP);
	usleep(200000);
	snprintf(u, sizeof(u), "%s/readyz", gw.base);
	list = tu_get_json(u);
	ck_assert_ptr_nonnull(list);
	json_decref(list);
}
END_TEST

static struct tu_response del(const char *path)
{
	struct tu_response r;
	char url[300];

	snprintf(url, sizeof(url), "%s%s", gw.base, path);
	ck_assert_int_eq(tu_http("DELETE", url, NULL, NULL, 0, &r), 0);
	return r;
}

START_TEST(test_add_and_remove_cluster_at_runtime)
{
	struct tu_kubesim c = {0};
	char kubeconfig[700], body[1500], url[300];
	struct tu_response r;
	json_t *cl;
	char *busy = NULL;
	FILE *f;
	int on_c = 0;

	ck_assert_int_eq(tu_kubesim_start(&c, dir, "c", NULL), 0);
	snprintf(kubeconfig, sizeof(kubeconfig), "%s/kubeconfig-c", dir);
	f = fopen(kubeconfig, "w");
	fprintf(f, "current-context: c\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
		   "clusters: [{name: c, cluster: {server: '%s'}}]\nusers: [{name: u, user: {}}]\n", c.base);
	fclose(f);

	snprintf(body, sizeof(body), "{\"name\":\"c\",\"kubeconfig\":\"%s\",\"namespace\":\"spark-jobs\","
		 "\"pool\":\"nope\"}", kubeconfig);
	r = post("/api/v1/clusters", body);
	ck_assert_int_eq(r.status, 422);
	tu_response_release(&r);
	snprintf(body, sizeof(body), "{\"name\":\"c\",\"kubeconfig\":\"%s\",\"namespace\":\"spark-jobs\","
		 "\"pool\":\"batch\",\"weight\":1000}", kubeconfig);
	r = post("/api/v1/clusters", body);
	ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
	ck_assert_schema("Cluster", r.json);
	tu_response_release(&r);
	r = post("/api/v1/clusters", body);
	ck_assert_int_eq(r.status, 409);
	tu_response_release(&r);

	/* Kept across a restart, and it takes most jobs (1000 of 1004). */
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", config, NULL), 0);
	for (int i = 0; i < 6; i++) {
		char *id = submit_as("t", NULL, i == 0 ? 4 : 1, 1);
		json_t *job = placed(id);

		if (!strcmp(cluster_of(job), "c")) {
			on_c++;
			if (!busy)
				busy = strdup(id);
		}
		json_decref(job);
		free(id);
	}
	ck_assert_int_ge(on_c, 5);
	ck_assert_ptr_nonnull(busy);
	/* Not while it still runs jobs. */
	r = del("/api/v1/clusters/c");
	ck_assert_int_eq(r.status, 409);
	tu_response_release(&r);
	cl = tu_wait_job(gw.base, busy, NULL, 20000);
	json_decref(cl);
	for (int i = 0; i < 100; i++) {
		r = del("/api/v1/clusters/c");
		if (r.status == 200)
			break;
		tu_response_release(&r);
		usleep(100000);
	}
	ck_assert_int_eq(r.status, 200);
	tu_response_release(&r);
	free(busy);
	snprintf(url, sizeof(url), "%s/api/v1/clusters/c", gw.base);
	ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 404);
	tu_response_release(&r);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", config, NULL), 0);
	for (int i = 0; i < 5; i++) {
		char *id = submit_as("t", NULL, 1, 1);
		json_t *job = placed(id);

		ck_assert_str_ne(cluster_of(job), "c");
		json_decref(job);
		free(id);
	}
	tu_kubesim_stop(&c);
}
END_TEST

/* ---- namespace caps under a burst ---- */

#define CAPS_POLICY                                                                                \
	"pools:\n  - name: batch\n    clusters: [{name: a, weight: 1}]\n"                              \
	"namespaceGroups:\n"                                                                         \
	"  - name: by-pods\n    selector: team=pods\n    namespaces: [{name: capped-pods, maxPods: 20}]\n" \
	"  - name: by-cores\n    selector: team=cores\n"                                              \
	"    namespaces: [{name: capped-cores, quota: {cores: 12}}]\n"                                \
	"dispatch: {workers: 16}\n"

static void caps_setup(void)
{
	static const char *const modes[] = {"driver-pod"};

	memset(sims, 0, sizeof(sims));
	dir = tu_tmpdir("caps");
	ck_assert_ptr_nonnull(dir);
	ck_assert_int_eq(tu_kubesim_start(&sims[0], dir, "a", "--namespace", "capped-pods", "--namespace",
					  "capped-cores", "--nodes", "8", NULL), 0);
	tu_write_cluster_config(dir, sims, modes, 1, CAPS_POLICY, config, sizeof(config));
	ck_assert_msg(tu_gateway_start(&gw, dir, "--config", config, NULL) == 0, "gateway did not start");
}

static void caps_teardown(void)
{
	tu_gateway_signal(&gw, SIGTERM);
	tu_kubesim_stop(&sims[0]);
	tu_rmtree(dir);
	free(dir);
}

struct ns_peak {
	const char *ns;
	unsigned pods;
	double cores;
};

struct sampler {
	struct ns_peak peaks[2];
	atomic_bool stop;
};

/* What a namespace's pods hold now as the cluster lists them: those
 * Pending or Running, and their cpu requests. */
static void sample(const char *base, struct ns_peak *p)
{
	char url[300];
	json_t *list, *pod, *c;
	unsigned pods = 0;
	double cores = 0;
	size_t i, j;

	snprintf(url, sizeof(url), "%s/api/v1/namespaces/%s/pods", base, p->ns);
	list = tu_get_json(url);
	json_array_foreach(json_object_get(list, "items"), i, pod) {
		const char *phase = json_string_value(json_object_get(json_object_get(pod, "status"), "phase"));

		if (!phase || (strcmp(phase, "Pending") && strcmp(phase, "Running")))
			continue;
		pods++;
		json_array_foreach(json_object_get(json_object_get(pod, "spec"), "containers"), j, c) {
			const char *cpu = json_string_value(json_object_get(json_object_get(json_object_get(c,
				"resources"), "requests"), "cpu"));

			cores += cpu ? atof(cpu) : 0;
		}
	}
	json_decref(list);
	if (pods > p->pods)
		p->pods = pods;
	if (cores > p->cores)
		p->cores = cores;
}

static void *sampler_main(void *arg)
{
	struct sampler *s = arg;

	/* Bounded: the test stops it long before. */
	for (int n = 0; n < 4000 && !atomic_load(&s->stop); n++) {
		for (int i = 0; i < 2; i++)
			sample(sims[0].base, &s->peaks[i]);
		usleep(50000);
	}
	return NULL;
}

/* A burst into namespaces with an active-pod cap and a core quota, with
 * 16 concurrent dispatch workers and jobs of a driver and 4 executors:
 * sampled every 50 ms, neither ever holds more than its cap, and every
 * job runs to its end. */
START_TEST(test_burst_never_exceeds_namespace_caps)
{
	struct sampler s = {.peaks = {{.ns = "capped-pods"}, {.ns = "capped-cores"}}};
	char *ids[36];
	pthread_t t;
	int n = 0;

	atomic_init(&s.stop, false);
	ck_assert_int_eq(pthread_create(&t, NULL, sampler_main, &s), 0);
	for (int i = 0; i < 36; i++)
		ids[n++] = submit_as(i < 24 ? "pods" : "cores", NULL, 2, 4);
	for (int i = 0; i < n; i++) {
		json_t *job = tu_wait_job(gw.base, ids[i], "SUCCEEDED", 120000);

		ck_assert_msg(job, "job %s did not succeed", ids[i]);
		json_decref(job);
		free(ids[i]);
	}
	atomic_store(&s.stop, true);
	pthread_join(t, NULL);
	/* 5 pods and 5 cores a job: 4 jobs fill the pod cap, 2 the quota. */
	ck_assert_msg(s.peaks[0].pods <= 20, "capped-pods held %u pods (cap 20)", s.peaks[0].pods);
	ck_assert_msg(s.peaks[1].cores <= 12 + 1e-9, "capped-cores held %.1f cores (quota 12)", s.peaks[1].cores);
	/* The burst did fill them: the caps held against real pressure. */
	ck_assert_msg(s.peaks[0].pods >= 15, "capped-pods peaked at %u pods", s.peaks[0].pods);
	ck_assert_msg(s.peaks[1].cores >= 10 - 1e-9, "capped-cores peaked at %.1f cores", s.peaks[1].cores);

	/* The cluster list shows those caps. */
	{
		char url[300];
		json_t *list, *c, *ns;

		snprintf(url, sizeof(url), "%s/api/v1/clusters", gw.base);
		list = tu_get_json(url);
		ck_assert_int_eq(json_array_size(json_object_get(list, "items")), 1);
		c = json_array_get(json_object_get(list, "items"), 0);
		ck_assert_schema("Cluster", c);
		ck_assert_str_eq(json_string_value(json_object_get(c, "name")), "a");
		ns = json_object_get(json_object_get(c, "namespaces"), "capped-cores");
		ck_assert(json_real_value(json_object_get(json_object_get(ns, "quota"), "cores")) == 12);
		ns = json_object_get(json_object_get(c, "namespaces"), "capped-pods");
		ck_assert_int_eq(json_integer_value(json_object_get(ns, "maxPods")), 20);
		json_decref(list);
	}
}
END_TEST

/* A restarted gateway holds the room of jobs already on the cluster
 * whose executors have not started yet: a job that would overfill the
 * namespace beside them waits QUEUED, and the cap holds throughout. */
START_TEST(test_restart_keeps_running_jobs_room)
{
	struct sampler s = {.peaks = {{.ns = "capped-pods"}, {.ns = "capped-cores"}}};
	char body[1024], *first, *second, url[300];
	json_t *job;
	pthread_t t;

	/* A driver and 10 executors, which it asks for 6 s after it starts. */
	snprintf(body, sizeof(body),
		 "{\"name\":\"slow-start\",\"labels\":{\"team\":\"pods\"},\"spec\":{\"type\":\"Python\","
		 "\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"local:///a.py\",\"sparkConf\":"
		 "{\"spark.kubesim.durationSeconds\":\"8\",\"spark.kubesim.executorDelaySeconds\":\"6\"},"
		 "\"executor\":{\"instances\":10,\"cores\":1,\"memory\":\"1g\"}}}");
	first = tu_submit(gw.base, body);
	ck_assert_ptr_nonnull(first);
	job = tu_wait_job(gw.base, first, "RUNNING", 20000);
	ck_assert_ptr_nonnull(job);
	json_decref(job);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	ck_assert_int_eq(tu_gateway_restart(&gw, dir, "--config", config, NULL), 0);
	atomic_init(&s.stop, false);
	ck_assert_int_eq(pthread_create(&t, NULL, sampler_main, &s), 0);
	second = submit_as("pods", NULL, 1, 10);
	ck_assert_ptr_nonnull(second);
	usleep(1500000);
	snprintf(url, sizeof(url), "%s/api/v1/jobs/%s", gw.base, second);
	job = tu_get_json(url);
	ck_assert_msg(!strcmp(json_string_value(json_object_get(job, "state")), "QUEUED") &&
		      strstr(json_string_value(json_object_get(job, "waitReason")), "by-pods has room"),
		      "the second job did not wait: %s %s", json_string_value(json_object_get(job, "state")),
		      json_string_value(json_object_get(job, "waitReason")));
	json_decref(job);
	for (int i = 0; i < 2; i++) {
		job = tu_wait_job(gw.base, i ? second : first, "SUCCEEDED", 60000);
		ck_assert_msg(job, "job %s did not succeed", i ? second : first);
		json_decref(job);
	}
	atomic_store(&s.stop, true);
	pthread_join(t, NULL);
	ck_assert_msg(s.peaks[0].pods <= 20, "capped-pods held %u pods (cap 20)", s.peaks[0].pods);
	ck_assert_msg(s.peaks[0].pods >= 11, "capped-pods peaked at %u pods", s.peaks[0].pods);
	free(first);
	free(second);
}
END_TEST

/* A job of `instances` executors of `cores` cores each, as the API takes it. */
static void sized_body(char *body, size_t len, int instances, int cores, int seconds)
{
	snprintf(body, len,
		 "{\"name\":\"sized\",\"labels\":{\"team\":\"t\"},\"spec\":{\"type\":\"Python\","
		 "\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"local:///a.py\","
		 "\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"%d\"},"
		 "\"executor\":{\"instances\":%d,\"cores\":%d,\"memory\":\"1g\"}}}",
		 seconds, instances, cores);
}

/* Until the gateway has listed both clusters' nodes (its prober does). */
static void wait_for_nodes(void)
{
	char url[300];
	int known = 0;

	snprintf(url, sizeof(url), "%s/api/v1/clusters", gw.base);
	for (int i = 0; i < 200 && known < 2; i++) {
		json_t *list = tu_get_json(url), *c;
		size_t j;

		known = 0;
		json_array_foreach(json_object_get(list, "items"), j, c) {
			ck_assert_schema("Cluster", c);
			known += json_integer_value(json_object_get(json_object_get(c, "nodes"), "count")) == 4;
		}
		json_decref(list);
		if (known < 2)
			usleep(50000);
	}
	ck_assert_int_eq(known, 2);
}

/* What the clusters list says placement counts on for a role. */
static json_t *role_capacity(const char *cluster, const char *role)
{
	char url[300];
	json_t *c = NULL, *r, *out = NULL;
	size_t i;

	snprintf(url, sizeof(url), "%s/api/v1/clusters/%s", gw.base, cluster);
	c = tu_get_json(url);
	json_array_foreach(json_object_get(c, "nodeRoles"), i, r)
		if (!strcmp(json_string_value(json_object_get(r, "name")), role))
			out = json_incref(json_object_get(r, "capacity"));
	json_decref(c);
	return out;
}

/* Each cluster has 4 nodes of 16 cores. A job larger than any is refused,
 * naming the largest place; one no node can fit an executor of, too; jobs
 * that fit but not beside others wait QUEUED saying so, then run. */
START_TEST(test_placement_holds_whole_demand)
{
	struct tu_response r;
	char body[1024], url[300], *ids[3];
	const char *detail;
	json_t *job;

	wait_for_nodes();
	job = role_capacity("a", "default");
	ck_assert_int_eq(json_integer_value(json_object_get(job, "nodes")), 4);
	ck_assert(json_number_value(json_object_get(json_object_get(job, "total"), "cores")) == 64);
	json_decref(job);
	snprintf(url, sizeof(url), "%s/api/v1/jobs", gw.base);
	sized_body(body, sizeof(body), 30, 8, 1); /* 241 cores */
	ck_assert_int_eq(tu_post_json(url, body, NULL, &r), 0);
	ck_assert_msg(r.status == 422, "%ld %s", r.status, r.body);
	ck_assert_ptr_nonnull(strstr(r.body, "unplaceable"));
	detail = json_string_value(json_object_get(json_array_get(json_object_get(r.json, "errors"), 0), "message"));
	ck_assert_ptr_nonnull(detail);
	ck_assert_msg(strstr(detail, "241 cores") && strstr(detail, "the largest place it could go is cluster") &&
			      strstr(detail, "node role default: 64 cores"), "%s", detail);
	tu_response_release(&r);

	sized_body(body, sizeof(body), 1, 20, 1); /* an executor no node holds */
	ck_assert_int_eq(tu_post_json(url, body, NULL, &r), 0);
	ck_assert_msg(r.status == 422, "%ld %s", r.status, r.body);
	ck_assert_msg(strstr(r.body, "an executor needs 20 cores") && strstr(r.body, "largest node"), "%s", r.body);
	tu_response_release(&r);

	/* 49 cores each: one a cluster; whichever comes last waits for either. */
	sized_body(body, sizeof(body), 12, 4, 3);
	for (int i = 0; i < 3; i++)
		ids[i] = tu_submit(gw.base, body);
	{
		const char *on[3] = {NULL, NULL, NULL};
		json_t *jobs[3] = {NULL, NULL, NULL};
		int placed_n = 0, waiting = -1;

		for (int t = 0; t < 200 && (placed_n < 2 || waiting < 0); t++) {
			placed_n = 0;
			waiting = -1;
			for (int i = 0; i < 3; i++) {
				snprintf(url, sizeof(url), "%s/api/v1/jobs/%s", gw.base, ids[i]);
				json_decref(jobs[i]);
				jobs[i] = tu_get_json(url);
				on[i] = cluster_of(jobs[i]);
				placed_n += on[i] != NULL;
				detail = json_string_value(json_object_get(jobs[i], "waitReason"));
				if (!on[i] && detail && strstr(detail, "free"))
					waiting = i;
			}
			if (placed_n < 2 || waiting < 0)
				usleep(20000);
		}
		ck_assert_int_eq(placed_n, 2);
		ck_assert_int_ge(waiting, 0);
		ck_assert_str_eq(json_string_value(json_object_get(jobs[waiting], "state")), "QUEUED");
		detail = json_string_value(json_object_get(jobs[waiting], "waitReason"));
		ck_assert_msg(strstr(detail, "node role default has 15 of 64 cores") && strstr(detail, "needs 49 cores"),
			      "%s", detail);
		ck_assert_str_ne(on[(waiting + 1) % 3], on[(waiting + 2) % 3]);
		for (int i = 0; i < 3; i++)
			json_decref(jobs[i]);
	}
	for (int i = 0; i < 3; i++) {
		job = tu_wait_job(gw.base, ids[i], "SUCCEEDED", 60000);
		ck_assert_msg(job, "job %s did not succeed", ids[i]);
		json_decref(job);
		free(ids[i]);
	}
}
END_TEST

Suite *routing_suite(void)
{
	Suite *s = suite_create("routing");
	TCase *tc = tcase_create("e2e");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_weights_over_many_jobs);
	tcase_add_test(tc, test_cordon_drain_uncordon);
	tcase_add_test(tc, test_unhealthy_cluster_leaves_and_returns);
	tcase_add_test(tc, test_full_namespace_sends_jobs_to_the_next);
	tcase_add_test(tc, test_gpu_jobs_on_gpu_roles);
	tcase_add_test(tc, test_dry_run_explains_and_stores_nothing);
	tcase_add_test(tc, test_sql_jobs_classified_and_run);
	tcase_add_test(tc, test_all_problems_in_one_answer);
	tcase_add_test(tc, test_stored_job_shows_placement_and_conf);
	tcase_add_test(tc, test_reload_under_load_drops_nothing);
	tcase_add_test(tc, test_add_and_remove_cluster_at_runtime);
	tcase_add_test(tc, test_placement_holds_whole_demand);
	suite_add_tcase(s, tc);
	tc = tcase_create("caps");
	tcase_add_checked_fixture(tc, caps_setup, caps_teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_burst_never_exceeds_namespace_caps);
	tcase_add_test(tc, test_restart_keeps_running_jobs_room);
	suite_add_tcase(s, tc);
	return s;
}
