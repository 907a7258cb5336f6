/* sparkgw submit|get|list|logs|cancel|events|queue|clusters|cordon|drain|
 * uncordon: the gateway's REST API from a shell. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_int.h"
#include "common/yamljson.h"
#include "store/store.h"

#define DEFAULT_SERVER "http://127.0.0.1:8080"
#define MAX_FILE (8u << 20)

enum output { OUT_TABLE, OUT_WIDE, OUT_JSON, OUT_YAML };

struct ctx {
	const char *prog;
	struct cli_client *client;
	enum output output;
	/* submit */
	const char *file;
	json_t *labels, *conf; /* from --label, --conf */
	bool wait, dry_run;
	long timeout_s;
	/* list, logs */
	const char *selector, *state;
	long limit, tail;
	bool follow;
	char **args; /* what is left after the options */
};

struct command {
	const char *name;
	int nargs;            /* positional arguments it takes */
	const char *usage;
	int (*run)(struct ctx *x);
};

/* ---- plumbing ---- */

/* Writes doc as the -o format asks, JSON when it is a table's. */
static void print_doc(const struct ctx *x, const json_t *doc)
{
	char *text = NULL, err[GW_ERRLEN];

	if (x->output == OUT_YAML && gw_yaml_dump(doc, &text, err) == GW_OK) {
		fputs(text, stdout);
	} else {
		text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (text)
			printf("%s\n", text);
	}
	free(text);
}

/* One request, retried when no answer came or the gateway said 503 (it
 * wrote nothing then). Returns the parsed 2xx answer, or NULL after
 * printing why; *status gets an exit status. */
static json_t *call(struct ctx *x, const char *method, const char *path, const char *body, const char *header,
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
				fprintf(stderr, "%s: %s\n", x->prog, err);
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
		fprintf(stderr, "%s: the server's answer to %s %s is not JSON\n", x->prog, method, path);
		*status = CLI_EXIT_FAILED;
	}
	return doc;
}

/* A path segment or query value, percent-encoded. */
static char *escape(const char *s)
{
	char *curl_text = curl_easy_escape(NULL, s, 0);
	char *copy = curl_text ? strdup(curl_text) : NULL;

	curl_free(curl_text);
	return copy;
}

/* call() on before + the command's argument, escaped, + after. */
static json_t *call_on(struct ctx *x, const char *method, const char *before, const char *after, int *status)
{
	char *arg = escape(x->args[0]), path[512];

	snprintf(path, sizeof(path), "%s%s%s", before, arg ? arg : "", after);
	free(arg);
	return call(x, method, path, NULL, NULL, status);
}

/* With -o json or yaml: doc as it came, and true. */
static bool print_raw(const struct ctx *x, const json_t *doc)
{
	if (x->output != OUT_JSON && x->output != OUT_YAML)
		return false;
	print_doc(x, doc);
	return true;
}

static const char *str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

/* "k=v" into obj; false when it is not of that form. */
static bool add_pair(json_t *obj, const char *pair)
{
	const char *eq = strchr(pair, '=');
	char *key;

	if (!eq || eq == pair)
		return false;
	key = strndup(pair, (size_t)(eq - pair));
	json_object_set_new(obj, key, json_string(eq + 1));
	free(key);
	return true;
}

/* ---- submit ---- */

static char *read_all(const char *path, size_t *len, char *err)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	struct gw_buf b;
	char chunk[65536];
	size_t n;
	bool ok = true;

	if (!f) {
		gw_seterr(err, "%s: %s", path, strerror(errno));
		return NULL;
	}
	gw_buf_init(&b, MAX_FILE);
	while (ok && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ok = gw_buf_append(&b, chunk, n) == GW_OK;
	ok = ok && !ferror(f);
	if (f != stdin)
		fclose(f);
	if (!ok) {
		gw_buf_release(&b);
		gw_seterr(err, "%s: unreadable or over %u bytes", path, MAX_FILE);
		return NULL;
	}
	*len = b.len;
	return b.data ? b.data : strdup("");
}

