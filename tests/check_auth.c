/* Security: tokens (made by the command line and the API), roles, team
 * scope, revocation and expiry, rate limits, the audit trail, secrets kept
 * out of logs and the database. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testutil.h"

static char *dir;
static struct tu_gateway gw;

static void setup(void)
{
	dir = tu_tmpdir("auth");
	ck_assert_ptr_nonnull(dir);
}

static void teardown(void)
{
	int status = gw.pid > 0 ? tu_gateway_signal(&gw, SIGTERM) : 0;

	tu_rmtree(dir);
	free(dir);
	ck_assert_int_eq(status, 0); /* a clean exit, under valgrind too */
}

static char *new_token(const char *args)
{
	int status;
	char *t = tu_token_cli(dir, args, &status);

	ck_assert_msg(status == 0, "token %s: %s", args, t);
	ck_assert_msg(!strncmp(t, "sgw_", 4) && strlen(t) == 60, "not a token: %s", t);
	return t;
}

/* A request with the token (NULL: none). */
static struct tu_response call(const char *method, const char *path, const char *token, const char *body)
{
	char url[400], auth[200];
	const char *headers[3] = {"Content-Type: application/json", NULL, NULL};
	struct tu_response r;

	snprintf(url, sizeof(url), "%s%s", gw.base, path);
	if (token) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		headers[1] = auth;
	}
	ck_assert_int_eq(tu_http(method, url, headers, body, body ? strlen(body) : 0, &r), 0);
	return r;
}

static long status_of(const char *method, const char *path, const char *token, const char *body)
{
	struct tu_response r = call(method, path, token, body);
	long status = r.status;

	tu_response_release(&r);
	return status;
}

/* GET of the job's path (/api/v1/jobs/ID then suffix) with the token as
 * the dashboard's cookie and no Authorization header. */
static long status_with_cookie(const char *id, const char *suffix, const char *token)
{
	char path[300], url[400], cookie[200];
	const char *headers[] = {cookie, NULL};
	struct tu_response r;
	long status;

	snprintf(path, sizeof(path), "/api/v1/jobs/%s%s", id, suffix);
	snprintf(url, sizeof(url), "%s%s", gw.base, path);
	snprintf(cookie, sizeof(cookie), "Cookie: theme=dark; sparkgw_token=%s", token);
	ck_assert_int_eq(tu_http("GET", url, headers, NULL, 0, &r), 0);
	status = r.status;
	tu_response_release(&r);
	return status;
}

static const char job_fmt[] =
	"{\"name\":\"a\",%s\"spec\":{\"type\":\"Python\",\"sparkVersion\":\"3.5.1\","
	"\"mainApplicationFile\":\"a.py\"}}";

static char *submit_as(const char *token, const char *labels, long want)
{
	char body[512];
	struct tu_response r;
	char *id = NULL;

	snprintf(body, sizeof(body), job_fmt, labels);
	r = call("POST", "/api/v1/jobs", token, body);
	ck_assert_msg(r.status == want, "submit %s: %ld %s", labels, r.status, r.body);
	if (r.status == 201)
		id = strdup(json_string_value(json_object_get(r.json, "id")));
	tu_response_release(&r);
	return id;
}

static bool file_contains(const char *path, const char *needle)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;
	bool found = false;

	if (!f)
		return false;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) == (size_t)n)
		found = memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
	free(buf);
	fclose(f);
	return found;
}

