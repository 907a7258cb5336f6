/* Validation of job submissions. The spec's field names are the Spark
 * operator's SparkApplication v1beta2 names; the tables below say which of
 * them the gateway accepts and with what constraints. */
#include "gateway/api/submission.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/labels.h"
#include "common/quantity.h"
#include "common/redact.h"
#include "router/router.h"

enum field_type {
	T_STRING,
	T_INT,
	T_BOOL,
	T_ENUM,
	T_OBJECT,    /* children describe the fields */
	T_STR_MAP,   /* object of string values */
	T_LABEL_MAP, /* object of Kubernetes labels */
	T_STR_LIST,
	T_SPARK_MEM, /* "512m", "4g" */
	T_QUANTITY,  /* Kubernetes quantity, "500m", "2" */
};

struct field {
	const char *name;
	enum field_type type;
	bool required;
	long long min, max;            /* T_INT bounds; T_STRING max length */
	const struct field *children;  /* T_OBJECT, NULL-name terminated */
	const char *const *values;     /* T_ENUM, NULL terminated */
};

#define END {NULL, T_STRING, false, 0, 0, NULL, NULL}
#define STR(n, req) {n, T_STRING, req, 1, 4096, NULL, NULL}
#define INT(n, lo, hi) {n, T_INT, false, lo, hi, NULL, NULL}
#define OBJ(n, kids) {n, T_OBJECT, false, 0, 0, kids, NULL}
#define TYPED(n, t) {n, t, false, 0, 0, NULL, NULL}
#define ENUMF(n, req, vals) {n, T_ENUM, req, 0, 0, NULL, vals}

static const char *const app_types[] = {"Java", "Scala", "Python", "R", "SQL", NULL};
static const char *const modes[] = {"cluster", NULL};
static const char *const pull_policies[] = {"Always", "IfNotPresent", "Never", NULL};
static const char *const python_versions[] = {"2", "3", NULL};
/* Always (restart after success too) makes no sense for a batch job. */
static const char *const restart_types[] = {"Never", "OnFailure", NULL};

static const struct field gpu_fields[] = {
	STR("name", true),
	{"quantity", T_INT, true, 1, 64, NULL, NULL},
	END,
};

/* Fields common to driver and executor pods. */
#define POD_FIELDS                                              \
	INT("cores", 1, 256), TYPED("coreLimit", T_QUANTITY),       \
	TYPED("coreRequest", T_QUANTITY),                           \
	TYPED("memory", T_SPARK_MEM),                               \
	TYPED("memoryOverhead", T_SPARK_MEM), OBJ("gpu", gpu_fields), \
	TYPED("labels", T_LABEL_MAP), TYPED("annotations", T_STR_MAP), \
	STR("javaOptions", false)

static const struct field driver_fields[] = {POD_FIELDS, END};

static const struct field executor_fields[] = {
	POD_FIELDS,
	INT("instances", 0, 10000),
	TYPED("deleteOnTermination", T_BOOL),
	END,
};

static const struct field deps_fields[] = {
	TYPED("jars", T_STR_LIST),     TYPED("files", T_STR_LIST),
	TYPED("pyFiles", T_STR_LIST),  TYPED("archives", T_STR_LIST),
	TYPED("packages", T_STR_LIST), TYPED("excludePackages", T_STR_LIST),
	TYPED("repositories", T_STR_LIST), END,
};

static const struct field dynamic_allocation_fields[] = {
	TYPED("enabled", T_BOOL),
	INT("initialExecutors", 0, 10000),
	INT("minExecutors", 0, 10000),
	INT("maxExecutors", 0, 10000),
	INT("shuffleTrackingTimeout", 0, 86400000),
	END,
};

static const struct field restart_policy_fields[] = {
	ENUMF("type", true, restart_types),
	INT("onFailureRetries", 0, 100),
	INT("onFailureRetryInterval", 1, 86400),
	INT("onSubmissionFailureRetries", 0, 100),
	INT("onSubmissionFailureRetryInterval", 1, 86400),
	END,
};

