/* End-to-end tests of the v1 API: the real binary on a loopback port,
 * spoken to over HTTP, with every JSON answer checked against the schemas
 * in api/openapi.yaml. */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/yamljson.h"
#include "gateway/api/serve.h"
#include "gateway/http/http.h"
#include "tests/testutil.h"

static char *dir;
static struct tu_gateway gw;

static void start_gateway(void)
{
	dir = tu_tmpdir("api");
	ck_assert_ptr_nonnull(dir);
	ck_assert_msg(tu_gateway_start(&gw, dir, NULL) == 0, "gateway did not start");
}

/* The gateway's exit status; its data is removed. */
static int gateway_stopped(void)
{
	int status = tu_gateway_signal(&gw, SIGTERM);

	tu_rmtree(dir);
	free(dir);
	dir = NULL;
	return status;
}

static void stop_gateway(void)
{
	/* A clean exit: under make test-valgrind, no memory errors or leaks. */
	ck_assert_int_eq(gateway_stopped(), 0);
}

/* The same suite with the gateway on a PostgreSQL server of its own. */
static void start_pg_gateway(void)
{
	tu_pg_suite_setup();
	ck_assert_msg(getenv(TU_PG_ENV), "PostgreSQL did not start");
	start_gateway();
}

static void stop_pg_gateway(void)
{
	int status = gateway_stopped();

	tu_pg_suite_teardown();
	ck_assert_int_eq(status, 0);
}

static void url(char *out, size_t len, const char *path)
{
	snprintf(out, len, "%s%s", gw.base, path);
}

static struct tu_response get(const char *path)
{
	struct tu_response r;
	char u[1024];

	url(u, sizeof(u), path);
	ck_assert_int_eq(tu_http("GET", u, NULL, NULL, 0, &r), 0);
	return r;
}

static struct tu_response post(const char *body, const char *key)
{
	struct tu_response r;
	char u[256];

	url(u, sizeof(u), "/api/v1/jobs");
	ck_assert_int_eq(tu_post_json(u, body, key, &r), 0);
	return r;
}

static struct tu_response submit_job(const char *name, const char *team)
{
	char *body = tu_job_body(name, team);
	struct tu_response r = post(body, NULL);

	free(body);
	ck_assert_msg(r.status == 201, "submit %s: %ld %s", name, r.status, r.body);
	return r;
}

static size_t job_count(void)
{
	struct tu_response r = get("/api/v1/jobs?limit=1000");
	size_t n = json_array_size(json_object_get(r.json, "items"));

	ck_assert_int_eq(r.status, 200);
	tu_response_release(&r);
	return n;
}

static void assert_problem(struct tu_response *r, long status, const char *slug)
{
	char type[128];

	ck_assert_msg(r->status == status, "want %ld, got %ld: %s", status, r->status, r->body);
	ck_assert_str_eq(r->content_type, "application/problem+json");
	ck_assert_schema("Problem", r->json);
	snprintf(type, sizeof(type), "urn:sparkgw:problem:%s", slug);
	ck_assert_str_eq(json_string_value(json_object_get(r->json, "type")), type);
	ck_assert_int_eq(json_integer_value(json_object_get(r->json, "status")), status);
}

START_TEST(test_submit_read_events)
{
	struct tu_response r = submit_job("spark-pi", "search"), g, e;
	const char *id = json_string_value(json_object_get(r.json, "id"));
	char path[256];

	ck_assert_schema("Job", r.json);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "state")), "QUEUED");
	ck_assert_str_eq(r.content_type, "application/json");
	snprintf(path, sizeof(path), "/api/v1/jobs/%s", id);
	ck_assert_str_eq(r.location, path);

	g = get(path);
	ck_assert_int_eq(g.status, 200);
	ck_assert_schema("Job", g.json);
	/* Without clusters the job waits, and says so once the dispatcher
	 * has looked at it. */
	for (int i = 0; i < 100 && !json_object_get(g.json, "waitReason"); i++) {
		tu_response_release(&g);
		usleep(20000);
		g = get(path);
	}
	ck_assert_str_eq(json_string_value(json_object_get(g.json, "waitReason")), "NoCapacity: no clusters are configured");
	json_object_del(g.json, "waitReason");
	ck_assert(json_equal(r.json, g.json));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(g.json, "labels"), "team")), "search");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(g.json, "spec"), "mainClass")),
			 "org.apache.spark.examples.SparkPi");

	snprintf(path, sizeof(path), "/api/v1/jobs/%s/events", id);
	e = get(path);
	ck_assert_int_eq(e.status, 200);
	ck_assert_schema("EventList", e.json);
	ck_assert_int_eq(json_array_size(json_object_get(e.json, "items")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(e.json, "items"), 0), "reason")),
			 "Submitted");
	tu_response_release(&r);
	tu_response_release(&g);
	tu_response_release(&e);
}
END_TEST

