/* Dispatch end to end: the gateway against kubesim clusters, in both modes,
 * with API-server faults, dropped and expired watches, and kill -9 in the
 * middle of a dispatch; plus the generated manifests checked against the
 * Kubernetes and SparkApplication schemas vendored in tests/k8s/schemas. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "common/yamljson.h"
#include "dispatch/dispatch.h"
#include "tests/testutil.h"

/* ---- manifests against the reference schemas ---- */

static int validate_with_node(const char *kind, json_t *obj, char *out, size_t outlen)
{
	char *tmp = tu_tmpdir("manifest");
	int rc = tu_validate_k8s(kind, obj, tmp, out, outlen);

	tu_rmtree(tmp);
	free(tmp);
	return rc;
}

static struct store_job sample_job(void)
{
	struct store_job job = {0};

	snprintf(job.id, sizeof(job.id), "j01m8cmnej017b7fxxvs6");
	job.name = (char *)(uintptr_t)"spark-pi";
	job.user = (char *)(uintptr_t)"alice";
	job.labels_json = (char *)(uintptr_t)"{\"team\":\"search\",\"priority\":\"high\"}";
	job.spec_json = (char *)(uintptr_t)
		"{\"type\":\"Scala\",\"sparkVersion\":\"3.5.1\",\"mainClass\":\"org.apache.spark.examples.SparkPi\","
		"\"mainApplicationFile\":\"local:///opt/spark/examples/jars/spark-examples.jar\",\"arguments\":[\"100\"],"
		"\"sparkConf\":{\"spark.eventLog.enabled\":\"true\",\"spark.a=b\":\"x:y\"},"
		"\"deps\":{\"jars\":[\"local:///x.jar\"]},"
		"\"driver\":{\"cores\":2,\"coreLimit\":\"2500m\",\"memory\":\"2g\",\"gpu\":{\"name\":\"nvidia.com/gpu\",\"quantity\":1}},"
		"\"executor\":{\"instances\":3,\"cores\":2,\"memory\":\"4g\",\"memoryOverhead\":\"1g\"}}";
	return job;
}

/* A policy from YAML text (as in the gateway's config file). */
static struct router *policy(const char *yaml)
{
	json_t *doc, *marks;
	struct router *r;
	char err[GW_ERRLEN];

	ck_assert_int_eq(gw_yaml_load_string(yaml, strlen(yaml), &doc, &marks, err), GW_OK);
	ck_assert_msg(router_load(doc, marks, "test.yaml", &r, err) == GW_OK, "%s", err);
	json_decref(doc);
	json_decref(marks);
	return r;
}

static json_t *manifests_for(struct router *r, struct store_job *job, struct router_decision *dec)
{
	json_t *labels = json_loads(job->labels_json, 0, NULL), *spec = json_loads(job->spec_json, 0, NULL);
	json_t *errors = NULL, *out;
	char err[GW_ERRLEN];

	ck_assert_msg(router_place(r, NULL, NULL, labels, spec, job->id, dec, &errors, err) == ROUTER_OK,
		      "%s", err);
	out = dispatch_manifests(job, dec, err);
	ck_assert_msg(out != NULL, "%s", err);
	json_decref(labels);
	json_decref(spec);
	return out;
}

#define GPU_POLICY                                                                             \
	"clusters:\n"                                                                          \
	"  - name: c\n    kubeconfig: /dev/null\n    mode: %s\n"                              \
	"    sidecars: [{name: log-shipper, image: fluent/fluent-bit:3.0}]\n"                   \
	"    nodeRoles:\n"                                                                     \
	"      - {name: cpu, maxPod: {cores: 16, memory: 64Gi}, nodeSelector: {role: cpu}}\n"   \
	"      - name: gpu\n        maxPod: {cores: 32, memory: 256Gi, gpus: 8}\n"             \
	"        nodeSelector: {role: gpu}\n"                                                  \
	"        tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]\n" \
	"namespaceGroups:\n  - {name: all, namespaces: [{name: spark-jobs, serviceAccount: spark-sa}]}\n"

