/* kubesim on the wire: what a Kubernetes client relies on. Discovery,
 * Status errors, optimistic concurrency, paging, selectors, watches,
 * deletion propagation, throttling and tokens; and the objects it serves
 * validate against the Kubernetes schemas. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testutil.h"

static char *dir;
static struct tu_kubesim sim;

static void setup(void)
{
	dir = tu_tmpdir("kubesim");
	ck_assert_ptr_nonnull(dir);
	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "fid", "--operator", NULL), 0);
}

static void teardown(void)
{
	tu_kubesim_stop(&sim);
	tu_rmtree(dir);
	free(dir);
}

static struct tu_response req(const char *method, const char *path, const char *body)
{
	static const char *const json[] = {"Content-Type: application/json", NULL};
	static const char *const merge_patch[] = {"Content-Type: application/merge-patch+json", NULL};
	struct tu_response r;
	char url[600];

	snprintf(url, sizeof(url), "%s%s", sim.base, path);
	ck_assert_int_eq(tu_http(method, url, !body ? NULL : strcmp(method, "PATCH") ? json : merge_patch, body,
				 body ? strlen(body) : 0, &r), 0);
	return r;
}

static void assert_status(struct tu_response *r, long code, const char *reason)
{
	ck_assert_msg(r->status == code, "want %ld, got %ld: %s", code, r->status, r->body);
	ck_assert_str_eq(json_string_value(json_object_get(r->json, "kind")), "Status");
	ck_assert_str_eq(json_string_value(json_object_get(r->json, "status")), "Failure");
	ck_assert_str_eq(json_string_value(json_object_get(r->json, "reason")), reason);
	ck_assert_int_eq(json_integer_value(json_object_get(r->json, "code")), code);
}

static const char *pod_json(const char *name, const char *labels)
{
	static char body[1024];

	snprintf(body, sizeof(body),
		 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\",\"labels\":%s},"
		 "\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"busybox\","
		 "\"resources\":{\"requests\":{\"cpu\":\"100m\",\"memory\":\"64Mi\"}}}]}}",
		 name, labels ? labels : "{}");
	return body;
}

START_TEST(test_discovery)
{
	struct tu_response r = req("GET", "/version", NULL);
	size_t i;
	json_t *res;
	bool pods = false, operator_group = false;

	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(json_string_value(json_object_get(r.json, "gitVersion")));
	tu_response_release(&r);
	r = req("GET", "/api", NULL);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "kind")), "APIVersions");
	tu_response_release(&r);
	r = req("GET", "/apis", NULL);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "kind")), "APIGroupList");
	json_array_foreach(json_object_get(r.json, "groups"), i, res)
		operator_group = operator_group ||
				 !strcmp(json_string_value(json_object_get(res, "name")), "sparkoperator.k8s.io");
	ck_assert(operator_group);
	tu_response_release(&r);
	r = req("GET", "/api/v1", NULL);
	json_array_foreach(json_object_get(r.json, "resources"), i, res)
		pods = pods || (!strcmp(json_string_value(json_object_get(res, "name")), "pods") &&
				json_is_true(json_object_get(res, "namespaced")));
	ck_assert(pods);
	tu_response_release(&r);
	r = req("GET", "/apis/sparkoperator.k8s.io/v1beta2", NULL);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "groupVersion")), "sparkoperator.k8s.io/v1beta2");
	tu_response_release(&r);
}
END_TEST

START_TEST(test_status_errors)
{
	struct tu_response r = req("POST", "/api/v1/namespaces/spark-jobs/pods", pod_json("p1", NULL));

	ck_assert_int_eq(r.status, 201);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "status"), "phase")), "Pending");
	tu_response_release(&r);
	r = req("POST", "/api/v1/namespaces/spark-jobs/pods", pod_json("p1", NULL));
	assert_status(&r, 409, "AlreadyExists");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "details"), "name")), "p1");
	tu_response_release(&r);
	r = req("POST", "/api/v1/namespaces/spark-jobs/pods", pod_json("Bad_Name", NULL));
	assert_status(&r, 422, "Invalid");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(
				 json_object_get(r.json, "details"), "causes"), 0), "field")), "metadata.name");
	tu_response_release(&r);
	r = req("POST", "/api/v1/namespaces/nowhere/pods", pod_json("p2", NULL));
	assert_status(&r, 404, "NotFound");
	tu_response_release(&r);
	r = req("GET", "/api/v1/namespaces/spark-jobs/pods/none", NULL);
	assert_status(&r, 404, "NotFound");
	tu_response_release(&r);
	r = req("POST", "/api/v1/namespaces/spark-jobs/pods",
		"{\"metadata\":{\"name\":\"p3\"},\"spec\":{\"containers\":[]}}");
	assert_status(&r, 422, "Invalid");
	tu_response_release(&r);
	r = req("GET", "/api/v1/namespaces/spark-jobs/widgets", NULL);
	assert_status(&r, 404, "NotFound");
	tu_response_release(&r);
}
END_TEST

START_TEST(test_optimistic_concurrency)
{
	struct tu_response r = req("POST", "/api/v1/namespaces/spark-jobs/configmaps",
				   "{\"metadata\":{\"name\":\"cm\"},\"data\":{\"a\":\"1\"}}");
	char body[512];
	const char *rv0;
	char rv[32];

	ck_assert_int_eq(r.status, 201);
	rv0 = json_string_value(json_object_get(json_object_get(r.json, "metadata"), "resourceVersion"));
	snprintf(rv, sizeof(rv), "%s", rv0);
	tu_response_release(&r);
	snprintf(body, sizeof(body), "{\"metadata\":{\"name\":\"cm\",\"resourceVersion\":\"%s\"},\"data\":{\"a\":\"2\"}}", rv);
	r = req("PUT", "/api/v1/namespaces/spark-jobs/configmaps/cm", body);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_ne(json_string_value(json_object_get(json_object_get(r.json, "metadata"), "resourceVersion")), rv);
	tu_response_release(&r);
	/* The same, stale version again: Conflict. */
	r = req("PUT", "/api/v1/namespaces/spark-jobs/configmaps/cm", body);
	assert_status(&r, 409, "Conflict");
	tu_response_release(&r);
	r = req("PATCH", "/api/v1/namespaces/spark-jobs/configmaps/cm", "{\"data\":{\"b\":\"3\",\"a\":null}}");
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "data"), "b")), "3");
	ck_assert_ptr_null(json_object_get(json_object_get(r.json, "data"), "a"));
	tu_response_release(&r);
	{
		/* A patch says which kind it is, as the API server requires. */
		static const char *const plain_json[] = {"Content-Type: application/json", NULL};
		char url[600];

		snprintf(url, sizeof(url), "%s/api/v1/namespaces/spark-jobs/configmaps/cm", sim.base);
		ck_assert_int_eq(tu_http("PATCH", url, plain_json, "{}", 2, &r), 0);
		assert_status(&r, 415, "UnsupportedMediaType");
		tu_response_release(&r);
	}
}
END_TEST