/* The job file, JSON or YAML, with --label and --conf applied. */
static json_t *load_submission(struct ctx *x, char *err)
{
	size_t len = 0;
	char *text = read_all(x->file, &len, err);
	json_t *doc = NULL, *spec, *labels, *conf;
	const char *p = text;
	json_error_t je;

	if (!text)
		return NULL;
	while (p && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
		p++;
	if (*p == '{') {
		if (!(doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je)))
			gw_seterr(err, "%s: line %d, column %d: %s", x->file, je.line, je.column, je.text);
	} else if (gw_yaml_load_string(text, len, &doc, NULL, err) != GW_OK) {
		char inner[GW_ERRLEN];

		snprintf(inner, sizeof(inner), "%s", err);
		gw_seterr(err, "%s: %s", x->file, inner);
	}
	free(text);
	if (doc && !json_is_object(doc)) {
		gw_seterr(err, "%s: a job is a mapping (name, labels, spec)", x->file);
		json_decref(doc);
		return NULL;
	}
	if (!doc)
		return NULL;
	labels = json_object_get(doc, "labels");
	if (json_object_size(x->labels) && !json_is_object(labels)) {
		labels = json_object();
		json_object_set_new(doc, "labels", labels);
	}
	json_object_update(labels, x->labels);
	spec = json_object_get(doc, "spec");
	conf = json_object_get(spec, "sparkConf");
	if (json_object_size(x->conf) && json_is_object(spec) && !json_is_object(conf)) {
		conf = json_object();
		json_object_set_new(spec, "sparkConf", conf);
	}
	json_object_update(conf, x->conf);
	return doc;
}

static void print_dry_run(const json_t *answer)
{
	const json_t *pl = json_object_get(answer, "placement"), *reasons = json_object_get(pl, "reasons"), *v;
	const char *placeable = str(answer, "placeable"), *key;
	struct cli_table *t;
	static const char *const head[] = {"KEY", "VALUE", "SOURCE"};
	size_t i;

	if (!pl) {
		printf("placeable %s: %s\n", placeable ? placeable : "?", str(answer, "reason") ? str(answer, "reason") : "");
		return;
	}
	printf("placeable %s: pool %s, cluster %s, namespace %s", placeable, str(pl, "pool"), str(pl, "cluster"),
	       str(pl, "namespace"));
	if (str(pl, "nodeRole"))
		printf(", node role %s", str(pl, "nodeRole"));
	printf("\nwhy:\n");
	json_array_foreach(reasons, i, v)
		printf("  - %s\n", json_string_value(v));
	printf("conf:\n");
	t = cli_table_new(3, head, 1u << 1);
	json_object_foreach((json_t *)(uintptr_t)json_object_get(pl, "conf"), key, v) {
		const char *row[] = {key, str(v, "value"), str(v, "source")};

		cli_table_add(t, row);
	}
	cli_table_print(t, stdout, cli_terminal_width(stdout));
	cli_table_free(t);
}

/* A fresh key makes the submission safe to retry: the gateway answers a
 * retry with the job the first attempt stored. */
static void idempotency_header(char *out, size_t len)
{
	unsigned char raw[16];
	char hex[33];

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		snprintf(hex, sizeof(hex), "%08lx%08lx%08x", (unsigned long)ts.tv_sec, (unsigned long)ts.tv_nsec,
			 (unsigned)getpid());
	} else {
		for (size_t i = 0; i < sizeof(raw); i++)
			snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	}
	snprintf(out, len, "Idempotency-Key: cli-%s", hex);
}

static int wait_for(struct ctx *x, const char *id);