START_TEST(test_manifests_match_schemas)
{
	static const char *const kinds[] = {"pod", "service", "configmap"};
	char yaml[2048], err[4096];
	struct router *r;
	struct router_decision dec;
	struct store_job job = sample_job();
	json_t *objs, *pod, *cm, *spec;
	const char *props;

	snprintf(yaml, sizeof(yaml), GPU_POLICY, "driver-pod");
	r = policy(yaml);
	objs = manifests_for(r, &job, &dec);
	ck_assert_int_eq(json_array_size(objs), 3);
	for (size_t i = 0; i < 3; i++)
		ck_assert_msg(validate_with_node(kinds[i], json_array_get(objs, i), err, sizeof(err)) == 0,
			      "%s: %s", kinds[i], err);
	pod = json_array_get(objs, 0);
	spec = json_object_get(pod, "spec");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(pod, "metadata"), "name")),
			 "j01m8cmnej017b7fxxvs6-driver");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(pod, "metadata"), "labels"),
							   "sparkgw/job-id")), job.id);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(pod, "metadata"), "labels"),
							   "team")), "search");
	/* The sample asks for a GPU: the GPU role's selector and toleration. */
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(spec, "nodeSelector"), "role")), "gpu");
	ck_assert_int_eq(json_array_size(json_object_get(spec, "tolerations")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(spec, "priorityClassName")), "sparkgw-driver");
	ck_assert_str_eq(json_string_value(json_object_get(spec, "serviceAccountName")), "spark-sa");
	/* The cluster's sidecar rides along with the driver and the executors. */
	ck_assert_int_eq(json_array_size(json_object_get(spec, "containers")), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(spec, "containers"), 1), "name")),
			 "log-shipper");
	/* 2g heap + max(10%, 384 MiB) overhead. */
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(
				 json_array_get(json_object_get(spec, "containers"), 0),
				 "resources"), "requests"), "memory")), "2432Mi");
	cm = json_array_get(objs, 2);
	props = json_string_value(json_object_get(json_object_get(cm, "data"), "spark.properties"));
	ck_assert_ptr_nonnull(strstr(props, "spark.kubernetes.namespace=spark-jobs\n"));
	ck_assert_ptr_nonnull(strstr(props, "spark.executor.instances=3\n"));
	ck_assert_ptr_nonnull(strstr(props, "spark.eventLog.enabled=true\n"));
	ck_assert_ptr_nonnull(strstr(props, "spark.a\\=b=x:y\n"));
	/* Executors get the lower priority class through Spark's pod template. */
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(json_object_get(cm, "data"),
								       "executor-pod-template.yaml")),
				     "\"priorityClassName\": \"sparkgw-executor\""));
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(json_object_get(cm, "data"),
								       "executor-pod-template.yaml")),
				     "\"image\": \"fluent/fluent-bit:3.0\""));
	json_decref(objs);
	router_decision_release(&dec);
	router_unref(r);

	snprintf(yaml, sizeof(yaml), GPU_POLICY, "spark-operator");
	r = policy(yaml);
	objs = manifests_for(r, &job, &dec);
	ck_assert_int_eq(json_array_size(objs), 1);
	ck_assert_msg(validate_with_node("sparkapp", json_array_get(objs, 0), err, sizeof(err)) == 0,
		      "sparkapp: %s", err);
	spec = json_object_get(json_array_get(objs, 0), "spec");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(spec, "executor"), "priorityClassName")),
			 "sparkgw-executor");
	ck_assert_int_eq(json_array_size(json_object_get(json_object_get(spec, "driver"), "sidecars")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(spec, "sparkConf"), "spark.kubernetes.namespace")),
			 "spark-jobs");
	json_decref(objs);
	router_decision_release(&dec);

	/* A minimal job still yields valid objects (defaults fill the rest). */
	job.spec_json = (char *)(uintptr_t)"{\"type\":\"Python\",\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"local:///a.py\"}";
	objs = manifests_for(r, &job, &dec);
	ck_assert_msg(validate_with_node("sparkapp", json_array_get(objs, 0), err, sizeof(err)) == 0,
		      "minimal sparkapp: %s", err);
	json_decref(objs);
	router_decision_release(&dec);
	router_unref(r);
	snprintf(yaml, sizeof(yaml), GPU_POLICY, "driver-pod");
	r = policy(yaml);
	objs = manifests_for(r, &job, &dec);
	ck_assert_msg(validate_with_node("pod", json_array_get(objs, 0), err, sizeof(err)) == 0,
		      "minimal pod: %s", err);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(json_array_get(objs, 0), "spec"),
									   "nodeSelector"), "role")), "cpu");
	json_decref(objs);
	router_decision_release(&dec);
	router_unref(r);
}
END_TEST

#define BATCH_POLICY                                                                            \
	"clusters:\n  - name: c\n    kubeconfig: /dev/null\n    mode: %s\n%s"                      \
	"pools:\n  - name: p\n    clusters: [{name: c, weight: 1}]\n"                             \
	"    batchScheduler: {name: volcano, queue: spark}\n"                                       \
	"namespaceGroups:\n  - {name: all, namespaces: [{name: spark-jobs}]}\n"

static const char *annotation_of(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(obj, "metadata"), "annotations"), key));
}

/* A pool's or cluster's batch scheduler: Volcano gets a PodGroup for the
 * whole job (valid against Volcano's CRD) and its pods point at it;
 * YuniKorn gets its application, queue and task groups; the operator is
 * told which scheduler to use; a bad scheduler name is refused. */
START_TEST(test_batch_scheduler_manifests)
{
	char yaml[2048], err[4096], group[128];
	struct router *r;
	struct router_decision dec;
	struct store_job job = sample_job();
	json_t *objs, *pod, *pg, *cm, *tasks, *doc, *marks;
	const char *tpl, *props;

	job.spec_json = (char *)(uintptr_t)
		"{\"type\":\"Scala\",\"sparkVersion\":\"3.5.1\",\"mainClass\":\"org.apache.spark.examples.SparkPi\","
		"\"mainApplicationFile\":\"local:///opt/spark/examples/jars/spark-examples.jar\","
		"\"driver\":{\"cores\":2,\"memory\":\"2g\"},\"executor\":{\"instances\":3,\"cores\":2,\"memory\":\"4g\"}}";
	snprintf(yaml, sizeof(yaml), BATCH_POLICY, "driver-pod", "");
	r = policy(yaml);
	objs = manifests_for(r, &job, &dec);
	ck_assert_int_eq(json_array_size(objs), 4);
	pod = json_array_get(objs, 0);
	pg = json_array_get(objs, 3);
	ck_assert_msg(validate_with_node("pod", pod, err, sizeof(err)) == 0, "pod: %s", err);
	ck_assert_msg(validate_with_node("podgroup", pg, err, sizeof(err)) == 0, "podgroup: %s", err);
	snprintf(group, sizeof(group), "%s-podgroup", job.id);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(pg, "metadata"), "name")), group);
	/* The driver, admitted when it and 3 executors of 2 cores all fit. */
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(pg, "spec"), "minMember")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(pg, "spec"), "minResources"),
							   "cpu")), "8");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(pg, "spec"), "queue")), "spark");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(pod, "spec"), "schedulerName")), "volcano");
	ck_assert_str_eq(annotation_of(pod, "scheduling.k8s.io/group-name"), group);
	cm = json_array_get(objs, 2);
	tpl = json_string_value(json_object_get(json_object_get(cm, "data"), "executor-pod-template.yaml"));
	ck_assert_msg(strstr(tpl, "\"schedulerName\": \"volcano\"") && strstr(tpl, group), "%s", tpl);
	props = json_string_value(json_object_get(json_object_get(cm, "data"), "spark.properties"));
	ck_assert_ptr_nonnull(strstr(props, "spark.kubernetes.scheduler.name=volcano\n"));
	json_decref(objs);
	router_decision_release(&dec);
	router_unref(r);

	/* The cluster's own scheduler wins over the pool's. */
	snprintf(yaml, sizeof(yaml), BATCH_POLICY, "driver-pod",
		 "    batchScheduler: {name: yunikorn, queue: root.spark}\n");
	r = policy(yaml);
	objs = manifests_for(r, &job, &dec);
	ck_assert_int_eq(json_array_size(objs), 3);
	pod = json_array_get(objs, 0);
	ck_assert_msg(validate_with_node("pod", pod, err, sizeof(err)) == 0, "pod: %s", err);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(pod, "spec"), "schedulerName")), "yunikorn");
	ck_assert_str_eq(annotation_of(pod, "yunikorn.apache.org/app-id"), job.id);
	ck_assert_str_eq(annotation_of(pod, "yunikorn.apache.org/task-group-name"), "spark-driver");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(pod, "metadata"), "labels"),
							   "queue")), "root.spark");
	tasks = json_loads(annotation_of(pod, "yunikorn.apache.org/task-groups"), 0, NULL);
	ck_assert_int_eq(json_array_size(tasks), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(tasks, 1), "minMember")), 3);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(tasks, 1), "minResource"),
							   "cpu")), "2");
	json_decref(tasks);
	tpl = json_string_value(json_object_get(json_object_get(json_array_get(objs, 2), "data"),
						"executor-pod-template.yaml"));
	ck_assert_msg(strstr(tpl, "\"yunikorn.apache.org/task-group-name\": \"spark-executor\""), "%s", tpl);
	json_decref(objs);
	router_decision_release(&dec);
	router_unref(r);

	snprintf(yaml, sizeof(yaml), BATCH_POLICY, "spark-operator", "");
	r = policy(yaml);
	objs = manifests_for(r, &job, &dec);
	ck_assert_int_eq(json_array_size(objs), 1);
	ck_assert_msg(validate_with_node("sparkapp", json_array_get(objs, 0), err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_array_get(objs, 0), "spec"),
							   "batchScheduler")), "volcano");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(json_array_get(objs, 0),
		"spec"), "batchSchedulerOptions"), "queue")), "spark");
	json_decref(objs);
	router_decision_release(&dec);
	router_unref(r);

	snprintf(yaml, sizeof(yaml), BATCH_POLICY, "driver-pod", "    batchScheduler: {name: Not A Name}\n");
	ck_assert_int_eq(gw_yaml_load_string(yaml, strlen(yaml), &doc, &marks, err), GW_OK);
	ck_assert_int_ne(router_load(doc, marks, "test.yaml", &r, err), GW_OK);
	ck_assert_msg(strstr(err, "batchScheduler.name"), "%s", err);
	json_decref(doc);
	json_decref(marks);
}
END_TEST