START_TEST(test_paging_and_selectors)
{
	struct tu_response r;
	char path[600];
	const char *cont;
	int total = 0;

	for (int i = 0; i < 5; i++) {
		char name[16];

		snprintf(name, sizeof(name), "pod-%d", i);
		r = req("POST", "/api/v1/namespaces/spark-jobs/pods",
			pod_json(name, i % 2 ? "{\"role\":\"odd\"}" : "{\"role\":\"even\"}"));
		ck_assert_int_eq(r.status, 201);
		tu_response_release(&r);
	}
	r = req("GET", "/api/v1/namespaces/spark-jobs/pods?limit=2", NULL);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "kind")), "PodList");
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r.json, "metadata"), "remainingItemCount")), 3);
	for (;;) {
		total += (int)json_array_size(json_object_get(r.json, "items"));
		cont = json_string_value(json_object_get(json_object_get(r.json, "metadata"), "continue"));
		if (!cont)
			break;
		snprintf(path, sizeof(path), "/api/v1/namespaces/spark-jobs/pods?limit=2&continue=%s", cont);
		tu_response_release(&r);
		r = req("GET", path, NULL);
	}
	tu_response_release(&r);
	ck_assert_int_eq(total, 5);
	r = req("GET", "/api/v1/pods?labelSelector=role%3Dodd", NULL);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 2);
	tu_response_release(&r);
	r = req("GET", "/api/v1/namespaces/spark-jobs/pods?fieldSelector=metadata.name%3Dpod-3", NULL);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 1);
	tu_response_release(&r);
	r = req("GET", "/api/v1/pods?fieldSelector=metadata.namespace%21%3Dspark-jobs", NULL);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 0);
	tu_response_release(&r);
	r = req("GET", "/api/v1/pods?labelSelector=role+in+(", NULL);
	assert_status(&r, 400, "BadRequest");
	tu_response_release(&r);
}
END_TEST

START_TEST(test_watch_from_resource_version)
{
	struct tu_response r = req("GET", "/api/v1/namespaces/spark-jobs/configmaps", NULL);
	char path[300], rv[32];
	const char *lines;

	snprintf(rv, sizeof(rv), "%s", json_string_value(json_object_get(json_object_get(r.json, "metadata"), "resourceVersion")));
	tu_response_release(&r);
	r = req("POST", "/api/v1/namespaces/spark-jobs/configmaps", "{\"metadata\":{\"name\":\"w\"}}");
	tu_response_release(&r);
	r = req("PATCH", "/api/v1/namespaces/spark-jobs/configmaps/w", "{\"data\":{\"x\":\"y\"}}");
	tu_response_release(&r);
	r = req("DELETE", "/api/v1/namespaces/spark-jobs/configmaps/w", NULL);
	tu_response_release(&r);
	snprintf(path, sizeof(path), "/api/v1/namespaces/spark-jobs/configmaps?watch=true&resourceVersion=%s&timeoutSeconds=1", rv);
	r = req("GET", path, NULL);
	ck_assert_int_eq(r.status, 200);
	lines = r.body;
	ck_assert_ptr_nonnull(strstr(lines, "{\"type\":\"ADDED\""));
	ck_assert_ptr_nonnull(strstr(lines, "{\"type\":\"MODIFIED\""));
	ck_assert_ptr_nonnull(strstr(lines, "{\"type\":\"DELETED\""));
	ck_assert(strstr(lines, "\"ADDED\"") < strstr(lines, "\"MODIFIED\"") &&
		  strstr(lines, "\"MODIFIED\"") < strstr(lines, "\"DELETED\""));
	tu_response_release(&r);
}
END_TEST

