/* sparkgw get|list|logs|cancel|events|queue|clusters|cordon|drain|
 * uncordon|version, and the plumbing every command shares: the retried
 * call, the -o formats, TYPE/NAME arguments. */
#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_int.h"
#include "common/yamljson.h"

#define LIST_PAGE_MAX 1000

/* ---- plumbing ---- */

static const char *str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

json_t *cli_call(struct cli_ctx *x, const char *method, const char *path, const char *body, const char *header,
		 int *status)
{
	struct cli_response r;
	char err[GW_ERRLEN];
	json_t *doc;

	for (int attempt = 0;; attempt++) {
		bool answered = cli_request(x->client, method, path, body, header, &r, err);

		if (answered && r.status != 503)
			break;
		if (attempt == 2) {
			if (answered) {
				cli_print_problem(&r);
				cli_response_release(&r);
				*status = CLI_EXIT_FAILED;
			} else {
				fprintf(stderr, "sparkgw: %s\n", err);
				*status = CLI_EXIT_UNREACHABLE;
			}
			return NULL;
		}
		if (answered)
			cli_response_release(&r);
		sleep(1);
	}
	if (r.status < 200 || r.status > 299) {
		cli_print_problem(&r);
		cli_response_release(&r);
		*status = CLI_EXIT_FAILED;
		return NULL;
	}
	doc = cli_response_json(&r);
	cli_response_release(&r);
	if (!doc) {
		fprintf(stderr, "sparkgw: the server's answer to %s %s is not JSON\n", method, path);
		*status = CLI_EXIT_FAILED;
	}
	return doc;
}

bool cli_print_as_asked(const struct cli_ctx *x, const json_t *doc, const json_t *items, const char *kind,
			const char *name_key, int *status)
{
	char *text = NULL, err[GW_ERRLEN];
	struct gw_buf out;
	const json_t *item;
	size_t i;

	switch (x->output) {
	case CLI_OUT_YAML:
		if (gw_yaml_dump(doc, &text, err) == GW_OK) {
			fputs(text, stdout);
			free(text);
			return true;
		}
		__attribute__((fallthrough)); /* JSON says the same */
	case CLI_OUT_JSON:
		text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (text)
			printf("%s\n", text);
		free(text);
		return true;
	case CLI_OUT_JSONPATH:
		gw_buf_init(&out, 64u << 20);
		if (cli_jsonpath(x->jsonpath, doc, &out, err)) {
			fwrite(out.data ? out.data : "", 1, out.len, stdout);
		} else {
			fprintf(stderr, "sparkgw: %s\n", err);
			*status = CLI_EXIT_FAILED;
		}
		gw_buf_release(&out);
		return true;
	case CLI_OUT_NAME:
		if (!kind) {
			fprintf(stderr, "sparkgw: -o name: %s prints things without names\n", x->cmd->name);
			*status = CLI_EXIT_USAGE;
			return true;
		}
		if (!items)
			printf("%s/%s\n", kind, str(doc, name_key));
		json_array_foreach(items, i, item)
			printf("%s/%s\n", kind, str(item, name_key));
		return true;
	default:
		return false;
	}
}

const char *cli_strip_kind(const char *arg, const char *kind)
{
	size_t n = strlen(kind);

	return !strncmp(arg, kind, n) && arg[n] == '/' ? arg + n + 1 : arg;
}

/* A path segment or query value, percent-encoded. */
static char *escape(const char *s)
{
	char *curl_text = curl_easy_escape(NULL, s, 0);
	char *copy = curl_text ? strdup(curl_text) : NULL;

	curl_free(curl_text);
	return copy;
}

/* cli_call() on before + the command's argument (without its kind/),
 * escaped, + after. */
static json_t *call_on(struct cli_ctx *x, const char *method, const char *kind, const char *before,
		       const char *after, int *status)
{
	char *arg = escape(cli_strip_kind(x->args[0], kind)), path[512];

	snprintf(path, sizeof(path), "%s%s%s", before, arg ? arg : "", after);
	free(arg);
	return cli_call(x, method, path, NULL, NULL, status);
}

/* ---- jobs as table rows (list, get -w) ---- */