/* ---- end to end ---- */

static char *dir;
static struct tu_kubesim sim;
static struct tu_gateway gw;
static char config[700];

static void start_all(const char *mode, const char *sim_args, const char *extra_yaml)
{
	dir = tu_tmpdir("dispatch");
	ck_assert_ptr_nonnull(dir);
	if (sim_args && *sim_args) {
		/* Fault flags arrive as one space-separated string. */
		char copy[256], *argv[12] = {0}, *save = NULL;
		int n = 0;

		snprintf(copy, sizeof(copy), "%s", sim_args);
		for (char *t = strtok_r(copy, " ", &save); t && n < 11; t = strtok_r(NULL, " ", &save))
			argv[n++] = t;
		ck_assert_int_eq(tu_kubesim_start(&sim, dir, "sim", argv[0], argv[1], argv[2], argv[3],
						  argv[4], argv[5], argv[6], argv[7], argv[8], argv[9],
						  argv[10], NULL), 0);
	} else {
		ck_assert_int_eq(tu_kubesim_start(&sim, dir, "sim", NULL), 0);
	}
	tu_write_cluster_config(dir, &sim, &mode, 1, extra_yaml, config, sizeof(config));
	ck_assert_msg(tu_gateway_start(&gw, dir, "--config", config, NULL) == 0, "gateway did not start");
}

static void stop_all(void)
{
	/* Stopped already by a test that restarts it, or a clean exit (under
	 * make test-valgrind: no memory errors or leaks). */
	int status = gw.pid > 0 ? tu_gateway_signal(&gw, SIGTERM) : 0;

	tu_kubesim_stop(&sim);
	tu_rmtree(dir);
	free(dir);
	ck_assert_int_eq(status, 0);
}

#define QUICK "dispatch:\n  image_pull_timeout_seconds: 1\n  pending_timeout_seconds: 1\n  retry_base_ms: 50\n  max_attempts: 30\n"

static void start_driver_pod(void)
{
	start_all("driver-pod", NULL, QUICK);
}

#define HISTORY_SERVER "http://spark-history.example:18080"

static void start_operator(void)
{
	start_all("spark-operator", "--operator", QUICK "spark:\n  history_server: " HISTORY_SERVER "/\n");
}

/* The driver waits for its PodGroup, made just after it, a moment that
 * under valgrind outlasts QUICK's pending timeout: a longer one here. */
static void start_volcano(void)
{
	start_all("driver-pod", NULL,
		  "dispatch:\n  pending_timeout_seconds: 60\n  retry_base_ms: 50\n"
		  "pools:\n  - name: batch\n    clusters: [{name: sim, weight: 1}]\n"
		  "    batchScheduler: {name: volcano, queue: spark}\n");
}

static void start_faulty(void)
{
	start_all("driver-pod",
		  "--error-rate 0.2 --throttle-qps 200 --latency-ms 20 --drop-watch-after 1 --compact-every 2",
		  QUICK);
}

/* Submits a Python job with extra Spark conf ("k":"v" pairs as JSON text). */
static char *submit(const char *name, const char *conf, const char *driver)
{
	char body[2048];

	snprintf(body, sizeof(body),
		 "{\"name\":\"%s\",\"labels\":{\"team\":\"dispatch\"},\"spec\":{\"type\":\"Python\","
		 "\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"local:///opt/pi.py\","
		 "\"sparkConf\":{%s},\"driver\":%s,\"executor\":{\"instances\":1,\"cores\":1,\"memory\":\"1g\"}}}",
		 name, conf, driver ? driver : "{\"cores\":1,\"memory\":\"1g\"}");
	return tu_submit(gw.base, body);
}