static int cmd_submit(struct ctx *x)
{
	char err[GW_ERRLEN], header[64];
	json_t *doc, *answer;
	char *body;
	int status = 0;

	if (!x->file) {
		fprintf(stderr, "%s submit: -f FILE is required (- for standard input)\n", x->prog);
		return CLI_EXIT_USAGE;
	}
	if (!(doc = load_submission(x, err))) {
		fprintf(stderr, "%s submit: %s\n", x->prog, err);
		return CLI_EXIT_USAGE;
	}
	body = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	idempotency_header(header, sizeof(header));
	answer = body ? call(x, "POST", x->dry_run ? "/api/v1/jobs?dryRun=true" : "/api/v1/jobs", body,
			     x->dry_run ? NULL : header, &status)
		      : NULL;
	free(body);
	if (!answer)
		return status ? status : CLI_EXIT_FAILED;
	if (!print_raw(x, answer)) {
		if (x->dry_run)
			print_dry_run(answer);
		else
			printf("%s\n", str(answer, "id")); /* alone, for $(sparkgw submit …) */
	}
	if (!x->dry_run && x->wait) {
		char *id = strdup(str(answer, "id"));

		json_decref(answer);
		status = id ? wait_for(x, id) : CLI_EXIT_FAILED;
		free(id);
		return status;
	}
	json_decref(answer);
	return 0;
}

/* A state the job ends in, by the store's state machine. */
static bool state_final(const char *state)
{
	int st = state ? store_state_parse(state) : -1;

	return st >= 0 && store_state_terminal((enum store_state)st);
}

/* Where the job runs, as one phrase ("on sim-a/spark-jobs"). */
static void placement_phrase(const json_t *job, char *out, size_t len)
{
	const json_t *pl = json_object_get(job, "placement");

	if (str(pl, "cluster"))
		snprintf(out, len, " on %s/%s", str(pl, "cluster"), str(pl, "namespace"));
	else
		*out = '\0';
}

/* Polls the job (its ETag saves the gateway the work while nothing
 * changes) and says each new state on stderr, until it ends. */
static int wait_for(struct ctx *x, const char *id)
{
	char path[96], header[96] = "", last[64] = "", where[300], err[GW_ERRLEN];
	time_t deadline = x->timeout_s > 0 ? time(NULL) + x->timeout_s : 0, since = time(NULL);
	struct cli_response r;
	unsigned failures = 0;
	/* On a terminal, a line that counts the time in the current state;
	 * a pipe or a CI log gets only the changes. */
	bool ticking = isatty(2);

	snprintf(path, sizeof(path), "/api/v1/jobs/%s", id);
	for (;;) {
		json_t *job;
		const char *state, *reason, *wait_reason;

		if (deadline && time(NULL) >= deadline) {
			fprintf(stderr, "%s: %s: gave up waiting after %lds (last state %s)\n", x->prog, id, x->timeout_s,
				*last ? last : "unknown");
			return CLI_EXIT_FAILED;
		}
		if (!cli_request(x->client, "GET", path, NULL, *header ? header : NULL, &r, err)) {
			/* The gateway restarting is no reason to give up on the job. */
			if (++failures == 30) {
				fprintf(stderr, "%s: %s\n", x->prog, err);
				return CLI_EXIT_UNREACHABLE;
			}
			sleep(2);
			continue;
		}
		failures = 0;
		if (r.status == 304 || r.status == 503) {
			if (ticking && *last)
				fprintf(stderr, "\r\033[K  %s for %llds", last, (long long)(time(NULL) - since));
			cli_response_release(&r);
			usleep(500 * 1000);
			continue;
		}
		if (r.status != 200) {
			cli_print_problem(&r);
			cli_response_release(&r);
			return CLI_EXIT_FAILED;
		}
		if (*r.etag)
			snprintf(header, sizeof(header), "If-None-Match: %s", r.etag);
		job = cli_response_json(&r);
		cli_response_release(&r);
		state = str(job, "state");
		reason = str(job, "reason");
		wait_reason = str(job, "waitReason");
		if (ticking)
			fprintf(stderr, "\r\033[K");
		if (state && strcmp(state, last)) {
			placement_phrase(job, where, sizeof(where));
			fprintf(stderr, "%s %s%s%s%s%s\n", id, state, reason ? " (" : "", reason ? reason : "",
				reason ? ")" : "", where);
			since = time(NULL);
			if (wait_reason)
				fprintf(stderr, "  waiting: %s\n", wait_reason);
			snprintf(last, sizeof(last), "%s", state);
		}
		if (state_final(state)) {
			int rc = strcmp(state, "SUCCEEDED") ? CLI_EXIT_FAILED : 0;

			if (rc && str(job, "message"))
				fprintf(stderr, "  %s\n", str(job, "message"));
			json_decref(job);
			return rc;
		}
		if (ticking)
			fprintf(stderr, "  %s for %llds", last, (long long)(time(NULL) - since));
		json_decref(job);
		usleep(500 * 1000);
	}
}

