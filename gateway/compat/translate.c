/* Livy and BPG request bodies into the native submission shape. */
#include "gateway/compat/compat.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"

/* A client field and the native path it fills. */
struct field_map {
	const char *client;
	const char *native;
};

/* Livy's CreateBatchRequest, all of it but queue (labels). */
static const struct field_map livy_fields[] = {
	{"file", "spec.mainApplicationFile"},
	{"className", "spec.mainClass"},
	{"args", "spec.arguments"},
	{"jars", "spec.deps.jars"},
	{"pyFiles", "spec.deps.pyFiles"},
	{"files", "spec.deps.files"},
	{"archives", "spec.deps.archives"},
	{"driverMemory", "spec.driver.memory"},
	{"driverCores", "spec.driver.cores"},
	{"executorMemory", "spec.executor.memory"},
	{"executorCores", "spec.executor.cores"},
	{"numExecutors", "spec.executor.instances"},
	{"conf", "spec.sparkConf"},
	{"proxyUser", "spec.proxyUser"},
	{"name", "name"},
	{NULL, NULL},
};

/* BPG's SubmitApplicationRequest fields that are the SparkApplication
 * spec's own; applicationName, queue, spotInstance and overheadFactor are
 * handled apart. */
static const struct field_map bpg_fields[] = {
	{"type", "spec.type"},
	{"mode", "spec.mode"},
	{"image", "spec.image"},
	{"sparkVersion", "spec.sparkVersion"},
	{"mainClass", "spec.mainClass"},
	{"mainApplicationFile", "spec.mainApplicationFile"},
	{"arguments", "spec.arguments"},
	{"sparkConf", "spec.sparkConf"},
	{"driver", "spec.driver"},
	{"executor", "spec.executor"},
	{"deps", "spec.deps"},
	{"pythonVersion", "spec.pythonVersion"},
	{"imagePullPolicy", "spec.imagePullPolicy"},
	{"restartPolicy", "spec.restartPolicy"},
	{"applicationName", "name"},
	{"overheadFactor", "spec.memoryOverheadFactor"},
	{"queue", "labels"},
	{NULL, NULL},
};

/* BPG fields that place or name things the gateway decides itself. */
static const char *const bpg_unsupported[] = {
	"submissionIdSuffix", "volumes", "clusterId", "queueToken",
	"driverOverheadFactor", "executorOverheadFactor", NULL,
};

static void add_error(json_t *errors, const char *field, const char *message)
{
	json_array_append_new(errors, json_pack("{s:s, s:s}", "field", field, "message", message));
}

/* Sets value (a new reference taken) at a dotted path, making the objects
 * on the way. */
static void set_path(json_t *doc, const char *path, json_t *value)
{
	char part[64];
	const char *dot;

	while ((dot = strchr(path, '.'))) {
		json_t *next;

		snprintf(part, sizeof(part), "%.*s", (int)(dot - path), path);
		next = json_object_get(doc, part);
		if (!json_is_object(next)) {
			next = json_object();
			json_object_set_new(doc, part, next);
		}
		doc = next;
		path = dot + 1;
	}
	json_object_set_new(doc, path, value);
}

static const struct field_map *find_field(const struct field_map *map, const char *client)
{
	for (; map->client; map++)
		if (!strcmp(map->client, client))
			return map;
	return NULL;
}

/* A Kubernetes-friendly job name from a free-form one: lower case, runs
 * of anything else as one '-', at most 63 characters. */
static json_t *job_name(const char *given, const char *fallback)
{
	char name[64];
	size_t n = 0;

	for (const char *p = given ? given : ""; *p && n < sizeof(name) - 1; p++) {
		unsigned char c = (unsigned char)tolower((unsigned char)*p);

		if (isalnum(c) && c < 0x80)
			name[n++] = (char)c;
		else if (n && name[n - 1] != '-')
			name[n++] = '-';
	}
	while (n && name[n - 1] == '-')
		n--;
	name[n] = '\0';
	return json_string(n ? name : fallback);
}

/* The queue's labels: the configured ones of the queue named, of queue
 * "default" when none is named, else none. */
static json_t *queue_labels(const struct compat_settings *cs, const json_t *queue, json_t *errors)
{
	const char *name = json_string_value(queue);
	json_t *labels;

	if (queue && !json_is_string(queue)) {
		add_error(errors, "queue", "must be a string");
		return json_object();
	}
	labels = json_object_get(cs->queues, name ? name : "default");
	if (labels)
		return json_deep_copy(labels);
	if (name && strcmp(name, "default")) {
		char msg[GW_ERRLEN] = "is not a queue of this gateway (compat.queues)";
		const char *known;
		json_t *v;

		if (json_object_size(cs->queues)) {
			snprintf(msg, sizeof(msg), "is not a queue of this gateway; queues:");
			json_object_foreach(cs->queues, known, v)
				snprintf(msg + strlen(msg), sizeof(msg) - strlen(msg), " %s", known);
		}
		add_error(errors, "queue", msg);
	}
	return json_object();
}

