/* Internals of the command line: the HTTP client and the table printer. */
#ifndef GW_CLI_INT_H
#define GW_CLI_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "common/buf.h"
#include "common/err.h"

#define CLI_EXIT_FAILED 1
#define CLI_EXIT_USAGE 2
#define CLI_EXIT_UNREACHABLE 3

struct cli_client;

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
 * cut, its cells ending in "...". */
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