/* A pod with a ConfigMap it owns; returns the pod's uid in uid. */
static void owner_and_dependent(const char *pod, const char *cm, char *uid, size_t len)
{
	struct tu_response r = req("POST", "/api/v1/namespaces/spark-jobs/pods", pod_json(pod, NULL));
	char body[512];

	snprintf(uid, len, "%s", json_string_value(json_object_get(json_object_get(r.json, "metadata"), "uid")));
	tu_response_release(&r);
	snprintf(body, sizeof(body),
		 "{\"metadata\":{\"name\":\"%s\",\"ownerReferences\":[{\"apiVersion\":\"v1\",\"kind\":\"Pod\","
		 "\"name\":\"%s\",\"uid\":\"%s\"}]}}", cm, pod, uid);
	r = req("POST", "/api/v1/namespaces/spark-jobs/configmaps", body);
	ck_assert_int_eq(r.status, 201);
	tu_response_release(&r);
}

static long get_status(const char *path)
{
	struct tu_response r = req("GET", path, NULL);
	long s = r.status;

	tu_response_release(&r);
	return s;
}

START_TEST(test_deletion_propagation)
{
	char uid[64];
	struct tu_response r;

	owner_and_dependent("bg", "bg-cm", uid, sizeof(uid));
	r = req("DELETE", "/api/v1/namespaces/spark-jobs/pods/bg", NULL);
	ck_assert_int_eq(r.status, 200);
	tu_response_release(&r);
	for (int i = 0; i < 50 && get_status("/api/v1/namespaces/spark-jobs/configmaps/bg-cm") == 200; i++)
		usleep(20000);
	ck_assert_int_eq(get_status("/api/v1/namespaces/spark-jobs/configmaps/bg-cm"), 404);

	owner_and_dependent("orphan", "orphan-cm", uid, sizeof(uid));
	r = req("DELETE", "/api/v1/namespaces/spark-jobs/pods/orphan", "{\"propagationPolicy\":\"Orphan\"}");
	tu_response_release(&r);
	usleep(200000);
	ck_assert_int_eq(get_status("/api/v1/namespaces/spark-jobs/pods/orphan"), 404);
	r = req("GET", "/api/v1/namespaces/spark-jobs/configmaps/orphan-cm", NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(json_array_size(json_object_get(json_object_get(r.json, "metadata"), "ownerReferences")), 0);
	tu_response_release(&r);

	owner_and_dependent("fg", "fg-cm", uid, sizeof(uid));
	r = req("DELETE", "/api/v1/namespaces/spark-jobs/pods/fg?propagationPolicy=Foreground", NULL);
	tu_response_release(&r);
	for (int i = 0; i < 50 && get_status("/api/v1/namespaces/spark-jobs/pods/fg") == 200; i++)
		usleep(20000);
	ck_assert_int_eq(get_status("/api/v1/namespaces/spark-jobs/pods/fg"), 404);
	ck_assert_int_eq(get_status("/api/v1/namespaces/spark-jobs/configmaps/fg-cm"), 404);
}
END_TEST

static int validate(const char *kind, json_t *obj, char *out, size_t outlen)
{
	return tu_validate_k8s(kind, obj, dir, out, outlen);
}

START_TEST(test_served_objects_match_schemas)
{
	struct tu_response r = req("POST", "/api/v1/namespaces/spark-jobs/pods", pod_json("served", "{\"spark-role\":\"driver\"}"));
	char out[4096];

	tu_response_release(&r);
	r = req("POST", "/apis/sparkoperator.k8s.io/v1beta2/namespaces/spark-jobs/sparkapplications",
		"{\"apiVersion\":\"sparkoperator.k8s.io/v1beta2\",\"kind\":\"SparkApplication\","
		"\"metadata\":{\"name\":\"app\"},\"spec\":{\"type\":\"Python\",\"sparkVersion\":\"3.5.1\","
		"\"mainApplicationFile\":\"local:///a.py\",\"driver\":{\"cores\":1},\"executor\":{\"instances\":1}}}");
	ck_assert_int_eq(r.status, 201);
	tu_response_release(&r);
	usleep(300000); /* scheduled, started, operated on */
	r = req("GET", "/api/v1/namespaces/spark-jobs/pods/served", NULL);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "status"), "phase")), "Running");
	ck_assert_msg(validate("pod", r.json, out, sizeof(out)) == 0, "served pod: %s", out);
	tu_response_release(&r);
	r = req("GET", "/apis/sparkoperator.k8s.io/v1beta2/namespaces/spark-jobs/sparkapplications/app", NULL);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(r.json, "status"),
								       "applicationState"), "state")), "RUNNING");
	ck_assert_msg(validate("sparkapp", r.json, out, sizeof(out)) == 0, "served sparkapp: %s", out);
	tu_response_release(&r);
	r = req("GET", "/api/v1/namespaces/spark-jobs/pods/app-driver", NULL);
	ck_assert_msg(validate("pod", r.json, out, sizeof(out)) == 0, "operator's driver: %s", out);
	tu_response_release(&r);
	r = req("GET", "/api/v1/nodes/fid-node-0", NULL);
	ck_assert_msg(validate("io.k8s.api.core.v1.Node", r.json, out, sizeof(out)) == 0, "node: %s", out);
	tu_response_release(&r);
}
END_TEST

