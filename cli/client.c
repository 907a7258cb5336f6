/* The command line's HTTP client (libcurl) and its table printer. */
#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cli/cli_int.h"
#include "common/timeutil.h"

#define MAX_ANSWER (64u << 20)

struct cli_client {
	CURL *curl; /* one handle: its connection is kept between requests */
	char *server;
	char *auth; /* "Authorization: Bearer …", or NULL */
};

struct cli_client *cli_client_new(const char *server, const char *token)
{
	struct cli_client *c = calloc(1, sizeof(*c));
	size_t n = strlen(server);

	if (!c)
		return NULL;
	while (n && server[n - 1] == '/')
		n--;
	c->server = strndup(server, n);
	c->curl = curl_easy_init();
	if (token && *token && asprintf(&c->auth, "Authorization: Bearer %s", token) < 0)
		c->auth = NULL;
	if (!c->server || !c->curl || (token && *token && !c->auth)) {
		cli_client_free(c);
		return NULL;
	}
	return c;
}

void cli_client_free(struct cli_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->server);
	free(c->auth);
	free(c);
}

void cli_response_release(struct cli_response *r)
{
	gw_buf_release(&r->body);
	memset(r, 0, sizeof(*r));
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	return gw_buf_append(arg, data, size * n) == GW_OK ? size * n : 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	struct cli_response *r = arg;
	size_t len = size * n;

	if (len > 5 && !strncasecmp(data, "ETag:", 5)) {
		const char *v = data + 5;
		size_t vlen = len - 5;

		while (vlen && (*v == ' ' || *v == '\t'))
			v++, vlen--;
		while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
			vlen--;
		snprintf(r->etag, sizeof(r->etag), "%.*s", (int)vlen, v);
	}
	return len;
}

/* Sets up the handle for one request; the header list is the caller's. */
static struct curl_slist *prepare(struct cli_client *c, const char *method, const char *path, const char *body,
				  const char *header, char *err)
{
	struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
	char *url = NULL;

	if (body)
		h = curl_slist_append(h, "Content-Type: application/json");
	if (c->auth)
		h = curl_slist_append(h, c->auth);
	if (header)
		h = curl_slist_append(h, header);
	if (!h || asprintf(&url, "%s%s", c->server, path) < 0) {
		curl_slist_free_all(h);
		gw_seterr(err, "out of memory");
		return NULL;
	}
	curl_easy_reset(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "sparkgw-cli/" GW_VERSION);
	curl_easy_setopt(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	if (body) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else if (!strcmp(method, "GET")) {
		curl_easy_setopt(c->curl, CURLOPT_HTTPGET, 1L);
	}
	free(url); /* libcurl copies the URL */
	return h;
}

bool cli_request(struct cli_client *c, const char *method, const char *path, const char *body,
		 const char *header, struct cli_response *out, char *err)
{
	struct curl_slist *h;
	CURLcode rc;

	memset(out, 0, sizeof(*out));
	gw_buf_init(&out->body, MAX_ANSWER);
	if (!(h = prepare(c, method, path, body, header, err)))
		return false;
	curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &out->body);
	curl_easy_setopt(c->curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c->curl, CURLOPT_HEADERDATA, out);
	rc = curl_easy_perform(c->curl);
	curl_slist_free_all(h);
	if (rc != CURLE_OK) {
		gw_seterr(err, "%s %s%s: %s", method, c->server, path, curl_easy_strerror(rc));
		return false;
	}
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &out->status);
	return true;
}

struct stream {
	FILE *out;
	struct cli_response *problem;
	CURL *curl;
};

/* A 200's body goes out as it comes; any other is kept as the problem. */
static size_t on_stream(char *data, size_t size, size_t n, void *arg)
{
	struct stream *s = arg;
	long status = 0;

	curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200)
		return on_body(data, size, n, &s->problem->body);
	if (fwrite(data, size, n, s->out) != n)
		return 0;
	fflush(s->out);
	return size * n;
}

bool cli_stream(struct cli_client *c, const char *path, FILE *out, struct cli_response *problem, char *err)
{
	struct stream s = {out, problem, c->curl};
	struct curl_slist *h;
	CURLcode rc;

	memset(problem, 0, sizeof(*problem));
	gw_buf_init(&problem->body, MAX_ANSWER);
	if (!(h = prepare(c, "GET", path, NULL, NULL, err)))
		return false;
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_stream);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &s);
	rc = curl_easy_perform(c->curl);
	curl_slist_free_all(h);
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &problem->status);
	if (rc != CURLE_OK && problem->status == 0) {
		gw_seterr(err, "GET %s%s: %s", c->server, path, curl_easy_strerror(rc));
		return false;
	}
	if (problem->status != 200) {
		gw_seterr(err, "the server answered %ld", problem->status);
		return false;
	}
	if (rc != CURLE_OK) {
		gw_seterr(err, "the stream broke off: %s", curl_easy_strerror(rc));
		return false;
	}
	return true;
}

