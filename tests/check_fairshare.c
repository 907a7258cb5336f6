/* Fair share and quotas: the order in which teams' queued jobs go out
 * (weighted, dominant resource), the limits of teams and pools and what a
 * waiting job says, configured priority levels, and two teams flooding a
 * pool at 10:1 end to end. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/yamljson.h"
#include "dispatch/dispatch.h"
#include "store/store.h"
#include "tests/testutil.h"

static char *dir;

static void setup(void)
{
	dir = tu_tmpdir("fair");
	ck_assert_ptr_nonnull(dir);
}

static void teardown(void)
{
	tu_rmtree(dir);
	free(dir);
}

static struct router *policy(const char *yaml)
{
	json_t *doc = NULL, *marks = NULL;
	struct router *r = NULL;
	char err[GW_ERRLEN];

	ck_assert_msg(gw_yaml_load_string(yaml, strlen(yaml), &doc, &marks, err) == GW_OK, "%s", err);
	ck_assert_msg(router_load(doc, marks, "policy.yaml", &r, err) == GW_OK, "%s", err);
	json_decref(doc);
	json_decref(marks);
	return r;
}

static const char two_teams[] =
	"clusters: [{name: c1, kubeconfig: /dev/null}]\n"
	"pools: [{name: p, clusters: [c1], limits: {maxCores: 8}}]\n"
	"teams: {a: {share: 3}, b: {share: 1}, small: {maxCores: 1}}\n";

/* A queue of n one-core jobs per team, team by team, oldest first. */
static void queue_of(struct store_queue *q, const char *const *teams, size_t nteams, size_t n)
{
	memset(q, 0, sizeof(*q));
	q->jobs = calloc(nteams * n, sizeof(*q->jobs));
	for (size_t t = 0; t < nteams; t++)
		for (size_t i = 0; i < n; i++) {
			struct store_queued *j = &q->jobs[q->njobs++];

			j->seq = (int64_t)q->njobs;
			snprintf(j->id, sizeof(j->id), "%s-%zu", teams[t], i);
			j->state = STORE_QUEUED;
			j->name = strdup(j->id);
			j->team = strdup(teams[t]);
			j->pool = strdup("p");
			j->rank = 2;
			j->demand.cores_milli = 1000;
		}
}

static void use(struct store_queue *q, const char *team, unsigned jobs, int64_t cores)
{
	struct store_usage *u;

	q->usage = realloc(q->usage, (q->nusage + 1) * sizeof(*q->usage));
	u = &q->usage[q->nusage++];
	memset(u, 0, sizeof(*u));
	u->pool = strdup("p");
	u->team = strdup(team);
	u->running = jobs;
	u->used.cores_milli = cores * 1000;
}

/* How many of the ready picks each team got. */
static void count_ready(const struct store_queue *q, const struct dispatch_pick *picks, const char *team,
			size_t *ready, size_t *waiting, const char **why)
{
	*ready = *waiting = 0;
	for (size_t i = 0; i < q->njobs; i++) {
		if (strcmp(q->jobs[picks[i].job].team, team))
			continue;
		if (picks[i].ready) {
			ck_assert_int_eq(*waiting, 0); /* ready ones come first */
			(*ready)++;
		} else {
			(*waiting)++;
			*why = picks[i].why;
		}
	}
}