static const struct field spec_fields[] = {
	ENUMF("type", true, app_types),
	STR("sparkVersion", true),
	ENUMF("mode", false, modes),
	STR("image", false),
	ENUMF("imagePullPolicy", false, pull_policies),
	STR("mainApplicationFile", false), /* required but for SQL, which may carry sql instead */
	STR("mainClass", false),
	{"sql", T_STRING, false, 1, 262144, NULL, NULL},
	TYPED("arguments", T_STR_LIST),
	TYPED("sparkConf", T_STR_MAP),
	TYPED("hadoopConf", T_STR_MAP),
	OBJ("deps", deps_fields),
	OBJ("driver", driver_fields),
	OBJ("executor", executor_fields),
	OBJ("dynamicAllocation", dynamic_allocation_fields),
	ENUMF("pythonVersion", false, python_versions),
	OBJ("restartPolicy", restart_policy_fields),
	INT("timeToLiveSeconds", 0, 31536000),
	STR("proxyUser", false),
	STR("memoryOverheadFactor", false),
	END,
};

struct checker {
	json_t *errors;
	bool oom;
};

static void add_error(struct checker *ck, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void add_error(struct checker *ck, const char *field, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *e;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	e = json_pack("{s:s, s:s}", "field", field, "message", msg);
	if (!e || json_array_append_new(ck->errors, e))
		ck->oom = true;
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	case JSON_NULL: return "null";
	}
	return "a value";
}

static void check_object(struct checker *ck, json_t *obj,
			 const struct field *fields, const char *path);

static void check_string_map(struct checker *ck, json_t *v,
			     const char *path, bool labels)
{
	const char *key;
	json_t *value;

	if (!json_is_object(v)) {
		add_error(ck, path, "must be an object of strings, not %s", type_name(v));
		return;
	}
	json_object_foreach(v, key, value) {
		char sub[512], why[GW_ERRLEN];

		snprintf(sub, sizeof(sub), "%s[%s]", path, key);
		if (!json_is_string(value)) {
			add_error(ck, sub, "must be a string, not %s", type_name(value));
		} else if (labels && !gw_label_key_valid(key, why)) {
			add_error(ck, sub, "invalid label key: %s", why);
		} else if (labels && !gw_label_value_valid(json_string_value(value), why)) {
			add_error(ck, sub, "invalid label value: %s", why);
		} else if (!labels && (!*key || strlen(key) > 1024)) {
			add_error(ck, sub, "keys must be 1 to 1024 characters");
		}
	}
}

static void check_value(struct checker *ck, json_t *v,
			const struct field *f, const char *path)
{
	switch (f->type) {
	case T_STRING:
		if (!json_is_string(v))
			add_error(ck, path, "must be a string, not %s", type_name(v));
		else if ((long long)json_string_length(v) < f->min ||
			 (long long)json_string_length(v) > f->max)
			add_error(ck, path, "must be %lld to %lld characters", f->min, f->max);
		return;
	case T_INT:
		if (!json_is_integer(v))
			add_error(ck, path, "must be an integer, not %s", type_name(v));
		else if (json_integer_value(v) < f->min || json_integer_value(v) > f->max)
			add_error(ck, path, "must be between %lld and %lld", f->min, f->max);
		return;
	case T_BOOL:
		if (!json_is_boolean(v))
			add_error(ck, path, "must be a boolean, not %s", type_name(v));
		return;
	case T_ENUM:
		if (json_is_string(v))
			for (const char *const *e = f->values; *e; e++)
				if (strcmp(*e, json_string_value(v)) == 0)
					return;
		{
			char allowed[256] = "";

			for (const char *const *e = f->values; *e; e++)
				snprintf(allowed + strlen(allowed), sizeof(allowed) - strlen(allowed),
					 "%s%s", e == f->values ? "" : ", ", *e);
			add_error(ck, path, "must be one of: %s", allowed);
		}
		return;
	case T_OBJECT:
		if (!json_is_object(v))
			add_error(ck, path, "must be an object, not %s", type_name(v));
		else
			check_object(ck, v, f->children, path);
		return;
	case T_STR_MAP:
	case T_LABEL_MAP:
		check_string_map(ck, v, path, f->type == T_LABEL_MAP);
		return;
	case T_STR_LIST:
		if (!json_is_array(v)) {
			add_error(ck, path, "must be an array of strings, not %s", type_name(v));
			return;
		}
		for (size_t i = 0; i < json_array_size(v); i++)
			if (!json_is_string(json_array_get(v, i))) {
				char sub[512];

				snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
				add_error(ck, sub, "must be a string");
			}
		return;
	case T_SPARK_MEM: {
		int64_t bytes;

		if (!json_is_string(v) || gw_spark_memory_parse(json_string_value(v), &bytes))
			add_error(ck, path, "must be a Spark size such as \"512m\" or \"4g\"");
		else if (bytes < 1024 * 1024)
			add_error(ck, path, "must be at least 1m");
		return;
	}
	case T_QUANTITY: {
		double q;

		if (!json_is_string(v) || gw_quantity_parse(json_string_value(v), &q))
			add_error(ck, path, "must be a Kubernetes quantity such as \"500m\" or \"2\"");
		else if (q <= 0)
			add_error(ck, path, "must be positive");
		return;
	}
	}
}