/* The values of column name in kubectl's table text, one per row. */
static int column_values(const char *table, const char *name, char values[][64], int max)
{
	const char *header_end = strchr(table, '\n'), *at = strstr(table, name), *line;
	int n = 0;
	size_t col;

	if (!header_end || !at || at > header_end)
		return -1;
	col = (size_t)(at - table);
	for (line = header_end + 1; *line && n < max; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : "") {
		const char *eol = strchr(line, '\n') ? strchr(line, '\n') : line + strlen(line);
		size_t len = 0;

		if ((size_t)(eol - line) <= col)
			continue;
		while (line[col + len] && line[col + len] != ' ' && line[col + len] != '\n' && len < 63)
			len++;
		memcpy(values[n], line + col, len);
		values[n++][len] = '\0';
	}
	return n;
}

/* Whether a line of text starts with first and holds also. */
static bool row_with(const char *text, const char *first, const char *also)
{
	for (const char *line = text; *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : "") {
		const char *eol = strchr(line, '\n') ? strchr(line, '\n') : line + strlen(line);
		const char *hit = strstr(line, also);

		if (!strncmp(line, first, strlen(first)) && hit && hit < eol)
			return true;
	}
	return false;
}

/* kubectl's tables come from the server as a real API server prints
 * them: pods -o wide with each pod's own IP and its node, nodes, events,
 * services and the operator's SparkApplication columns; get -w shows a
 * new pod's STATUS changes. */
START_TEST(test_kubectl_tables)
{
	char values[8][64], *out;
	int status, n;
	FILE *watch;
	size_t got;

	for (int i = 0; i < 3; i++) {
		char name[16];
		struct tu_response r;

		snprintf(name, sizeof(name), "ip-%d", i);
		r = req("POST", "/api/v1/namespaces/spark-jobs/pods", pod_json(name, NULL));
		ck_assert_int_eq(r.status, 201);
		tu_response_release(&r);
	}
	{
		struct tu_response r = req("POST", "/api/v1/namespaces/spark-jobs/services",
			"{\"metadata\":{\"name\":\"ui\"},\"spec\":{\"clusterIP\":\"None\",\"selector\":{\"app\":\"x\"},"
			"\"ports\":[{\"port\":4040,\"protocol\":\"TCP\"}]}}");

		ck_assert_int_eq(r.status, 201);
		tu_response_release(&r);
		r = req("POST", "/apis/sparkoperator.k8s.io/v1beta2/namespaces/spark-jobs/sparkapplications",
			"{\"apiVersion\":\"sparkoperator.k8s.io/v1beta2\",\"kind\":\"SparkApplication\","
			"\"metadata\":{\"name\":\"pi\"},\"spec\":{\"type\":\"Scala\",\"sparkVersion\":\"3.5.1\","
			"\"mainApplicationFile\":\"local:///pi.jar\",\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"0\"},"
			"\"driver\":{\"cores\":1},\"executor\":{\"instances\":1}}}");
		ck_assert_int_eq(r.status, 201);
		tu_response_release(&r);
	}
	for (int i = 0; i < 100; i++) {
		out = tu_kubectl(&sim, dir, "get pods -n spark-jobs -o wide", &status);
		n = column_values(out, "IP ", values, 8);
		if (n >= 3 && !strncmp(values[0], "10.", 3) && !strncmp(values[1], "10.", 3) && !strncmp(values[2], "10.", 3))
			break;
		free(out);
		out = NULL;
		usleep(50000);
	}
	ck_assert_ptr_nonnull(out);
	ck_assert_msg(strstr(out, "READY") && strstr(out, "NODE") && strstr(out, "NOMINATED NODE"), "%s", out);
	ck_assert_msg(strcmp(values[0], values[1]) && strcmp(values[1], values[2]) && strcmp(values[0], values[2]),
		      "pod IPs not distinct: %s", out);
	ck_assert_int_eq(column_values(out, "NODE ", values, 8), n);
	ck_assert_msg(!strncmp(values[0], "fid-node-", 9), "%s", out);
	free(out);

	out = tu_kubectl(&sim, dir, "get nodes -o wide", &status);
	ck_assert_msg(status == 0 && strstr(out, "STATUS") && strstr(out, "ROLES") && strstr(out, "VERSION") &&
		      strstr(out, "INTERNAL-IP") && strstr(out, "CONTAINER-RUNTIME"), "%s", out);
	ck_assert_int_eq(column_values(out, "STATUS", values, 8), 4);
	ck_assert_str_eq(values[0], "Ready");
	free(out);
	out = tu_kubectl(&sim, dir, "get events -n spark-jobs", &status);
	ck_assert_msg(status == 0 && strstr(out, "LAST SEEN") && strstr(out, "REASON") && strstr(out, "OBJECT") &&
		      strstr(out, "pod/ip-0") && strstr(out, "Scheduled"), "%s", out);
	free(out);
	out = tu_kubectl(&sim, dir, "get services -n spark-jobs", &status);
	ck_assert_msg(status == 0 && strstr(out, "CLUSTER-IP") && strstr(out, "PORT(S)") && strstr(out, "4040/TCP"),
		      "%s", out);
	free(out);
	for (int i = 0; i < 100; i++) {
		out = tu_kubectl(&sim, dir, "get sparkapplications -n spark-jobs", &status);
		if (strstr(out, "COMPLETED"))
			break;
		free(out);
		out = NULL;
		usleep(50000);
	}
	ck_assert_ptr_nonnull(out);
	ck_assert_msg(strstr(out, "STATUS") && strstr(out, "ATTEMPTS") && strstr(out, "START") && strstr(out, "FINISH") &&
		      strstr(out, "AGE"), "%s", out);
	ck_assert_int_eq(column_values(out, "ATTEMPTS", values, 8), 1);
	ck_assert_str_eq(values[0], "1");
	free(out);

	{
		char cmd[700];
		struct tu_response r;

		snprintf(cmd, sizeof(cmd), "timeout 3 kubectl --server %s --cache-dir %s/kube-cache get pods -n spark-jobs "
			 "-w 2>&1", sim.base, dir);
		watch = popen(cmd, "r");
		ck_assert_ptr_nonnull(watch);
		usleep(800000); /* listed, and watching */
		r = req("POST", "/api/v1/namespaces/spark-jobs/pods", pod_json("watched", NULL));
		ck_assert_int_eq(r.status, 201);
		tu_response_release(&r);
		out = calloc(1, 1 << 16);
		got = fread(out, 1, (1 << 16) - 1, watch);
		out[got] = '\0';
		pclose(watch);
		ck_assert_msg(row_with(out, "watched", "Pending") && row_with(out, "watched", "Running"), "get -w: %s", out);
		free(out);
	}
}
END_TEST

