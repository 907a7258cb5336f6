/* Event-driven YAML to JSON conversion on top of libyaml. */
#include "common/yamljson.h"

#include <errno.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <yaml.h>

#include "common/buf.h"

#define MAX_DEPTH 64
#define MAX_PATH 512

struct loader {
	yaml_parser_t parser;
	json_t *marks; /* may be NULL */
	char path[MAX_PATH];
	char *err;
};

static void mark_error(struct loader *ld, const yaml_mark_t *m, const char *what)
{
	gw_seterr(ld->err, "line %zu, column %zu: %s", m->line + 1, m->column + 1, what);
}

static enum gw_err next_event(struct loader *ld, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&ld->parser, ev)) {
		gw_seterr(ld->err, "line %zu, column %zu: %s",
			  ld->parser.problem_mark.line + 1,
			  ld->parser.problem_mark.column + 1,
			  ld->parser.problem ? ld->parser.problem : "syntax error");
		return GW_EINVAL;
	}
	return GW_OK;
}

/* Counts the characters at s accepted by ok(). */
static size_t span(const char *s, int (*ok)(int))
{
	size_t n = 0;

	while (s[n] && ok((unsigned char)s[n]))
		n++;
	return n;
}

static int is_octal(int c)
{
	return c >= '0' && c <= '7';
}

/* [-+]?[0-9]+ | 0o[0-7]+ | 0x[0-9a-fA-F]+ : the base, or 0 if none. */
static int integer_base(const char *s)
{
	size_t sign = (*s == '-' || *s == '+');
	size_t n;

	if (s[0] == '0' && s[1] == 'x')
		return (n = span(s + 2, isxdigit)) && !s[2 + n] ? 16 : 0;
	if (s[0] == '0' && s[1] == 'o')
		return (n = span(s + 2, is_octal)) && !s[2 + n] ? 8 : 0;
	return (n = span(s + sign, isdigit)) && !s[sign + n] ? 10 : 0;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool is_float(const char *s)
{
	size_t i = (*s == '-' || *s == '+'), whole, frac = 0, exp;

	whole = span(s + i, isdigit);
	i += whole;
	if (s[i] == '.') {
		frac = span(s + i + 1, isdigit);
		i += 1 + frac;
	}
	if (!whole && !frac)
		return false;
	if (s[i] == 'e' || s[i] == 'E') {
		i += 1 + (s[i + 1] == '-' || s[i + 1] == '+');
		if (!(exp = span(s + i, isdigit)))
			return false;
		i += exp;
	}
	return s[i] == '\0';
}

/* YAML 1.2 core schema resolution of a plain scalar. */
static json_t *resolve_plain(const char *s)
{
	int base;

	if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	    !strcmp(s, "NULL"))
		return json_null();
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return json_true();
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return json_false();
	if ((base = integer_base(s))) {
		const char *digits = base == 10 ? s : s + 2;
		long long v;
		char *end;

		errno = 0;
		v = strtoll(digits, &end, base);
		if (errno == 0 && *end == '\0')
			return json_integer(v);
		return json_string(s); /* out of range: keep the text */
	}
	if (is_float(s))
		return json_real(strtod(s, NULL));
	return json_string(s);
}

static void record_mark(struct loader *ld, const yaml_mark_t *m)
{
	json_t *pos;

	if (!ld->marks)
		return;
	pos = json_pack("[I,I]", (json_int_t)m->line + 1, (json_int_t)m->column + 1);
	if (pos)
		json_object_set_new(ld->marks, ld->path, pos);
}

static enum gw_err parse_node(struct loader *ld, yaml_event_t *ev, int depth,
			      json_t **out);

static enum gw_err parse_sequence(struct loader *ld, int depth, json_t *arr)
{
	size_t base = strlen(ld->path);

	for (size_t i = 0;; i++) {
		yaml_event_t ev;
		json_t *item = NULL;
		enum gw_err rc;

		if ((rc = next_event(ld, &ev)))
			return rc;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			ld->path[base] = '\0';
			return GW_OK;
		}
		snprintf(ld->path + base, MAX_PATH - base, "[%zu]", i);
		rc = parse_node(ld, &ev, depth + 1, &item);
		yaml_event_delete(&ev);
		if (rc)
			return rc;
		if (json_array_append_new(arr, item))
			return GW_ENOMEM;
	}
}

static enum gw_err parse_mapping(struct loader *ld, int depth, json_t *obj)
{
	size_t base = strlen(ld->path);

