/* Faults: nothing acknowledged is lost and nothing runs twice when the
 * gateway is killed again and again under a steady stream of submissions;
 * a full disk answers 503 and writes nothing half; slow clients on one
 * address do not keep others out. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "tests/testutil.h"

static char *dir;

static void setup(void)
{
	dir = tu_tmpdir("faults");
	ck_assert_ptr_nonnull(dir);
}

static void teardown(void)
{
	tu_rmtree(dir);
	free(dir);
}

/* The cluster has exactly one driver pod for each job in jobs (id ->
 * true), and none other. The list is retried past injected errors. */
static void assert_one_driver_each(const struct tu_kubesim *sim, json_t *jobs, size_t n)
{
	char url[300];
	json_t *pods = NULL, *pod;
	size_t i;

	snprintf(url, sizeof(url), "%s/api/v1/pods?labelSelector=spark-role%%3Ddriver", sim->base);
	for (int t = 0; t < 20 && !json_object_get(pods, "items"); t++) {
		json_decref(pods);
		pods = tu_get_json(url); /* kubesim lists everything in one page */
	}
	ck_assert_ptr_nonnull(json_object_get(pods, "items"));
	ck_assert_int_eq(json_array_size(json_object_get(pods, "items")), n);
	json_array_foreach(json_object_get(pods, "items"), i, pod) {
		const char *job = json_string_value(json_object_get(
			json_object_get(json_object_get(pod, "metadata"), "labels"), "sparkgw/job-id"));

		/* Known, and not met before: a second pod of a job finds false. */
		ck_assert_msg(json_is_true(json_object_get(jobs, job)), "pod of job %s unexpected or twice", job);
		json_object_set_new(jobs, job, json_false());
	}
	json_decref(pods);
}

#define MAX_KEYS 6000

/* A client that submits job after job, each under its own idempotency
 * key, retrying a key until it is acknowledged (201, or 200 for a retry
 * whose first answer was lost). */
struct submitter {
	const char *base;
	atomic_bool stop;
	int keys;                     /* keys acknowledged */
	char ids[MAX_KEYS][24];       /* the job id each key got */
	int retries;                  /* attempts that met a dead gateway */
};

static void *submit_loop(void *arg)
{
	struct submitter *s = arg;

	while (!atomic_load(&s->stop) && s->keys < MAX_KEYS) {
		char url[200], key[32], body[512];
		struct tu_response r;
		bool done = false;

		snprintf(url, sizeof(url), "%s/api/v1/jobs", s->base);
		snprintf(key, sizeof(key), "key-%d", s->keys);
		snprintf(body, sizeof(body),
			 "{\"name\":\"c%d\",\"labels\":{\"team\":\"crash\"},\"spec\":{\"type\":\"Python\","
			 "\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"a.py\",\"executor\":{\"instances\":0},"
			 "\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"0.2\"}}}",
			 s->keys);
		/* The key is retried until acknowledged, even past stop. */
		for (int attempt = 0; !done && attempt < 600; attempt++) {
			if (tu_post_json(url, body, key, &r) == 0 && (r.status == 201 || r.status == 200)) {
				snprintf(s->ids[s->keys], sizeof(s->ids[0]), "%s",
					 json_string_value(json_object_get(r.json, "id")));
				done = true;
			} else {
				s->retries++;
				usleep(50000);
			}
			tu_response_release(&r);
		}
		if (!done)
			break;
		s->keys++;
	}
	return NULL;
}

