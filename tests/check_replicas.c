/* Gateway replicas sharing one PostgreSQL database: the queue, the
 * clusters' watches and the clients' retries across them, a replica killed
 * under load, and PostgreSQL itself restarted under load. Each test starts
 * its own PostgreSQL server (initdb in a temporary directory, loopback). */
#include <check.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "tests/testutil.h"

#define REPLICAS 3
#define CLUSTERS 5
#define JOBS 5000

static char *dir, *pg_dir;
static struct tu_postgres pg;
static char dsn[256];

static void setup(void)
{
	/* The tests' gateways use the database they are given, not the one a
	 * run on PostgreSQL (make test-postgres) would give each. */
	unsetenv(TU_PG_ENV);
	dir = tu_tmpdir("replicas");
	pg_dir = tu_pg_tmpdir("replicas-pg");
	ck_assert_ptr_nonnull(dir);
	ck_assert_ptr_nonnull(pg_dir);
	memset(&pg, 0, sizeof(pg));
	ck_assert_msg(tu_postgres_start(&pg, pg_dir) == 0, "PostgreSQL did not start (%s)", pg.log);
	ck_assert_int_eq(tu_postgres_database(pg.dsn, "fleet", dsn, sizeof(dsn)), 0);
}

static void teardown(void)
{
	tu_postgres_stop(&pg, SIGINT);
	tu_rmtree(dir);
	tu_rmtree(pg_dir);
	free(dir);
	free(pg_dir);
}

/* The first column of the first row of sql on the fleet's database, as a
 * number; -1 when it cannot be read. */
static long long pg_number(const char *sql)
{
	PGconn *c = PQconnectdb(dsn);
	PGresult *res = PQexec(c, sql);
	long long v = -1;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0))
		v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	PQfinish(c);
	return v;
}

/* Every value of the first column of sql, as an object of value -> true. */
static json_t *pg_set(const char *sql)
{
	PGconn *c = PQconnectdb(dsn);
	PGresult *res = PQexec(c, sql);
	json_t *set = json_object();

	ck_assert_int_eq(PQresultStatus(res), PGRES_TUPLES_OK);
	for (int i = 0; i < PQntuples(res); i++)
		json_object_set_new(set, PQgetvalue(res, i, 0), json_true());
	PQclear(res);
	PQfinish(c);
	return set;
}

/* Clients submitting JOBS jobs over the replicas, each under its own
 * idempotency key, a key retried (on the next replica) until it is
 * acknowledged with 201, or 200 for a retry whose first answer was lost. */
struct load {
	struct tu_gateway *gw;
	int ngw;
	int jobs;
	atomic_int next;     /* the next key to submit */
	atomic_int acked;
	atomic_int refused;  /* 503 with Retry-After */
	atomic_int other;    /* any other answer: none is expected */
	atomic_int unreachable;
	char (*ids)[24];     /* the job of each key */
};

static void *submit_loop(void *arg)
{
	struct load *l = arg;
	int k;

	while ((k = atomic_fetch_add(&l->next, 1)) < l->jobs) {
		char url[200], key[32], body[512];
		bool done = false;

		snprintf(key, sizeof(key), "key-%d", k);
		snprintf(body, sizeof(body),
			 "{\"name\":\"r%d\",\"labels\":{\"team\":\"t%d\"},\"spec\":{\"type\":\"Python\","
			 "\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"a.py\",\"executor\":{\"instances\":0},"
			 "\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"0.2\"}}}",
			 k, k % 4);
		for (int attempt = 0; !done && attempt < 1200; attempt++) {
			struct tu_response r;

			snprintf(url, sizeof(url), "%s/api/v1/jobs", l->gw[(k + attempt) % l->ngw].base);
			if (tu_post_json(url, body, key, &r) != 0) {
				atomic_fetch_add(&l->unreachable, 1);
			} else if (r.status == 201 || r.status == 200) {
				snprintf(l->ids[k], sizeof(l->ids[0]), "%s", json_string_value(json_object_get(r.json, "id")));
				done = true;
			} else if (r.status == 503 && *r.retry_after) {
				atomic_fetch_add(&l->refused, 1);
			} else {
				fprintf(stderr, "replicas: key %d: %ld %s\n", k, r.status, r.body ? r.body : "");
				atomic_fetch_add(&l->other, 1);
			}
			tu_response_release(&r);
			if (!done)
				usleep(50000);
		}
		if (done)
			atomic_fetch_add(&l->acked, 1);
	}
	return NULL;
}