#define JOB_COLUMNS 5
#define WIDE_JOB_COLUMNS 10

static const char *const job_head[WIDE_JOB_COLUMNS] = {"ID",    "NAME", "STATE",   "TEAM",      "AGE",
						       "REASON", "CORES", "CLUSTER", "NAMESPACE", "USER"};

static struct cli_table *job_table(const struct cli_ctx *x)
{
	/* NAME and REASON give way first on a narrow terminal. */
	return cli_table_new(x->output == CLI_OUT_WIDE ? WIDE_JOB_COLUMNS : JOB_COLUMNS, job_head, 1u << 1 | 1u << 5);
}

static long long number_or(const json_t *obj, const char *key, long long fallback)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_integer(v) ? json_integer_value(v) : fallback;
}

/* The cores a job asks for: the driver's and every executor's, with
 * Spark's defaults (one core each, two executors). */
static void job_cores(const json_t *job, char *out, size_t len)
{
	const json_t *spec = json_object_get(job, "spec"), *exec = json_object_get(spec, "executor");

	snprintf(out, len, "%lld",
		 number_or(json_object_get(spec, "driver"), "cores", 1) +
			 number_or(exec, "instances", 2) * number_or(exec, "cores", 1));
}

/* The failure's reason (OOMKilled, exit code…), else why it waits. */
static const char *job_reason(const json_t *job)
{
	return str(job, "reason") ? str(job, "reason") : str(job, "waitReason");
}

static void add_job_row(struct cli_table *t, const json_t *job)
{
	const json_t *pl = json_object_get(job, "placement");
	char age[32], cores[32];
	const char *row[WIDE_JOB_COLUMNS];

	cli_age(str(job, "createdAt"), age, sizeof(age));
	job_cores(job, cores, sizeof(cores));
	row[0] = str(job, "id");
	row[1] = str(job, "name");
	row[2] = str(job, "state");
	row[3] = str(json_object_get(job, "labels"), "team");
	row[4] = age;
	row[5] = job_reason(job);
	row[6] = cores;
	row[7] = str(pl, "cluster");
	row[8] = str(pl, "namespace");
	row[9] = str(job, "user");
	cli_table_add(t, row);
}

/* In a watch: the change as -o asks (a row of t, a name, a document). */
static int print_change(const struct cli_ctx *x, struct cli_table *t, const json_t *job)
{
	int status = 0;

	if (!cli_print_as_asked(x, job, NULL, "job", "id", &status)) {
		add_job_row(t, job);
		cli_table_print(t, stdout, cli_terminal_width(stdout));
	}
	fflush(stdout);
	return status;
}

/* ---- get ---- */

static void print_job(const json_t *job)
{
	const json_t *labels = json_object_get(job, "labels"), *pl = json_object_get(job, "placement");
	const json_t *driver = json_object_get(job, "driver"), *v;
	const char *key;
	char list[1024] = "", age[32];

	json_object_foreach((json_t *)(uintptr_t)labels, key, v)
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s=%s", *list ? "," : "", key,
			 json_string_value(v));
	cli_age(str(job, "createdAt"), age, sizeof(age));
	printf("ID:         %s\n", str(job, "id"));
	printf("Name:       %s\n", str(job, "name"));
	printf("User:       %s\n", str(job, "user"));
	printf("Labels:     %s\n", list);
	printf("State:      %s%s%s%s\n", str(job, "state"), str(job, "reason") ? " (" : "",
	       str(job, "reason") ? str(job, "reason") : "", str(job, "reason") ? ")" : "");
	if (str(job, "message"))
		printf("Message:    %s\n", str(job, "message"));
	if (str(job, "waitReason"))
		printf("Waiting:    %s\n", str(job, "waitReason"));
	printf("Created:    %s (%s ago)\n", str(job, "createdAt"), age);
	printf("Updated:    %s\n", str(job, "updatedAt"));
	if (str(pl, "cluster"))
		printf("Placement:  pool %s, cluster %s, namespace %s\n", str(pl, "pool") ? str(pl, "pool") : "-",
		       str(pl, "cluster"), str(pl, "namespace"));
	json_object_foreach((json_t *)(uintptr_t)driver, key, v)
		if (json_is_string(v))
			printf("Driver %-4s %s\n", key, json_string_value(v));
}