START_TEST(test_idempotent_retries)
{
	char *body = tu_job_body("retry-me", "ads"), *other = tu_job_body("retry-me", "ml");
	struct tu_response a = post(body, "airflow-run-42"), b = post(body, "airflow-run-42");
	struct tu_response c = post(other, "airflow-run-42"), d = post(body, "airflow-run-43");
	size_t before;

	ck_assert_int_eq(a.status, 201);
	ck_assert_int_eq(b.status, 200);
	ck_assert_schema("Job", b.json);
	ck_assert_str_eq(json_string_value(json_object_get(a.json, "id")),
			 json_string_value(json_object_get(b.json, "id")));
	ck_assert_str_eq(a.location, b.location);
	assert_problem(&c, 409, "idempotency-key-reused");
	ck_assert_int_eq(d.status, 201);
	ck_assert_str_ne(json_string_value(json_object_get(a.json, "id")),
			 json_string_value(json_object_get(d.json, "id")));
	before = job_count();
	tu_response_release(&c);
	c = post(other, "airflow-run-42");
	ck_assert_int_eq(job_count(), before);
	tu_response_release(&a);
	tu_response_release(&b);
	tu_response_release(&c);
	tu_response_release(&d);
	free(body);
	free(other);
}
END_TEST

#define RACERS 8

static void *race_post(void *arg)
{
	struct tu_response *r = arg;
	char *body = tu_job_body("racer", "ads");
	char u[256];

	url(u, sizeof(u), "/api/v1/jobs");
	tu_post_json(u, body, "same-key-at-once", r);
	free(body);
	return NULL;
}

START_TEST(test_idempotency_under_concurrency)
{
	pthread_t th[RACERS];
	struct tu_response r[RACERS];
	int created = 0;

	for (int i = 0; i < RACERS; i++)
		pthread_create(&th[i], NULL, race_post, &r[i]);
	for (int i = 0; i < RACERS; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < RACERS; i++) {
		ck_assert_msg(r[i].status == 201 || r[i].status == 200, "%ld", r[i].status);
		created += r[i].status == 201;
		ck_assert_str_eq(json_string_value(json_object_get(r[i].json, "id")),
				 json_string_value(json_object_get(r[0].json, "id")));
	}
	ck_assert_int_eq(created, 1);
	for (int i = 0; i < RACERS; i++)
		tu_response_release(&r[i]);
}
END_TEST