/* ---- get, list, events, cancel, logs ---- */

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

static int cmd_get(struct ctx *x)
{
	int status = 0;
	json_t *job = call_on(x, "GET", "/api/v1/jobs/", "", &status);

	if (!job)
		return status;
	if (!print_raw(x, job))
		print_job(job);
	json_decref(job);
	return 0;
}

static int cmd_list(struct ctx *x)
{
	static const char *const head[] = {"ID", "NAME", "STATE", "TEAM", "AGE", "USER", "CLUSTER", "NAMESPACE"};
	char path[2048];
	int status = 0;
	json_t *answer, *items, *job;
	struct cli_table *t;
	size_t i;

	snprintf(path, sizeof(path), "/api/v1/jobs?limit=%ld", x->limit > 0 ? x->limit : 50);
	if (x->selector) {
		char *s = escape(x->selector);

		snprintf(path + strlen(path), sizeof(path) - strlen(path), "&labelSelector=%s", s ? s : "");
		free(s);
	}
	if (x->state)
		snprintf(path + strlen(path), sizeof(path) - strlen(path), "&state=%s", x->state);
	if (!(answer = call(x, "GET", path, NULL, NULL, &status)) || print_raw(x, answer)) {
		json_decref(answer);
		return status;
	}
	items = json_object_get(answer, "items");
	t = cli_table_new(x->output == OUT_WIDE ? 8 : 5, head, 1u << 1);
	json_array_foreach(items, i, job) {
		const json_t *pl = json_object_get(job, "placement");
		char age[32];
		const char *row[8];

		cli_age(str(job, "createdAt"), age, sizeof(age));
		row[0] = str(job, "id");
		row[1] = str(job, "name");
		row[2] = str(job, "state");
		row[3] = str(json_object_get(job, "labels"), "team");
		row[4] = age;
		row[5] = str(job, "user");
		row[6] = str(pl, "cluster");
		row[7] = str(pl, "namespace");
		cli_table_add(t, row);
	}
	if (json_array_size(items))
		cli_table_print(t, stdout, cli_terminal_width(stdout));
	else
		fprintf(stderr, "no jobs\n");
	if (json_object_get(answer, "continue"))
		fprintf(stderr, "(more: raise --limit or narrow with -l/--state)\n");
	cli_table_free(t);
	json_decref(answer);
	return 0;
}