START_TEST(test_roles_and_team_scope)
{
	char *admin = new_token("create --role admin --owner root");
	char *ads = new_token("create --team ads --role submitter --owner alice");
	char *search = new_token("create --team search --role submitter --owner bob");
	char *viewer = new_token("create --team ads --role viewer --owner carol");
	char *op = new_token("create --role operator --owner dave");
	char *ads_job, *search_job, path[128];
	struct tu_response r;
	json_t *items;

	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--set", "auth.mode=token", NULL), 0);
	r = call("GET", "/api/v1/version", NULL, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "auth")), "token");
	tu_response_release(&r);

	/* No token, a malformed one, an unknown one: 401 with a challenge. */
	r = call("GET", "/api/v1/jobs", NULL, NULL);
	ck_assert_int_eq(r.status, 401);
	ck_assert_str_eq(r.www_authenticate, "Bearer realm=\"sparkgw\"");
	ck_assert_str_eq(r.content_type, "application/problem+json");
	ck_assert_schema("Problem", r.json);
	tu_response_release(&r);
	ck_assert_int_eq(status_of("GET", "/api/v1/jobs", "nope", NULL), 401);
	{
		char forged[80];

		snprintf(forged, sizeof(forged), "%.17sAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ads);
		ck_assert_int_eq(status_of("GET", "/api/v1/jobs", forged, NULL), 401);
	}

	/* The team and user come from the token. */
	ads_job = submit_as(ads, "", 201);
	snprintf(path, sizeof(path), "/api/v1/jobs/%s", ads_job);
	r = call("GET", path, viewer, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r.json, "labels"), "team")), "ads");
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "user")), "alice");
	tu_response_release(&r);
	ck_assert_ptr_null(submit_as(ads, "\"labels\":{\"team\":\"search\"},", 403));
	ck_assert_ptr_null(submit_as(viewer, "", 403));
	search_job = submit_as(search, "\"labels\":{\"team\":\"search\"},", 201);

	/* Another team's job does not exist, to read, list or cancel. */
	ck_assert_int_eq(status_of("GET", path, search, NULL), 404);
	ck_assert_int_eq(status_of("DELETE", path, search, NULL), 404);
	snprintf(path, sizeof(path), "/api/v1/jobs/%s/events", ads_job);
	ck_assert_int_eq(status_of("GET", path, search, NULL), 404);
	ck_assert_int_eq(status_of("GET", path, viewer, NULL), 200);
	r = call("GET", "/api/v1/jobs", search, NULL);
	items = json_object_get(r.json, "items");
	ck_assert_int_eq(json_array_size(items), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "id")), search_job);
	tu_response_release(&r);
	r = call("GET", "/api/v1/jobs?labelSelector=team%3Dsearch", ads, NULL);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 0);
	tu_response_release(&r);
	r = call("GET", "/api/v1/jobs", op, NULL);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 2);
	tu_response_release(&r);

	/* A browser on a Spark UI link has only the dashboard's cookie: it
	 * counts there, with the team scope of its token, and nowhere else. */
	ck_assert_int_eq(status_with_cookie(ads_job, "/ui/", viewer), 409);
	ck_assert_int_eq(status_with_cookie(ads_job, "/ui/jobs/", search), 404);
	ck_assert_int_eq(status_with_cookie(ads_job, "/ui/", "sgw_forged"), 401);
	ck_assert_int_eq(status_with_cookie(ads_job, "", viewer), 401);
	ck_assert_int_eq(status_with_cookie(ads_job, "/logs", viewer), 401);

	/* Roles: the queue is for operators, tokens and audit for admins. */
	ck_assert_int_eq(status_of("GET", "/api/v1/queue", viewer, NULL), 403);
	ck_assert_int_eq(status_of("GET", "/api/v1/queue", op, NULL), 200);
	ck_assert_int_eq(status_of("GET", "/api/v1/tokens", op, NULL), 403);
	ck_assert_int_eq(status_of("GET", "/api/v1/audit", op, NULL), 403);
	ck_assert_int_eq(status_of("POST", "/api/v1/admin/reload", op, NULL), 403);
	/* Past the role check; without a configuration file there is nothing to reload. */
	ck_assert_int_eq(status_of("POST", "/api/v1/admin/reload", admin, NULL), 422);
	snprintf(path, sizeof(path), "/api/v1/jobs/%s", search_job);
	ck_assert_int_eq(status_of("DELETE", path, op, NULL), 200);
	ck_assert_int_eq(status_of("GET", "/healthz", NULL, NULL), 200);

	/* The audit trail: the denied calls and the changes, with who and where. */
	r = call("GET", "/api/v1/audit?outcome=denied&limit=100", admin, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_schema("AuditList", r.json);
	{
		bool saw_401 = false, saw_403 = false, saw_404 = false;
		size_t i;
		json_t *e;

		json_array_foreach(json_object_get(r.json, "items"), i, e) {
			long st = (long)json_integer_value(json_object_get(e, "status"));

			ck_assert_str_eq(json_string_value(json_object_get(e, "remote")), "127.0.0.1");
			saw_401 |= st == 401;
			saw_403 |= st == 403 && json_object_get(e, "tokenId");
			saw_404 |= st == 404;
		}
		ck_assert(saw_401 && saw_403 && saw_404);
	}
	tu_response_release(&r);
	r = call("GET", "/api/v1/audit?action=POST%20%2Fapi%2Fv1%2Fjobs&outcome=ok", admin, NULL);
	items = json_object_get(r.json, "items");
	ck_assert_int_eq(json_array_size(items), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 1), "team")), "ads");
	{
		char target[64];

		snprintf(target, sizeof(target), "job %s", ads_job);
		ck_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 1), "target")), target);
	}
	tu_response_release(&r);

	/* Secrets stay out of the log and the database. */
	ck_assert(!file_contains(gw.log, ads + 17));
	{
		char db[700], sql[400];

		if (tu_pg_dsn_for(dir, db, sizeof(db)) == 1) {
			/* On PostgreSQL: in no text the tokens and the audit hold. */
			snprintf(sql, sizeof(sql),
				 "SELECT (SELECT count(*) FROM tokens WHERE strpos(concat(id, owner, teams, role), '%s') > 0)"
				 " + (SELECT count(*) FROM audit WHERE strpos(concat(token_id, target, remote), '%s') > 0)",
				 ads + 17, ads + 17);
			ck_assert_int_eq(tu_store_sql(dir, sql), 0);
			ck_assert_int_eq(tu_store_sql(dir, "SELECT count(*) FROM tokens WHERE owner = 'alice'"), 1);
		} else {
			snprintf(db, sizeof(db), "%s/sparkgw.db", dir);
			ck_assert(!file_contains(db, ads + 17));
			ck_assert(file_contains(db, "alice"));
		}
	}
	free(admin);
	free(ads);
	free(search);
	free(viewer);
	free(op);
	free(ads_job);
	free(search_job);
}
END_TEST