START_TEST(test_list_filters_and_pagination)
{
	struct tu_response r, p;
	const char *cont;
	char path[512];
	int seen = 0;

	for (int i = 0; i < 7; i++) {
		char name[32];

		snprintf(name, sizeof(name), "list-%d", i);
		r = submit_job(name, i % 2 ? "pager-odd" : "pager-even");
		tu_response_release(&r);
	}
	r = get("/api/v1/jobs?labelSelector=team%3Dpager-odd");
	ck_assert_int_eq(r.status, 200);
	ck_assert_schema("JobList", r.json);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 3);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "items"), 0), "name")),
			 "list-5"); /* newest first */
	ck_assert_ptr_null(json_object_get(r.json, "continue"));
	tu_response_release(&r);

	r = get("/api/v1/jobs?labelSelector=team+in+(pager-odd,pager-even),priority%3Dnormal&state=QUEUED&limit=3");
	ck_assert_int_eq(r.status, 200);
	for (;;) {
		size_t n = json_array_size(json_object_get(r.json, "items"));

		ck_assert_uint_le(n, 3);
		seen += (int)n;
		cont = json_string_value(json_object_get(r.json, "continue"));
		if (!cont)
			break;
		snprintf(path, sizeof(path),
			 "/api/v1/jobs?labelSelector=team+in+(pager-odd,pager-even),priority%%3Dnormal&state=QUEUED&limit=3&continue=%s",
			 cont);
		p = get(path);
		tu_response_release(&r);
		r = p;
		ck_assert_int_eq(r.status, 200);
		ck_assert_schema("JobList", r.json);
	}
	ck_assert_int_eq(seen, 7);
	tu_response_release(&r);

	r = get("/api/v1/jobs?user=anonymous&createdAfter=2000-01-01T00:00:00Z&createdBefore=2999-01-01T00:00:00Z&limit=1");
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 1);
	ck_assert_ptr_nonnull(json_object_get(r.json, "continue"));
	tu_response_release(&r);
	r = get("/api/v1/jobs?createdAfter=2999-01-01T00:00:00Z");
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 0);
	tu_response_release(&r);
	r = get("/api/v1/jobs?user=nobody-at-all");
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 0);
	tu_response_release(&r);
}
END_TEST

START_TEST(test_list_bad_queries)
{
	static const struct {
		const char *query;
		const char *field;
	} cases[] = {
		{"labelSelector=team+in+(a", "labelSelector"},
		{"state=ALMOST", "state"},
		{"limit=0", "limit"},
		{"limit=1001", "limit"},
		{"limit=ten", "limit"},
		{"continue=garbage!", "continue"},
		{"createdAfter=yesterday", "createdAfter"},
		{"colour=blue", "colour"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char path[256];
		struct tu_response r;

		snprintf(path, sizeof(path), "/api/v1/jobs?%s", cases[i].query);
		r = get(path);
		assert_problem(&r, 400, "bad-query");
		ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
					 json_object_get(r.json, "errors"), 0), "field")),
				 cases[i].field);
		tu_response_release(&r);
	}
}
END_TEST

START_TEST(test_cancel)
{
	struct tu_response r = submit_job("to-cancel", "ads"), c, again, e;
	const char *id = json_string_value(json_object_get(r.json, "id"));
	char u[256], path[256];

	snprintf(path, sizeof(path), "/api/v1/jobs/%s", id);
	url(u, sizeof(u), path);
	ck_assert_int_eq(tu_http("DELETE", u, NULL, NULL, 0, &c), 0);
	ck_assert_int_eq(c.status, 200);
	ck_assert_schema("Job", c.json);
	ck_assert_str_eq(json_string_value(json_object_get(c.json, "state")), "CANCELLED");
	ck_assert_str_eq(json_string_value(json_object_get(c.json, "reason")), "CancelledByUser");
	ck_assert_int_eq(tu_http("DELETE", u, NULL, NULL, 0, &again), 0);
	ck_assert_int_eq(again.status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(again.json, "state")), "CANCELLED");

	snprintf(path, sizeof(path), "/api/v1/jobs/%s/events", id);
	e = get(path);
	ck_assert_int_eq(json_array_size(json_object_get(e.json, "items")), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(e.json, "items"), 1), "previousState")),
			 "QUEUED");
	ck_assert_schema("EventList", e.json);
	tu_response_release(&r);
	tu_response_release(&c);
	tu_response_release(&again);
	tu_response_release(&e);

	url(u, sizeof(u), "/api/v1/jobs/j00000000000000000000");
	ck_assert_int_eq(tu_http("DELETE", u, NULL, NULL, 0, &c), 0);
	assert_problem(&c, 404, "not-found");
	tu_response_release(&c);
}
END_TEST

/* Reads are served from rendered jobs kept in memory: a write through this
 * gateway shows at once, one through another process sharing the database
 * within its check for foreign commits (200 ms). */