START_TEST(test_order_is_weighted_fair_share)
{
	static const char *const teams[] = {"a", "b"};
	struct router *r = policy(two_teams);
	struct dispatch_defaults defaults = {0};
	struct store_queue q;
	struct dispatch_pick picks[40];
	size_t ready, waiting;
	const char *why = "";

	/* Team a queued all its jobs first; the pool runs 8 cores. */
	queue_of(&q, teams, 2, 20);
	ck_assert_int_eq(dispatch_order(r, &defaults, &q, NULL, NULL, picks), GW_OK);
	count_ready(&q, picks, "a", &ready, &waiting, &why);
	ck_assert_uint_eq(ready, 6); /* 3:1 of 8 cores */
	ck_assert_str_eq(why, "QuotaExceeded: pool p at 8/8 cores, the job asks for 1");
	count_ready(&q, picks, "b", &ready, &waiting, &why);
	ck_assert_uint_eq(ready, 2);
	ck_assert_uint_eq(waiting, 18);
	/* The first two out are one of each: neither waits for the other's backlog. */
	ck_assert_str_ne(q.jobs[picks[0].job].team, q.jobs[picks[1].job].team);
	store_queue_release(&q);

	/* Team a runs 6 cores already: the next free places go to b. */
	queue_of(&q, teams, 2, 5);
	use(&q, "a", 6, 6);
	ck_assert_int_eq(dispatch_order(r, &defaults, &q, NULL, NULL, picks), GW_OK);
	count_ready(&q, picks, "a", &ready, &waiting, &why);
	ck_assert_uint_eq(ready, 0);
	count_ready(&q, picks, "b", &ready, &waiting, &why);
	ck_assert_uint_eq(ready, 2);
	store_queue_release(&q);
	router_unref(r);
}
END_TEST

static bool on_its_way(void *arg, const char *id)
{
	(void)arg;
	return !strcmp(id, "a-0") || !strcmp(id, "a-1");
}

START_TEST(test_team_limits_hold_the_team_back)
{
	static const char *const teams[] = {"small", "b"};
	struct router *r = policy(two_teams);
	struct dispatch_defaults defaults = {.max_running_per_team = 3};
	struct store_queue q;
	struct dispatch_pick picks[40];
	size_t ready, waiting;
	const char *why = "";

	queue_of(&q, teams, 2, 5);
	ck_assert_int_eq(dispatch_order(r, &defaults, &q, NULL, NULL, picks), GW_OK);
	count_ready(&q, picks, "small", &ready, &waiting, &why);
	ck_assert_uint_eq(ready, 1);
	ck_assert_str_eq(why, "QuotaExceeded: team small at 1/1 cores, the job asks for 1");
	/* b has no entry: the configured default of 3 running jobs holds. */
	count_ready(&q, picks, "b", &ready, &waiting, &why);
	ck_assert_uint_eq(ready, 3);
	ck_assert_str_eq(why, "QuotaExceeded: team b at 3/3 running jobs");
	store_queue_release(&q);

	/* Jobs on their way count, and are not held back themselves. */
	{
		static const char *const just_a[] = {"a"};

		queue_of(&q, just_a, 1, 12);
		use(&q, "a", 7, 7);
		ck_assert_int_eq(dispatch_order(r, &defaults, &q, on_its_way, NULL, picks), GW_OK);
		count_ready(&q, picks, "a", &ready, &waiting, &why);
		ck_assert_uint_eq(ready, 2);
		store_queue_release(&q);
	}
	router_unref(r);
}
END_TEST

/* Limits in the policy are checked: errors name the line. */
START_TEST(test_policy_teams_and_priorities)
{
	static const char *const bad[][2] = {
		{"teams: {a: {share: 0}}\n", "policy.yaml: line 1, column 12: teams.a.share must be more than 0"},
		{"teams: {a: {maxCorez: 1}}\n", "unknown key 'teams.a.maxCorez'"},
		{"teams: {'A B': {}}\n", "team names are label values"},
		{"priorities: {levels: [p0, p1], default: p2}\n", "priorities.default must be one of the levels"},
		{"priorities: {levels: [p0, p0]}\n", "priority names are distinct label values"},
		{"clusters: [{name: c1, kubeconfig: /dev/null}]\n"
		 "pools: [{name: p, clusters: [c1], limits: {maxGpus: -1}}]\n", "pools[0].limits.maxGpus must be a number"},
	};
	struct router *r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *doc = NULL, *marks = NULL;
		char err[GW_ERRLEN];

		ck_assert_int_eq(gw_yaml_load_string(bad[i][0], strlen(bad[i][0]), &doc, &marks, err), GW_OK);
		ck_assert_int_eq(router_load(doc, marks, "policy.yaml", &r, err), GW_EINVAL);
		ck_assert_msg(strstr(err, bad[i][1]), "%s: %s", bad[i][0], err);
		json_decref(doc);
		json_decref(marks);
	}
	r = policy("priorities: {levels: [urgent, batch, backfill], default: batch}\n");
	ck_assert_int_eq(router_priority_rank(r, "urgent"), 0);
	ck_assert_int_eq(router_priority_rank(r, "backfill"), 2);
	ck_assert_int_eq(router_priority_rank(r, NULL), 1);
	ck_assert_int_eq(router_priority_rank(r, "normal"), -1);
	router_unref(r);
}
END_TEST