START_TEST(test_tokens_through_the_api_revoked_and_expired)
{
	char *admin = new_token("create --role admin --owner root");
	char *brief = new_token("create --team ads --role viewer --expires 1s");
	char *cli_revoked = new_token("create --team ads --role viewer");
	char *token, id[32], path[128], line[128];
	struct tu_response r;
	int status;

	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--set", "auth.mode=token", NULL), 0);
	r = call("POST", "/api/v1/tokens", admin,
		 "{\"owner\":\"erin\",\"teams\":[\"ads\"],\"role\":\"viewer\",\"expires\":\"30d\"}");
	ck_assert_int_eq(r.status, 201);
	ck_assert_schema("TokenCreated", r.json);
	token = strdup(json_string_value(json_object_get(r.json, "token")));
	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(r.json, "id")));
	tu_response_release(&r);
	ck_assert_int_eq(status_of("GET", "/api/v1/jobs", token, NULL), 200);
	ck_assert_int_eq(status_of("POST", "/api/v1/tokens", admin, "{\"owner\":\"x\",\"teams\":[\"A B\"],"
								 "\"role\":\"viewer\"}"), 422);
	ck_assert_int_eq(status_of("POST", "/api/v1/tokens", admin, "{\"owner\":\"x\",\"teams\":[],"
								 "\"role\":\"root\"}"), 422);

	/* Listed without secrets. */
	r = call("GET", "/api/v1/tokens", admin, NULL);
	ck_assert_int_eq(r.status, 200);
	ck_assert_schema("TokenList", r.json);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "items")), 4);
	ck_assert_ptr_null(strstr(r.body, token + 17));
	tu_response_release(&r);

	/* Revoked through the API: refused at once. */
	snprintf(path, sizeof(path), "/api/v1/tokens/%s", id);
	ck_assert_int_eq(status_of("DELETE", path, admin, NULL), 200);
	r = call("GET", "/api/v1/jobs", token, NULL);
	ck_assert_int_eq(r.status, 401);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(r.json, "detail")), "revoked"));
	tu_response_release(&r);
	ck_assert_int_eq(status_of("DELETE", "/api/v1/tokens/nosuchtoken0", admin, NULL), 404);

	/* Revoked on the command line: refused within the cache's 2 s. */
	ck_assert_int_eq(status_of("GET", "/api/v1/jobs", cli_revoked, NULL), 200);
	snprintf(line, sizeof(line), "revoke %.12s", cli_revoked + 4);
	free(tu_token_cli(dir, line, &status));
	ck_assert_int_eq(status, 0);
	for (int t = 0; t < 40 && status_of("GET", "/api/v1/jobs", cli_revoked, NULL) != 401; t++)
		usleep(100000);
	ck_assert_int_eq(status_of("GET", "/api/v1/jobs", cli_revoked, NULL), 401);

	/* Expired. */
	usleep(300000);
	r = call("GET", "/api/v1/jobs", brief, NULL);
	ck_assert_int_eq(r.status, 401);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(r.json, "detail")), "expired"));
	tu_response_release(&r);

	/* The command line refuses nonsense. */
	free(tu_token_cli(dir, "create --team ads --role king", &status));
	ck_assert_int_eq(status, 2);
	free(tu_token_cli(dir, "create --team ads --role viewer --expires soon", &status));
	ck_assert_int_eq(status, 2);
	{
		char *listing = tu_token_cli(dir, "list", &status);

		ck_assert_int_eq(status, 0);
		ck_assert_ptr_null(strstr(listing, "sgw_"));
		free(listing);
	}
	free(admin);
	free(brief);
	free(cli_revoked);
	free(token);
}
END_TEST