	for (;;) {
		yaml_event_t ev;
		json_t *value = NULL;
		char *key;
		enum gw_err rc;

		if ((rc = next_event(ld, &ev)))
			return rc;
		if (ev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&ev);
			ld->path[base] = '\0';
			return GW_OK;
		}
		if (ev.type != YAML_SCALAR_EVENT) {
			mark_error(ld, &ev.start_mark, "mapping keys must be scalars");
			yaml_event_delete(&ev);
			return GW_EINVAL;
		}
		key = strdup((const char *)ev.data.scalar.value);
		if (!key) {
			yaml_event_delete(&ev);
			return GW_ENOMEM;
		}
		if (json_object_get(obj, key)) {
			char what[GW_ERRLEN];

			snprintf(what, sizeof(what), "duplicate key '%.200s'", key);
			mark_error(ld, &ev.start_mark, what);
			free(key);
			yaml_event_delete(&ev);
			return GW_EINVAL;
		}
		yaml_event_delete(&ev);
		snprintf(ld->path + base, MAX_PATH - base, "%s%s", base ? "." : "", key);
		if ((rc = next_event(ld, &ev))) {
			free(key);
			return rc;
		}
		rc = parse_node(ld, &ev, depth + 1, &value);
		yaml_event_delete(&ev);
		if (rc == GW_OK && json_object_set_new(obj, key, value))
			rc = GW_ENOMEM;
		free(key);
		if (rc)
			return rc;
		ld->path[base] = '\0';
	}
}

static enum gw_err parse_node(struct loader *ld, yaml_event_t *ev, int depth,
			      json_t **out)
{
	enum gw_err rc;

	if (depth > MAX_DEPTH) {
		mark_error(ld, &ev->start_mark, "nesting too deep");
		return GW_EINVAL;
	}
	record_mark(ld, &ev->start_mark);
	switch (ev->type) {
	case YAML_SCALAR_EVENT: {
		const char *text = (const char *)ev->data.scalar.value;
		const char *tag = (const char *)ev->data.scalar.tag;

		if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
		    (!tag || strcmp(tag, YAML_STR_TAG) != 0))
			*out = resolve_plain(text);
		else
			*out = json_stringn(text, ev->data.scalar.length);
		if (!*out) {
			mark_error(ld, &ev->start_mark, "scalar is not valid UTF-8");
			return GW_EINVAL;
		}
		return GW_OK;
	}
	case YAML_SEQUENCE_START_EVENT:
		*out = json_array();
		if (!*out)
			return GW_ENOMEM;
		rc = parse_sequence(ld, depth, *out);
		break;
	case YAML_MAPPING_START_EVENT:
		*out = json_object();
		if (!*out)
			return GW_ENOMEM;
		rc = parse_mapping(ld, depth, *out);
		break;
	case YAML_ALIAS_EVENT:
		mark_error(ld, &ev->start_mark, "aliases are not supported");
		return GW_EINVAL;
	default:
		mark_error(ld, &ev->start_mark, "unexpected YAML event");
		return GW_EINVAL;
	}
	if (rc) {
		json_decref(*out);
		*out = NULL;
	}
	return rc;
}

static enum gw_err load(struct loader *ld, json_t **doc)
{
	yaml_event_t ev;
	enum gw_err rc;
	json_t *root = NULL;

	/* STREAM-START, then DOCUMENT-START or STREAM-END for empty input. */
	if ((rc = next_event(ld, &ev)))
		return rc;
	yaml_event_delete(&ev);
	if ((rc = next_event(ld, &ev)))
		return rc;
	if (ev.type == YAML_STREAM_END_EVENT) {
		yaml_event_delete(&ev);
		*doc = json_object();
		return *doc ? GW_OK : GW_ENOMEM;
	}
	yaml_event_delete(&ev);
	if ((rc = next_event(ld, &ev)))
		return rc;
	rc = parse_node(ld, &ev, 0, &root);
	yaml_event_delete(&ev);
	if (rc)
		return rc;
	if ((rc = next_event(ld, &ev))) /* DOCUMENT-END */
		goto fail;
	yaml_event_delete(&ev);
	if ((rc = next_event(ld, &ev)))
		goto fail;
	if (ev.type != YAML_STREAM_END_EVENT) {
		mark_error(ld, &ev.start_mark, "only one YAML document is allowed");
		yaml_event_delete(&ev);
		rc = GW_EINVAL;
		goto fail;
	}
	yaml_event_delete(&ev);
	if (json_is_null(root)) { /* a document of only comments */
		json_decref(root);
		root = json_object();
	}
	*doc = root;
	return GW_OK;
fail:
	json_decref(root);
	return rc;
}

static enum gw_err run(struct loader *ld, json_t **doc, json_t **marks)
{
	enum gw_err rc;

	*doc = NULL;
	if (marks) {
		*marks = ld->marks = json_object();
		if (!ld->marks) {
			yaml_parser_delete(&ld->parser);
			return GW_ENOMEM;
		}
	}
	rc = load(ld, doc);
	yaml_parser_delete(&ld->parser);
	if (rc && marks) {
		json_decref(*marks);
		*marks = NULL;
	}
	return rc;
}

enum gw_err gw_yaml_load_string(const char *text, size_t len, json_t **doc,
				json_t **marks, char *err)
{
	struct loader ld = {.err = err};

	if (!yaml_parser_initialize(&ld.parser))
		return GW_ENOMEM;
	yaml_parser_set_input_string(&ld.parser, (const unsigned char *)text, len);
	return run(&ld, doc, marks);
}