/* Spark conf values are strings; Livy's clients also send numbers and
 * booleans, which Livy's own parser turns into strings. */
static json_t *conf_strings(json_t *conf, json_t *errors, const char *field)
{
	json_t *out = json_object(), *v;
	const char *key;

	if (!json_is_object(conf)) {
		add_error(errors, field, "must be an object of strings");
		return out;
	}
	json_object_foreach(conf, key, v) {
		char text[64];

		if (json_is_string(v)) {
			json_object_set(out, key, v);
			continue;
		}
		if (json_is_integer(v))
			snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		else if (json_is_real(v))
			snprintf(text, sizeof(text), "%.17g", json_real_value(v));
		else if (json_is_boolean(v))
			snprintf(text, sizeof(text), "%s", json_is_true(v) ? "true" : "false");
		else {
			char where[300];

			snprintf(where, sizeof(where), "%s.%s", field, key);
			add_error(errors, where, "must be a string");
			continue;
		}
		json_object_set_new(out, key, json_string(text));
	}
	return out;
}

static enum gateway_body_status finish(json_t *doc, json_t *errors, json_t **out, json_t **errs,
				       char *detail)
{
	size_t n = json_array_size(errors);

	if (!doc || !errors) {
		json_decref(doc);
		json_decref(errors);
		return BODY_NOMEM;
	}
	if (n) {
		gw_seterr(detail, "the request has %zu invalid field%s", n, n == 1 ? "" : "s");
		json_decref(doc);
		*errs = errors;
		return BODY_INVALID;
	}
	json_decref(errors);
	*out = doc;
	return BODY_OK;
}

/* Python for .py files, R for .R, else a JVM application. */
static const char *type_of_file(const char *file)
{
	size_t n = file ? strlen(file) : 0;

	if (n > 3 && !strcmp(file + n - 3, ".py"))
		return "Python";
	if (n > 2 && (!strcmp(file + n - 2, ".R") || !strcmp(file + n - 2, ".r")))
		return "R";
	return "Scala";
}

enum gateway_body_status compat_livy_submission(json_t *body, const struct compat_settings *cs,
						json_t **out, json_t **errors, char *detail)
{
	json_t *doc = json_pack("{s:{s:s}}", "spec", "sparkVersion", cs->spark_version);
	json_t *errs = json_array(), *value;
	const char *key;

	*out = *errors = NULL;
	if (!doc || !errs)
		return finish(doc, errs, out, errors, detail);
	json_object_foreach(body, key, value) {
		const struct field_map *f = find_field(livy_fields, key);

		if (!strcmp(key, "queue"))
			continue;
		if (!f) {
			add_error(errs, key, "is not a field of Livy's batch request");
			continue;
		}
		if (!strcmp(key, "name"))
			set_path(doc, f->native, json_is_string(value) ? job_name(json_string_value(value), "livy-batch")
								  : json_incref(value));
		else if (!strcmp(key, "conf"))
			set_path(doc, f->native, conf_strings(value, errs, key));
		else
			set_path(doc, f->native, json_incref(value));
	}
	if (!json_object_get(doc, "name"))
		json_object_set_new(doc, "name", json_string("livy-batch"));
	value = json_object_get(body, "file");
	if (json_is_string(value))
		json_object_set_new(json_object_get(doc, "spec"), "type",
				    json_string(type_of_file(json_string_value(value))));
	else if (!value)
		add_error(errs, "file", "is required");
	json_object_set_new(doc, "labels", queue_labels(cs, json_object_get(body, "queue"), errs));
	return finish(doc, errs, out, errors, detail);
}