static void check_object(struct checker *ck, json_t *obj,
			 const struct field *fields, const char *path)
{
	const char *key;
	json_t *value;

	json_object_foreach(obj, key, value) {
		const struct field *f = fields;
		char sub[512];

		while (f->name && strcmp(f->name, key) != 0)
			f++;
		snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", key);
		if (!f->name)
			add_error(ck, sub, "unknown field");
		else
			check_value(ck, value, f, sub);
	}
	for (const struct field *f = fields; f->name; f++)
		if (f->required && !json_object_get(obj, f->name)) {
			char sub[512];

			snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", f->name);
			add_error(ck, sub, "is required");
		}
}

/* A SQL job: its statements inline, or a file of them, run by Spark's SQL
 * CLI; statements that cannot be lexed are refused now, not on a cluster. */
static void check_sql(struct checker *ck, const json_t *spec)
{
	const char *sql = json_string_value(json_object_get(spec, "sql"));
	bool file = json_object_get(spec, "mainApplicationFile") != NULL;
	char reason[200];

	if (json_object_get(spec, "mainClass"))
		add_error(ck, "spec.mainClass", "is not for type SQL: Spark's SQL CLI runs the statements");
	if (!sql && !file) {
		add_error(ck, "spec.sql", "is required for type SQL (or mainApplicationFile, a file of statements)");
	} else if (sql && file) {
		add_error(ck, "spec.sql", "and mainApplicationFile are exclusive: give the statements or a file of them");
	} else if (sql) {
		switch (router_sql_classify(sql, strlen(sql), reason, sizeof(reason))) {
		case ROUTER_SQL_INVALID:
			add_error(ck, "spec.sql", "cannot be read: %s", reason);
			break;
		case ROUTER_SQL_EMPTY:
			add_error(ck, "spec.sql", "has no statements");
			break;
		default:
			break;
		}
	}
}

/* Rules that span fields. */
static void check_spec_rules(struct checker *ck, const json_t *spec)
{
	const char *type = json_string_value(json_object_get(spec, "type"));
	const json_t *da = json_object_get(spec, "dynamicAllocation");
	const json_t *lo = json_object_get(da, "minExecutors");
	const json_t *hi = json_object_get(da, "maxExecutors");

	if (type && (!strcmp(type, "Java") || !strcmp(type, "Scala")) &&
	    !json_object_get(spec, "mainClass"))
		add_error(ck, "spec.mainClass", "is required for %s applications", type);
	if (type && !strcmp(type, "SQL"))
		check_sql(ck, spec);
	else if (json_object_get(spec, "sql"))
		add_error(ck, "spec.sql", "is only for type SQL");
	else if (!json_object_get(spec, "mainApplicationFile"))
		add_error(ck, "spec.mainApplicationFile", "is required");
	if (json_is_integer(lo) && json_is_integer(hi) &&
	    json_integer_value(lo) > json_integer_value(hi))
		add_error(ck, "spec.dynamicAllocation.minExecutors",
			  "must not exceed maxExecutors");
}

static const struct field top_fields[] = {
	{"name", T_STRING, true, 1, 63, NULL, NULL},
	TYPED("labels", T_LABEL_MAP),
	{"user", T_STRING, false, 1, 253, NULL, NULL},
	{"spec", T_OBJECT, true, 0, 0, spec_fields, NULL},
	END,
};

/* Nesting depth of a JSON text, counted outside strings, so that absurd
 * nesting is refused before the parser recurses into it. */
