/* kubectl's JSONPath templates, the subset people write: {.a.b}, {$.a},
 * {.items[*].id}, {.items[0]}, {.items[-1]}, {.labels['app.kubernetes.io/name']},
 * {.*}, filters {.items[?(@.state=="FAILED")].id} (== != < <= > >= or
 * existence), {"\t"} literals and {range PATH}...{end}. The template is
 * interpreted as it is read: a range's body is read once per value (once,
 * printing nothing, when there is none, so that its syntax is still
 * checked). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_int.h"

/* Nested ranges and filters, far past what a template needs. */
#define MAX_DEPTH 32

struct run {
	const char *start; /* the template, for offsets in errors */
	const json_t *root;
	struct gw_buf *out;
	char *err;
	unsigned depth;
};

static bool fail(struct run *r, const char *at, const char *what)
{
	gw_seterr(r->err, "jsonpath: %s at offset %zu", what, (size_t)(at - r->start));
	return false;
}

static bool emit(struct run *r, const char *text, size_t len)
{
	if (gw_buf_append(r->out, text, len) != GW_OK) {
		gw_seterr(r->err, "jsonpath: the output is over %zu bytes", r->out->max);
		return false;
	}
	return true;
}

/* Strings as they are, everything else as compact JSON. */
static bool emit_value(struct run *r, const json_t *v)
{
	char *text;
	bool ok;

	if (json_is_string(v))
		return emit(r, json_string_value(v), json_string_length(v));
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
	ok = text && emit(r, text, strlen(text));
	free(text);
	return ok;
}

static void skip_spaces(const char **pp)
{
	while (**pp == ' ' || **pp == '\t')
		(*pp)++;
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static void add(json_t *set, const json_t *v)
{
	if (v)
		json_array_append(set, (json_t *)(uintptr_t)v);
}

/* A quoted literal ('…' or "…", backslash escapes \n \t \\ \" \'), its
 * text into *out (the caller frees it). */
static bool read_quoted(struct run *r, const char **pp, char **out)
{
	const char *p = *pp;
	char quote = *p++, *text = malloc(strlen(p) + 1);
	size_t n = 0;

	if (!text)
		return fail(r, p, "out of memory");
	for (; *p && *p != quote; p++) {
		if (*p == '\\' && p[1]) {
			p++;
			text[n++] = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p == 'r' ? '\r' : *p;
		} else {
			text[n++] = *p;
		}
	}
	text[n] = '\0';
	if (*p != quote) {
		free(text);
		return fail(r, *pp, "unterminated string");
	}
	*pp = p + 1;
	*out = text;
	return true;
}

static bool eval_path(struct run *r, const char **pp, const json_t *cur, json_t *result);

/* Every member of a container: an array's items, an object's values. */
static void add_members(json_t *set, const json_t *v)
{
	const char *key;
	const json_t *m;
	size_t i;

	if (json_is_array(v))
		json_array_foreach(v, i, m)
			add(set, m);
	else if (json_is_object(v))
		json_object_foreach((json_t *)(uintptr_t)v, key, m)
			add(set, m);
}

enum cmp { CMP_EXISTS, CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE };

static bool holds(const json_t *v, enum cmp op, const json_t *literal)
{
	if (op == CMP_EXISTS)
		return v != NULL;
	if (!v)
		return false;
	if (json_is_number(v) && json_is_number(literal)) {
		double a = json_number_value(v), b = json_number_value(literal);

		return op == CMP_EQ ? a == b : op == CMP_NE ? a != b : op == CMP_LT ? a < b
		     : op == CMP_LE ? a <= b : op == CMP_GT ? a > b : a >= b;
	}
	if (json_is_string(v) && json_is_string(literal)) {
		int c = strcmp(json_string_value(v), json_string_value(literal));

		return op == CMP_EQ ? c == 0 : op == CMP_NE ? c != 0 : op == CMP_LT ? c < 0
		     : op == CMP_LE ? c <= 0 : op == CMP_GT ? c > 0 : c >= 0;
	}
	return op == CMP_NE;
}

/* The operator and literal of a filter, after its @-path. */
static bool read_comparison(struct run *r, const char **pp, enum cmp *op, json_t **literal)
{
	static const struct { const char *text; enum cmp op; } ops[] = {
		{"==", CMP_EQ}, {"!=", CMP_NE}, {"<=", CMP_LE}, {">=", CMP_GE}, {"<", CMP_LT}, {">", CMP_GT},
	};
	const char *p = *pp;
	char *text, *end;
	double number;

	skip_spaces(&p);
	*op = CMP_EXISTS;
	*literal = NULL;
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]) && *op == CMP_EXISTS; i++)
		if (!strncmp(p, ops[i].text, strlen(ops[i].text))) {
			*op = ops[i].op;
			p += strlen(ops[i].text);
		}
	if (*op != CMP_EXISTS) {
		skip_spaces(&p);
		if (*p == '"' || *p == '\'') {
			if (!read_quoted(r, &p, &text))
				return false;
			*literal = json_string(text);
			free(text);
		} else {
			number = strtod(p, &end);
			if (end == p)
				return fail(r, p, "a filter compares with a quoted string or a number");
			*literal = json_real(number);
			p = end;
		}
		if (!*literal)
			return fail(r, p, "out of memory");
		skip_spaces(&p);
	}
	*pp = p;
	return true;
}