static const char *state_at(const char *base, const char *id, struct tu_response *r)
{
	char u[256];

	snprintf(u, sizeof(u), "%s/api/v1/jobs/%s", base, id);
	tu_response_release(r);
	ck_assert_int_eq(tu_http("GET", u, NULL, NULL, 0, r), 0);
	ck_assert_int_eq(r->status, 200);
	return json_string_value(json_object_get(r->json, "state"));
}

START_TEST(test_reads_follow_writes)
{
	struct tu_response a = submit_job("cached-a", "ads"), b = submit_job("cached-b", "ads"), r = {0}, c;
	char *ida = strdup(json_string_value(json_object_get(a.json, "id")));
	char *idb = strdup(json_string_value(json_object_get(b.json, "id")));
	struct tu_gateway other;
	char u[256];
	int polls = 0;

	ck_assert_str_eq(state_at(gw.base, ida, &r), "QUEUED"); /* now kept */
	ck_assert_str_eq(state_at(gw.base, ida, &r), "QUEUED");
	snprintf(u, sizeof(u), "%s/api/v1/jobs/%s", gw.base, ida);
	ck_assert_int_eq(tu_http("DELETE", u, NULL, NULL, 0, &c), 0);
	ck_assert_int_eq(c.status, 200);
	tu_response_release(&c);
	ck_assert_str_eq(state_at(gw.base, ida, &r), "CANCELLED");

	ck_assert_str_eq(state_at(gw.base, idb, &r), "QUEUED");
	ck_assert_int_eq(tu_gateway_start(&other, dir, NULL), 0);
	snprintf(u, sizeof(u), "%s/api/v1/jobs/%s", other.base, idb);
	ck_assert_int_eq(tu_http("DELETE", u, NULL, NULL, 0, &c), 0);
	ck_assert_int_eq(c.status, 200);
	tu_response_release(&c);
	while (strcmp(state_at(gw.base, idb, &r), "CANCELLED") && polls++ < 100)
		usleep(20000);
	ck_assert_str_eq(state_at(gw.base, idb, &r), "CANCELLED");
	ck_assert_int_lt(polls, 50); /* within a second */
	ck_assert_int_eq(tu_gateway_signal(&other, SIGTERM), 0);
	tu_response_release(&r);
	tu_response_release(&a);
	tu_response_release(&b);
	free(ida);
	free(idb);
}
END_TEST

START_TEST(test_not_found_and_methods)
{
	struct tu_response r = get("/api/v1/jobs/j00000000000000000000");
	char u[256];

	assert_problem(&r, 404, "not-found");
	tu_response_release(&r);
	r = get("/api/v1/jobs/not-an-id");
	assert_problem(&r, 404, "not-found");
	tu_response_release(&r);
	r = get("/api/v1/jobs/j00000000000000000000/events");
	assert_problem(&r, 404, "not-found");
	tu_response_release(&r);
	r = get("/api/v2/jobs");
	assert_problem(&r, 404, "not-found");
	tu_response_release(&r);

	url(u, sizeof(u), "/api/v1/jobs");
	ck_assert_int_eq(tu_http("PUT", u, NULL, "{}", 2, &r), 0);
	assert_problem(&r, 405, "method-not-allowed");
	ck_assert_str_eq(r.allow, "POST, GET");
	tu_response_release(&r);
	url(u, sizeof(u), "/healthz");
	ck_assert_int_eq(tu_http("POST", u, NULL, "", 0, &r), 0);
	assert_problem(&r, 405, "method-not-allowed");
	tu_response_release(&r);
}
END_TEST

/* Sends body with headers; asserts the problem and that nothing was stored. */
static void bad_post(const char *const *headers, const char *body, size_t len,
		     long status, const char *slug, const char *field)
{
	size_t before = job_count();
	struct tu_response r;
	char u[256];

	url(u, sizeof(u), "/api/v1/jobs");
	ck_assert_int_eq(tu_http("POST", u, headers, body, len, &r), 0);
	assert_problem(&r, status, slug);
	if (field) {
		bool found = false;
		size_t i;
		json_t *e;

		json_array_foreach(json_object_get(r.json, "errors"), i, e)
			found = found || !strcmp(json_string_value(json_object_get(e, "field")), field);
		ck_assert_msg(found, "no error for %s in %s", field, r.body);
	}
	tu_response_release(&r);
	ck_assert_uint_eq(job_count(), before);
}