START_TEST(test_kill_9_under_load_loses_and_repeats_nothing)
{
	struct tu_kubesim sim = {0};
	struct tu_gateway gw;
	static const char *const mode = "driver-pod";
	struct submitter *s = calloc(1, sizeof(*s));
	pthread_t client;
	char cfg[700];
	json_t *seen;

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "crash", NULL), 0);
	tu_write_cluster_config(dir, &sim, &mode, 1, "dispatch: {lease_seconds: 1}\nscheduler: {cluster_qps: 2000}\n",
				cfg, sizeof(cfg));
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	s->base = gw.base;
	ck_assert_int_eq(pthread_create(&client, NULL, submit_loop, s), 0);
	for (int round = 0; round < 5; round++) {
		usleep(700000 + 150000 * round);
		ck_assert_int_eq(tu_gateway_signal(&gw, SIGKILL), 128 + SIGKILL);
		ck_assert_int_eq(tu_gateway_restart(&gw, dir, "--config", cfg, NULL), 0);
	}
	usleep(500000);
	atomic_store(&s->stop, true);
	pthread_join(client, NULL);
	ck_assert_int_ge(s->keys, 50);
	ck_assert_int_gt(s->retries, 0); /* the client did meet dead gateways */

	/* Every acknowledged key is one job, and there are no others. */
	seen = json_object();
	for (int k = 0; k < s->keys; k++) {
		json_t *job = tu_wait_job(gw.base, s->ids[k], NULL, 60000);

		ck_assert_msg(job, "job %s of key %d lost or stuck", s->ids[k], k);
		ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "SUCCEEDED");
		ck_assert_ptr_null(json_object_get(seen, s->ids[k])); /* two keys, one job? */
		json_object_set_new(seen, s->ids[k], json_true());
		json_decref(job);
	}
	{
		/* All pages of the list: as many jobs as keys. */
		char all[400], cont[128] = "";
		size_t total = 0;

		do {
			json_t *list;

			snprintf(all, sizeof(all), "%s/api/v1/jobs?limit=1000%s%s", gw.base, *cont ? "&continue=" : "", cont);
			list = tu_get_json(all);
			total += json_array_size(json_object_get(list, "items"));
			snprintf(cont, sizeof(cont), "%s", json_string_value(json_object_get(list, "continue"))
								   ? json_string_value(json_object_get(list, "continue")) : "");
			json_decref(list);
		} while (*cont);
		ck_assert_int_eq(total, s->keys);
	}
	assert_one_driver_each(&sim, seen, (size_t)s->keys);
	json_decref(seen);
	free(s);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	tu_kubesim_stop(&sim);
}
END_TEST

static void set_file_size_limit(pid_t pid, const char *limit)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "prlimit --pid %d --fsize=%s", (int)pid, limit);
	ck_assert_int_eq(system(cmd), 0);
}

/* Job i of the disk test and its idempotency key. */
static void disk_job(int i, char *body, size_t blen, char *key, size_t klen)
{
	snprintf(body, blen, "{\"name\":\"d%d\",\"labels\":{\"team\":\"disk\"},\"spec\":{\"type\":"
		 "\"Python\",\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"a.py\"}}", i);
	snprintf(key, klen, "d-%d", i);
}

/* The disk fills up (the gateway's files may grow no more: RLIMIT_FSIZE,
 * set on the running process): submissions get 503 with a clear body,
 * nothing is half-written, and service resumes when space returns. */
START_TEST(test_full_disk_answers_503_and_recovers)
{
	struct tu_gateway gw;
	char url[200], body[400], key[32], ids[40][24] = {{0}};
	int refused = 0, accepted_during = 0;

	ck_assert_int_eq(tu_gateway_start(&gw, dir, NULL), 0);
	snprintf(url, sizeof(url), "%s/api/v1/jobs", gw.base);
	for (int i = 0; i < 10; i++) {
		struct tu_response r;

		disk_job(i, body, sizeof(body), key, sizeof(key));
		ck_assert_int_eq(tu_post_json(url, body, key, &r), 0);
		ck_assert_int_eq(r.status, 201);
		snprintf(ids[i], sizeof(ids[i]), "%s", json_string_value(json_object_get(r.json, "id")));
		tu_response_release(&r);
	}
	set_file_size_limit(gw.pid, "4096:unlimited");
	for (int i = 10; i < 40; i++) {
		struct tu_response r;

		disk_job(i, body, sizeof(body), key, sizeof(key));
		ck_assert_int_eq(tu_post_json(url, body, key, &r), 0);
		if (r.status == 503) {
			refused++;
			ck_assert_str_eq(r.content_type, "application/problem+json");
			ck_assert_str_eq(r.retry_after, "1");
			ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(r.json, "detail")), "nothing was written"));
		} else {
			ck_assert_int_eq(r.status, 201);
			accepted_during++;
			snprintf(ids[i], sizeof(ids[i]), "%s", json_string_value(json_object_get(r.json, "id")));
		}
		tu_response_release(&r);
	}
	ck_assert_int_ge(refused, 25);
	{
		char health[200];
		struct tu_response r;

		snprintf(health, sizeof(health), "%s/healthz", gw.base);
		ck_assert_int_eq(tu_http("GET", health, NULL, NULL, 0, &r), 0);
		ck_assert_int_eq(r.status, 200);
		tu_response_release(&r);
	}
	/* Space is back: the same requests, with the same keys, go through. */
	set_file_size_limit(gw.pid, "unlimited:unlimited");
	for (int i = 10; i < 40; i++) {
		struct tu_response r;

		disk_job(i, body, sizeof(body), key, sizeof(key));
		for (int t = 0; t < 50; t++) {
			ck_assert_int_eq(tu_post_json(url, body, key, &r), 0);
			if (r.status != 503)
				break;
			tu_response_release(&r);
			usleep(100000);
		}
		ck_assert_msg(r.status == 201 || (r.status == 200 && ids[i][0]), "key %s: %ld", key, r.status);
		if (ids[i][0])
			ck_assert_str_eq(json_string_value(json_object_get(r.json, "id")), ids[i]);
		snprintf(ids[i], sizeof(ids[i]), "%s", json_string_value(json_object_get(r.json, "id")));
		tu_response_release(&r);
	}
	/* Nothing half-written: 40 jobs, each whole, with its first event. */
	for (int i = 0; i < 40; i++) {
		char u[300];
		json_t *events;

		snprintf(u, sizeof(u), "%s/api/v1/jobs/%s/events", gw.base, ids[i]);
		events = tu_get_json(u);
		ck_assert_int_ge(json_array_size(json_object_get(events, "items")), 1);
		json_decref(events);
	}
	{
		char u[300];
		json_t *list;

		snprintf(u, sizeof(u), "%s/api/v1/jobs?limit=1000&labelSelector=team%%3Ddisk", gw.base);
		list = tu_get_json(u);
		ck_assert_int_eq(json_array_size(json_object_get(list, "items")), 40);
		json_decref(list);
	}
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
}
END_TEST