/* How many objects of resource (pods, sparkapplications) carry the job's
 * label, with spark-role=driver for pods. */
static int count_on_cluster(const char *resource, const char *id)
{
	char url[512];
	json_t *list;
	int n;

	if (!strcmp(resource, "pods"))
		snprintf(url, sizeof(url), "%s/api/v1/pods?labelSelector=sparkgw%%2Fjob-id%%3D%s,spark-role%%3Ddriver",
			 sim.base, id);
	else if (!strcmp(resource, "podgroups"))
		snprintf(url, sizeof(url), "%s/apis/scheduling.volcano.sh/v1beta1/podgroups?labelSelector=sparkgw%%2Fjob-id%%3D%s",
			 sim.base, id);
	else
		snprintf(url, sizeof(url), "%s/apis/sparkoperator.k8s.io/v1beta2/sparkapplications?labelSelector=sparkgw%%2Fjob-id%%3D%s",
			 sim.base, id);
	list = tu_get_json(url);
	ck_assert_ptr_nonnull(list);
	n = (int)json_array_size(json_object_get(list, "items"));
	json_decref(list);
	return n;
}

/* The job's service and config map exist and are owned by its driver pod,
 * by uid: Kubernetes collects an object whose owner's uid does not match. */
static void assert_owned_by_driver(const char *id)
{
	static const char *const owned[] = {"services", "configmaps"};
	char url[512];
	json_t *pods, *list;
	const char *uid;

	snprintf(url, sizeof(url), "%s/api/v1/pods?labelSelector=sparkgw%%2Fjob-id%%3D%s,spark-role%%3Ddriver",
		 sim.base, id);
	pods = tu_get_json(url);
	uid = json_string_value(json_object_get(json_object_get(json_array_get(json_object_get(pods, "items"), 0),
								"metadata"), "uid"));
	ck_assert_ptr_nonnull(uid);
	for (size_t i = 0; i < 2; i++) {
		json_t *meta;

		snprintf(url, sizeof(url), "%s/api/v1/%s?labelSelector=sparkgw%%2Fjob-id%%3D%s", sim.base, owned[i], id);
		list = tu_get_json(url);
		ck_assert_int_eq(json_array_size(json_object_get(list, "items")), 1);
		meta = json_object_get(json_array_get(json_object_get(list, "items"), 0), "metadata");
		ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(meta, "ownerReferences"), 0),
								   "uid")), uid);
		json_decref(list);
	}
	json_decref(pods);
}

static void assert_events(const char *id, const char *const *states)
{
	char url[256];
	json_t *ev, *items;
	size_t i = 0;

	snprintf(url, sizeof(url), "%s/api/v1/jobs/%s/events", gw.base, id);
	ev = tu_get_json(url);
	items = json_object_get(ev, "items");
	for (; states[i]; i++)
		ck_assert_msg(i < json_array_size(items) &&
				      !strcmp(json_string_value(json_object_get(json_array_get(items, i), "state")), states[i]),
			      "event %zu of %s should be %s", i, id, states[i]);
	ck_assert_int_eq(json_array_size(items), i);
	json_decref(ev);
}

START_TEST(test_driver_pod_success)
{
	static const char *const path[] = {"QUEUED", "DISPATCHING", "SUBMITTED", "RUNNING", "SUCCEEDED", NULL};
	char *id = submit("ok", "\"spark.kubesim.durationSeconds\":\"1\"", NULL);
	json_t *job = tu_wait_job(gw.base, id, NULL, 20000);
	struct tu_response r;
	char u[300];

	ck_assert_ptr_nonnull(job);
	ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "SUCCEEDED");
	ck_assert_schema("Job", job);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(job, "placement"), "cluster")), "sim");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(job, "placement"), "namespace")), "spark-jobs");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(json_object_get(job, "driver"), "podName")), id));
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(json_object_get(job, "driver"), "sparkUI")), ":4040"));
	assert_events(id, path);
	ck_assert_int_eq(count_on_cluster("pods", id), 1);
	assert_owned_by_driver(id);

	snprintf(u, sizeof(u), "%s/api/v1/jobs/%s/logs?tailLines=2", gw.base, id);
	ck_assert_int_eq(tu_http("GET", u, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "Successfully stopped SparkContext"));
	ck_assert_ptr_null(strstr(r.body, "Running Spark version")); /* only the tail */
	tu_response_release(&r);
	json_decref(job);
	free(id);
}
END_TEST

/* Another tenant's pods, one of cores cores bound to each of the 4 nodes
 * (0: removed again, and waited for): the scheduler counts them, the gateway cannot see
 * them, as on a shared cluster. Critical ones, or drivers would preempt
 * them. */
static void occupy_nodes(int cores)
{
	for (int i = 0; i < 4; i++) {
		char url[300], body[600];
		struct tu_response r;

		if (cores) {
			static const char *const json[] = {"Content-Type: application/json", NULL};

			snprintf(url, sizeof(url), "%s/api/v1/namespaces/default/pods", sim.base);
			snprintf(body, sizeof(body),
				 "{\"metadata\":{\"name\":\"tenant-%d\"},\"spec\":{\"nodeName\":\"sim-node-%d\","
				 "\"priorityClassName\":\"system-cluster-critical\","
				 "\"containers\":[{\"name\":\"c\",\"image\":\"busybox\",\"resources\":"
				 "{\"requests\":{\"cpu\":\"%d\",\"memory\":\"1Gi\"}}}]}}", i, i, cores);
			ck_assert_int_eq(tu_http("POST", url, json, body, strlen(body), &r), 0);
			ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
		} else {
			snprintf(url, sizeof(url), "%s/api/v1/namespaces/default/pods/tenant-%d", sim.base, i);
			ck_assert_int_eq(tu_http("DELETE", url, NULL, NULL, 0, &r), 0);
			ck_assert_int_eq(r.status, 200);
			/* A bound pod terminates first, as on a kubelet: the name
			 * is free once it is gone. */
			for (int t = 0; t < 200 && r.status != 404; t++) {
				tu_response_release(&r);
				usleep(25000);
				ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), 0);
			}
			ck_assert_int_eq(r.status, 404);
		}
		tu_response_release(&r);
	}
}