/* The kubesim gauge of watches of pods: open now (peak false) or the most
 * open at once since it started. */
static long watches_of_pods(const struct tu_kubesim *sim, bool peak)
{
	char url[200];
	struct tu_response r;
	const char *name = peak ? "kubesim_watches_peak{resource=\"pods\"} "
				: "apiserver_longrunning_requests{verb=\"WATCH\",resource=\"pods\"} ";
	const char *at;
	long n = -1;

	snprintf(url, sizeof(url), "%s/metrics", sim->base);
	if (tu_http("GET", url, NULL, NULL, 0, &r) == 0 && r.body && (at = strstr(r.body, name)))
		n = strtol(at + strlen(name), NULL, 10);
	else if (r.body)
		n = 0; /* never watched */
	tu_response_release(&r);
	return n;
}

/* Clusters whose watch lease instance holds now (NULL: anyone). */
static long long leases_held(const char *instance, bool others)
{
	char sql[400];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM watch_leases WHERE until_ms > %lld%s%s%s",
		 (long long)gw_now_ms(), instance ? (others ? " AND owner <> '" : " AND owner = '") : "",
		 instance ? instance : "", instance ? "'" : "");
	return pg_number(sql);
}

static void instance_of(const struct tu_gateway *gw, char *out, size_t len)
{
	char host[256] = "localhost";

	gethostname(host, sizeof(host) - 1);
	snprintf(out, len, "%s/127.0.0.1:%d", host, gw->port);
}

