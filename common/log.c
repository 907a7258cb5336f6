/* JSON-lines logger. The level is the one process-wide setting outside
 * main: it is written once before any thread starts and only read after. */
#include "common/log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/timeutil.h"

static enum gw_log_level min_level = GW_LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void gw_log_set_level(enum gw_log_level level)
{
	min_level = level;
}

int gw_log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcmp(name, level_names[i]) == 0)
			return (int)i;
	return -1;
}

int gw_log_enabled(enum gw_log_level level)
{
	return level >= min_level;
}

static void write_line(enum gw_log_level level, const char *request_id, const char *job_id,
		       const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

static void write_line(enum gw_log_level level, const char *request_id, const char *job_id,
		       const char *fmt, va_list ap)
{
	char msg[1024], ts[GW_TIME_LEN];
	json_t *line;
	char *text;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	gw_time_format(gw_now_ms(), ts);
	line = json_pack("{s:s, s:s, s:s, s:s*, s:s*}", "ts", ts, "level", level_names[level], "msg", msg,
			 "request_id", request_id && *request_id ? request_id : NULL,
			 "job_id", job_id && *job_id ? job_id : NULL);
	text = line ? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	/* One fputs per line: stdio locks the stream, so lines never interleave. */
	if (text) {
		fprintf(stderr, "%s\n", text);
		free(text);
	}
	json_decref(line);
}

void gw_log_write(enum gw_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	write_line(level, NULL, NULL, fmt, ap);
	va_end(ap);
}

void gw_log_write_ids(enum gw_log_level level, const char *request_id, const char *job_id,
		      const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	write_line(level, request_id, job_id, fmt, ap);
	va_end(ap);
}