/* A connection from 127.0.0.2 (loopback too), so that the slow clients are
 * one address and the normal client another; -1 once refused. */
static int connect_from(const char *source, int port)
{
	struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	inet_pton(AF_INET, source, &from.sin_addr);
	inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
	if (fd < 0 || bind(fd, (struct sockaddr *)&from, sizeof(from)) ||
	    connect(fd, (struct sockaddr *)&to, sizeof(to))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* 500 connections that send a byte a second do not keep a normal client
 * from being served. */
START_TEST(test_slow_clients_do_not_starve_others)
{
	enum { SLOW = 500 };
	static const char request[] = "GET /api/v1/jobs HTTP/1.1\r\nHost: x\r\n\r\n";
	struct tu_gateway gw;
	int fds[SLOW], open_fds = 0;
	char url[200];

	ck_assert_int_eq(tu_gateway_start(&gw, dir, NULL), 0);
	for (int i = 0; i < SLOW; i++)
		if ((fds[i] = connect_from("127.0.0.2", gw.port)) >= 0)
			open_fds++;
	ck_assert_int_eq(open_fds, SLOW); /* the kernel accepts; the server may close some */
	snprintf(url, sizeof(url), "%s/api/v1/jobs", gw.base);
	for (int second = 0; second < 4; second++) {
		for (int i = 0; i < SLOW; i++)
			if (fds[i] >= 0 && send(fds[i], request + second, 1, MSG_NOSIGNAL) != 1) {
				close(fds[i]);
				fds[i] = -1;
			}
		/* Meanwhile a normal client is served, at once. */
		for (int k = 0; k < 10; k++) {
			struct tu_response r;
			int64_t started = gw_now_ms();

			ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), 0);
			ck_assert_int_eq(r.status, 200);
			ck_assert_int_lt(gw_now_ms() - started, 2000); /* served, not queued behind them */
			tu_response_release(&r);
		}
		usleep(1000000 - 100000);
	}
	for (int i = 0; i < SLOW; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
}
END_TEST

static long rss_kib(pid_t pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "VmRSS:", 6))
			kib = strtol(line + 6, NULL, 10);
	fclose(f);
	return kib;
}

/* A misbehaving API server (20% 500s, throttling to 429, 200 ms latency,
 * watches dropped every 2 s, history compacted every 3 s) under a steady
 * stream of submissions: every job ends right, none twice, the gateway
 * stays healthy and its memory flat. */