START_TEST(test_replicas_share_the_queue_and_the_watches)
{
	struct tu_kubesim sims[CLUSTERS] = {{0}};
	const char *modes[CLUSTERS];
	struct tu_gateway gw[REPLICAS];
	struct load l = {.gw = gw, .ngw = REPLICAS, .jobs = JOBS};
	pthread_t clients[8];
	char cfg[700], extra[512], rdir[REPLICAS][600], victim_id[300] = "";
	int victim = -1;
	int64_t t0;
	json_t *jobs, *drivers = json_object();

	l.ids = calloc(JOBS, sizeof(*l.ids));
	for (int i = 0; i < CLUSTERS; i++) {
		char name[16];

		snprintf(name, sizeof(name), "fleet-%d", i);
		modes[i] = "driver-pod";
		ck_assert_int_eq(tu_kubesim_start(&sims[i], dir, name, NULL), 0);
	}
	snprintf(extra, sizeof(extra),
		 "store: {driver: postgres, dsn: '%s'}\ndispatch: {lease_seconds: 2}\n"
		 "scheduler: {cluster_qps: 2000}\n", dsn);
	tu_write_cluster_config(dir, sims, modes, CLUSTERS, extra, cfg, sizeof(cfg));
	for (int i = 0; i < REPLICAS; i++) {
		snprintf(rdir[i], sizeof(rdir[i]), "%s/replica-%d", dir, i);
		ck_assert_int_eq(mkdir(rdir[i], 0700), 0);
		ck_assert_int_eq(tu_gateway_start(&gw[i], rdir[i], "--config", cfg, NULL), 0);
	}

	/* The watches spread over the replicas: each takes at most its share
	 * (2, 2 and 1 of 5), within a few lease rounds. */
	for (int t = 0; t < 300; t++) {
		bool spread = leases_held(NULL, false) == CLUSTERS;

		for (int i = 0; spread && i < REPLICAS; i++) {
			char id[300];

			instance_of(&gw[i], id, sizeof(id));
			spread = leases_held(id, false) >= 1 && leases_held(id, false) <= 2;
		}
		if (spread)
			break;
		usleep(100000);
	}
	for (int i = 0; i < REPLICAS; i++) {
		char id[300];

		instance_of(&gw[i], id, sizeof(id));
		ck_assert_msg(leases_held(id, false) >= 1 && leases_held(id, false) <= 2,
			      "replica %d watches %lld clusters", i, leases_held(id, false));
	}

	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(pthread_create(&clients[i], NULL, submit_loop, &l), 0);
	/* A third of the way, the replica watching the most clusters dies. */
	for (int t = 0; t < 1200 && atomic_load(&l.acked) < JOBS / 3; t++)
		usleep(50000);
	for (int i = 0; i < REPLICAS; i++) {
		char id[300];

		instance_of(&gw[i], id, sizeof(id));
		if (victim < 0 || leases_held(id, false) > leases_held(victim_id, false)) {
			victim = i;
			snprintf(victim_id, sizeof(victim_id), "%s", id);
		}
	}
	ck_assert_int_eq(tu_gateway_signal(&gw[victim], SIGKILL), 128 + SIGKILL);
	t0 = gw_now_ms();
	/* Its clusters are watched by the others within seconds. */
	for (int t = 0; t < 300 && leases_held(victim_id, true) < CLUSTERS; t++)
		usleep(100000);
	ck_assert_int_eq(leases_held(victim_id, true), CLUSTERS);
	ck_assert_int_lt(gw_now_ms() - t0, 20000);
	for (int i = 0; i < CLUSTERS; i++) {
		long open = -1;

		for (int t = 0; t < 300 && (open = watches_of_pods(&sims[i], false)) != 1; t++)
			usleep(100000);
		ck_assert_msg(open == 1, "cluster %d: %ld watches of pods", i, open);
	}
	fprintf(stderr, "replicas: clusters watched again %.1f s after the kill\n", (double)(gw_now_ms() - t0) / 1e3);
	ck_assert_int_eq(tu_gateway_restart(&gw[victim], rdir[victim], "--config", cfg, NULL), 0);

	for (int i = 0; i < 8; i++)
		pthread_join(clients[i], NULL);
	ck_assert_int_eq(atomic_load(&l.acked), JOBS);
	ck_assert_int_eq(atomic_load(&l.other), 0);
	ck_assert_int_gt(atomic_load(&l.unreachable), 0); /* clients did meet the dead replica */

	/* Every acknowledged key is one job, none other, and each converges. */
	for (int t = 0; t < 2400; t++) {
		if (pg_number("SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'") == JOBS)
			break;
		usleep(100000);
	}
	ck_assert_int_eq(pg_number("SELECT count(*) FROM jobs"), JOBS);
	ck_assert_int_eq(pg_number("SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'"), JOBS);
	ck_assert_int_eq(pg_number("SELECT count(*) FROM jobs WHERE run <> 1"), 0);
	jobs = pg_set("SELECT id FROM jobs");
	for (int k = 0; k < JOBS; k++) {
		ck_assert_msg(json_is_true(json_object_get(jobs, l.ids[k])), "job %s of key %d lost or twice",
			      l.ids[k], k);
		json_object_set_new(jobs, l.ids[k], json_false());
	}

	/* One driver pod per job over all the clusters: no dispatch twice. */
	for (int i = 0; i < CLUSTERS; i++) {
		char url[300];
		json_t *pods = NULL, *pod;
		size_t p;

		snprintf(url, sizeof(url), "%s/api/v1/pods?labelSelector=spark-role%%3Ddriver", sims[i].base);
		pods = tu_get_json(url);
		ck_assert_ptr_nonnull(json_object_get(pods, "items"));
		json_array_foreach(json_object_get(pods, "items"), p, pod) {
			const char *job = json_string_value(json_object_get(
				json_object_get(json_object_get(pod, "metadata"), "labels"), "sparkgw/job-id"));

			ck_assert_msg(json_is_false(json_object_get(jobs, job)), "pod of unknown job %s", job);
			ck_assert_msg(!json_object_get(drivers, job), "job %s has two drivers", job);
			json_object_set_new(drivers, job, json_true());
		}
		json_decref(pods);
		/* Never two replicas watching one cluster at once. */
		ck_assert_int_eq(watches_of_pods(&sims[i], true), 1);
	}
	ck_assert_int_eq(json_object_size(drivers), JOBS);
	json_decref(drivers);
	json_decref(jobs);
	free(l.ids);

	/* Every replica places with what runs on every cluster, watched by it
	 * or not: long jobs' drivers are counted in the clusters' namespaces
	 * as each replica sees them. */
	for (int i = 0; i < 6; i++) {
		char body[400], *id;

		snprintf(body, sizeof(body),
			 "{\"name\":\"long-%d\",\"spec\":{\"type\":\"Python\",\"sparkVersion\":\"3.5.1\","
			 "\"mainApplicationFile\":\"a.py\",\"executor\":{\"instances\":0},"
			 "\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"30\"}}}", i);
		id = tu_submit(gw[i % REPLICAS].base, body);
		ck_assert_ptr_nonnull(id);
		free(id);
	}
	for (int t = 0; t < 300 && pg_number("SELECT count(*) FROM jobs WHERE state = 'RUNNING'") < 6; t++)
		usleep(100000);
	ck_assert_int_eq(pg_number("SELECT count(*) FROM jobs WHERE state = 'RUNNING'"), 6);
	for (int r = 0; r < REPLICAS; r++) {
		long pods = 0;

		for (int t = 0; t < 100 && pods < 6; t++) {
			pods = 0;
			for (int i = 0; i < CLUSTERS; i++) {
				char url[300];
				json_t *c;

				snprintf(url, sizeof(url), "%s/api/v1/clusters/%s", gw[r].base, sims[i].name);
				c = tu_get_json(url);
				pods += (long)json_integer_value(json_object_get(
					json_object_get(json_object_get(c, "namespaces"), "spark-jobs"), "pods"));
				json_decref(c);
			}
			if (pods < 6)
				usleep(100000);
		}
		ck_assert_msg(pods >= 6, "replica %d sees %ld pods running", r, pods);
	}
	for (int i = 0; i < REPLICAS; i++)
		ck_assert_int_eq(tu_gateway_signal(&gw[i], SIGTERM), 0);
	for (int i = 0; i < CLUSTERS; i++)
		tu_kubesim_stop(&sims[i]);
}
END_TEST