/* [?(@.path OP literal)]: the members of set's values for which it holds.
 * *pp is just past "[?(". */
static bool filter(struct run *r, const char **pp, json_t *set)
{
	json_t *members = json_array(), *literal = NULL;
	const char *p = *pp, *end = NULL;
	enum cmp op = CMP_EXISTS;
	size_t i;
	json_t *m;
	bool ok = members != NULL;

	skip_spaces(&p);
	if (ok && *p != '@')
		ok = fail(r, p, "a filter starts with @");
	for (i = 0; ok && i < json_array_size(set); i++)
		add_members(members, json_array_get(set, i));
	json_array_clear(set);
	/* Each member reads the filter anew; none reads it once, for syntax. */
	for (i = 0; ok && i < (json_array_size(members) ? json_array_size(members) : 1); i++) {
		const char *q = p;
		json_t *found = json_array();

		m = json_array_get(members, i);
		ok = found && eval_path(r, &q, m, found) && (literal || read_comparison(r, &q, &op, &literal));
		if (ok && !end) {
			/* The comparison is read after the first member's path. */
			skip_spaces(&q);
			end = q;
		}
		if (ok && m && holds(json_array_get(found, 0), op, literal))
			add(set, m);
		json_decref(found);
	}
	json_decref(members);
	json_decref(literal);
	if (!ok)
		return false;
	if (end[0] != ')' || end[1] != ']')
		return fail(r, end, "a filter ends with )]");
	*pp = end + 2;
	return true;
}

/* One step ([N] [*] ['name'] [?(...)]) after '[' on every value of set. */
static bool bracket(struct run *r, const char **pp, json_t *set)
{
	const char *p = *pp + 1;
	json_t *next = json_array();
	size_t i;
	bool ok = next != NULL;

	skip_spaces(&p);
	if (!ok)
		return fail(r, p, "out of memory");
	if (*p == '?' && p[1] == '(') {
		json_decref(next);
		*pp = p + 2;
		return filter(r, pp, set);
	}
	if (*p == '*') {
		p++;
		for (i = 0; i < json_array_size(set); i++)
			add_members(next, json_array_get(set, i));
	} else if (*p == '\'' || *p == '"') {
		char *name = NULL;

		ok = read_quoted(r, &p, &name);
		for (i = 0; ok && i < json_array_size(set); i++)
			add(next, json_object_get(json_array_get(set, i), name));
		free(name);
	} else {
		char *end;
		long index = strtol(p, &end, 10);

		if (end == p)
			ok = fail(r, p, "expected an index, *, a quoted name or ?( in [ ]");
		p = end;
		for (i = 0; ok && i < json_array_size(set); i++) {
			const json_t *a = json_array_get(set, i);
			long n = (long)json_array_size(a);

			if (json_is_array(a) && index >= -n && index < n)
				add(next, json_array_get(a, (size_t)(index < 0 ? n + index : index)));
		}
	}
	skip_spaces(&p);
	if (ok && *p != ']')
		ok = fail(r, p, "expected ]");
	if (ok) {
		json_array_clear(set);
		json_array_extend(set, next);
		*pp = p + 1;
	}
	json_decref(next);
	return ok;
}

/* A path ($…, @… or .…) from *pp, its values into result; cur is what
 * '.' and '@' start from (NULL: nothing, the path only read). */
