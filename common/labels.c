/* Label, name and selector validation following Kubernetes' own rules. */
#include "common/labels.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool is_alnum_lower(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_alnum(char c)
{
	return isalnum((unsigned char)c) != 0;
}

bool gw_dns1123_label_valid(const char *s, char *err)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63) {
		gw_seterr(err, "must be 1 to 63 characters");
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!is_alnum_lower(s[i]) && s[i] != '-') {
			gw_seterr(err, "must consist of lower case alphanumeric characters or '-'");
			return false;
		}
	}
	if (!is_alnum_lower(s[0]) || !is_alnum_lower(s[n - 1])) {
		gw_seterr(err, "must start and end with a lower case alphanumeric character");
		return false;
	}
	return true;
}

bool gw_dns1123_subdomain_valid(const char *s, char *err)
{
	size_t n = strlen(s), start = 0;

	if (n == 0 || n > 253) {
		gw_seterr(err, "must be 1 to 253 characters");
		return false;
	}
	/* Dot-separated DNS-1123 labels. */
	for (size_t i = 0; i <= n; i++) {
		if (i == n || s[i] == '.') {
			char part[64];
			size_t len = i - start;

			if (len == 0 || len > 63) {
				gw_seterr(err, "must be dot-separated labels of 1 to 63 characters");
				return false;
			}
			memcpy(part, s + start, len);
			part[len] = '\0';
			if (!gw_dns1123_label_valid(part, err))
				return false;
			start = i + 1;
		}
	}
	return true;
}

/* The "name" part of a qualified name or a label value:
 * ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], at most 63 characters. */
static bool name_part_valid(const char *s, size_t n, const char *what, char *err)
{
	if (n > 63) {
		gw_seterr(err, "%s must be no more than 63 characters", what);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.') {
			gw_seterr(err, "%s must consist of alphanumeric characters, '-', '_' or '.'", what);
			return false;
		}
	}
	if (n && (!is_alnum(s[0]) || !is_alnum(s[n - 1]))) {
		gw_seterr(err, "%s must start and end with an alphanumeric character", what);
		return false;
	}
	return true;
}

bool gw_label_key_valid(const char *s, char *err)
{
	const char *slash = strchr(s, '/');
	const char *name = slash ? slash + 1 : s;

	if (slash) {
		char prefix[254];
		size_t plen = (size_t)(slash - s);

		if (plen == 0 || plen > 253) {
			gw_seterr(err, "prefix must be a DNS-1123 subdomain of 1 to 253 characters");
			return false;
		}
		char why[GW_ERRLEN];

		memcpy(prefix, s, plen);
		prefix[plen] = '\0';
		if (!gw_dns1123_subdomain_valid(prefix, why)) {
			gw_seterr(err, "prefix %s", why);
			return false;
		}
	}
	if (*name == '\0') {
		gw_seterr(err, "name part must not be empty");
		return false;
	}
	return name_part_valid(name, strlen(name), "name part", err);
}

bool gw_label_value_valid(const char *s, char *err)
{
	return name_part_valid(s, strlen(s), "value", err);
}

/* ---- selector parser ---- */

struct lexer {
	const char *text;
	size_t pos;
	char *err;
};

static void skip_space(struct lexer *lx)
{
	while (lx->text[lx->pos] == ' ' || lx->text[lx->pos] == '\t')
		lx->pos++;
}

static bool is_word_char(char c)
{
	return is_alnum(c) || c == '-' || c == '_' || c == '.' || c == '/';
}

/* Reads a key or value token; returns a new string (possibly empty). */
static char *read_word(struct lexer *lx)
{
	size_t start, len;
	char *w;

	skip_space(lx);
	start = lx->pos;
	while (is_word_char(lx->text[lx->pos]))
		lx->pos++;
	len = lx->pos - start;
	w = malloc(len + 1);
	if (!w)
		return NULL;
	memcpy(w, lx->text + start, len);
	w[len] = '\0';
	return w;
}

static bool starts_keyword(const struct lexer *lx, const char *kw)
{
	size_t n = strlen(kw);

	return strncmp(lx->text + lx->pos, kw, n) == 0 &&
	       !is_word_char(lx->text[lx->pos + n]);
}

static void req_release(struct gw_sel_req *r)
{
	free(r->key);
	for (size_t i = 0; i < r->nvalues; i++)
		free(r->values[i]);
	free(r->values);
}

static enum gw_err push_value(struct gw_sel_req *r, char *v)
{
	char **vs = realloc(r->values, (r->nvalues + 1) * sizeof(*vs));

	if (!vs) {
		free(v);
		return GW_ENOMEM;
	}
	r->values = vs;
	r->values[r->nvalues++] = v;
	return GW_OK;
}

static enum gw_err read_value(struct lexer *lx, struct gw_sel_req *r)
{
	char why[GW_ERRLEN];
	char *v = read_word(lx);

	if (!v)
		return GW_ENOMEM;
	if (!gw_label_value_valid(v, why)) {
		gw_seterr(lx->err, "at position %zu: invalid value '%s': %s",
			  lx->pos, v, why);
		free(v);
		return GW_EINVAL;
	}
	return push_value(r, v);
}

static bool is_integer(const char *s)
{
	char *end;

	errno = 0;
	(void)strtoll(s, &end, 10);
	return *s && *end == '\0' && errno == 0;
}

static enum gw_err parse_requirement(struct lexer *lx, struct gw_sel_req *r)
{
	char why[GW_ERRLEN];
	enum gw_err rc;
	bool negated = false;