static void expect_failure(const char *conf, const char *driver, const char *reason,
			   const char *message_part)
{
	char *id = submit("fails", conf, driver);
	json_t *job = tu_wait_job(gw.base, id, NULL, 20000);

	ck_assert_ptr_nonnull(job);
	ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "FAILED");
	ck_assert_str_eq(json_string_value(json_object_get(job, "reason")), reason);
	if (message_part)
		ck_assert_msg(strstr(json_string_value(json_object_get(job, "message")), message_part) != NULL,
			      "message: %s", json_string_value(json_object_get(job, "message")));
	json_decref(job);
	free(id);
}

START_TEST(test_driver_pod_exit_code)
{
	expect_failure("\"spark.kubesim.durationSeconds\":\"1\",\"spark.kubesim.exitCode\":\"3\"", NULL,
		       "NonZeroExitCode", "code 3");
}
END_TEST

START_TEST(test_driver_pod_oom)
{
	expect_failure("\"spark.kubesim.durationSeconds\":\"1\",\"spark.kubesim.oom\":\"true\"", NULL,
		       "OOMKilled", "137");
}
END_TEST

/* A job whose image never pulls fails ErrImagePull, and what it made
 * (its driver pod, and its SparkApplication when one is named) leaves
 * the namespace: a driver that can never start holds no room. */
static void image_pull_fails(const char *app_resource)
{
	char *id = submit("nopull", "\"spark.kubesim.imagePullFail\":\"true\"", NULL);
	json_t *job = tu_wait_job(gw.base, id, NULL, 20000);

	ck_assert_ptr_nonnull(job);
	ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "FAILED");
	ck_assert_str_eq(json_string_value(json_object_get(job, "reason")), "ErrImagePull");
	for (int i = 0; i < 100 && (count_on_cluster("pods", id) || (app_resource && count_on_cluster(app_resource, id)));
	     i++)
		usleep(50000);
	ck_assert_int_eq(count_on_cluster("pods", id), 0);
	if (app_resource)
		ck_assert_int_eq(count_on_cluster(app_resource, id), 0);
	json_decref(job);
	free(id);
}

START_TEST(test_driver_pod_image_pull_failure)
{
	image_pull_fails(NULL);
}
END_TEST

START_TEST(test_driver_pod_unschedulable)
{
	occupy_nodes(15);
	expect_failure("\"spark.kubesim.durationSeconds\":\"1\"", "{\"cores\":4,\"memory\":\"1g\"}",
		       "Unschedulable", "Insufficient cpu");
	occupy_nodes(0);
}
END_TEST

/* Executors the scheduler cannot place: the running job says why, with
 * the scheduler's message, in the API and the CLI; once they are gone the
 * reason goes too (and the ETag changes with it). */
START_TEST(test_pending_pods_say_why)
{
	char body[1024], url[300], cmd[600], *out;
	const char *why = NULL;
	json_t *job = NULL;
	char *id;
	FILE *p;
	size_t n;

	snprintf(body, sizeof(body),
		 "{\"name\":\"wide\",\"labels\":{\"team\":\"dispatch\"},\"spec\":{\"type\":\"Python\","
		 "\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"local:///opt/pi.py\","
		 "\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"4\"},"
		 "\"executor\":{\"instances\":2,\"cores\":8,\"memory\":\"1g\"}}}");
	occupy_nodes(10);
	id = tu_submit(gw.base, body);
	json_decref(tu_wait_job(gw.base, id, "RUNNING", 20000));
	snprintf(url, sizeof(url), "%s/api/v1/jobs/%s", gw.base, id);
	for (int i = 0; i < 100 && !why; i++) {
		json_decref(job);
		job = tu_get_json(url);
		why = json_string_value(json_object_get(job, "waitReason"));
		if (!why)
			usleep(50000);
	}
	ck_assert_msg(why, "no waitReason on a job whose executors cannot be placed");
	ck_assert_msg(strstr(why, "Unschedulable: 0/4 nodes are available: 4 Insufficient cpu.") &&
		      strstr(why, "-exec-") && strstr(why, "and 1 more"), "waitReason: %s", why);
	ck_assert_schema("Job", job);
	json_decref(job);

	snprintf(cmd, sizeof(cmd), "%s get %s -s %s", tu_gateway_bin(), id, gw.base);
	p = popen(cmd, "r");
	out = calloc(1, 8192);
	n = fread(out, 1, 8191, p);
	out[n] = '\0';
	pclose(p);
	ck_assert_msg(strstr(out, "Waiting:") && strstr(out, "Insufficient cpu"), "sparkgw get:\n%s", out);
	free(out);

	job = tu_wait_job(gw.base, id, "SUCCEEDED", 20000);
	ck_assert_ptr_nonnull(job);
	json_decref(job);
	job = tu_get_json(url);
	ck_assert_ptr_null(json_object_get(job, "waitReason"));
	json_decref(job);
	free(id);
	occupy_nodes(0);
}
END_TEST

static void cancel_running(const char *resource)
{
	char *id = submit("long", "\"spark.kubesim.durationSeconds\":\"60\"", NULL);
	json_t *job = tu_wait_job(gw.base, id, "RUNNING", 20000);
	struct tu_response r;
	char u[256];

	ck_assert_ptr_nonnull(job);
	json_decref(job);
	ck_assert_int_eq(count_on_cluster(resource, id), 1);
	snprintf(u, sizeof(u), "%s/api/v1/jobs/%s", gw.base, id);
	ck_assert_int_eq(tu_http("DELETE", u, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 202);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "state")), "CANCELLING");
	tu_response_release(&r);
	job = tu_wait_job(gw.base, id, "CANCELLED", 20000);
	ck_assert_ptr_nonnull(job);
	ck_assert_int_eq(count_on_cluster(resource, id), 0);
	json_decref(job);
	free(id);
}