enum gw_err gw_yaml_load_file(const char *path, json_t **doc, json_t **marks,
			      char *err)
{
	struct loader ld = {.err = err};
	FILE *f = fopen(path, "rb");
	enum gw_err rc;
	char inner[GW_ERRLEN] = "out of memory";

	if (!f) {
		gw_seterr(err, "%s: %s", path, strerror(errno));
		return GW_EIO;
	}
	if (!yaml_parser_initialize(&ld.parser)) {
		fclose(f);
		return GW_ENOMEM;
	}
	ld.err = inner;
	yaml_parser_set_input_file(&ld.parser, f);
	rc = run(&ld, doc, marks);
	fclose(f);
	if (rc)
		gw_seterr(err, "%s: %s", path, inner);
	return rc;
}

/* ---- JSON to YAML ---- */

static int emit_write(void *data, unsigned char *buffer, size_t size)
{
	return gw_buf_append(data, buffer, size) == GW_OK;
}

static bool emit_scalar(yaml_emitter_t *em, const char *text, size_t len, bool plain_ok)
{
	yaml_event_t ev;

	yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)(uintptr_t)text, (int)len,
				     plain_ok, !plain_ok, plain_ok ? YAML_PLAIN_SCALAR_STYLE : YAML_ANY_SCALAR_STYLE);
	return yaml_emitter_emit(em, &ev);
}

static bool emit_node(yaml_emitter_t *em, const json_t *node, int depth)
{
	yaml_event_t ev;
	char text[64];

	if (depth > MAX_DEPTH)
		return false;
	switch (json_typeof(node)) {
	case JSON_OBJECT: {
		const char *key;
		json_t *value;

		yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
		if (!yaml_emitter_emit(em, &ev))
			return false;
		json_object_foreach((json_t *)(uintptr_t)node, key, value) {
			json_t *k = json_string(key);
			bool ok = k && emit_node(em, k, depth + 1) && emit_node(em, value, depth + 1);

			json_decref(k);
			if (!ok)
				return false;
		}
		yaml_mapping_end_event_initialize(&ev);
		return yaml_emitter_emit(em, &ev);
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *value;

		yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
		if (!yaml_emitter_emit(em, &ev))
			return false;
		json_array_foreach(node, i, value)
			if (!emit_node(em, value, depth + 1))
				return false;
		yaml_sequence_end_event_initialize(&ev);
		return yaml_emitter_emit(em, &ev);
	}
	case JSON_STRING: {
		/* Plain unless it would read back as another type ("true", "8"). */
		const char *value = json_string_value(node);
		size_t len = json_string_length(node);
		json_t *as_plain = resolve_plain(value);
		bool plain = json_is_string(as_plain) && strlen(value) == len;

		json_decref(as_plain);
		return emit_scalar(em, value, len, plain);
	}
	case JSON_INTEGER:
		snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(node));
		return emit_scalar(em, text, strlen(text), true);
	case JSON_REAL:
		snprintf(text, sizeof(text), "%.17g", json_real_value(node));
		if (!strpbrk(text, ".e")) /* 2.0 must not read back as the integer 2 */
			strcat(text, ".0");
		return emit_scalar(em, text, strlen(text), true);
	case JSON_TRUE:
	case JSON_FALSE:
		return emit_scalar(em, json_is_true(node) ? "true" : "false", json_is_true(node) ? 4 : 5, true);
	case JSON_NULL:
		return emit_scalar(em, "null", 4, true);
	}
	return false;
}

enum gw_err gw_yaml_dump(const json_t *doc, char **out, char *err)
{
	yaml_emitter_t em;
	yaml_event_t ev;
	struct gw_buf buf;
	bool ok;

	*out = NULL;
	gw_buf_init(&buf, SIZE_MAX);
	if (!yaml_emitter_initialize(&em)) {
		gw_seterr(err, "out of memory");
		return GW_ENOMEM;
	}
	yaml_emitter_set_output(&em, emit_write, &buf);
	yaml_emitter_set_unicode(&em, 1);
	yaml_emitter_set_width(&em, -1);
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	ok = yaml_emitter_emit(&em, &ev);
	yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
	ok = ok && yaml_emitter_emit(&em, &ev) && emit_node(&em, doc, 0);
	yaml_document_end_event_initialize(&ev, 1);
	ok = ok && yaml_emitter_emit(&em, &ev);
	yaml_stream_end_event_initialize(&ev);
	ok = ok && yaml_emitter_emit(&em, &ev) && yaml_emitter_flush(&em);
	yaml_emitter_delete(&em);
	if (!ok || !buf.data) {
		gw_buf_release(&buf);
		gw_seterr(err, "cannot write the document as YAML");
		return GW_EINVAL;
	}
	*out = buf.data;
	return GW_OK;
}