	skip_space(lx);
	if (lx->text[lx->pos] == '!') {
		negated = true;
		lx->pos++;
	}
	r->key = read_word(lx);
	if (!r->key)
		return GW_ENOMEM;
	if (!gw_label_key_valid(r->key, why)) {
		gw_seterr(lx->err, "at position %zu: invalid key '%s': %s",
			  lx->pos, r->key, why);
		return GW_EINVAL;
	}
	skip_space(lx);
	if (negated) {
		r->op = GW_SEL_NOT_EXISTS;
		return GW_OK;
	}
	switch (lx->text[lx->pos]) {
	case '\0':
	case ',':
		r->op = GW_SEL_EXISTS;
		return GW_OK;
	case '=':
		r->op = GW_SEL_EQ;
		lx->pos += lx->text[lx->pos + 1] == '=' ? 2 : 1;
		return read_value(lx, r);
	case '!':
		if (lx->text[lx->pos + 1] != '=')
			break;
		r->op = GW_SEL_NEQ;
		lx->pos += 2;
		return read_value(lx, r);
	case '>':
	case '<':
		r->op = lx->text[lx->pos] == '>' ? GW_SEL_GT : GW_SEL_LT;
		lx->pos++;
		if ((rc = read_value(lx, r)))
			return rc;
		if (!is_integer(r->values[0])) {
			gw_seterr(lx->err, "at position %zu: '%s' must be an integer",
				  lx->pos, r->values[0]);
			return GW_EINVAL;
		}
		return GW_OK;
	default:
		if (starts_keyword(lx, "in")) {
			r->op = GW_SEL_IN;
			lx->pos += 2;
		} else if (starts_keyword(lx, "notin")) {
			r->op = GW_SEL_NOTIN;
			lx->pos += 5;
		} else {
			break;
		}
		skip_space(lx);
		if (lx->text[lx->pos] != '(') {
			gw_seterr(lx->err, "at position %zu: expected '('", lx->pos);
			return GW_EINVAL;
		}
		lx->pos++;
		skip_space(lx);
		if (lx->text[lx->pos] == ')') {
			gw_seterr(lx->err, "at position %zu: the set of values must not be empty",
				  lx->pos);
			return GW_EINVAL;
		}
		for (;;) {
			if ((rc = read_value(lx, r)))
				return rc;
			skip_space(lx);
			if (lx->text[lx->pos] == ',') {
				lx->pos++;
				continue;
			}
			if (lx->text[lx->pos] == ')') {
				lx->pos++;
				break;
			}
			gw_seterr(lx->err, "at position %zu: expected ',' or ')'", lx->pos);
			return GW_EINVAL;
		}
		return GW_OK;
	}
	gw_seterr(lx->err, "at position %zu: expected an operator (=, ==, !=, in, notin, >, <)",
		  lx->pos);
	return GW_EINVAL;
}

void gw_selector_free(struct gw_selector *sel)
{
	if (!sel)
		return;
	for (size_t i = 0; i < sel->n; i++)
		req_release(&sel->reqs[i]);
	free(sel->reqs);
	free(sel);
}

enum gw_err gw_selector_parse(const char *text, struct gw_selector **out,
			      char *err)
{
	struct lexer lx = {.text = text, .pos = 0, .err = err};
	struct gw_selector *sel = calloc(1, sizeof(*sel));
	enum gw_err rc = GW_ENOMEM;

	*out = NULL;
	if (!sel)
		goto fail;
	skip_space(&lx);
	if (text[lx.pos] == '\0') {
		*out = sel;
		return GW_OK;
	}
	for (;;) {
		struct gw_sel_req *reqs = realloc(sel->reqs, (sel->n + 1) * sizeof(*reqs));

		if (!reqs) {
			rc = GW_ENOMEM;
			goto fail;
		}
		sel->reqs = reqs;
		memset(&sel->reqs[sel->n], 0, sizeof(sel->reqs[0]));
		sel->n++;
		if ((rc = parse_requirement(&lx, &sel->reqs[sel->n - 1])))
			goto fail;
		skip_space(&lx);
		if (text[lx.pos] == '\0')
			break;
		if (text[lx.pos] != ',') {
			gw_seterr(err, "at position %zu: expected ',' or end of selector", lx.pos);
			rc = GW_EINVAL;
			goto fail;
		}
		lx.pos++;
	}
	*out = sel;
	return GW_OK;
fail:
	if (rc == GW_ENOMEM)
		gw_seterr(err, "out of memory");
	gw_selector_free(sel);
	return rc;
}

static bool req_matches(const struct gw_sel_req *r, const json_t *labels)
{
	const char *have = json_string_value(json_object_get(labels, r->key));

	switch (r->op) {
	case GW_SEL_EXISTS:
		return have != NULL;
	case GW_SEL_NOT_EXISTS:
		return have == NULL;
	case GW_SEL_EQ:
	case GW_SEL_IN:
		for (size_t i = 0; have && i < r->nvalues; i++)
			if (strcmp(have, r->values[i]) == 0)
				return true;
		return false;
	case GW_SEL_NEQ:
	case GW_SEL_NOTIN:
		for (size_t i = 0; have && i < r->nvalues; i++)
			if (strcmp(have, r->values[i]) == 0)
				return false;
		return true;
	case GW_SEL_GT:
	case GW_SEL_LT:
		if (!have || !is_integer(have))
			return false;
		return r->op == GW_SEL_GT ? strtoll(have, NULL, 10) > strtoll(r->values[0], NULL, 10)
					  : strtoll(have, NULL, 10) < strtoll(r->values[0], NULL, 10);
	}
	return false;
}

bool gw_selector_matches(const struct gw_selector *sel, const json_t *labels)
{
	for (size_t i = 0; i < sel->n; i++)
		if (!req_matches(&sel->reqs[i], labels))
			return false;
	return true;
}