static const char *const json_headers[] = {"Content-Type: application/json", NULL};

START_TEST(test_bad_input)
{
	static const char *const text_headers[] = {"Content-Type: text/plain", NULL};
	static const char *const bad_key[] = {"Content-Type: application/json",
					      "Idempotency-Key: has space", NULL};
	char *good = tu_job_body("fine", "ads");
	char *big, deep[128];
	size_t n = 0;

	bad_post(text_headers, good, strlen(good), 415, "unsupported-media-type", NULL);
	bad_post(NULL, good, strlen(good), 415, "unsupported-media-type", NULL);
	bad_post(bad_key, good, strlen(good), 400, "bad-idempotency-key", NULL);
	bad_post(json_headers, "{\"name\":", 8, 400, "malformed-body", NULL);
	bad_post(json_headers, "{\"name\":\"\xc3\x28\"}", 13, 400, "malformed-body", NULL);
	bad_post(json_headers, "{\"name\":\"a\",\"name\":\"b\"}", 23, 400, "malformed-body", NULL);
	bad_post(json_headers, "[]", 2, 400, "malformed-body", NULL);
	bad_post(json_headers, "", 0, 400, "malformed-body", NULL);
	n += (size_t)snprintf(deep, sizeof(deep), "{\"spec\":");
	while (n < 100)
		deep[n++] = '[';
	bad_post(json_headers, deep, n, 400, "malformed-body", NULL);

	bad_post(json_headers, "{\"name\":\"x\",\"spec\":{},\"extra\":true}", 35, 422,
		 "validation-failed", "extra");
	bad_post(json_headers, "{\"name\":\"NoCaps\",\"spec\":{}}", 27, 422,
		 "validation-failed", "name");
	{
		json_t *doc = json_loads(good, 0, NULL);
		char *text;

		json_object_set_new(json_object_get(json_object_get(doc, "spec"), "executor"),
				    "memory", json_string("lots"));
		text = json_dumps(doc, JSON_COMPACT);
		bad_post(json_headers, text, strlen(text), 422, "validation-failed",
			 "spec.executor.memory");
		free(text);
		json_object_set_new(json_object_get(json_object_get(doc, "spec"), "executor"),
				    "memory", json_string("1g"));
		json_object_set_new(json_object_get(json_object_get(doc, "spec"), "driver"),
				    "cores", json_integer(0));
		text = json_dumps(doc, JSON_COMPACT);
		bad_post(json_headers, text, strlen(text), 422, "validation-failed",
			 "spec.driver.cores");
		free(text);
		json_decref(doc);
	}

	/* Just over the 1 MiB cap: 413, whether or not the length is announced. */
	big = malloc((1 << 20) + 2);
	memset(big, ' ', (1 << 20) + 1);
	big[0] = '{';
	big[1 << 20] = '}';
	big[(1 << 20) + 1] = '\0';
	bad_post(json_headers, big, (1 << 20) + 1, 413, "body-too-large", NULL);
	{
		static const char *const chunked[] = {"Content-Type: application/json",
						      "Transfer-Encoding: chunked", NULL};

		bad_post(chunked, big, (1 << 20) + 1, 413, "body-too-large", NULL);
	}
	free(big);
	free(good);
}
END_TEST

START_TEST(test_operational_endpoints)
{
	struct tu_response r = get("/healthz");

	ck_assert_int_eq(r.status, 200);
	ck_assert_schema("Status", r.json);
	tu_response_release(&r);
	r = get("/readyz");
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "status")), "ready");
	tu_response_release(&r);
	r = get("/api/v1/version");
	ck_assert_int_eq(r.status, 200);
	ck_assert_schema("Version", r.json);
	tu_response_release(&r);
}
END_TEST