static int cmd_events(struct ctx *x)
{
	static const char *const head[] = {"TIME", "STATE", "REASON", "MESSAGE"};
	int status = 0;
	json_t *answer = call_on(x, "GET", "/api/v1/jobs/", "/events", &status), *e;
	struct cli_table *t;
	size_t i;

	if (!answer || print_raw(x, answer)) {
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

static int cmd_cancel(struct ctx *x)
{
	int status = 0;
	json_t *job = call_on(x, "DELETE", "/api/v1/jobs/", "", &status);

	if (!job)
		return status;
	if (!print_raw(x, job))
		printf("%s %s\n", str(job, "id"), str(job, "state"));
	json_decref(job);
	return 0;
}

/* Whether the job is over (or gone): then no driver log is coming. */
static bool job_over(struct ctx *x, const char *id)
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
	over = !state || state_final(state);
	json_decref(job);
	cli_response_release(&r);
	return over;
}

static int cmd_logs(struct ctx *x)
{
	char *id = escape(x->args[0]), path[256], err[GW_ERRLEN];
	struct cli_response problem;
	bool ok = false, said = false;

	snprintf(path, sizeof(path), "/api/v1/jobs/%s/logs?follow=%s", id ? id : "", x->follow ? "true" : "false");
	if (x->tail >= 0)
		snprintf(path + strlen(path), sizeof(path) - strlen(path), "&tailLines=%ld", x->tail);
	/* Following, wait (up to 10 minutes) for a driver that is yet to be
	 * created (404) or to start (409), as long as the job may get one. */
	for (int i = 0; i < 600; i++) {
		ok = cli_stream(x->client, path, stdout, &problem, err);
		if (ok || !x->follow || (problem.status != 404 && problem.status != 409) || job_over(x, id ? id : ""))
			break;
		if (!said)
			fprintf(stderr, "waiting for the driver of %s to start...\n", x->args[0]);
		said = true;
		cli_response_release(&problem);
		sleep(1);
	}
	free(id);
	if (!ok && problem.status && problem.status != 200)
		cli_print_problem(&problem);
	else if (!ok)
		fprintf(stderr, "%s: %s\n", x->prog, err);
	cli_response_release(&problem);
	return ok ? 0 : problem.status ? CLI_EXIT_FAILED : CLI_EXIT_UNREACHABLE;
}

/* The client's version, and the server's when it answers. */
static int cmd_version(struct ctx *x)
{
	int status = 0;
	json_t *v;

	printf("client: %s (commit %s)\n", GW_VERSION, GW_GIT_COMMIT);
	fflush(stdout);
	if (!(v = call(x, "GET", "/api/v1/version", NULL, NULL, &status)))
		return status;
	printf("server: %s (commit %s, store %s)\n", json_string_value(json_object_get(v, "version")),
	       json_string_value(json_object_get(v, "gitCommit")),
	       json_string_value(json_object_get(json_object_get(v, "store"), "driver")));
	json_decref(v);
	return 0;
}

/* ---- operators' ---- */

static int cmd_queue(struct ctx *x)
{
	static const char *const head[] = {"#", "ID", "NAME", "TEAM", "POOL", "PRIORITY", "WAITING", "REASON"};
	int status = 0;
	json_t *answer, *e;
	struct cli_table *t;
	size_t i;

	if (!(answer = call(x, "GET", "/api/v1/queue", NULL, NULL, &status)) || print_raw(x, answer)) {
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

static int cmd_clusters(struct ctx *x)
{
	static const char *const head[] = {"POOL", "CLUSTER", "MODE", "ROTATION", "HEALTHY", "WEIGHT", "ACTIVE", "ERROR"};
	int status = 0;
	json_t *answer, *pool, *c;
	struct cli_table *t;
	size_t i, j;

	if (!(answer = call(x, "GET", "/api/v1/pools", NULL, NULL, &status)) || print_raw(x, answer)) {
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
static int cmd_rotation(struct ctx *x, const char *action)
{
	int status = 0;
	json_t *cluster = call_on(x, "POST", "/api/v1/clusters/", action, &status);

	if (!cluster)
		return status;
	if (!print_raw(x, cluster))
		printf("cluster %s: %s, %lld active jobs\n", str(cluster, "name"), str(cluster, "rotation"),
		       (long long)json_integer_value(json_object_get(cluster, "activeJobs")));
	json_decref(cluster);
	return 0;
}

static int cmd_cordon(struct ctx *x)
{
	return cmd_rotation(x, "/cordon");
}

static int cmd_drain(struct ctx *x)
{
	return cmd_rotation(x, "/drain");
}

static int cmd_uncordon(struct ctx *x)
{
	return cmd_rotation(x, "/uncordon");
}

/* ---- the command line ---- */

static const struct command commands[] = {
	{"submit", 0, "submit -f FILE|- [--label k=v]... [--conf k=v]... [--wait [--timeout S]] [--dry-run] [-o json|yaml]",
	 cmd_submit},
	{"get", 1, "get ID [-o json|yaml]", cmd_get},
	{"list", 0, "list [-l SELECTOR] [--state STATE] [--limit N] [-o wide|json|yaml]", cmd_list},
	{"logs", 1, "logs [-f] [--tail N] ID", cmd_logs},
	{"cancel", 1, "cancel ID", cmd_cancel},
	{"events", 1, "events ID [-o json|yaml]", cmd_events},
	{"queue", 0, "queue [-o json|yaml]", cmd_queue},
	{"clusters", 0, "clusters [-o json|yaml]", cmd_clusters},
	{"cordon", 1, "cordon CLUSTER", cmd_cordon},
	{"drain", 1, "drain CLUSTER", cmd_drain},
	{"uncordon", 1, "uncordon CLUSTER", cmd_uncordon},
	{"version", 0, "version", cmd_version},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

int cli_command_at(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "-s") || !strcmp(a, "--server") || !strcmp(a, "--token"))
			i++; /* and its value */
		else if (!strncmp(a, "--server=", 9) || !strncmp(a, "--token=", 8) || (!strncmp(a, "-s", 2) && a[2]))
			continue;
		else
			return find_command(a) ? i : 0;
	}
	return 0;
}

/* cmd's usage alone, or every command's when cmd is NULL. */
static void usage(FILE *out, const struct command *cmd)
{
	if (cmd) {
		fprintf(out, "usage: sparkgw %s\n", cmd->usage);
	} else {
		fprintf(out, "usage: sparkgw [-s URL] [--token TOKEN] COMMAND [options]\n");
		for (size_t i = 0; i < NCOMMANDS; i++)
			fprintf(out, "       sparkgw %s\n", commands[i].usage);
	}
	fprintf(out,
		"options of every command (before or after it):\n"
		"  -s, --server URL   the gateway (else $SPARKGW_URL, the config file, %s)\n"
		"      --token TOKEN  API token (else $SPARKGW_TOKEN, the config file)\n"
		"config file: $SPARKGW_CONFIG, else ~/.config/sparkgw/config.yaml, with keys server and token\n"
		"exit status: 0 done (--wait: the job succeeded), 1 the job did not succeed or the\n"
		"server refused, 2 usage, 3 the server could not be reached\n",
		DEFAULT_SERVER);
}

/* server and token from the config file, where the flags and environment
 * left them unset. */
static void read_config(char **server, char **token)
{
	const char *path = getenv("SPARKGW_CONFIG"), *home = getenv("HOME"), *xdg = getenv("XDG_CONFIG_HOME");
	char buf[4096], err[GW_ERRLEN];
	json_t *doc = NULL;

	if (!path) {
		if (xdg && *xdg)
			snprintf(buf, sizeof(buf), "%s/sparkgw/config.yaml", xdg);
		else if (home && *home)
			snprintf(buf, sizeof(buf), "%s/.config/sparkgw/config.yaml", home);
		else
			return;
		if (access(buf, R_OK) != 0)
			return;
		path = buf;
	}
	if (gw_yaml_load_file(path, &doc, NULL, err) != GW_OK) {
		fprintf(stderr, "sparkgw: ignoring %s: %s\n", path, err);
		return;
	}
	if (!*server && json_is_string(json_object_get(doc, "server")))
		*server = strdup(json_string_value(json_object_get(doc, "server")));
	if (!*token && json_is_string(json_object_get(doc, "token")))
		*token = strdup(json_string_value(json_object_get(doc, "token")));
	json_decref(doc);
}

static bool parse_long(const char *text, long min, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(text, &end, 10);
	return *text && !*end && !errno && *out >= min;
}

/* Long only by its flat switch over the flags, one short case each. */
int cli_main(int argc, char **argv)
{
	static const struct option options[] = {
		{"server", required_argument, NULL, 's'},  {"token", required_argument, NULL, 'T'},
		{"output", required_argument, NULL, 'o'},  {"file", required_argument, NULL, 'F'},
		{"label", required_argument, NULL, 'L'},   {"conf", required_argument, NULL, 'C'},
		{"wait", no_argument, NULL, 'w'},          {"dry-run", no_argument, NULL, 'D'},
		{"timeout", required_argument, NULL, 't'}, {"selector", required_argument, NULL, 'l'},
		{"state", required_argument, NULL, 'S'},   {"limit", required_argument, NULL, 'n'},
		{"follow", no_argument, NULL, 'f'},        {"tail", required_argument, NULL, 'N'},
		{"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
	};
	const struct command *cmd = find_command(argv[0]);
	struct ctx x = {.prog = "sparkgw", .limit = 50, .tail = -1};
	char *server = NULL, *token = NULL;
	int opt, rc = CLI_EXIT_USAGE;
	/* -f is the file to submit, and the follow flag of logs. */
	const char *shortopts = cmd && cmd->run == cmd_submit ? "s:o:f:wl:h" : "s:o:fl:h";

	x.labels = json_object();
	x.conf = json_object();
	optind = 1;
	while (cmd && (opt = getopt_long(argc, argv, shortopts, options, NULL)) != -1) {
		switch (opt) {
		case 's': free(server); server = strdup(optarg); break;
		case 'T': free(token); token = strdup(optarg); break;
		case 'o':
			if (!strcmp(optarg, "json"))
				x.output = OUT_JSON;
			else if (!strcmp(optarg, "yaml"))
				x.output = OUT_YAML;
			else if (!strcmp(optarg, "wide"))
				x.output = OUT_WIDE;
			else {
				fprintf(stderr, "sparkgw: -o must be json, yaml or wide\n");
				goto out;
			}
			break;
		case 'F': x.file = optarg; break;
		case 'f':
			if (cmd->run == cmd_submit)
				x.file = optarg;
			else
				x.follow = true;
			break;
		case 'L':
		case 'C':
			if (!add_pair(opt == 'L' ? x.labels : x.conf, optarg)) {
				fprintf(stderr, "sparkgw: --%s takes KEY=VALUE, not '%s'\n", opt == 'L' ? "label" : "conf",
					optarg);
				goto out;
			}
			break;
		case 'w': x.wait = true; break;
		case 'D': x.dry_run = true; break;
		case 't':
			if (!parse_long(optarg, 1, &x.timeout_s)) {
				fprintf(stderr, "sparkgw: --timeout takes seconds\n");
				goto out;
			}
			break;
		case 'l': x.selector = optarg; break;
		case 'S': x.state = optarg; break;
		case 'n':
			if (!parse_long(optarg, 1, &x.limit)) {
				fprintf(stderr, "sparkgw: --limit takes a positive number\n");
				goto out;
			}
			break;
		case 'N':
			if (!parse_long(optarg, 0, &x.tail)) {
				fprintf(stderr, "sparkgw: --tail takes a number of lines\n");
				goto out;
			}
			break;
		case 'h':
			usage(stdout, cmd);
			rc = 0;
			goto out;
		default:
			fprintf(stderr, "usage: sparkgw %s\n", cmd->usage);
			goto out;
		}
	}
	if (!cmd || argc - optind != cmd->nargs) {
		if (cmd)
			fprintf(stderr, "usage: sparkgw %s\n", cmd->usage);
		else
			usage(stderr, NULL);
		goto out;
	}
	x.args = argv + optind;
	if (!server && getenv("SPARKGW_URL"))
		server = strdup(getenv("SPARKGW_URL"));
	if (!token && getenv("SPARKGW_TOKEN"))
		token = strdup(getenv("SPARKGW_TOKEN"));
	read_config(&server, &token);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	x.client = cli_client_new(server ? server : DEFAULT_SERVER, token);
	if (!x.client) {
		fprintf(stderr, "sparkgw: out of memory\n");
		rc = CLI_EXIT_FAILED;
	} else {
		rc = cmd->run(&x);
	}
	cli_client_free(x.client);
	curl_global_cleanup();
out:
	json_decref(x.labels);
	json_decref(x.conf);
	free(server);
	free(token);
	return rc;
}