/* What a watch of one job tells apart: state, reason, why it waits. */
static void job_moment(const json_t *job, char *out, size_t len)
{
	snprintf(out, len, "%s|%s|%s", str(job, "state"), str(job, "reason") ? str(job, "reason") : "",
		 str(job, "waitReason") ? str(job, "waitReason") : "");
}

/* get -w: a row per change, by ETag polls, until the job ends. */
static int watch_job(struct cli_ctx *x, const char *id)
{
	char path[128], header[96] = "", last[512] = "", now[512], err[GW_ERRLEN];
	struct cli_table *t;
	time_t deadline;
	int status = 0;

	if (!cli_deadline(x, &deadline) || !(t = job_table(x)))
		return CLI_EXIT_USAGE;
	snprintf(path, sizeof(path), "/api/v1/jobs/%s", id);
	while (!status && (!deadline || time(NULL) < deadline)) {
		json_t *job;
		enum cli_poll poll = cli_poll_job(x, path, header, sizeof(header), &job, err);
		bool over;

		if (poll == CLI_POLL_UNREACHABLE)
			fprintf(stderr, "sparkgw: %s\n", err);
		if (poll == CLI_POLL_UNREACHABLE || poll == CLI_POLL_REFUSED) {
			status = poll == CLI_POLL_UNREACHABLE ? CLI_EXIT_UNREACHABLE : CLI_EXIT_FAILED;
			break;
		}
		job_moment(job, now, sizeof(now));
		if (job && strcmp(now, last)) {
			status = print_change(x, t, job);
			snprintf(last, sizeof(last), "%s", now);
		}
		over = job && cli_state_final(str(job, "state"));
		json_decref(job);
		if (over)
			break;
		usleep(500 * 1000);
	}
	cli_table_free(t);
	return status;
}

int cli_cmd_get(struct cli_ctx *x)
{
	int status = 0;
	json_t *job;

	if (cli_flag(x, CLI_WATCH)) {
		char *id = escape(cli_strip_kind(x->args[0], "job"));

		status = id ? watch_job(x, id) : CLI_EXIT_FAILED;
		free(id);
		return status;
	}
	if (!(job = call_on(x, "GET", "job", "/api/v1/jobs/", "", &status)))
		return status;
	if (!cli_print_as_asked(x, job, NULL, "job", "id", &status))
		print_job(job);
	json_decref(job);
	return status;
}

/* ---- list ---- */

/* The query every page of the list shares (selector, state). */
static void list_query(const struct cli_ctx *x, bool with_state, char *out, size_t len)
{
	char *s;

	*out = '\0';
	if (cli_flag(x, CLI_SELECTOR) && (s = escape(cli_flag(x, CLI_SELECTOR)))) {
		snprintf(out, len, "&labelSelector=%s", s);
		free(s);
	}
	if (with_state && cli_flag(x, CLI_STATE) && (s = escape(cli_flag(x, CLI_STATE)))) {
		snprintf(out + strlen(out), len - strlen(out), "&state=%s", s);
		free(s);
	}
}

static long long resource_version(const json_t *job)
{
	const char *rv = str(job, "resourceVersion");

	return rv ? strtoll(rv, NULL, 10) : 0;
}

/* list -w: each change after the page printed, from the changes feed
 * (updatedSince), until --timeout or an interrupt. The state filter is
 * applied here, not by the server, so that a job seen leaving the state
 * is shown doing so. */