/* Events go after the event TTL, as an API server's do, and a watcher
 * sees them go. */
START_TEST(test_events_expire)
{
	struct tu_kubesim other = {0};
	static const char *const json[] = {"Content-Type: application/json", NULL};
	struct tu_response r;
	char url[300], rv[32];
	json_t *list;
	size_t n = 0;

	ck_assert_int_eq(tu_kubesim_start(&other, dir, "forgetful", "--event-ttl", "1", NULL), 0);
	snprintf(url, sizeof(url), "%s/api/v1/namespaces/spark-jobs/pods", other.base);
	ck_assert_int_eq(tu_http("POST", url, json, pod_json("noted", NULL), strlen(pod_json("noted", NULL)), &r), 0);
	ck_assert_int_eq(r.status, 201);
	tu_response_release(&r);
	snprintf(url, sizeof(url), "%s/api/v1/namespaces/spark-jobs/events", other.base);
	for (int i = 0; i < 50 && n == 0; i++) {
		list = tu_get_json(url);
		n = json_array_size(json_object_get(list, "items"));
		snprintf(rv, sizeof(rv), "%s", json_string_value(json_object_get(json_object_get(list, "metadata"),
										    "resourceVersion")));
		json_decref(list);
		if (!n)
			usleep(20000);
	}
	ck_assert_uint_gt(n, 0);
	for (int i = 0; i < 150 && n; i++) {
		usleep(20000);
		list = tu_get_json(url);
		n = json_array_size(json_object_get(list, "items"));
		json_decref(list);
	}
	ck_assert_uint_eq(n, 0);
	snprintf(url, sizeof(url), "%s/api/v1/namespaces/spark-jobs/events?watch=true&resourceVersion=%s&timeoutSeconds=1",
		 other.base, rv);
	ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), 0);
	ck_assert_ptr_nonnull(strstr(r.body, "{\"type\":\"DELETED\""));
	tu_response_release(&r);
	tu_kubesim_stop(&other);
}
END_TEST

START_TEST(test_throttle_and_token)
{
	struct tu_kubesim other = {0};
	struct tu_response r;
	char url[200];
	int throttled = 0;
	static const char *const auth[] = {"Authorization: Bearer t0ken", NULL};

	ck_assert_int_eq(tu_kubesim_start(&other, dir, "guarded", "--throttle-qps", "2", "--token", "t0ken", NULL), 0);
	snprintf(url, sizeof(url), "%s/api/v1/namespaces", other.base);
	ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), 0);
	assert_status(&r, 401, "Unauthorized");
	tu_response_release(&r);
	for (int i = 0; i < 6; i++) {
		ck_assert_int_eq(tu_http("GET", url, auth, NULL, 0, &r), 0);
		if (r.status == 429) {
			throttled++;
			assert_status(&r, 429, "TooManyRequests");
			ck_assert_str_eq(r.retry_after, "1");
		} else {
			ck_assert_int_eq(r.status, 200);
		}
		tu_response_release(&r);
	}
	ck_assert_int_ge(throttled, 3);
	tu_kubesim_stop(&other);
}
END_TEST

/* Two 4-core nodes and a tainted GPU node, as a cluster's node pools. */
static void sched_setup(void)
{
	dir = tu_tmpdir("kubesim");
	ck_assert_ptr_nonnull(dir);
	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "fleet", "--node-pool", "cpu,count=2,cpu=4,memory=16Gi",
					  "--node-pool",
					  "gpu,count=1,cpu=8,memory=32Gi,gpus=2,label=accelerator=nvidia,"
					  "taint=nvidia.com/gpu=present:NoSchedule",
					  NULL),
			 0);
}

/* A pod asking cpu cores (and gpus), of a priority class (or none),
 * tolerating the GPU taint or not. */