START_TEST(test_postgres_restart_loses_no_acknowledged_job)
{
	struct tu_gateway gw;
	struct load l = {.gw = &gw, .ngw = 1, .jobs = 1500};
	pthread_t clients[4];
	char cfg[600], url[200];
	struct tu_response r;
	json_t *jobs;
	FILE *f;

	l.ids = calloc((size_t)l.jobs, sizeof(*l.ids));
	snprintf(cfg, sizeof(cfg), "%s/gateway.yaml", dir);
	f = fopen(cfg, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "store: {driver: postgres, dsn: '%s'}\n", dsn);
	fclose(f);
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&clients[i], NULL, submit_loop, &l), 0);
	for (int t = 0; t < 600 && atomic_load(&l.acked) < 300; t++)
		usleep(20000);

	/* Down for two seconds: a fast shutdown ends every session. */
	tu_postgres_stop(&pg, SIGINT);
	usleep(500000);
	snprintf(url, sizeof(url), "%s/readyz", gw.base);
	ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 503);
	tu_response_release(&r);
	usleep(1500000);
	ck_assert_int_eq(tu_postgres_start(&pg, pg_dir), 0);

	for (int i = 0; i < 4; i++)
		pthread_join(clients[i], NULL);
	ck_assert_int_eq(atomic_load(&l.acked), l.jobs);
	ck_assert_int_gt(atomic_load(&l.refused), 0); /* the outage was answered 503 + Retry-After */
	ck_assert_int_eq(atomic_load(&l.other), 0);
	ck_assert_int_eq(atomic_load(&l.unreachable), 0);
	/* Each acknowledged key is one stored job, and there are no others. */
	ck_assert_int_eq(pg_number("SELECT count(*) FROM jobs"), l.jobs);
	jobs = pg_set("SELECT id FROM jobs");
	for (int k = 0; k < l.jobs; k++) {
		ck_assert_msg(json_is_true(json_object_get(jobs, l.ids[k])), "job %s of key %d lost or twice",
			      l.ids[k], k);
		json_object_set_new(jobs, l.ids[k], json_false());
	}
	json_decref(jobs);
	free(l.ids);
	snprintf(url, sizeof(url), "%s/readyz", gw.base);
	ck_assert_int_eq(tu_http("GET", url, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 200);
	tu_response_release(&r);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
}
END_TEST

Suite *replicas_suite(void)
{
	Suite *s = suite_create("replicas");
	TCase *tc = tcase_create("postgres");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 420);
	tcase_add_test(tc, test_postgres_restart_loses_no_acknowledged_job);
	tcase_add_test(tc, test_replicas_share_the_queue_and_the_watches);
	suite_add_tcase(s, tc);
	return s;
}
