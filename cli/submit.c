/* sparkgw submit: a job file (-f), spark-submit's flags, or both, posted
 * with a fresh Idempotency-Key; --dry-run shows the placement, --wait
 * follows the job to its end. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli_int.h"
#include "common/yamljson.h"
#include "store/store.h"

#define MAX_FILE (8u << 20)
#define DEFAULT_SPARK_VERSION "3.5"

static const char *str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

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

/* The job file, JSON or YAML. */
static json_t *load_file(const char *path, char *err)
{
	size_t len = 0;
	char *text = read_all(path, &len, err);
	json_t *doc = NULL;
	const char *p = text;
	json_error_t je;

	if (!text)
		return NULL;
	while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
		p++;
	if (*p == '{') {
		if (!(doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je)))
			gw_seterr(err, "%s: line %d, column %d: %s", path, je.line, je.column, je.text);
	} else if (gw_yaml_load_string(text, len, &doc, NULL, err) != GW_OK) {
		char inner[GW_ERRLEN];

		snprintf(inner, sizeof(inner), "%s", err);
		gw_seterr(err, "%s: %s", path, inner);
	}
	free(text);
	if (doc && !json_is_object(doc)) {
		gw_seterr(err, "%s: a job is a mapping (name, labels, spec)", path);
		json_decref(doc);
		return NULL;
	}
	return doc;
}

/* obj's member key, made an object when it is not one. */
static json_t *object_at(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_object(v)) {
		v = json_object();
		json_object_set_new(obj, key, v);
	}
	return v;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* A DNS label from a class or file name, as spark-submit names an
 * application after its class: "org.example.SparkPi" -> "spark-pi",
 * "s3a://b/etl_daily.py" -> "etl-daily". */
static void name_from(const char *source, bool is_file, char *out, size_t len)
{
	const char *base = strrchr(source, is_file ? '/' : '.'), *end;
	size_t n = 0;

	base = base ? base + 1 : source;
	end = is_file && strchr(base, '.') ? strchr(base, '.') : base + strlen(base);
	for (const char *p = base; p < end && n + 2 < len && n < 62; p++) {
		if (isupper((unsigned char)*p) && p > base && islower((unsigned char)p[-1]) && n && out[n - 1] != '-')
			out[n++] = '-'; /* a word of a CamelCase name */
		if (isalnum((unsigned char)*p))
			out[n++] = (char)tolower((unsigned char)*p);
		else if (n && out[n - 1] != '-')
			out[n++] = '-';
	}
	while (n && out[n - 1] == '-')
		n--;
	out[n] = '\0';
	if (!n)
		snprintf(out, len, "spark-job");
}

/* Every value of a comma-list flag, repeats included, as a list. */
static void set_list(const struct cli_ctx *x, enum cli_flag_id id, json_t *obj, const char *key)
{
	json_t *list, *v;
	size_t i;

	if (!x->given[id])
		return;
	list = json_array();
	json_array_foreach(x->given[id], i, v) {
		char *copy = strdup(json_string_value(v)), *save = NULL;

		for (char *item = copy ? strtok_r(copy, ",", &save) : NULL; item; item = strtok_r(NULL, ",", &save))
			json_array_append_new(list, json_string(item));
		free(copy);
	}
	json_object_set_new(obj, key, list);
}

static void set_string(const struct cli_ctx *x, enum cli_flag_id id, json_t *obj, const char *key)
{
	if (cli_flag(x, id))
		json_object_set_new(obj, key, json_string(cli_flag(x, id)));
}

static bool set_number(const struct cli_ctx *x, enum cli_flag_id id, json_t *obj, const char *key, long min)
{
	long n = 0;

	if (!cli_flag_long(x, id, min, &n))
		return false;
	json_object_set_new(obj, key, json_integer(n));
	return true;
}

/* KEY=VALUE values of a flag into obj's member key; false (said) on one
 * that is not of that form. */
static bool set_pairs(const struct cli_ctx *x, enum cli_flag_id id, json_t *obj, const char *key, const char *flag)
{
	json_t *v;
	size_t i;

	json_array_foreach(x->given[id], i, v) {
		const char *pair = json_string_value(v), *eq = strchr(pair, '=');
		char *name;

		if (!eq || eq == pair) {
			fprintf(stderr, "sparkgw: --%s takes KEY=VALUE, not '%s'\n", flag, pair);
			return false;
		}
		name = strndup(pair, (size_t)(eq - pair));
		json_object_set_new(object_at(obj, key), name, json_string(eq + 1));
		free(name);
	}
	return true;
}