/* A token over its rate gets 429 with Retry-After; another is unaffected. */
START_TEST(test_rate_limit_per_token)
{
	char *a = new_token("create --team ads --role viewer");
	char *b = new_token("create --team ads --role viewer");
	struct tu_response r;
	int ok = 0;

	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--set", "auth.mode=token", "--set", "auth.rate_per_second=2",
					  "--set", "auth.burst=5", NULL), 0);
	for (int i = 0; i < 8; i++)
		ok += status_of("GET", "/api/v1/jobs", a, NULL) == 200;
	ck_assert_int_le(ok, 6); /* the burst, and what refilled meanwhile */
	r = call("GET", "/api/v1/jobs", a, NULL);
	ck_assert_int_eq(r.status, 429);
	ck_assert_str_eq(r.retry_after, "1");
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "type")), "urn:sparkgw:problem:rate-limited");
	tu_response_release(&r);
	ck_assert_int_eq(status_of("GET", "/api/v1/jobs", b, NULL), 200);
	free(a);
	free(b);
}
END_TEST

/* Secret-looking Spark properties reach the cluster, and nothing else:
 * not the job as read back, its conf, a dry run, or the log. */
/* The answer names the secret key, never its value. */
static void assert_shown_redacted(const char *method, const char *path, const char *body, long status)
{
	struct tu_response r = call(method, path, NULL, body);

	ck_assert_int_eq(r.status, status);
	ck_assert_ptr_null(strstr(r.body, "hunter2"));
	ck_assert_ptr_nonnull(strstr(r.body, "spark.ssl.keyPassword"));
	tu_response_release(&r);
}