/* Cancels the job and waits until it is CANCELLED. */
static void cancel_and_wait(const char *id)
{
	struct tu_response r;
	char url[300];
	json_t *job;

	snprintf(url, sizeof(url), "%s/api/v1/jobs/%s", gw.base, id);
	ck_assert_int_eq(tu_http("DELETE", url, NULL, NULL, 0, &r), 0);
	tu_response_release(&r);
	job = tu_wait_job(gw.base, id, "CANCELLED", 20000);
	ck_assert_ptr_nonnull(job);
	json_decref(job);
}

static struct tu_response get_ui(const char *id, const char *rest)
{
	struct tu_response r;
	char u[400];

	snprintf(u, sizeof(u), "%s/api/v1/jobs/%s/ui%s", gw.base, id, rest);
	ck_assert_int_eq(tu_http("GET", u, NULL, NULL, 0, &r), 0);
	return r;
}

/* A running job's Spark UI comes through the gateway: its root redirects
 * to its jobs page, whose links and scripts' root are the gateway's and
 * not the API server proxy's, and its REST API names the application the
 * job shows; once the job ends, the UI is the History Server's (at
 * history, when given) or gone. */
static void spark_ui_through_gateway(const char *history)
{
	char *id = submit("ui", "\"spark.kubesim.durationSeconds\":\"60\"", NULL), want[300], app[128];
	json_t *job = tu_wait_job(gw.base, id, "RUNNING", 20000);
	struct tu_response r;

	ck_assert_ptr_nonnull(job);
	snprintf(want, sizeof(want), "/api/v1/jobs/%s/ui/", id);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(job, "links"), "ui")), want);
	/* The driver's own name for the application: the gateway's spark.app.id
	 * for a driver pod, spark-submit's "spark-…" under the operator. */
	snprintf(app, sizeof(app), "%s",
		 json_string_value(json_object_get(json_object_get(job, "driver"), "sparkApplicationId")));
	if (history)
		ck_assert_msg(!strncmp(app, "spark-", 6) && strlen(app) == 38, "%s", app);
	else
		ck_assert_str_eq(app, id);
	json_decref(job);
	r = get_ui(id, "");
	ck_assert_int_eq(r.status, 302);
	ck_assert_str_eq(r.location, want);
	tu_response_release(&r);
	r = get_ui(id, "/");
	ck_assert_msg(r.status == 302, "%ld %s", r.status, r.body);
	snprintf(want, sizeof(want), "/api/v1/jobs/%s/ui/jobs/", id);
	ck_assert_str_eq(r.location, want);
	tu_response_release(&r);
	r = get_ui(id, "/jobs/");
	ck_assert_msg(r.status == 200 && !strncmp(r.content_type, "text/html", 9), "%ld %s", r.status, r.body);
	snprintf(want, sizeof(want), "href=\"/api/v1/jobs/%s/ui/executors/\"", id);
	ck_assert_msg(strstr(r.body, want), "%s", r.body);
	snprintf(want, sizeof(want), "setUIRoot('/api/v1/jobs/%s/ui')", id);
	ck_assert_msg(strstr(r.body, want) && !strstr(r.body, "/proxy"), "%s", r.body);
	tu_response_release(&r);
	r = get_ui(id, "/api/v1/applications");
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(r.json, 0), "id")), app);
	tu_response_release(&r);
	r = get_ui(id, "/no/such/page");
	ck_assert_int_eq(r.status, 404);
	tu_response_release(&r);

	cancel_and_wait(id);
	r = get_ui(id, "/jobs/");
	if (history) {
		snprintf(want, sizeof(want), "%s/history/%s/jobs/", history, app);
		ck_assert_int_eq(r.status, 302);
		ck_assert_str_eq(r.location, want);
	} else {
		ck_assert_int_eq(r.status, 404);
		ck_assert_ptr_nonnull(strstr(r.body, "spark.history_server"));
	}
	tu_response_release(&r);
	free(id);
}

START_TEST(test_spark_ui_driver_pod)
{
	spark_ui_through_gateway(NULL);
}
END_TEST

START_TEST(test_spark_ui_operator)
{
	spark_ui_through_gateway(HISTORY_SERVER);
}
END_TEST

START_TEST(test_driver_pod_cancel_while_running)
{
	cancel_running("pods");
}
END_TEST