/* The type spark-submit would infer from the application. */
static const char *type_of(const struct cli_ctx *x, const char *app)
{
	if (cli_flag(x, CLI_SQL) || (app && ends_with(app, ".sql")))
		return "SQL";
	if (app && ends_with(app, ".py"))
		return "Python";
	if (app && (ends_with(app, ".R") || ends_with(app, ".r")))
		return "R";
	return "Scala";
}

/* spark-submit's flags, APP and its arguments over doc (the file's, or
 * an empty one): what they name wins. */
static bool apply_flags(const struct cli_ctx *x, json_t *doc, bool from_file)
{
	json_t *spec = object_at(doc, "spec"), *args;
	const char *app = x->nargs ? x->args[0] : NULL;
	char name[64];

	if (app) {
		json_object_set_new(spec, "mainApplicationFile", json_string(app));
		args = json_array();
		for (int i = 1; i < x->nargs; i++)
			json_array_append_new(args, json_string(x->args[i]));
		if (x->nargs > 1 || !from_file)
			json_object_set_new(spec, "arguments", args);
		else
			json_decref(args);
	}
	set_string(x, CLI_CLASS, spec, "mainClass");
	set_string(x, CLI_SQL, spec, "sql");
	set_string(x, CLI_TYPE, spec, "type");
	if (!json_object_get(spec, "type"))
		json_object_set_new(spec, "type", json_string(type_of(x, app)));
	set_string(x, CLI_SPARK_VERSION, spec, "sparkVersion");
	if (!from_file && !json_object_get(spec, "sparkVersion"))
		json_object_set_new(spec, "sparkVersion", json_string(DEFAULT_SPARK_VERSION));
	set_string(x, CLI_IMAGE, spec, "image");
	set_string(x, CLI_PROXY_USER, spec, "proxyUser");
	if (x->given[CLI_JARS] || x->given[CLI_PY_FILES] || x->given[CLI_FILES] || x->given[CLI_ARCHIVES] ||
	    x->given[CLI_PACKAGES] || x->given[CLI_REPOSITORIES]) {
		json_t *deps = object_at(spec, "deps");

		set_list(x, CLI_JARS, deps, "jars");
		set_list(x, CLI_PY_FILES, deps, "pyFiles");
		set_list(x, CLI_FILES, deps, "files");
		set_list(x, CLI_ARCHIVES, deps, "archives");
		set_list(x, CLI_PACKAGES, deps, "packages");
		set_list(x, CLI_REPOSITORIES, deps, "repositories");
	}
	if (x->given[CLI_DRIVER_MEMORY])
		set_string(x, CLI_DRIVER_MEMORY, object_at(spec, "driver"), "memory");
	if (x->given[CLI_DRIVER_CORES] && !set_number(x, CLI_DRIVER_CORES, object_at(spec, "driver"), "cores", 1))
		return false;
	if (x->given[CLI_EXECUTOR_MEMORY])
		set_string(x, CLI_EXECUTOR_MEMORY, object_at(spec, "executor"), "memory");
	if ((x->given[CLI_EXECUTOR_CORES] &&
	     !set_number(x, CLI_EXECUTOR_CORES, object_at(spec, "executor"), "cores", 1)) ||
	    (x->given[CLI_NUM_EXECUTORS] &&
	     !set_number(x, CLI_NUM_EXECUTORS, object_at(spec, "executor"), "instances", 0)))
		return false;
	if (!set_pairs(x, CLI_CONF, spec, "sparkConf", "conf") || !set_pairs(x, CLI_LABEL, doc, "labels", "label"))
		return false;
	set_string(x, CLI_NAME, doc, "name");
	if (!json_object_get(doc, "name")) {
		if (cli_flag(x, CLI_CLASS))
			name_from(cli_flag(x, CLI_CLASS), false, name, sizeof(name));
		else
			name_from(app ? app : "sql", true, name, sizeof(name));
		json_object_set_new(doc, "name", json_string(name));
	}
	return true;
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

int cli_cmd_submit(struct cli_ctx *x)
{
	const char *file = cli_flag(x, CLI_FILE);
	bool dry_run = cli_flag(x, CLI_DRY_RUN) != NULL;
	char err[GW_ERRLEN], header[64];
	json_t *doc, *answer;
	char *body;
	int status = 0;

	if (!file && !x->nargs && !cli_flag(x, CLI_SQL)) {
		fprintf(stderr, "sparkgw submit: give a job file (-f FILE, - for standard input), an APP or --sql\n");
		return CLI_EXIT_USAGE;
	}
	if (file && !(doc = load_file(file, err))) {
		fprintf(stderr, "sparkgw submit: %s\n", err);
		return CLI_EXIT_USAGE;
	}
	if (!file)
		doc = json_object();
	if (!apply_flags(x, doc, file != NULL)) {
		json_decref(doc);
		return CLI_EXIT_USAGE;
	}
	body = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	idempotency_header(header, sizeof(header));
	answer = body ? cli_call(x, "POST", dry_run ? "/api/v1/jobs?dryRun=true" : "/api/v1/jobs", body,
				 dry_run ? NULL : header, &status)
		      : NULL;
	free(body);
	if (!answer)
		return status ? status : CLI_EXIT_FAILED;
	if (!cli_print_as_asked(x, answer, NULL, "job", "id", &status)) {
		if (dry_run)
			print_dry_run(answer);
		else
			printf("%s\n", str(answer, "id")); /* alone, for $(sparkgw submit …) */
	}
	if (!status && !dry_run && cli_flag(x, CLI_WAIT)) {
		char *id = strdup(str(answer, "id"));

		json_decref(answer);
		status = id ? cli_wait_for(x, id) : CLI_EXIT_FAILED;
		free(id);
		return status;
	}
	json_decref(answer);
	return status;
}

bool cli_state_final(const char *state)
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

enum cli_poll cli_poll_job(struct cli_ctx *x, const char *path, char *etag, size_t etag_len, json_t **job,
			   char *err)
{
	struct cli_response r;
	long status;

	*job = NULL;
	if (!cli_request(x->client, "GET", path, NULL, *etag ? etag : NULL, &r, err))
		return CLI_POLL_UNREACHABLE;
	status = r.status;
	/* 503: the gateway is starting or stopping; the job is still there. */
	if (status != 200 && status != 304 && status != 503)
		cli_print_problem(&r);
	if (status == 200) {
		if (*r.etag)
			snprintf(etag, etag_len, "If-None-Match: %s", r.etag);
		*job = cli_response_json(&r);
	}
	cli_response_release(&r);
	return status == 200 ? CLI_POLL_CHANGED : status == 304 || status == 503 ? CLI_POLL_SAME : CLI_POLL_REFUSED;
}

/* Polls the job (its ETag saves the gateway the work while nothing
 * changes) and says each new state on stderr, until it ends. */
int cli_wait_for(struct cli_ctx *x, const char *id)
{
	char path[96], header[96] = "", last[64] = "", where[300], err[GW_ERRLEN];
	time_t deadline, since = time(NULL);
	unsigned failures = 0;
	/* On a terminal, a line that counts the time in the current state;
	 * a pipe or a CI log gets only the changes. */
	bool ticking = isatty(2);

	if (!cli_deadline(x, &deadline))
		return CLI_EXIT_USAGE;
	snprintf(path, sizeof(path), "/api/v1/jobs/%s", id);
	for (;;) {
		json_t *job;
		const char *state, *reason, *wait_reason;
		enum cli_poll poll;

		if (deadline && time(NULL) >= deadline) {
			fprintf(stderr, "sparkgw: %s: gave up waiting after %ss (last state %s)\n", id,
				cli_flag(x, CLI_TIMEOUT), *last ? last : "unknown");
			return CLI_EXIT_FAILED;
		}
		poll = cli_poll_job(x, path, header, sizeof(header), &job, err);
		if (poll == CLI_POLL_UNREACHABLE) {
			/* The gateway restarting is no reason to give up on the job. */
			if (++failures == 30) {
				fprintf(stderr, "sparkgw: %s\n", err);
				return CLI_EXIT_UNREACHABLE;
			}
			sleep(2);
			continue;
		}
		failures = 0;
		if (poll == CLI_POLL_REFUSED)
			return CLI_EXIT_FAILED;
		if (poll == CLI_POLL_SAME) {
			if (ticking && *last)
				fprintf(stderr, "\r\033[K  %s for %llds", last, (long long)(time(NULL) - since));
			usleep(500 * 1000);
			continue;
		}
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
		if (cli_state_final(state)) {
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