START_TEST(test_secrets_are_redacted)
{
	struct tu_kubesim sim = {0};
	static const char *const mode = "driver-pod";
	static const char body[] =
		"{\"name\":\"s\",\"labels\":{\"team\":\"ads\"},\"spec\":{\"type\":\"Python\","
		"\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"a.py\",\"sparkConf\":{"
		"\"spark.hadoop.fs.s3a.secret.key\":\"hunter2-s3\",\"spark.ssl.keyPassword\":\"hunter2-pw\","
		"\"spark.executor.memory\":\"2g\"},\"hadoopConf\":{\"fs.s3a.access.key\":\"hunter2-ak\"}}}";
	char cfg[700], path[300], *id;
	json_t *job;

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "redact", NULL), 0);
	tu_write_cluster_config(dir, &sim, &mode, 1, "log: {level: debug}\n", cfg, sizeof(cfg));
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	id = tu_submit(gw.base, body);
	job = tu_wait_job(gw.base, id, "RUNNING", 10000);
	ck_assert_ptr_nonnull(job);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(job, "spec"), "sparkConf"),
							   "spark.executor.memory")), "2g");
	{
		char *text = json_dumps(job, 0);

		ck_assert_ptr_null(strstr(text, "hunter2"));
		free(text);
	}
	json_decref(job);
	snprintf(path, sizeof(path), "/api/v1/jobs/%s/conf", id);
	assert_shown_redacted("GET", path, NULL, 200);
	assert_shown_redacted("POST", "/api/v1/jobs?dryRun=true", body, 200);
	assert_shown_redacted("POST", "/api/v1/jobs", body, 201);
	assert_shown_redacted("GET", "/api/v1/jobs?limit=10", NULL, 200);
	{
		/* A job stored before the redacted spec was kept with it (and a
		 * write from another process, which empties the gateway's
		 * cache): redacted when read. */
		char sql[200];

		snprintf(sql, sizeof(sql), "UPDATE jobs SET spec_shown = NULL WHERE id = '%s'", id);
		ck_assert_int_eq(tu_store_sql(dir, sql), 1);
		usleep(500000); /* the gateway looks for others' commits every 200 ms */
		snprintf(path, sizeof(path), "/api/v1/jobs/%s", id);
		assert_shown_redacted("GET", path, NULL, 200);
	}
	/* The cluster has the values: the driver needs them. */
	{
		char u[400];
		struct tu_response cm;

		snprintf(u, sizeof(u), "%s/api/v1/namespaces/spark-jobs/configmaps/%s-driver-conf", sim.base, id);
		ck_assert_int_eq(tu_http("GET", u, NULL, NULL, 0, &cm), 0);
		ck_assert_int_eq(cm.status, 200);
		ck_assert_ptr_nonnull(strstr(cm.body, "hunter2-s3"));
		tu_response_release(&cm);
	}
	ck_assert(!file_contains(gw.log, "hunter2"));
	free(id);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	tu_kubesim_stop(&sim);
}
END_TEST

/* Properties that would let a job leave its namespace or its identity are
 * refused, and so are those its pool does not take. */
START_TEST(test_escapes_and_pool_conf_lists)
{
	struct tu_kubesim sim = {0};
	static const char *const mode = "driver-pod";
	static const char *const escapes[] = {
		"spark.kubernetes.driver.volumes.hostPath.root.mount.path",
		"spark.kubernetes.driver.podTemplateFile",
		"spark.kubernetes.executor.podTemplateFile",
		"spark.kubernetes.authenticate.driver.serviceAccountName",
		"spark.kubernetes.namespace",
		"spark.kubernetes.driver.master",
		"spark.kubernetes.driver.pod.featureSteps",
	};
	char cfg[700], body[700];
	struct tu_response r;

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "lists", NULL), 0);
	tu_write_cluster_config(dir, &sim, &mode, 1,
				"pools: [{name: p, clusters: [lists], sparkConf: {allow: [\"spark.sql.*\", "
				"\"spark.executor.*\", \"spark.kubernetes.*\"], deny: [\"spark.executor.extraJavaOptions\"]}}]\n",
				cfg, sizeof(cfg));
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	for (size_t i = 0; i < sizeof(escapes) / sizeof(escapes[0]); i++) {
		char field[300];

		snprintf(body, sizeof(body), job_fmt, "\"labels\":{\"team\":\"ads\"},");
		snprintf(body + strlen(body) - 2, sizeof(body) - strlen(body) + 2, ",\"sparkConf\":{\"%s\":\"x\"}}}",
			 escapes[i]);
		r = call("POST", "/api/v1/jobs", NULL, body);
		ck_assert_msg(r.status == 422, "%s: %ld", escapes[i], r.status);
		snprintf(field, sizeof(field), "spec.sparkConf[%s]", escapes[i]);
		ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "errors"), 0),
								   "field")), field);
		tu_response_release(&r);
	}
	snprintf(body, sizeof(body), job_fmt, "");
	snprintf(body + strlen(body) - 2, sizeof(body) - strlen(body) + 2,
		 ",\"sparkConf\":{\"spark.sql.shuffle.partitions\":\"8\",\"spark.executor.extraJavaOptions\":\"-X\","
		 "\"spark.eventLog.dir\":\"/x\"}}}");
	r = call("POST", "/api/v1/jobs", NULL, body);
	ck_assert_int_eq(r.status, 422);
	ck_assert_int_eq(json_array_size(json_object_get(r.json, "errors")), 2);
	ck_assert_ptr_nonnull(strstr(r.body, "pool p does not take this property"));
	ck_assert_ptr_nonnull(strstr(r.body, "pool p takes only the properties it allows"));
	tu_response_release(&r);
	snprintf(body, sizeof(body), job_fmt, "");
	snprintf(body + strlen(body) - 2, sizeof(body) - strlen(body) + 2,
		 ",\"sparkConf\":{\"spark.sql.shuffle.partitions\":\"8\"}}}");
	ck_assert_int_eq(status_of("POST", "/api/v1/jobs", NULL, body), 201);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	tu_kubesim_stop(&sim);
}
END_TEST

