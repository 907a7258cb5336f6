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
	struct tu_response r;
	char url[600];

	snprintf(url, sizeof(url), "%s%s", sim.base, path);
	ck_assert_int_eq(tu_http(method, url, body ? json : NULL, body, body ? strlen(body) : 0, &r), 0);
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
	bool pods = false;

	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(json_string_value(json_object_get(r.json, "gitVersion")));
	tu_response_release(&r);
	r = req("GET", "/api", NULL);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "kind")), "APIVersions");
	tu_response_release(&r);
	r = req("GET", "/apis", NULL);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "kind")), "APIGroupList");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "groups"), 0), "name")),
			 "sparkoperator.k8s.io");
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
	suite_add_tcase(s, tc);
	return s;
}