enum gateway_body_status compat_bpg_submission(json_t *body, const struct compat_settings *cs,
					       json_t **out, json_t **errors, char *detail)
{
	json_t *doc = json_pack("{s:{}}", "spec");
	json_t *errs = json_array(), *value, *labels;
	const char *key;

	*out = *errors = NULL;
	if (!doc || !errs)
		return finish(doc, errs, out, errors, detail);
	json_object_foreach(body, key, value) {
		const struct field_map *f = find_field(bpg_fields, key);
		bool unsupported = false;

		for (const char *const *u = bpg_unsupported; *u; u++)
			unsupported = unsupported || !strcmp(*u, key);
		if (unsupported) {
			add_error(errs, key, "is not supported: the gateway places, names and sizes jobs itself");
		} else if (!strcmp(key, "spotInstance")) {
			if (!json_is_boolean(value))
				add_error(errs, key, "must be a boolean");
		} else if (!f) {
			add_error(errs, key, "is not a field of BPG's submission");
		} else if (!strcmp(key, "applicationName")) {
			set_path(doc, f->native, json_is_string(value) ? job_name(json_string_value(value), "spark-app")
								  : json_incref(value));
		} else if (!strcmp(key, "overheadFactor")) {
			char text[32];

			if (!json_is_number(value) || json_number_value(value) <= 0) {
				add_error(errs, key, "must be a positive number");
				continue;
			}
			snprintf(text, sizeof(text), "%g", json_number_value(value));
			set_path(doc, f->native, json_string(text));
		} else if (!strcmp(key, "sparkConf")) {
			set_path(doc, f->native, conf_strings(value, errs, key));
		} else if (strcmp(key, "queue")) {
			set_path(doc, f->native, json_incref(value));
		}
	}
	if (!json_object_get(doc, "name"))
		json_object_set_new(doc, "name", json_string("spark-app"));
	value = json_object_get(doc, "spec");
	if (!json_object_get(value, "sparkVersion"))
		json_object_set_new(value, "sparkVersion", json_string(cs->spark_version));
	if (!json_object_get(value, "type")) /* as BPG guesses it */
		json_object_set_new(value, "type",
				    json_string(json_string_value(json_object_get(value, "mainClass")) ? "Java" : "Python"));
	labels = queue_labels(cs, json_object_get(body, "queue"), errs);
	if (json_is_true(json_object_get(body, "spotInstance")))
		json_object_set_new(labels, "spot-instance", json_string("true"));
	json_object_set_new(doc, "labels", labels);
	return finish(doc, errs, out, errors, detail);
}

/* Renames each error's field whose native path starts with a mapped one
 * (whole segments) to the client's field with the same remainder. */
static void rename_fields(json_t *errors, const struct field_map *map, const char *spec_prefix)
{
	size_t i;
	json_t *e;

	json_array_foreach(errors, i, e) {
		const char *field = json_string_value(json_object_get(e, "field"));
		const struct field_map *best = NULL;
		size_t best_len = 0;
		char renamed[512];

		if (!field)
			continue;
		for (const struct field_map *f = map; f->client; f++) {
			size_t n = strlen(f->native);

			if (n > best_len && !strncmp(field, f->native, n) &&
			    (field[n] == '\0' || field[n] == '.' || field[n] == '['))
				best = f, best_len = n;
		}
		if (best)
			snprintf(renamed, sizeof(renamed), "%s%s", best->client, field + best_len);
		else if (spec_prefix && !strncmp(field, spec_prefix, strlen(spec_prefix)))
			snprintf(renamed, sizeof(renamed), "%s", field + strlen(spec_prefix));
		else if (!strncmp(field, "labels", 6))
			snprintf(renamed, sizeof(renamed), "queue");
		else
			continue;
		json_object_set_new(e, "field", json_string(renamed));
	}
}

void compat_livy_fields(json_t *errors)
{
	rename_fields(errors, livy_fields, NULL);
}

void compat_bpg_fields(json_t *errors)
{
	rename_fields(errors, bpg_fields, "spec.");
}

const char *compat_livy_state(enum store_state st)
{
	switch (st) {
	case STORE_QUEUED: return "not_started";
	case STORE_DISPATCHING:
	case STORE_SUBMITTED: return "starting";
	case STORE_RUNNING: return "running";
	case STORE_SUCCEEDED: return "success";
	case STORE_FAILED:
	case STORE_REJECTED: return "dead";
	case STORE_CANCELLING: return "shutting_down";
	case STORE_CANCELLED: return "killed";
	}
	return "dead";
}

const char *compat_bpg_state(enum store_state st)
{
	switch (st) {
	case STORE_QUEUED:
	case STORE_DISPATCHING:
	case STORE_SUBMITTED: return "SUBMITTED";
	case STORE_RUNNING: return "RUNNING";
	case STORE_SUCCEEDED: return "COMPLETED";
	case STORE_FAILED: return "FAILED";
	case STORE_REJECTED: return "SUBMISSION_FAILED";
	/* The operator has no word for a cancel: BPG's deleted applications
	 * simply fail. */
	case STORE_CANCELLING: return "FAILING";
	case STORE_CANCELLED: return "FAILED";
	}
	return "UNKNOWN";
}