static const char job_fmt[] =
	"{\"name\":\"f\",\"labels\":{\"team\":\"%s\"%s},\"spec\":{\"type\":\"Python\","
	"\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"a.py\","
	"\"driver\":{\"cores\":1},\"executor\":{\"instances\":1,\"cores\":%d},"
	"\"sparkConf\":{\"spark.kubesim.durationSeconds\":\"%s\"}}}";

/* Jobs of the team in the state, from the list API. */
static size_t count_jobs(const char *base, const char *team, const char *state)
{
	char u[400];
	json_t *list;
	size_t n;

	snprintf(u, sizeof(u), "%s/api/v1/jobs?labelSelector=team%%3D%s&state=%s&limit=1000", base, team, state);
	list = tu_get_json(u);
	n = json_array_size(json_object_get(list, "items"));
	json_decref(list);
	return n;
}

/* Team a floods a 16-core pool with ten times the jobs of team b; b's
 * weight is 3 to a's 1, so while both wait, b runs about 12 of the 16
 * cores, and a keeps running too. */
START_TEST(test_two_teams_flooding_get_their_shares)
{
	struct tu_kubesim sim = {0};
	struct tu_gateway gw;
	static const char *const mode = "driver-pod";
	char cfg[700], extra[400];
	double b_share = 0;
	int samples = 0, a_starved = 0;

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "fair", NULL), 0);
	snprintf(extra, sizeof(extra),
		 "pools: [{name: batch, clusters: [fair], limits: {maxCores: 16}}]\n"
		 "teams: {a: {share: 1}, b: {share: 3}}\n");
	tu_write_cluster_config(dir, &sim, &mode, 1, extra, cfg, sizeof(cfg));
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	for (int i = 0; i < 330; i++) {
		char body[600];
		char *id;

		/* Two cores a job; b's every 11th submission. */
		snprintf(body, sizeof(body), job_fmt, i % 11 == 10 ? "b" : "a", "", 1, "1");
		id = tu_submit(gw.base, body);
		free(id);
	}
	/* Sample while b still has jobs waiting (a always has). */
	for (int t = 0; t < 200; t++) {
		size_t a = count_jobs(gw.base, "a", "RUNNING") + count_jobs(gw.base, "a", "SUBMITTED") +
			   count_jobs(gw.base, "a", "DISPATCHING");
		size_t b = count_jobs(gw.base, "b", "RUNNING") + count_jobs(gw.base, "b", "SUBMITTED") +
			   count_jobs(gw.base, "b", "DISPATCHING");
		size_t b_queued = count_jobs(gw.base, "b", "QUEUED");

		/* The pool's bound (the six reads are not one snapshot: a job
		 * ending between two may make room for one counted twice). */
		ck_assert_uint_le(2 * (a + b), 18);
		if (b_queued < 3)
			break;
		if (t >= 10) { /* after the first runs have ended and shares settled */
			b_share += (double)b / (double)(a + b ? a + b : 1);
			a_starved += a == 0;
			samples++;
		}
		usleep(100000);
	}
	ck_assert_int_ge(samples, 10);
	b_share /= samples;
	ck_assert_msg(b_share > 0.62 && b_share < 0.88, "b ran %.0f%% of the pool's jobs", 100 * b_share);
	ck_assert_msg(a_starved <= samples / 10, "a ran nothing in %d of %d samples", a_starved, samples);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	tu_kubesim_stop(&sim);
}
END_TEST

/* A job bigger than its team may ever run is refused at once; one over
 * what is left waits, and the queue and its GET say why; priorities are
 * the policy's. */