START_TEST(test_logs_follow_until_the_driver_ends)
{
	char *id = submit("follow", "\"spark.kubesim.durationSeconds\":\"2\"", NULL), u[300];
	json_t *job = tu_wait_job(gw.base, id, "RUNNING", 20000);
	struct tu_response r;
	int64_t t0;

	ck_assert_ptr_nonnull(job);
	json_decref(job);
	snprintf(u, sizeof(u), "%s/api/v1/jobs/%s/logs?follow=true", gw.base, id);
	t0 = gw_now_ms();
	ck_assert_int_eq(tu_http("GET", u, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 200);
	/* The stream lasted as long as the driver, and holds its whole log. */
	ck_assert_int_ge(gw_now_ms() - t0, 1000);
	ck_assert_ptr_nonnull(strstr(r.body, "Running Spark version"));
	ck_assert_ptr_nonnull(strstr(r.body, "Successfully stopped SparkContext"));
	tu_response_release(&r);

	snprintf(u, sizeof(u), "%s/api/v1/jobs/%s/logs?follow=maybe", gw.base, id);
	ck_assert_int_eq(tu_http("GET", u, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 400);
	tu_response_release(&r);
	free(id);
}
END_TEST

static void *follow_forever(void *arg)
{
	struct tu_response *r = arg;
	char *id = (char *)r->body, u[300];

	snprintf(u, sizeof(u), "%s/api/v1/jobs/%s/logs?follow=true", gw.base, id);
	free(id);
	tu_http("GET", u, NULL, NULL, 0, r);
	return NULL;
}

/* A log stream open at shutdown ends; it does not hold the gateway up. */
START_TEST(test_shutdown_with_a_follower)
{
	char *id = submit("endless", "\"spark.kubesim.durationSeconds\":\"120\"", NULL);
	json_t *job = tu_wait_job(gw.base, id, "RUNNING", 20000);
	struct tu_response r = {.body = id};
	pthread_t th;
	int64_t t0;

	ck_assert_ptr_nonnull(job);
	json_decref(job);
	pthread_create(&th, NULL, follow_forever, &r);
	usleep(300000);
	t0 = gw_now_ms();
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	ck_assert_int_lt(gw_now_ms() - t0, 5000);
	pthread_join(th, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "Running Spark version"));
	tu_response_release(&r);
}
END_TEST

/* Runs kubectl against the simulated cluster; returns its output. */
static char *kubectl(const char *args)
{
	char cmd[1024], *out = calloc(1, 65536);
	FILE *p;
	size_t n;

	snprintf(cmd, sizeof(cmd), "kubectl --kubeconfig %s/kubeconfig --context sim %s 2>&1", dir, args);
	p = popen(cmd, "r");
	n = p ? fread(out, 1, 65535, p) : 0;
	out[n] = '\0';
	if (p)
		pclose(p);
	return out;
}

START_TEST(test_kubectl_against_kubesim)
{
	char *id = submit("kubectl", "\"spark.kubesim.durationSeconds\":\"1\"", NULL), args[256], *out;
	json_t *job = tu_wait_job(gw.base, id, "SUCCEEDED", 20000);
	const char *pod;

	ck_assert_ptr_nonnull(job);
	pod = json_string_value(json_object_get(json_object_get(job, "driver"), "podName"));
	out = kubectl("get pods -A");
	ck_assert_msg(strstr(out, pod) && strstr(out, "spark-jobs"), "get pods -A: %s", out);
	/* The server prints the table, as an API server does: the driver ended. */
	ck_assert_msg(strstr(out, "READY") && strstr(out, "STATUS") && strstr(out, "Completed"),
		      "get pods -A: %s", out);
	free(out);
	snprintf(args, sizeof(args), "get pod -n spark-jobs %s -o yaml", pod);
	out = kubectl(args);
	ck_assert_msg(strstr(out, "sparkgw/job-id: ") && strstr(out, "phase: Succeeded"), "-o yaml: %s", out);
	free(out);
	snprintf(args, sizeof(args), "logs -n spark-jobs %s", pod);
	out = kubectl(args);
	ck_assert_msg(strstr(out, "INFO SparkContext: Running Spark version"), "logs: %s", out);
	free(out);
	snprintf(args, sizeof(args), "delete pod -n spark-jobs %s", pod);
	out = kubectl(args);
	ck_assert_msg(strstr(out, "deleted"), "delete: %s", out);
	free(out);
	ck_assert_int_eq(count_on_cluster("pods", id), 0);
	json_decref(job);
	free(id);
}
END_TEST

START_TEST(test_operator_success_and_failure)
{
	char *ok = submit("app-ok", "\"spark.kubesim.durationSeconds\":\"1\"", NULL);
	char *bad = submit("app-bad", "\"spark.kubesim.durationSeconds\":\"1\",\"spark.kubesim.exitCode\":\"1\"", NULL);
	json_t *a = tu_wait_job(gw.base, ok, NULL, 20000), *b = tu_wait_job(gw.base, bad, NULL, 20000);
	char *out;

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_str_eq(json_string_value(json_object_get(a, "state")), "SUCCEEDED");
	ck_assert_str_eq(json_string_value(json_object_get(b, "state")), "FAILED");
	ck_assert_str_eq(json_string_value(json_object_get(b, "reason")), "ApplicationFailed");
	ck_assert_int_eq(count_on_cluster("sparkapplications", ok), 1);
	out = kubectl("get sparkapplications -A");
	ck_assert_msg(strstr(out, ok) && strstr(out, bad), "get sparkapplications: %s", out);
	free(out);
	json_decref(a);
	json_decref(b);
	free(ok);
	free(bad);
}
END_TEST

/* The operator leaves an application SUBMITTED while its driver pod
 * cannot start: the gateway's pending and image pull timeouts act on the
 * pod, fail the job with the scheduler's or kubelet's reason, and remove
 * the application (its driver with it). */
START_TEST(test_operator_driver_timeouts)
{
	image_pull_fails("sparkapplications");
	occupy_nodes(15);
	expect_failure("\"spark.kubesim.durationSeconds\":\"1\"", "{\"cores\":4,\"memory\":\"1g\"}",
		       "Unschedulable", "Insufficient cpu");
	occupy_nodes(0);
}
END_TEST

/* On a pool with Volcano, a job's driver goes to Volcano with a PodGroup
 * that Volcano (kubesim) admits once the whole job fits; the job runs to
 * its end, and its PodGroup goes with its driver. */
START_TEST(test_volcano_pool_runs_jobs)
{
	char *id = submit("gang", "\"spark.kubesim.durationSeconds\":\"30\"", NULL), url[400];
	json_t *job = tu_wait_job(gw.base, id, "RUNNING", 20000), *pg, *pod;

	ck_assert_ptr_nonnull(job);
	json_decref(job);
	snprintf(url, sizeof(url), "%s/apis/scheduling.volcano.sh/v1beta1/namespaces/spark-jobs/podgroups/%s-podgroup",
		 sim.base, id);
	pg = tu_get_json(url);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(pg, "spec"), "queue")), "spark");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(pg, "status"), "phase")), "Inqueue");
	json_decref(pg);
	snprintf(url, sizeof(url), "%s/api/v1/namespaces/spark-jobs/pods/%s-driver", sim.base, id);
	pod = tu_get_json(url);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(pod, "spec"), "schedulerName")), "volcano");
	json_decref(pod);
	cancel_and_wait(id);
	for (int i = 0; i < 100 && count_on_cluster("podgroups", id); i++)
		usleep(50000);
	ck_assert_int_eq(count_on_cluster("podgroups", id), 0);
	free(id);
}
END_TEST

START_TEST(test_operator_cancel)
{
	cancel_running("sparkapplications");
}
END_TEST

#define FAULTY_JOBS 12