START_TEST(test_keep_alive_across_requests)
{
	/* One libcurl handle reuses its connection when the server keeps it:
	 * the second and third requests must open no new connection. */
	CURL *c = curl_easy_init();
	char u[256], *body = tu_job_body("keepalive", "ads");
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	long connects = -1, code = 0;
	FILE *devnull = fopen("/dev/null", "w");

	curl_easy_setopt(c, CURLOPT_WRITEDATA, devnull);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	url(u, sizeof(u), "/healthz");
	curl_easy_setopt(c, CURLOPT_URL, u);
	ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);

	url(u, sizeof(u), "/api/v1/jobs");
	curl_easy_setopt(c, CURLOPT_URL, u);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
	ck_assert_int_eq(code, 201);
	ck_assert_int_eq(connects, 0);

	url(u, sizeof(u), "/api/v1/jobs?limit=1");
	curl_easy_setopt(c, CURLOPT_URL, u);
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &connects);
	ck_assert_int_eq(connects, 0);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	fclose(devnull);
	free(body);
}
END_TEST

#define SUBMITTERS 32
#define EACH 10

static void *submit_burst(void *arg)
{
	int *ok = arg;
	char *body = tu_job_body("burst", "burst");
	char u[256];

	url(u, sizeof(u), "/api/v1/jobs");
	for (int i = 0; i < EACH; i++) {
		struct tu_response r;

		if (tu_post_json(u, body, NULL, &r) == 0 && r.status == 201)
			(*ok)++;
		tu_response_release(&r);
	}
	free(body);
	return NULL;
}

START_TEST(test_concurrent_submissions)
{
	pthread_t th[SUBMITTERS];
	int ok[SUBMITTERS] = {0}, total = 0;
	struct tu_response r;

	for (int i = 0; i < SUBMITTERS; i++)
		pthread_create(&th[i], NULL, submit_burst, &ok[i]);
	for (int i = 0; i < SUBMITTERS; i++) {
		pthread_join(th[i], NULL);
		total += ok[i];
	}
	ck_assert_int_eq(total, SUBMITTERS * EACH);
	r = get("/api/v1/jobs?labelSelector=team%3Dburst&limit=1000");
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), SUBMITTERS * EACH);
	tu_response_release(&r);
}
END_TEST

static TCase *api_tests(const char *name, void (*setup)(void), void (*teardown)(void))
{
	TCase *tc = tcase_create(name);

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_submit_read_events);
	tcase_add_test(tc, test_idempotent_retries);
	tcase_add_test(tc, test_idempotency_under_concurrency);
	tcase_add_test(tc, test_list_filters_and_pagination);
	tcase_add_test(tc, test_list_bad_queries);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_reads_follow_writes);
	tcase_add_test(tc, test_not_found_and_methods);
	tcase_add_test(tc, test_bad_input);
	tcase_add_test(tc, test_operational_endpoints);
	tcase_add_test(tc, test_keep_alive_across_requests);
	tcase_add_test(tc, test_concurrent_submissions);
	return tc;
}

/* An OpenAPI path as the route tables write it: each {parameter} a '*'
 * (a route ending in "**" matches what it begins). */
static void as_route(const char *path, char *out, size_t len)
{
	size_t n = 0;

	for (const char *p = path; *p && n + 2 < len; p++) {
		if (*p == '{') {
			out[n++] = '*';
			while (*p && *p != '}')
				p++;
		} else {
			out[n++] = *p;
		}
	}
	out[n] = '\0';
}

static bool route_serves(const struct http_route *r, const char *method, const char *path)
{
	size_t plen = strlen(r->path);

	if (strcasecmp(r->method, method))
		return false;
	if (plen >= 2 && !strcmp(r->path + plen - 2, "**"))
		return !strncmp(r->path, path, plen - 2);
	return !strcmp(r->path, path);
}

/* The contract and the route tables agree: every served route is in
 * api/openapi.yaml with a summary, and every operation there is served. */