START_TEST(test_quota_reasons_and_priority_levels)
{
	struct tu_kubesim sim = {0};
	struct tu_gateway gw;
	struct tu_response r;
	static const char *const mode = "driver-pod";
	char cfg[700], extra[400], body[600], u[400], *first, *second;
	json_t *job, *q;
	bool said = false;

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "quota", NULL), 0);
	snprintf(extra, sizeof(extra),
		 "teams: {ads: {maxCores: 4}}\n"
		 "priorities: {levels: [urgent, batch], default: batch}\n");
	tu_write_cluster_config(dir, &sim, &mode, 1, extra, cfg, sizeof(cfg));
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);

	snprintf(u, sizeof(u), "%s/api/v1/jobs", gw.base);
	snprintf(body, sizeof(body), job_fmt, "ads", "", 9, "1");
	ck_assert_int_eq(tu_post_json(u, body, NULL, &r), 0);
	ck_assert_int_eq(r.status, 422);
	ck_assert_str_eq(json_string_value(json_object_get(r.json, "detail")),
			 "the job could never run: QuotaExceeded: team ads at 0/4 cores, the job asks for 10");
	tu_response_release(&r);
	snprintf(body, sizeof(body), job_fmt, "ads", ",\"priority\":\"normal\"", 1, "1");
	ck_assert_int_eq(tu_post_json(u, body, NULL, &r), 0);
	ck_assert_int_eq(r.status, 422);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(r.json, "errors"), 0),
							   "message")), "must be one of urgent, batch");
	tu_response_release(&r);

	snprintf(body, sizeof(body), job_fmt, "ads", ",\"priority\":\"urgent\"", 2, "3");
	first = tu_submit(gw.base, body);
	job = tu_wait_job(gw.base, first, "RUNNING", 10000);
	ck_assert_ptr_nonnull(job);
	json_decref(job);
	snprintf(body, sizeof(body), job_fmt, "ads", "", 2, "1");
	second = tu_submit(gw.base, body);
	for (int t = 0; t < 50 && !said; t++) {
		snprintf(u, sizeof(u), "%s/api/v1/jobs/%s", gw.base, second);
		job = tu_get_json(u);
		said = json_object_get(job, "waitReason") &&
		       !strcmp(json_string_value(json_object_get(job, "waitReason")),
			       "QuotaExceeded: team ads at 3/4 cores, the job asks for 3");
		ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "QUEUED");
		json_decref(job);
		usleep(50000);
	}
	ck_assert(said);
	snprintf(u, sizeof(u), "%s/api/v1/queue?team=ads", gw.base);
	q = tu_get_json(u);
	ck_assert_schema("Queue", q);
	job = json_array_get(json_object_get(q, "items"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(job, "id")), second);
	ck_assert_str_eq(json_string_value(json_object_get(job, "priority")), "batch");
	ck_assert_str_eq(json_string_value(json_object_get(job, "reason")),
			 "QuotaExceeded: team ads at 3/4 cores, the job asks for 3");
	json_decref(q);
	/* When the first ends, the second runs. */
	json_decref(tu_wait_job(gw.base, first, "SUCCEEDED", 15000));
	job = tu_wait_job(gw.base, second, "SUCCEEDED", 15000);
	ck_assert_ptr_nonnull(job);
	json_decref(job);
	free(first);
	free(second);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	tu_kubesim_stop(&sim);
}
END_TEST

Suite *fairshare_suite(void)
{
	Suite *s = suite_create("fairshare");
	TCase *unit = tcase_create("order"), *e2e = tcase_create("flood");

	tcase_add_test(unit, test_order_is_weighted_fair_share);
	tcase_add_test(unit, test_team_limits_hold_the_team_back);
	tcase_add_test(unit, test_policy_teams_and_priorities);
	suite_add_tcase(s, unit);
	tcase_add_checked_fixture(e2e, setup, teardown);
	tcase_set_timeout(e2e, 120);
	tcase_add_test(e2e, test_two_teams_flooding_get_their_shares);
	tcase_add_test(e2e, test_quota_reasons_and_priority_levels);
	suite_add_tcase(s, e2e);
	return s;
}
