/* Redaction of secret-looking Spark properties (see redact.h). */
#include "common/redact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool contains_nocase(const char *s, const char *needle)
{
	size_t n = strlen(needle);

	for (; *s; s++)
		if (strncasecmp(s, needle, n) == 0)
			return true;
	return false;
}

bool gw_secret_key(const char *key)
{
	static const char *const marks[] = {"secret", "password", "token", "access.key", "credential"};

	for (size_t i = 0; i < sizeof(marks) / sizeof(marks[0]); i++)
		if (contains_nocase(key, marks[i]))
			return true;
	return false;
}

bool gw_redact_may_apply(const char *text)
{
	static const char *const marks[] = {"secret", "password", "token", "access.key", "credential"};

	/* Each mark starts with a distinct letter: one test a character. */
	for (const char *p = text; *p; p++) {
		const char *mark;

		switch (*p | 0x20) {
		case 's': mark = marks[0]; break;
		case 'p': mark = marks[1]; break;
		case 't': mark = marks[2]; break;
		case 'a': mark = marks[3]; break;
		case 'c': mark = marks[4]; break;
		default: continue;
		}
		if (strncasecmp(p, mark, strlen(mark)) == 0)
			return true;
	}
	return false;
}

void gw_redact_conf(json_t *conf)
{
	const char *key;
	json_t *v;

	json_object_foreach(conf, key, v) {
		if (!gw_secret_key(key))
			continue;
		if (json_is_object(v))
			json_object_set_new(v, "value", json_string(GW_REDACTED));
		else
			json_object_set_new(conf, key, json_string(GW_REDACTED));
	}
}

/* "key=value" lines, the value replaced where the key looks secret. */
static json_t *redact_properties(const char *text)
{
	size_t len = strlen(text), cap = len + 64, n = 0;
	char *out = malloc(cap);
	json_t *result;

	if (!out)
		return NULL;
	while (*text) {
		size_t line = strcspn(text, "\n"), key = strcspn(text, "=");
		char name[1024];
		bool secret;

		snprintf(name, sizeof(name), "%.*s", (int)(key < line ? key : line), text);
		secret = key < line && gw_secret_key(name);
		if (n + line + sizeof(GW_REDACTED) + 2 > cap) {
			char *more = realloc(out, cap = (cap + line + sizeof(GW_REDACTED) + 2) * 2);

			if (!more) {
				free(out);
				return NULL;
			}
			out = more;
		}
		if (secret) {
			memcpy(out + n, text, key + 1);
			n += key + 1;
			memcpy(out + n, GW_REDACTED, strlen(GW_REDACTED));
			n += strlen(GW_REDACTED);
		} else {
			memcpy(out + n, text, line);
			n += line;
		}
		text += line;
		if (*text == '\n')
			out[n++] = *text++;
	}
	out[n] = '\0';
	result = json_string(out);
	free(out);
	return result;
}

void gw_redact_document(json_t *doc)
{
	const char *key;
	json_t *v;
	size_t i;

	if (json_is_array(doc)) {
		json_array_foreach(doc, i, v)
			gw_redact_document(v);
		return;
	}
	json_object_foreach(doc, key, v) {
		if ((!strcmp(key, "sparkConf") || !strcmp(key, "hadoopConf")) && json_is_object(v)) {
			gw_redact_conf(v);
		} else if (!strcmp(key, "spark.properties") && json_is_string(v)) {
			json_t *r = redact_properties(json_string_value(v));

			if (r)
				json_object_set_new(doc, key, r);
		} else if (json_is_object(v) || json_is_array(v)) {
			gw_redact_document(v);
		}
	}
}