/* A test CA, a server certificate for 127.0.0.1 and client certificates:
 * one the CA signed, one from another CA. */
static void make_certificates(void)
{
	char cmd[4000];

	snprintf(cmd, sizeof(cmd),
		 "(cd %s && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext && "
		 "K='-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes' && "
		 "openssl req -x509 $K -keyout ca.key -out ca.pem -days 2 -subj /CN=test-ca && "
		 "openssl req -x509 $K -keyout rogue-ca.key -out rogue-ca.pem -days 2 -subj /CN=rogue && "
		 "openssl req $K -keyout server.key -out server.csr -subj /CN=localhost && "
		 "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2"
		 " -extfile san.ext -out server.pem && "
		 "openssl req $K -keyout client.key -out client.csr -subj /CN=alice && "
		 "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out client.pem && "
		 "openssl req $K -keyout rogue.key -out rogue.csr -subj /CN=mallory && "
		 "openssl x509 -req -in rogue.csr -CA rogue-ca.pem -CAkey rogue-ca.key -CAcreateserial -days 2"
		 " -out rogue.pem) >/dev/null 2>&1",
		 dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void tls_files(char *cert, char *key, char *ca, size_t len)
{
	snprintf(cert, len, "http.tls_cert=%s/server.pem", dir);
	snprintf(key, len, "http.tls_key=%s/server.key", dir);
	snprintf(ca, len, "%s/ca.pem", dir);
}

/* TLS 1.2 and 1.3 with the configured certificate; older versions and
 * plain HTTP are refused. */
START_TEST(test_tls_listener)
{
	char cert[700], key[700], ca[700], url[300];
	struct tu_response r;

	make_certificates();
	tls_files(cert, key, ca, sizeof(cert));
	tu_http_tls(ca, NULL, NULL, 0);
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--set", cert, "--set", key, NULL), 0);
	ck_assert_int_eq(strncmp(gw.base, "https://", 8), 0);
	ck_assert_int_eq(status_of("GET", "/api/v1/version", NULL, NULL), 200);
	tu_http_tls(ca, NULL, NULL, CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2);
	ck_assert_int_eq(status_of("GET", "/api/v1/version", NULL, NULL), 200);
	tu_http_tls(ca, NULL, NULL, CURL_SSLVERSION_TLSv1_3 | CURL_SSLVERSION_MAX_TLSv1_3);
	ck_assert_int_eq(status_of("GET", "/api/v1/version", NULL, NULL), 200);
	tu_http_tls(ca, NULL, NULL, CURL_SSLVERSION_TLSv1 | CURL_SSLVERSION_MAX_TLSv1_1);
	snprintf(url, sizeof(url), "%s/api/v1/version", gw.base);
	ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), -1);
	tu_response_release(&r);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/version", gw.port);
	ck_assert(tu_http("GET", url, NULL, NULL, 0, &r) == -1 || r.status != 200);
	tu_response_release(&r);
	tu_http_tls(NULL, NULL, NULL, 0);
}
END_TEST