static const char *sized_pod(const char *name, int cpu, int gpus, const char *priority_class, bool tolerates)
{
	static char body[1024];
	char gpu[64] = "", pc[96] = "";

	if (gpus)
		snprintf(gpu, sizeof(gpu), ",\"nvidia.com/gpu\":\"%d\"", gpus);
	if (priority_class)
		snprintf(pc, sizeof(pc), "\"priorityClassName\":\"%s\",", priority_class);
	snprintf(body, sizeof(body),
		 "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"%s\"},\"spec\":{%s%s"
		 "\"containers\":[{\"name\":\"c\",\"image\":\"busybox\",\"resources\":{\"requests\":{\"cpu\":\"%d\","
		 "\"memory\":\"1Gi\"%s},\"limits\":{\"cpu\":\"%d\",\"memory\":\"1Gi\"%s}}}]}}",
		 name, pc,
		 tolerates ? "\"tolerations\":[{\"key\":\"nvidia.com/gpu\",\"operator\":\"Exists\","
			     "\"effect\":\"NoSchedule\"}]," : "",
		 cpu, gpu, cpu, gpu);
	return body;
}

static void create_pod(const char *body)
{
	struct tu_response r = req("POST", "/api/v1/namespaces/spark-jobs/pods", body);

	ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
	tu_response_release(&r);
}

/* The pod once the scheduler has said something of it (bound it or not),
 * within 5 s; NULL if it never did. */
static json_t *scheduled_pod(const char *name)
{
	char path[200];

	snprintf(path, sizeof(path), "/api/v1/namespaces/spark-jobs/pods/%s", name);
	for (int i = 0; i < 250; i++) {
		struct tu_response r = req("GET", path, NULL);
		json_t *pod = json_incref(r.json), *cond;
		size_t k;

		tu_response_release(&r);
		if (json_object_get(json_object_get(pod, "spec"), "nodeName"))
			return pod;
		json_array_foreach(json_object_get(json_object_get(pod, "status"), "conditions"), k, cond)
			if (!strcmp(json_string_value(json_object_get(cond, "type")), "PodScheduled"))
				return pod;
		json_decref(pod);
		usleep(20 * 1000);
	}
	return NULL;
}

static const char *node_of(const json_t *pod)
{
	return json_string_value(json_object_get(json_object_get(pod, "spec"), "nodeName"));
}

/* The PodScheduled condition's field (reason, message). */
static const char *scheduled_field(const json_t *pod, const char *field)
{
	json_t *cond;
	size_t k;

	json_array_foreach(json_object_get(json_object_get(pod, "status"), "conditions"), k, cond)
		if (!strcmp(json_string_value(json_object_get(cond, "type")), "PodScheduled"))
			return json_string_value(json_object_get(cond, field));
	return NULL;
}

static void create_group(const char *name, int min_member, const char *cpu)
{
	char body[400];
	struct tu_response r;

	snprintf(body, sizeof(body),
		 "{\"apiVersion\":\"scheduling.volcano.sh/v1beta1\",\"kind\":\"PodGroup\",\"metadata\":{\"name\":\"%s\"},"
		 "\"spec\":{\"minMember\":%d,\"minResources\":{\"cpu\":\"%s\",\"memory\":\"1Gi\"}}}",
		 name, min_member, cpu);
	r = req("POST", "/apis/scheduling.volcano.sh/v1beta1/namespaces/spark-jobs/podgroups", body);
	ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
	tu_response_release(&r);
}

static void create_gang_pod(const char *name, const char *group)
{
	char body[600];

	snprintf(body, sizeof(body),
		 "{\"metadata\":{\"name\":\"%s\",\"annotations\":{\"scheduling.k8s.io/group-name\":\"%s\"}},"
		 "\"spec\":{\"schedulerName\":\"volcano\",\"containers\":[{\"name\":\"c\",\"image\":\"busybox\","
		 "\"resources\":{\"requests\":{\"cpu\":\"1\",\"memory\":\"1Gi\"}}}]}}", name, group);
	create_pod(body);
}

static const char *group_phase(const char *name, char *out, size_t len)
{
	char path[200];
	struct tu_response r;

	snprintf(path, sizeof(path), "/apis/scheduling.volcano.sh/v1beta1/namespaces/spark-jobs/podgroups/%s", name);
	r = req("GET", path, NULL);
	snprintf(out, len, "%s", json_string_value(json_object_get(json_object_get(r.json, "status"), "phase"))
		 ? json_string_value(json_object_get(json_object_get(r.json, "status"), "phase")) : "");
	tu_response_release(&r);
	return out;
}

/* Volcano's gang admission: a group's pods wait until minMember of them
 * exist and the nodes have room for its minResources, saying so as
 * Volcano does; then they are scheduled; a pod naming no group waits. */
START_TEST(test_volcano_gang)
{
	char phase[32];
	json_t *pod;

	create_group("too-big", 1, "20");
	create_gang_pod("gang-a", "too-big");
	pod = scheduled_pod("gang-a");
	ck_assert_ptr_nonnull(pod);
	ck_assert_ptr_null(node_of(pod));
	ck_assert_msg(strstr(scheduled_field(pod, "message"), "1/1 tasks in gang unschedulable: pod group is not ready"),
		      "%s", scheduled_field(pod, "message"));
	json_decref(pod);
	ck_assert_str_eq(group_phase("too-big", phase, sizeof(phase)), "Pending");

	create_group("pair", 2, "2");
	create_gang_pod("pair-0", "pair");
	pod = scheduled_pod("pair-0");
	ck_assert_ptr_nonnull(pod);
	ck_assert_ptr_null(node_of(pod));
	ck_assert_msg(strstr(scheduled_field(pod, "message"), "1 Pending, 2 minAvailable"), "%s",
		      scheduled_field(pod, "message"));
	json_decref(pod);
	create_gang_pod("pair-1", "pair");
	for (int i = 0; i < 2; i++) {
		pod = NULL;
		for (int t = 0; t < 100 && !(pod && node_of(pod)); t++) {
			json_decref(pod);
			usleep(20000);
			pod = scheduled_pod(i ? "pair-1" : "pair-0");
		}
		ck_assert_msg(pod && node_of(pod), "pair-%d was not scheduled", i);
		json_decref(pod);
	}
	ck_assert_str_eq(group_phase("pair", phase, sizeof(phase)), "Inqueue");

	create_gang_pod("orphan", "missing");
	pod = scheduled_pod("orphan");
	ck_assert_ptr_nonnull(pod);
	ck_assert_str_eq(scheduled_field(pod, "message"), "pod group missing is not found");
	json_decref(pod);
}
END_TEST