static int watch_list(struct cli_ctx *x, const json_t *shown, struct cli_table *t)
{
	char query[2048], path[2300];
	const char *state = cli_flag(x, CLI_STATE);
	json_t *seen = json_object(), *job;
	long long cursor = 0;
	bool fast_forward;
	time_t deadline;
	int status = 0;
	size_t i;

	if (!seen || !cli_deadline(x, &deadline)) {
		json_decref(seen);
		return CLI_EXIT_USAGE;
	}
	list_query(x, false, query, sizeof(query));
	json_array_foreach(shown, i, job) {
		json_object_set_new(seen, str(job, "id"), json_true());
		if (resource_version(job) > cursor)
			cursor = resource_version(job);
	}
	/* With nothing shown there is no cursor to start from: the feed is
	 * read up to now without printing. */
	fast_forward = json_array_size(shown) == 0;
	while (!status && (!deadline || time(NULL) < deadline)) {
		json_t *answer;
		size_t n;

		snprintf(path, sizeof(path), "/api/v1/jobs?updatedSince=%lld&limit=%d%s", cursor, LIST_PAGE_MAX, query);
		if (!(answer = cli_call(x, "GET", path, NULL, NULL, &status)))
			break;
		n = json_array_size(json_object_get(answer, "items"));
		json_array_foreach(json_object_get(answer, "items"), i, job) {
			const char *id = str(job, "id");

			if (fast_forward || (state && strcmp(state, str(job, "state")) && !json_object_get(seen, id)))
				continue;
			json_object_set_new(seen, id, json_true());
			status = print_change(x, t, job);
		}
		if (str(answer, "cursor"))
			cursor = strtoll(str(answer, "cursor"), NULL, 10);
		json_decref(answer);
		if (n < LIST_PAGE_MAX) {
			fast_forward = false;
			sleep(1);
		}
	}
	json_decref(seen);
	return status;
}

int cli_cmd_list(struct cli_ctx *x)
{
	char query[2048], path[2400], *token = NULL;
	bool all = cli_flag(x, CLI_ALL) != NULL;
	long limit = 50;
	int status = 0;
	json_t *doc = json_object(), *items = json_array(), *job;
	struct cli_table *t;
	size_t i;

	if (!cli_flag_long(x, CLI_LIMIT, 1, &limit) || !doc || !items) {
		json_decref(doc);
		json_decref(items);
		return CLI_EXIT_USAGE;
	}
	list_query(x, true, query, sizeof(query));
	json_object_set_new(doc, "items", items);
	if (cli_flag(x, CLI_CONTINUE))
		token = escape(cli_flag(x, CLI_CONTINUE));
	/* One page, or with --all every page into one list. */
	do {
		json_t *answer;

		snprintf(path, sizeof(path), "/api/v1/jobs?limit=%ld%s%s%s", limit, query, token ? "&continue=" : "",
			 token ? token : "");
		free(token);
		token = NULL;
		if (!(answer = cli_call(x, "GET", path, NULL, NULL, &status))) {
			json_decref(doc);
			return status;
		}
		json_array_extend(items, json_object_get(answer, "items"));
		if (str(answer, "continue"))
			token = escape(str(answer, "continue"));
		if (!all && str(answer, "continue"))
			json_object_set(doc, "continue", json_object_get(answer, "continue"));
		json_decref(answer);
	} while (all && token);
	t = job_table(x);
	if (!cli_print_as_asked(x, doc, items, "job", "id", &status)) {
		json_array_foreach(items, i, job)
			add_job_row(t, job);
		if (json_array_size(items))
			cli_table_print(t, stdout, cli_terminal_width(stdout));
		else if (!cli_flag(x, CLI_WATCH))
			fprintf(stderr, "no jobs\n");
		if (str(doc, "continue"))
			fprintf(stderr, "more: --continue %s (or --all)\n", str(doc, "continue"));
	}
	free(token);
	fflush(stdout);
	if (!status && cli_flag(x, CLI_WATCH))
		status = watch_list(x, items, t);
	cli_table_free(t);
	json_decref(doc);
	return status;
}
int cli_cmd_events(struct cli_ctx *x)
{
	static const char *const head[] = {"TIME", "STATE", "REASON", "MESSAGE"};
	int status = 0;
	json_t *answer = call_on(x, "GET", "job", "/api/v1/jobs/", "/events", &status), *e;
	struct cli_table *t;
	size_t i;

	if (!answer || cli_print_as_asked(x, answer, NULL, NULL, NULL, &status)) {
		json_decref(answer);
		return status;
	}
	t = cli_table_new(4, head, 1u << 3);
	json_array_foreach(json_object_get(answer, "items"), i, e) {
		const char *row[] = {str(e, "time"), str(e, "state"), str(e, "reason"), str(e, "message")};

		cli_table_add(t, row);
	}
	cli_table_print(t, stdout, cli_terminal_width(stdout));
	cli_table_free(t);
	json_decref(answer);
	return 0;
}