static bool eval_path(struct run *r, const char **pp, const json_t *cur, json_t *result)
{
	const char *p = *pp;
	bool ok = true;

	if (++r->depth > MAX_DEPTH) {
		r->depth--;
		return fail(r, p, "nested too deep");
	}
	skip_spaces(&p);
	add(result, *p == '$' ? r->root : cur);
	if (*p == '$' || *p == '@')
		p++;
	else if (*p != '.' && *p != '[')
		ok = fail(r, p, "a path starts with ., $ or @");
	while (ok && (*p == '.' || *p == '[')) {
		if (*p == '[') {
			ok = bracket(r, &p, result);
		} else if (p[1] == '.') {
			ok = fail(r, p, "recursive descent (..) is not supported");
		} else if (p[1] == '*') {
			json_t *next = json_array();

			for (size_t i = 0; next && i < json_array_size(result); i++)
				add_members(next, json_array_get(result, i));
			json_array_clear(result);
			json_array_extend(result, next);
			json_decref(next);
			p += 2;
		} else if (name_char(p[1])) {
			const char *name = ++p;
			size_t len, i;
			json_t *next = json_array();
			char *key;

			while (name_char(*p))
				p++;
			len = (size_t)(p - name);
			key = strndup(name, len);
			for (i = 0; next && key && i < json_array_size(result); i++)
				add(next, json_object_get(json_array_get(result, i), key));
			free(key);
			json_array_clear(result);
			json_array_extend(result, next);
			json_decref(next);
		} else {
			p++; /* a lone '.': the value itself */
		}
	}
	r->depth--;
	*pp = p;
	return ok;
}

static bool expect_close(struct run *r, const char **pp)
{
	skip_spaces(pp);
	if (**pp != '}')
		return fail(r, *pp, "expected }");
	(*pp)++;
	return true;
}

static bool keyword(const char *p, const char *word)
{
	size_t n = strlen(word);

	return !strncmp(p, word, n) && (p[n] == ' ' || p[n] == '\t' || p[n] == '}');
}

/* The template from *pp to its end, or (in_range) to its {end}. */
static bool render(struct run *r, const char **pp, const json_t *cur, bool print, bool in_range)
{
	const char *p = *pp;

	for (;;) {
		const char *open = strchr(p, '{');
		size_t text_len = open ? (size_t)(open - p) : strlen(p);

		if (print && !emit(r, p, text_len))
			return false;
		if (!open) {
			if (in_range)
				return fail(r, p + text_len, "{range} without its {end}");
			*pp = p + text_len;
			return true;
		}
		p = open + 1;
		skip_spaces(&p);
		if (keyword(p, "end")) {
			p += 3;
			if (!in_range)
				return fail(r, p, "{end} without a {range}");
			if (!expect_close(r, &p))
				return false;
			*pp = p;
			return true;
		}
		if (keyword(p, "range")) {
			json_t *set = json_array();
			const char *body = NULL;
			bool ok;

			p += 5;
			ok = set && eval_path(r, &p, cur, set) && expect_close(r, &p);
			if (ok && ++r->depth > MAX_DEPTH)
				ok = fail(r, p, "nested too deep");
			for (size_t i = 0; ok && i < (json_array_size(set) ? json_array_size(set) : 1); i++) {
				body = p;
				ok = render(r, &body, json_array_get(set, i), print && json_array_size(set), true);
			}
			json_decref(set);
			if (!ok)
				return false;
			r->depth--;
			p = body;
		} else if (*p == '"' || *p == '\'') {
			char *text = NULL;
			bool ok = read_quoted(r, &p, &text) && (!print || emit(r, text, strlen(text)));

			free(text);
			if (!ok || !expect_close(r, &p))
				return false;
		} else {
			json_t *set = json_array();
			bool ok = set && eval_path(r, &p, cur, set) && expect_close(r, &p);

			/* Several values print space-separated, as kubectl's do. */
			for (size_t i = 0; ok && print && i < json_array_size(set); i++)
				ok = (!i || emit(r, " ", 1)) && emit_value(r, json_array_get(set, i));
			json_decref(set);
			if (!ok)
				return false;
		}
	}
}

bool cli_jsonpath(const char *template, const json_t *doc, struct gw_buf *out, char *err)
{
	struct run r = {.start = template, .root = doc, .out = out, .err = err};
	const char *p = template;

	gw_seterr(err, "jsonpath: out of memory"); /* what a failure that says nothing else was */
	return render(&r, &p, doc, doc != NULL, false);
}