/* GPU pods land on the GPU node only; pods that do not tolerate its taint
 * never do, even when it is the only one with room; what no node admits
 * stays Pending, Unschedulable, with the scheduler's message. */
START_TEST(test_scheduling_fits_nodes)
{
	json_t *pod;

	create_pod(sized_pod("gpu-job", 2, 1, NULL, true));
	pod = scheduled_pod("gpu-job");
	ck_assert_ptr_nonnull(pod);
	ck_assert_str_eq(node_of(pod), "fleet-gpu-0");
	json_decref(pod);

	create_pod(sized_pod("big-0", 3, 0, NULL, false));
	create_pod(sized_pod("big-1", 3, 0, NULL, false));
	create_pod(sized_pod("big-2", 3, 0, NULL, false));
	for (int i = 0; i < 2; i++) {
		char name[16];

		snprintf(name, sizeof(name), "big-%d", i);
		pod = scheduled_pod(name);
		ck_assert_ptr_nonnull(pod);
		ck_assert_msg(node_of(pod) && !strncmp(node_of(pod), "fleet-cpu-", 10), "%s on %s", name, node_of(pod));
		json_decref(pod);
	}
	pod = scheduled_pod("big-2");
	ck_assert_ptr_nonnull(pod);
	ck_assert_ptr_null(node_of(pod));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(pod, "status"), "phase")), "Pending");
	ck_assert_str_eq(scheduled_field(pod, "reason"), "Unschedulable");
	ck_assert_str_eq(scheduled_field(pod, "message"),
			 "0/3 nodes are available: 1 node(s) had untolerated taint {nvidia.com/gpu: present},"
			 " 2 Insufficient cpu. preemption: 0/3 nodes are available:"
			 " 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.");
	json_decref(pod);

	/* More GPUs than any node has: no node, whatever it tolerates. */
	create_pod(sized_pod("gpu-greedy", 1, 4, NULL, true));
	pod = scheduled_pod("gpu-greedy");
	ck_assert_ptr_nonnull(pod);
	ck_assert_ptr_null(node_of(pod));
	ck_assert_str_eq(scheduled_field(pod, "message"),
			 "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available:"
			 " 3 No preemption victims found for incoming pod.");
	json_decref(pod);
}
END_TEST

/* The pod objects of a watch's events of type, in order, named name (or
 * any). */
static json_t *watched(const char *stream, const char *type, const char *name)
{
	json_t *out = json_array();

	for (const char *line = stream; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
		json_t *ev = json_loadb(line, strcspn(line, "\n"), 0, NULL), *obj = json_object_get(ev, "object");

		if (ev && !strcmp(json_string_value(json_object_get(ev, "type")), type) &&
		    (!name || !strcmp(json_string_value(json_object_get(json_object_get(obj, "metadata"), "name")), name)))
			json_array_append(out, obj);
		json_decref(ev);
	}
	return out;
}

/* A driver that finds the nodes full of executors preempts one, as the
 * scheduler does: the victim is marked DisruptionTarget and deleted, with
 * an event naming the driver; the driver is nominated to its node and
 * bound there once it is gone. A class the cluster lacks is refused. */