json_t *cli_response_json(const struct cli_response *r)
{
	json_error_t e;

	if (!r->body.data)
		return NULL;
	return json_loadb(r->body.data, r->body.len, 0, &e);
}

void cli_print_problem(const struct cli_response *r)
{
	json_t *p = cli_response_json(r), *errors = json_object_get(p, "errors"), *e;
	const char *detail = json_string_value(json_object_get(p, "detail"));
	size_t i;

	if (!detail) {
		fprintf(stderr, "sparkgw: the server answered %ld%s%.*s\n", r->status, r->body.len ? ": " : "",
			(int)(r->body.len > 500 ? 500 : r->body.len), r->body.data ? r->body.data : "");
		json_decref(p);
		return;
	}
	fprintf(stderr, "sparkgw: %s (%ld)\n", detail, r->status);
	json_array_foreach(errors, i, e)
		fprintf(stderr, "  %s: %s\n", json_string_value(json_object_get(e, "field")),
			json_string_value(json_object_get(e, "message")));
	json_decref(p);
}

/* ---- tables ---- */

struct cli_table {
	size_t ncols, nrows, cap;
	size_t printed; /* rows already printed */
	unsigned shrinkable;
	char **cells; /* nrows * ncols, the header first */
};

struct cli_table *cli_table_new(size_t ncols, const char *const *headers, unsigned shrinkable_mask)
{
	struct cli_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->ncols = ncols;
	t->shrinkable = shrinkable_mask;
	cli_table_add(t, headers);
	return t;
}

void cli_table_add(struct cli_table *t, const char *const *cells)
{
	if (!t)
		return;
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **p = realloc(t->cells, cap * t->ncols * sizeof(*p));

		if (!p)
			return;
		t->cells = p;
		t->cap = cap;
	}
	for (size_t i = 0; i < t->ncols; i++) {
		const char *cell = cells[i] ? cells[i] : "";
		char *copy = strdup(cell);

		/* One line a row: a newline in a message would break the table. */
		for (char *q = copy; q && *q; q++)
			if (*q == '\n' || *q == '\t' || *q == '\r')
				*q = ' ';
		t->cells[t->nrows * t->ncols + i] = copy ? copy : strdup("");
	}
	t->nrows++;
}

void cli_table_print(struct cli_table *t, FILE *out, size_t width)
{
	size_t w[16] = {0}, total = 0;

	if (!t || t->ncols > 16)
		return;
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < t->ncols; i++) {
			const char *cell = t->cells[r * t->ncols + i];
			size_t n = cell ? strlen(cell) : 0;

			if (n > w[i])
				w[i] = n;
		}
	for (size_t i = 0; i < t->ncols; i++)
		total += w[i] + (i + 1 < t->ncols ? 3 : 0);
	/* Too wide: cut the widest shrinkable column, down to 8. */
	while (width && total > width) {
		size_t widest = SIZE_MAX;

		for (size_t i = 0; i < t->ncols; i++)
			if ((t->shrinkable >> i & 1) && w[i] > 8 && (widest == SIZE_MAX || w[i] > w[widest]))
				widest = i;
		if (widest == SIZE_MAX)
			break;
		w[widest]--;
		total--;
	}
	for (size_t r = t->printed; r < t->nrows; r++) {
		for (size_t i = 0; i < t->ncols; i++) {
			const char *cell = t->cells[r * t->ncols + i];
			size_t n = strlen(cell);
			bool last = i + 1 == t->ncols;

			if (n > w[i])
				fprintf(out, "%.*s...", (int)(w[i] - 3), cell);
			else
				fprintf(out, "%s", cell);
			if (!last)
				fprintf(out, "%*s", (int)(w[i] - (n > w[i] ? w[i] : n) + 3), "");
		}
		fputc('\n', out);
	}
	t->printed = t->nrows;
}

void cli_table_free(struct cli_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

size_t cli_terminal_width(FILE *out)
{
	const char *columns = getenv("COLUMNS");
	struct winsize ws;

	if (columns && atoi(columns) > 0)
		return (size_t)atoi(columns);
	if (isatty(fileno(out)) && ioctl(fileno(out), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 0;
}

void cli_age(const char *rfc3339, char *out, size_t len)
{
	int64_t at, s;

	if (!rfc3339 || gw_time_parse(rfc3339, &at)) {
		snprintf(out, len, "-");
		return;
	}
	s = (gw_now_ms() - at) / 1000;
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(out, len, "%llds", (long long)s);
	else if (s < 7200)
		snprintf(out, len, "%lldm", (long long)(s / 60));
	else if (s < 172800)
		snprintf(out, len, "%lldh", (long long)(s / 3600));
	else
		snprintf(out, len, "%lldd", (long long)(s / 86400));
}