static size_t json_depth(const char *s, size_t len)
{
	size_t depth = 0, max = 0;
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
		} else if (c == '"') {
			in_string = true;
		} else if (c == '{' || c == '[') {
			if (++depth > max)
				max = depth;
		} else if (c == '}' || c == ']') {
			if (depth)
				depth--;
		}
	}
	return max;
}

json_t *gateway_json_parse(const char *body, size_t len, char *detail)
{
	json_error_t jerr;
	json_t *doc;

	if (json_depth(body, len) > GATEWAY_MAX_DEPTH) {
		gw_seterr(detail, "JSON nesting is deeper than %d levels", GATEWAY_MAX_DEPTH);
		return NULL;
	}
	doc = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!doc) {
		gw_seterr(detail, "invalid JSON at line %d, column %d: %s", jerr.line,
			  jerr.column, jerr.text);
		return NULL;
	}
	if (!json_is_object(doc)) {
		gw_seterr(detail, "the body must be a JSON object, not %s", type_name(doc));
		json_decref(doc);
		return NULL;
	}
	return doc;
}

void gateway_submission_release(struct gateway_submission *sub)
{
	free(sub->name);
	free(sub->user);
	free(sub->labels_json);
	free(sub->spec_json);
	free(sub->spec_shown_json);
	free(sub->team);
	json_decref(sub->labels);
	json_decref(sub->spec);
	memset(sub, 0, sizeof(*sub));
}

/* The spec as the API shows it: redacted once here, so that reads never
 * parse it; "" when nothing is redacted. The parsed spec is redacted in
 * place: what placement reads of it (resources, keys) is no secret, and
 * the cluster gets the stored text. */
static char *shown_spec(json_t *spec, const char *text)
{
	char *shown;

	if (!text || !gw_redact_may_apply(text))
		return strdup("");
	gw_redact_document(spec);
	shown = json_dumps(spec, JSON_COMPACT);
	if (shown && !strcmp(shown, text)) {
		free(shown);
		return strdup("");
	}
	return shown;
}

enum gateway_body_status gateway_submission_parse(const char *body, size_t len,
						  struct gateway_submission *out,
						  json_t **errors, char *detail)
{
	struct checker ck = {0};
	json_t *doc, *empty = NULL;
	const json_t *labels, *name;
	char why[GW_ERRLEN];

	memset(out, 0, sizeof(*out));
	*errors = NULL;
	doc = gateway_json_parse(body, len, detail);
	if (!doc)
		return BODY_MALFORMED;
	ck.errors = json_array();
	if (!ck.errors)
		goto nomem;
	check_object(&ck, doc, top_fields, "");
	name = json_object_get(doc, "name");
	if (json_is_string(name) && !gw_dns1123_label_valid(json_string_value(name), why))
		add_error(&ck, "name", "%s", why);
	if (json_is_object(json_object_get(doc, "spec")))
		check_spec_rules(&ck, json_object_get(doc, "spec"));
	if (ck.oom)
		goto nomem;
	if (json_array_size(ck.errors)) {
		gw_seterr(detail, "the submission has %zu invalid field%s",
			  json_array_size(ck.errors),
			  json_array_size(ck.errors) == 1 ? "" : "s");
		*errors = ck.errors;
		json_decref(doc);
		return BODY_INVALID;
	}
	json_decref(ck.errors);

	labels = json_object_get(doc, "labels");
	if (!labels)
		labels = empty = json_object();
	out->name = strdup(json_string_value(name));
	out->user = strdup(json_object_get(doc, "user")
				   ? json_string_value(json_object_get(doc, "user"))
				   : "anonymous");
	out->labels_json = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
	if (json_is_string(json_object_get(labels, "team")))
		out->team = strdup(json_string_value(json_object_get(labels, "team")));
	out->spec_json = json_dumps(json_object_get(doc, "spec"), JSON_COMPACT);
	out->spec_shown_json = shown_spec(json_object_get(doc, "spec"), out->spec_json);
	out->labels = json_incref(empty ? empty : json_object_get(doc, "labels"));
	out->spec = json_incref(json_object_get(doc, "spec"));
	json_decref(empty);
	json_decref(doc);
	if (!out->name || !out->user || !out->labels_json || !out->spec_json || !out->spec_shown_json) {
		gateway_submission_release(out);
		return BODY_NOMEM;
	}
	return BODY_OK;
nomem:
	json_decref(ck.errors);
	json_decref(doc);
	return BODY_NOMEM;
}