START_TEST(test_contract_covers_every_route)
{
	static const char *const methods[] = {"get", "post", "put", "patch", "delete"};
	const char *src = getenv("SPARKGW_SRC") ? getenv("SPARKGW_SRC") : ".";
	char path[512], err[GW_ERRLEN];
	json_t *doc = NULL, *paths, *ops;
	const char *p;
	size_t covered[2][64] = {{0}};

	snprintf(path, sizeof(path), "%s/api/openapi.yaml", src);
	ck_assert_msg(gw_yaml_load_file(path, &doc, NULL, err) == GW_OK, "%s", err);
	paths = json_object_get(doc, "paths");
	json_object_foreach(paths, p, ops) {
		char route[256];

		as_route(p, route, sizeof(route));
		for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
			json_t *op = json_object_get(ops, methods[m]);
			bool served = false;

			if (!op)
				continue;
			ck_assert_msg(json_is_string(json_object_get(op, "summary")), "%s %s has no summary", methods[m], p);
			for (int livy = 0; livy < 2; livy++) {
				size_t n;
				const struct http_route *t = gateway_routes(livy, &n);

				ck_assert_uint_le(n, 64);
				for (size_t i = 0; i < n; i++)
					if (route_serves(&t[i], methods[m], route)) {
						covered[livy][i]++;
						served = true;
					}
			}
			ck_assert_msg(served, "%s %s is in the contract but not served", methods[m], p);
		}
	}
	for (int livy = 0; livy < 2; livy++) {
		size_t n;
		const struct http_route *t = gateway_routes(livy, &n);

		for (size_t i = 0; i < n; i++)
			ck_assert_msg(covered[livy][i], "%s %s is served but not in the contract", t[i].method, t[i].path);
	}
	json_decref(doc);
}
END_TEST

/* Redocly's linter (pinned in tests/contract), by redocly.yaml's strict
 * rules, in directory at: its exit status. */
static int redocly_lint(const char *src, const char *at, const char *log)
{
	char cmd[2400];

	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true "
		 "'%s/tests/contract/node_modules/.bin/redocly' lint api/openapi.yaml > '%s' 2>&1",
		 at, src, log);
	return WEXITSTATUS(system(cmd));
}

/* The contract passes Redocly's strict lint, and the lint bites: a copy
 * with one operation's 401 taken out fails it. */
START_TEST(test_contract_lints_clean)
{
	const char *src = getenv("SPARKGW_SRC") ? getenv("SPARKGW_SRC") : ".";
	char *tmp = tu_tmpdir("lint"), *abs_src = realpath(src, NULL), cmd[2400], log[700];

	ck_assert_ptr_nonnull(abs_src);
	snprintf(log, sizeof(log), "%s/lint.log", tmp);
	ck_assert_msg(redocly_lint(abs_src, abs_src, log) == 0, "redocly lint api/openapi.yaml failed: see %s", log);
	snprintf(cmd, sizeof(cmd),
		 "mkdir -p '%s/api' && cp '%s/redocly.yaml' '%s/.redocly.lint-ignore.yaml' '%s/' && "
		 "awk '/operationId: listPools/ {p = 1} p && /401/ {p = 0; next} {print}' '%s/api/openapi.yaml' "
		 "> '%s/api/openapi.yaml'",
		 tmp, abs_src, abs_src, tmp, abs_src, tmp);
	ck_assert_int_eq(WEXITSTATUS(system(cmd)), 0);
	ck_assert_int_ne(redocly_lint(abs_src, tmp, log), 0);
	tu_rmtree(tmp);
	free(tmp);
	free(abs_src);
}
END_TEST

Suite *api_suite(void)
{
	Suite *s = suite_create("api");
	TCase *contract = tcase_create("contract");

	suite_add_tcase(s, api_tests("v1", start_gateway, stop_gateway));
	tcase_add_test(contract, test_contract_covers_every_route);
	tcase_add_test(contract, test_contract_lints_clean);
	suite_add_tcase(s, contract);
	return s;
}

Suite *api_pg_suite(void)
{
	Suite *s = suite_create("api_pg");

	suite_add_tcase(s, api_tests("v1 on postgres", start_pg_gateway, stop_pg_gateway));
	return s;
}