/* With a client CA, only clients with a certificate it signed get in. */
START_TEST(test_tls_client_certificates)
{
	char cert[700], key[700], ca[700], client_ca[700], pem[700], pkey[700];

	make_certificates();
	tls_files(cert, key, ca, sizeof(cert));
	snprintf(client_ca, sizeof(client_ca), "http.tls_client_ca=%s/ca.pem", dir);
	snprintf(pem, sizeof(pem), "%s/client.pem", dir);
	snprintf(pkey, sizeof(pkey), "%s/client.key", dir);
	tu_http_tls(ca, pem, pkey, 0);
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--set", cert, "--set", key, "--set", client_ca, NULL), 0);
	ck_assert_int_eq(status_of("GET", "/api/v1/jobs", NULL, NULL), 200);
	tu_http_tls(ca, NULL, NULL, 0);
	{
		struct tu_response r = call("GET", "/api/v1/jobs", NULL, NULL);

		ck_assert_int_eq(r.status, 401);
		ck_assert_str_eq(json_string_value(json_object_get(r.json, "type")),
				 "urn:sparkgw:problem:client-certificate-required");
		tu_response_release(&r);
	}
	snprintf(pem, sizeof(pem), "%s/rogue.pem", dir);
	snprintf(pkey, sizeof(pkey), "%s/rogue.key", dir);
	tu_http_tls(ca, pem, pkey, 0);
	{
		char url[300];
		struct tu_response r;

		snprintf(url, sizeof(url), "%s/api/v1/jobs", gw.base);
		ck_assert(tu_http("GET", url, NULL, NULL, 0, &r) == -1 || r.status == 401);
		tu_response_release(&r);
	}
	tu_http_tls(NULL, NULL, NULL, 0);
}
END_TEST

/* From 127.0.0.3, an address of its own: the test's other requests (from
 * 127.0.0.1) may still count against theirs while the server notices
 * their close. */
static int connect_to(int port)
{
	struct sockaddr_in from = {.sin_family = AF_INET};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, "127.0.0.3", &from.sin_addr);
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&from, sizeof(from)), 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

/* True when the server closes fd within ms. */
static bool closed_within(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;

	return poll(&p, 1, ms) == 1 && recv(fd, &c, 1, 0) <= 0;
}

/* Slow clients: a request that stops half way is dropped after the
 * connection timeout; one address holds at most its share of connections. */
START_TEST(test_slow_and_greedy_clients)
{
	int fds[5];

	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--set", "http.connection_timeout_seconds=3", "--set",
					  "http.max_connections_per_ip=4", NULL), 0);
	fds[0] = connect_to(gw.port);
	ck_assert_int_eq(send(fds[0], "GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\nX-Slow: ", 42, 0), 42);
	ck_assert(!closed_within(fds[0], 1000));
	ck_assert(closed_within(fds[0], 5000));
	close(fds[0]);

	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);

	/* A long idle timeout now: a close within seconds is the limit's. */
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--set", "http.max_connections_per_ip=4", NULL), 0);
	for (int i = 0; i < 5; i++)
		fds[i] = connect_to(gw.port); /* the kernel accepts all five */
	{
		/* The server keeps four and closes one: the last it took, which
		 * with two threads accepting need not be the last connected. */
		int closed = -1;

		for (int t = 0; t < 50 && closed < 0; t++)
			for (int i = 0; i < 5 && closed < 0; i++)
				if (closed_within(fds[i], 20))
					closed = i;
		ck_assert_int_ge(closed, 0);
		for (int i = 0; i < 5; i++)
			ck_assert(i == closed || !closed_within(fds[i], 10)); /* the other four stay */
	}
	for (int i = 0; i < 5; i++)
		close(fds[i]);
	usleep(100000);
	ck_assert_int_eq(status_of("GET", "/api/v1/jobs", NULL, NULL), 200);
}
END_TEST

Suite *auth_suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("tokens");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_roles_and_team_scope);
	tcase_add_test(tc, test_tokens_through_the_api_revoked_and_expired);
	tcase_add_test(tc, test_rate_limit_per_token);
	tcase_add_test(tc, test_secrets_are_redacted);
	tcase_add_test(tc, test_escapes_and_pool_conf_lists);
	tcase_add_test(tc, test_tls_listener);
	tcase_add_test(tc, test_tls_client_certificates);
	tcase_add_test(tc, test_slow_and_greedy_clients);
	suite_add_tcase(s, tc);
	return s;
}