START_TEST(test_drivers_preempt_executors)
{
	struct tu_response r;
	json_t *pod = NULL, *victims, *nominations, *ev;
	const char *victim = NULL, *node = NULL;
	char rv[32], path[300], want[300];
	bool preempted = false;
	size_t k;

	create_pod(sized_pod("exec-0", 3, 0, "sparkgw-executor", false));
	create_pod(sized_pod("exec-1", 3, 0, "sparkgw-executor", false));
	for (int i = 0; i < 2; i++) {
		snprintf(want, sizeof(want), "exec-%d", i);
		pod = scheduled_pod(want);
		ck_assert_ptr_nonnull(node_of(pod));
		ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(pod, "spec"), "priority")), 1000);
		json_decref(pod);
	}
	r = req("GET", "/api/v1/namespaces/spark-jobs/pods", NULL);
	snprintf(rv, sizeof(rv), "%s", json_string_value(json_object_get(json_object_get(r.json, "metadata"), "resourceVersion")));
	tu_response_release(&r);

	create_pod(sized_pod("driver", 3, 0, "sparkgw-driver", false));
	pod = NULL;
	for (int i = 0; i < 250 && !node_of(pod); i++) {
		json_decref(pod);
		pod = scheduled_pod("driver");
		usleep(20 * 1000);
	}
	ck_assert_ptr_nonnull(node_of(pod));
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(pod, "spec"), "priority")), 1000000);

	/* What happened, in order, as a watch from before the driver tells it. */
	snprintf(path, sizeof(path), "/api/v1/namespaces/spark-jobs/pods?watch=true&resourceVersion=%s&timeoutSeconds=1", rv);
	r = req("GET", path, NULL);
	ck_assert_int_eq(r.status, 200);
	victims = watched(r.body, "DELETED", NULL);
	ck_assert_int_eq(json_array_size(victims), 1);
	victim = json_string_value(json_object_get(json_object_get(json_array_get(victims, 0), "metadata"), "name"));
	node = json_string_value(json_object_get(json_object_get(json_array_get(victims, 0), "spec"), "nodeName"));
	ck_assert_str_eq(node_of(pod), node);
	json_array_foreach(json_object_get(json_object_get(json_array_get(victims, 0), "status"), "conditions"), k, ev)
		preempted = preempted || (!strcmp(json_string_value(json_object_get(ev, "type")), "DisruptionTarget") &&
					  !strcmp(json_string_value(json_object_get(ev, "reason")), "PreemptionByScheduler"));
	ck_assert_msg(preempted, "%s left without DisruptionTarget", victim);
	nominations = watched(r.body, "MODIFIED", "driver");
	preempted = false;
	json_array_foreach(nominations, k, ev)
		preempted = preempted || (json_string_value(json_object_get(json_object_get(ev, "status"), "nominatedNodeName")) &&
					  !strcmp(json_string_value(json_object_get(json_object_get(ev, "status"), "nominatedNodeName")), node));
	ck_assert_msg(preempted, "the driver was never nominated to %s", node);
	ck_assert_ptr_null(json_object_get(json_object_get(pod, "status"), "nominatedNodeName"));
	json_decref(nominations);
	tu_response_release(&r);

	/* The victim's event names its preemptor and the node. */
	snprintf(want, sizeof(want), "Preempted by pod %s on node %s",
		 json_string_value(json_object_get(json_object_get(pod, "metadata"), "uid")), node);
	r = req("GET", "/api/v1/namespaces/spark-jobs/events", NULL);
	preempted = false;
	json_array_foreach(json_object_get(r.json, "items"), k, ev)
		preempted = preempted || (!strcmp(json_string_value(json_object_get(ev, "reason")), "Preempted") &&
					  !strcmp(json_string_value(json_object_get(json_object_get(ev, "involvedObject"),
										    "name")), victim) &&
					  !strcmp(json_string_value(json_object_get(ev, "message")), want));
	ck_assert_msg(preempted, "no event \"%s\" in %s", want, r.body);
	tu_response_release(&r);
	json_decref(victims);
	json_decref(pod);

	r = req("POST", "/api/v1/namespaces/spark-jobs/pods", sized_pod("nope", 1, 0, "no-such-class", false));
	assert_status(&r, 403, "Forbidden");
	ck_assert_msg(strstr(r.body, "no PriorityClass with name no-such-class was found"), "%s", r.body);
	tu_response_release(&r);
}
END_TEST

/* The official JavaScript client (tests/k8s/client.test.mjs) lists and
 * creates, watches from a resourceVersion, resumes after the server drops
 * the watch, gets 410 for a compacted one and relists, and keeps an
 * informer's cache equal to the server's, against a kubesim that drops
 * watches every 2 s and compacts every second. */
START_TEST(test_official_js_client)
{
	char cmd[1200], log[700], line[512];
	struct tu_kubesim js = {0};
	int rc;
	FILE *f;

	ck_assert_int_eq(tu_kubesim_start(&js, dir, "js", "--drop-watch-after", "2", "--compact-every", "1", NULL), 0);
	snprintf(log, sizeof(log), "%s/client-node.log", dir);
	snprintf(cmd, sizeof(cmd), "cd tests/k8s && timeout 90 node client.test.mjs %s spark-jobs > %s 2>&1", js.base,
		 log);
	rc = system(cmd);
	if (rc != 0 && (f = fopen(log, "r"))) {
		while (fgets(line, sizeof(line), f))
			fprintf(stderr, "client-node: %s", line);
		fclose(f);
	}
	tu_kubesim_stop(&js);
	ck_assert_msg(rc == 0, "node tests/k8s/client.test.mjs exited %d", rc);
}
END_TEST

Suite *kubesim_suite(void)
{
	Suite *s = suite_create("kubesim");
	TCase *tc = tcase_create("wire");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_discovery);
	tcase_add_test(tc, test_status_errors);
	tcase_add_test(tc, test_optimistic_concurrency);
	tcase_add_test(tc, test_paging_and_selectors);
	tcase_add_test(tc, test_watch_from_resource_version);
	tcase_add_test(tc, test_deletion_propagation);
	tcase_add_test(tc, test_served_objects_match_schemas);
	tcase_add_test(tc, test_throttle_and_token);
	tcase_add_test(tc, test_events_expire);
	tcase_add_test(tc, test_official_js_client);
	tcase_add_test(tc, test_kubectl_tables);
	suite_add_tcase(s, tc);
	tc = tcase_create("scheduling");
	tcase_add_checked_fixture(tc, sched_setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_scheduling_fits_nodes);
	tcase_add_test(tc, test_drivers_preempt_executors);
	tcase_add_test(tc, test_volcano_gang);
	suite_add_tcase(s, tc);
	return s;
}
