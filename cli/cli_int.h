/* Internals of the command line: the option and command tables (usage,
 * completion and docs/cli.md are made from them), the HTTP client, the
 * table printer and kubectl's JSONPath templates. */
#ifndef GW_CLI_INT_H
#define GW_CLI_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"

#define CLI_EXIT_FAILED 1
#define CLI_EXIT_USAGE 2
#define CLI_EXIT_UNREACHABLE 3

/* Every flag of every command, in the order usage lists them. */
enum cli_flag_id {
	CLI_SERVER, CLI_TOKEN, CLI_HELP, CLI_OUTPUT,
	CLI_FILE, CLI_CLASS, CLI_NAME, CLI_TYPE, CLI_SQL, CLI_CONF, CLI_LABEL, CLI_SPARK_VERSION, CLI_IMAGE,
	CLI_JARS, CLI_PY_FILES, CLI_FILES, CLI_ARCHIVES, CLI_PACKAGES, CLI_REPOSITORIES,
	CLI_DRIVER_MEMORY, CLI_DRIVER_CORES, CLI_EXECUTOR_MEMORY, CLI_EXECUTOR_CORES, CLI_NUM_EXECUTORS,
	CLI_PROXY_USER, CLI_DRY_RUN, CLI_WAIT,
	CLI_SELECTOR, CLI_STATE, CLI_LIMIT, CLI_CONTINUE, CLI_ALL, CLI_WATCH, CLI_TIMEOUT,
	CLI_FOLLOW, CLI_TAIL, CLI_MARKDOWN,
	CLI_NFLAGS
};

enum cli_output { CLI_OUT_TABLE, CLI_OUT_WIDE, CLI_OUT_JSON, CLI_OUT_YAML, CLI_OUT_NAME, CLI_OUT_JSONPATH };

struct cli_client;
struct cli_command;

/* One run of a command: its flags as given and its arguments. */
struct cli_ctx {
	const struct cli_command *cmd;
	struct cli_client *client;
	json_t *given[CLI_NFLAGS]; /* each flag's values in order (a set switch: ""), or NULL */
	enum cli_output output;
	const char *jsonpath; /* -o jsonpath=TEMPLATE */
	char **args;
	int nargs;
};

struct cli_command {
	const char *name;
	const char *args; /* as usage shows them */
	int min_args, max_args; /* max -1: any number */
	const char *summary;
	int (*run)(struct cli_ctx *x);
};

/* The last value of a flag, NULL when it was not given. */
const char *cli_flag(const struct cli_ctx *x, enum cli_flag_id id);
/* A flag's value as a whole number >= min into *out (left as it is when
 * the flag was not given); false (said on stderr) when it is not one. */
bool cli_flag_long(const struct cli_ctx *x, enum cli_flag_id id, long min, long *out);
/* When --timeout ends (0: never); false (said) on a bad value. */
bool cli_deadline(const struct cli_ctx *x, time_t *deadline);

int cli_cmd_submit(struct cli_ctx *x);
int cli_cmd_get(struct cli_ctx *x);
int cli_cmd_list(struct cli_ctx *x);
int cli_cmd_logs(struct cli_ctx *x);
int cli_cmd_cancel(struct cli_ctx *x);
int cli_cmd_events(struct cli_ctx *x);
int cli_cmd_queue(struct cli_ctx *x);
int cli_cmd_clusters(struct cli_ctx *x);
int cli_cmd_cordon(struct cli_ctx *x);
int cli_cmd_drain(struct cli_ctx *x);
int cli_cmd_uncordon(struct cli_ctx *x);
int cli_cmd_version(struct cli_ctx *x);
int cli_cmd_help(struct cli_ctx *x);
int cli_cmd_completion(struct cli_ctx *x);

/* The commands' shared plumbing (commands.c). One request, retried when
 * no answer came or the gateway said 503; the parsed 2xx answer, or NULL
 * after saying why, with *status an exit status. */
json_t *cli_call(struct cli_ctx *x, const char *method, const char *path, const char *body, const char *header,
		 int *status);
/* With -o json, yaml, jsonpath or name: doc printed so, and true (*status
 * set when it could not be). name prints kind/ID for each of items (doc
 * itself when items is NULL) by its member name_key. */
bool cli_print_as_asked(const struct cli_ctx *x, const json_t *doc, const json_t *items, const char *kind,
			const char *name_key, int *status);
/* "job/ID" or "ID" as ID: kubectl's TYPE/NAME, as -o name prints it. */
const char *cli_strip_kind(const char *arg, const char *kind);
/* A state the job ends in. */
bool cli_state_final(const char *state);
/* One poll of a job at path by ETag: etag holds the "If-None-Match: …"
 * header between polls ("" at first). A new version is in *job. */
enum cli_poll { CLI_POLL_CHANGED, CLI_POLL_SAME, CLI_POLL_REFUSED, CLI_POLL_UNREACHABLE };
enum cli_poll cli_poll_job(struct cli_ctx *x, const char *path, char *etag, size_t etag_len, json_t **job,
			   char *err);
/* Polls job id until it ends; says each new state on stderr. */
int cli_wait_for(struct cli_ctx *x, const char *id);

/* kubectl's JSONPath templates: doc rendered into out; doc NULL checks
 * the template only. False, with err, when it does not parse. */
bool cli_jsonpath(const char *template, const json_t *doc, struct gw_buf *out, char *err);

struct cli_response {
	long status;
	struct gw_buf body;
	char etag[64];
};

/* server: the gateway's base URL; token may be NULL. */
struct cli_client *cli_client_new(const char *server, const char *token);
void cli_client_free(struct cli_client *c);
/* One request; body (JSON unless content_type says otherwise) and header
 * ("Name: value") may be NULL. False, with err, when no answer came. */
bool cli_request(struct cli_client *c, const char *method, const char *path, const char *body,
		 const char *header, struct cli_response *out, char *err);
/* GETs path and writes the answer's body to out as it arrives (a followed
 * log). False, with err, when no answer came or it was not a 200 (then
 * the problem is in *problem). */
bool cli_stream(struct cli_client *c, const char *path, FILE *out, struct cli_response *problem, char *err);
void cli_response_release(struct cli_response *r);
/* The answer's body as JSON; NULL (and a message) when it is not. */
json_t *cli_response_json(const struct cli_response *r);
/* Prints a refusal: the problem's detail and field errors, else the body. */
void cli_print_problem(const struct cli_response *r);

/* A table with a header row, its columns as wide as their widest cell;
 * past `width` (0: any), the widest of the columns that may shrink is
 * cut, its cells ending in "...". Printing prints the rows not printed
 * before (a watch adds a row and prints it, in the same columns). */
struct cli_table;
struct cli_table *cli_table_new(size_t ncols, const char *const *headers, unsigned shrinkable_mask);
void cli_table_add(struct cli_table *t, const char *const *cells);
void cli_table_print(struct cli_table *t, FILE *out, size_t width);
void cli_table_free(struct cli_table *t);
/* The terminal's width when out is one (COLUMNS wins), else 0. */
size_t cli_terminal_width(FILE *out);
/* "12s", "5m", "3h", "4d": how long ago an RFC 3339 time was. */
void cli_age(const char *rfc3339, char *out, size_t len);

#endif