START_TEST(test_faults_converge_exactly_once)
{
	char *ids[FAULTY_JOBS];

	for (int i = 0; i < FAULTY_JOBS; i++)
		ids[i] = submit("faulty", "\"spark.kubesim.durationSeconds\":\"1\"", NULL);
	for (int i = 0; i < FAULTY_JOBS; i++) {
		json_t *job = tu_wait_job(gw.base, ids[i], NULL, 60000);

		ck_assert_msg(job != NULL, "job %d never finished", i);
		ck_assert_msg(!strcmp(json_string_value(json_object_get(job, "state")), "SUCCEEDED"),
			      "job %d: %s %s", i, json_string_value(json_object_get(job, "state")),
			      json_string_value(json_object_get(job, "message")));
		ck_assert_int_eq(count_on_cluster("pods", ids[i]), 1);
		json_decref(job);
		free(ids[i]);
	}
}
END_TEST

/* kill -9 while the create is on the wire: kubesim has made the pod but
 * answers only a second later. The restarted gateway takes the job over
 * once its lease expires, meets 409 AlreadyExists and adopts the pod. */
START_TEST(test_kill_9_mid_dispatch)
{
	char *id, u[300];
	json_t *job;
	int seen = 0;

	tu_gateway_signal(&gw, SIGTERM);
	tu_kubesim_stop(&sim);
	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "sim", "--latency-ms", "700", NULL), 0);
	{
		const char *mode = "driver-pod";

		tu_write_cluster_config(dir, &sim, &mode, 1, "dispatch:\n  lease_seconds: 1\n", config, sizeof(config));
	}
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", config, NULL), 0);
	id = submit("crash", "\"spark.kubesim.durationSeconds\":\"2\"", NULL);
	snprintf(u, sizeof(u), "%s/api/v1/namespaces/spark-jobs/pods/%s-driver", sim.base, id);
	for (int i = 0; i < 200 && !seen; i++) {
		struct tu_response r;

		if (tu_http("GET", u, NULL, NULL, 0, &r) == 0 && r.status == 200)
			seen = 1;
		tu_response_release(&r);
	}
	ck_assert_msg(seen, "the driver pod never appeared");
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGKILL), 128 + SIGKILL);

	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", config, NULL), 0);
	job = tu_wait_job(gw.base, id, NULL, 30000);
	ck_assert_ptr_nonnull(job);
	ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "SUCCEEDED");
	ck_assert_int_eq(count_on_cluster("pods", id), 1);
	json_decref(job);
	free(id);
}
END_TEST

/* Stopped while a job runs, the gateway catches up from a re-list. */
START_TEST(test_restart_catches_up)
{
	char *id = submit("catchup", "\"spark.kubesim.durationSeconds\":\"1\"", NULL);
	json_t *job = tu_wait_job(gw.base, id, "RUNNING", 20000);
	char url[300];

	ck_assert_ptr_nonnull(job);
	json_decref(job);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	/* The driver finishes while no gateway watches. */
	snprintf(url, sizeof(url), "%s/api/v1/namespaces/spark-jobs/pods/%s-driver", sim.base, id);
	for (int i = 0; i < 100; i++) {
		json_t *pod = tu_get_json(url);
		bool done = !strcmp(json_string_value(json_object_get(json_object_get(pod, "status"), "phase")) ?
					    json_string_value(json_object_get(json_object_get(pod, "status"), "phase")) : "",
				    "Succeeded");

		json_decref(pod);
		if (done)
			break;
		usleep(50000);
	}
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", config, NULL), 0);
	job = tu_wait_job(gw.base, id, "SUCCEEDED", 10000);
	ck_assert_ptr_nonnull(job);
	json_decref(job);
	free(id);
}
END_TEST

Suite *dispatch_suite(void)
{
	Suite *s = suite_create("dispatch");
	TCase *manifests = tcase_create("manifests");
	TCase *pods = tcase_create("driver-pod");
	TCase *op = tcase_create("spark-operator");
	TCase *volcano = tcase_create("volcano");
	TCase *faults = tcase_create("faults");
	TCase *restarts = tcase_create("restarts");

	tcase_set_timeout(manifests, 30);
	tcase_add_test(manifests, test_manifests_match_schemas);
	tcase_add_test(manifests, test_batch_scheduler_manifests);
	suite_add_tcase(s, manifests);

	tcase_add_unchecked_fixture(pods, start_driver_pod, stop_all);
	tcase_set_timeout(pods, 60);
	tcase_add_test(pods, test_driver_pod_success);
	tcase_add_test(pods, test_driver_pod_exit_code);
	tcase_add_test(pods, test_driver_pod_oom);
	tcase_add_test(pods, test_driver_pod_image_pull_failure);
	tcase_add_test(pods, test_driver_pod_unschedulable);
	tcase_add_test(pods, test_pending_pods_say_why);
	tcase_add_test(pods, test_driver_pod_cancel_while_running);
	tcase_add_test(pods, test_logs_follow_until_the_driver_ends);
	tcase_add_test(pods, test_kubectl_against_kubesim);
	tcase_add_test(pods, test_spark_ui_driver_pod);
	suite_add_tcase(s, pods);

	tcase_add_unchecked_fixture(op, start_operator, stop_all);
	tcase_set_timeout(op, 60);
	tcase_add_test(op, test_operator_success_and_failure);
	tcase_add_test(op, test_operator_cancel);
	tcase_add_test(op, test_operator_driver_timeouts);
	tcase_add_test(op, test_spark_ui_operator);
	suite_add_tcase(s, op);

	tcase_add_unchecked_fixture(volcano, start_volcano, stop_all);
	tcase_set_timeout(volcano, 60);
	tcase_add_test(volcano, test_volcano_pool_runs_jobs);
	suite_add_tcase(s, volcano);

	/* These tests restart processes, so each starts its own. */
	tcase_add_checked_fixture(faults, start_faulty, stop_all);
	tcase_set_timeout(faults, 120);
	tcase_add_test(faults, test_faults_converge_exactly_once);
	tcase_add_test(faults, test_restart_catches_up);
	tcase_add_test(faults, test_kill_9_mid_dispatch);
	suite_add_tcase(s, faults);

	tcase_add_checked_fixture(restarts, start_driver_pod, stop_all);
	tcase_set_timeout(restarts, 60);
	tcase_add_test(restarts, test_shutdown_with_a_follower);
	suite_add_tcase(s, restarts);
	return s;
}