int cli_cmd_cancel(struct cli_ctx *x)
{
	int status = 0;
	json_t *job = call_on(x, "DELETE", "job", "/api/v1/jobs/", "", &status);

	if (!job)
		return status;
	if (!cli_print_as_asked(x, job, NULL, "job", "id", &status))
		printf("%s %s\n", str(job, "id"), str(job, "state"));
	json_decref(job);
	return status;
}

/* Whether the job is over (or gone): then no driver log is coming. */
static bool job_over(struct cli_ctx *x, const char *id)
{
	char path[256], err[GW_ERRLEN];
	struct cli_response r;
	json_t *job;
	const char *state;
	bool over = true;

	snprintf(path, sizeof(path), "/api/v1/jobs/%s", id);
	if (!cli_request(x->client, "GET", path, NULL, NULL, &r, err))
		return true;
	job = r.status == 200 ? cli_response_json(&r) : NULL;
	state = str(job, "state");
	over = !state || cli_state_final(state);
	json_decref(job);
	cli_response_release(&r);
	return over;
}

int cli_cmd_logs(struct cli_ctx *x)
{
	char *id = escape(cli_strip_kind(x->args[0], "job")), path[256], err[GW_ERRLEN];
	bool follow = cli_flag(x, CLI_FOLLOW) != NULL, ok = false, said = false;
	struct cli_response problem;
	long tail = 0;
	int rc;

	if (!cli_flag_long(x, CLI_TAIL, 0, &tail)) {
		free(id);
		return CLI_EXIT_USAGE;
	}
	snprintf(path, sizeof(path), "/api/v1/jobs/%s/logs?follow=%s", id ? id : "", follow ? "true" : "false");
	if (cli_flag(x, CLI_TAIL))
		snprintf(path + strlen(path), sizeof(path) - strlen(path), "&tailLines=%ld", tail);
	/* Following, wait (up to 10 minutes) for a driver that is yet to be
	 * created (404) or to start (409), as long as the job may get one. */
	for (int i = 0; i < 600; i++) {
		ok = cli_stream(x->client, path, stdout, &problem, err);
		if (ok || !follow || (problem.status != 404 && problem.status != 409) || job_over(x, id ? id : ""))
			break;
		if (!said)
			fprintf(stderr, "waiting for the driver of %s to start...\n", x->args[0]);
		said = true;
		cli_response_release(&problem);
		sleep(1);
	}
	free(id);
	/* A server that answered refused: 1; 3 is for one that did not. */
	rc = ok ? 0 : problem.status ? CLI_EXIT_FAILED : CLI_EXIT_UNREACHABLE;
	if (!ok && problem.status && problem.status != 200)
		cli_print_problem(&problem);
	else if (!ok)
		fprintf(stderr, "sparkgw: %s\n", err);
	cli_response_release(&problem);
	return rc;
}

/* The client's version, and the server's when it answers. */
int cli_cmd_version(struct cli_ctx *x)
{
	int status = 0;
	json_t *v;

	printf("client: %s (commit %s)\n", GW_VERSION, GW_GIT_COMMIT);
	fflush(stdout);
	if (!(v = cli_call(x, "GET", "/api/v1/version", NULL, NULL, &status)))
		return status;
	printf("server: %s (commit %s, store %s)\n", json_string_value(json_object_get(v, "version")),
	       json_string_value(json_object_get(v, "gitCommit")),
	       json_string_value(json_object_get(json_object_get(v, "store"), "driver")));
	json_decref(v);
	return 0;
}

/* ---- operators' ---- */