START_TEST(test_api_server_faults_under_steady_load)
{
	enum { JOBS = 120 };
	struct tu_kubesim sim = {0};
	struct tu_gateway gw;
	static const char *const mode = "driver-pod";
	char cfg[700], *ids[JOBS];
	long rss_warm = 0, rss_end;
	json_t *seen = json_object();

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "flaky", "--error-rate", "0.2", "--throttle-qps", "100",
					  "--latency-ms", "200", "--drop-watch-after", "2", "--compact-every", "3",
					  NULL), 0);
	tu_write_cluster_config(dir, &sim, &mode, 1,
				"dispatch: {retry_base_ms: 50, max_attempts: 50, workers: 16}\n", cfg, sizeof(cfg));
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	for (int j = 0; j < JOBS; j++) {
		char body[512], health[200];
		struct tu_response r;

		snprintf(body, sizeof(body),
			 "{\"name\":\"f%d\",\"labels\":{\"team\":\"flaky\"},\"spec\":{\"type\":\"Python\","
			 "\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"a.py\",\"executor\":{\"instances\":1},"
			 "\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"0.5\"}}}", j);
		ids[j] = tu_submit(gw.base, body);
		if (j % 10 == 9) { /* steady: ten a burst, a burst every 150 ms */
			snprintf(health, sizeof(health), "%s/readyz", gw.base);
			ck_assert_int_eq(tu_http("GET", health, NULL, NULL, 0, &r), 0);
			ck_assert_int_eq(r.status, 200);
			tu_response_release(&r);
			usleep(150000);
		}
		if (j == JOBS / 4)
			rss_warm = rss_kib(gw.pid);
	}
	for (int j = 0; j < JOBS; j++) {
		json_t *job = tu_wait_job(gw.base, ids[j], NULL, 90000);

		ck_assert_msg(job, "job %d did not end", j);
		ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "SUCCEEDED");
		json_object_set_new(seen, ids[j], json_true());
		json_decref(job);
		free(ids[j]);
	}
	rss_end = rss_kib(gw.pid);
	ck_assert_int_gt(rss_warm, 0);
	/* Under ASan freed memory sits in its quarantine: RSS says nothing. */
	if (!getenv("SPARKGW_SANITIZED") || strcmp(getenv("SPARKGW_SANITIZED"), "1"))
		ck_assert_msg(rss_end < rss_warm + 32 * 1024, "RSS grew from %ld to %ld KiB", rss_warm, rss_end);
	assert_one_driver_each(&sim, seen, JOBS);
	json_decref(seen);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	tu_kubesim_stop(&sim);
}
END_TEST

/* Resident memory does not grow with the clusters configured: twelve
 * (on one simulated API server, under twelve names) idle within a few MiB
 * of one. */
START_TEST(test_memory_does_not_grow_with_clusters)
{
	static const char *const modes[12] = {"driver-pod", "driver-pod", "driver-pod", "driver-pod",
					      "driver-pod", "driver-pod", "driver-pod", "driver-pod",
					      "driver-pod", "driver-pod", "driver-pod", "driver-pod"};
	struct tu_kubesim sim = {0}, names[12];
	long rss[2];
	char cfg[700], sub[600];

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "k", NULL), 0);
	for (int i = 0; i < 12; i++) {
		names[i] = sim;
		snprintf(names[i].name, sizeof(names[i].name), "c%d", i + 1);
	}
	for (int run = 0; run < 2; run++) {
		int n = run ? 12 : 1;
		struct tu_gateway gw;

		snprintf(sub, sizeof(sub), "%s/n%d", dir, n);
		ck_assert_int_eq(mkdir(sub, 0700), 0);
		tu_write_cluster_config(sub, names, modes, n, NULL, cfg, sizeof(cfg));
		ck_assert_int_eq(tu_gateway_start(&gw, sub, "--config", cfg, NULL), 0);
		sleep(3); /* every watcher has listed and reconciled */
		rss[run] = rss_kib(gw.pid);
		ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	}
	ck_assert_int_gt(rss[0], 0);
	if (!getenv("SPARKGW_SANITIZED") || strcmp(getenv("SPARKGW_SANITIZED"), "1"))
		ck_assert_msg(rss[1] < rss[0] + 8 * 1024, "idle RSS: %ld KiB with 1 cluster, %ld KiB with 12",
			      rss[0], rss[1]);
	tu_kubesim_stop(&sim);
}
END_TEST

Suite *faults_suite(void)
{
	Suite *s = suite_create("faults");
	TCase *tc = tcase_create("crash");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_kill_9_under_load_loses_and_repeats_nothing);
	/* The disk that fills is the SQLite file's (PostgreSQL's is the
	 * server's: the replicas suite takes the server away instead). */
	if (!getenv(TU_PG_ENV))
		tcase_add_test(tc, test_full_disk_answers_503_and_recovers);
	tcase_add_test(tc, test_slow_clients_do_not_starve_others);
	tcase_add_test(tc, test_api_server_faults_under_steady_load);
	tcase_add_test(tc, test_memory_does_not_grow_with_clusters);
	suite_add_tcase(s, tc);
	return s;
}