int cli_cmd_queue(struct cli_ctx *x)
{
	static const char *const head[] = {"#", "ID", "NAME", "TEAM", "POOL", "PRIORITY", "WAITING", "REASON"};
	int status = 0;
	json_t *answer, *e;
	struct cli_table *t;
	size_t i;

	if (!(answer = cli_call(x, "GET", "/api/v1/queue", NULL, NULL, &status)) ||
	    cli_print_as_asked(x, answer, json_object_get(answer, "items"), "job", "id", &status)) {
		json_decref(answer);
		return status;
	}
	t = cli_table_new(8, head, 1u << 2 | 1u << 7);
	json_array_foreach(json_object_get(answer, "items"), i, e) {
		char pos[16], age[32];
		const char *row[8];

		snprintf(pos, sizeof(pos), "%lld", (long long)json_integer_value(json_object_get(e, "position")));
		cli_age(str(e, "waitingSince"), age, sizeof(age));
		row[0] = pos;
		row[1] = str(e, "id");
		row[2] = str(e, "name");
		row[3] = str(e, "team");
		row[4] = str(e, "pool");
		row[5] = str(e, "priority");
		row[6] = age;
		row[7] = str(e, "reason");
		cli_table_add(t, row);
	}
	if (json_array_size(json_object_get(answer, "items")))
		cli_table_print(t, stdout, cli_terminal_width(stdout));
	else
		fprintf(stderr, "the queue is empty\n");
	cli_table_free(t);
	json_decref(answer);
	return 0;
}

int cli_cmd_clusters(struct cli_ctx *x)
{
	static const char *const head[] = {"POOL", "CLUSTER", "MODE", "ROTATION", "HEALTHY", "WEIGHT", "ACTIVE", "ERROR"};
	int status = 0;
	json_t *answer, *pool, *c;
	struct cli_table *t;
	size_t i, j;

	if (!(answer = cli_call(x, "GET", "/api/v1/pools", NULL, NULL, &status)))
		return status;
	if (x->output == CLI_OUT_NAME) { /* the clusters of every pool, once each */
		json_t *all = json_array(), *seen = json_object();

		json_array_foreach(json_object_get(answer, "items"), i, pool)
			json_array_foreach(json_object_get(pool, "clusters"), j, c)
				if (!json_object_get(seen, str(c, "name"))) {
					json_object_set_new(seen, str(c, "name"), json_true());
					json_array_append(all, c);
				}
		json_decref(seen);
		cli_print_as_asked(x, answer, all, "cluster", "name", &status);
		json_decref(all);
		json_decref(answer);
		return status;
	}
	if (cli_print_as_asked(x, answer, NULL, NULL, NULL, &status)) {
		json_decref(answer);
		return status;
	}
	t = cli_table_new(8, head, 1u << 7);
	json_array_foreach(json_object_get(answer, "items"), i, pool)
		json_array_foreach(json_object_get(pool, "clusters"), j, c) {
			char weight[32], active[32];
			const char *row[8];

			snprintf(weight, sizeof(weight), "%lld",
				 (long long)json_integer_value(json_object_get(c, "weightInForce")));
			snprintf(active, sizeof(active), "%lld",
				 (long long)json_integer_value(json_object_get(c, "activeJobs")));
			row[0] = str(pool, "name");
			row[1] = str(c, "name");
			row[2] = str(c, "mode");
			row[3] = str(c, "rotation");
			row[4] = json_is_true(json_object_get(c, "healthy")) ? "yes" : "no";
			row[5] = weight;
			row[6] = active;
			row[7] = str(c, "lastError");
			cli_table_add(t, row);
		}
	cli_table_print(t, stdout, cli_terminal_width(stdout));
	cli_table_free(t);
	json_decref(answer);
	return 0;
}

/* cordon, drain, uncordon: action is the path's last segment, "/cordon". */
static int cmd_rotation(struct cli_ctx *x, const char *action)
{
	int status = 0;
	json_t *cluster = call_on(x, "POST", "cluster", "/api/v1/clusters/", action, &status);

	if (!cluster)
		return status;
	if (!cli_print_as_asked(x, cluster, NULL, "cluster", "name", &status))
		printf("cluster %s: %s, %lld active jobs\n", str(cluster, "name"), str(cluster, "rotation"),
		       (long long)json_integer_value(json_object_get(cluster, "activeJobs")));
	json_decref(cluster);
	return status;
}

int cli_cmd_cordon(struct cli_ctx *x)
{
	return cmd_rotation(x, "/cordon");
}

int cli_cmd_drain(struct cli_ctx *x)
{
	return cmd_rotation(x, "/drain");
}

int cli_cmd_uncordon(struct cli_ctx *x)
{
	return cmd_rotation(x, "/uncordon");
}

