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

void gw_log_write(enum gw_log_level level, const char *fmt, ...)
{
	char msg[1024], ts[GW_TIME_LEN];
	json_t *line;
	char *text;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	gw_time_format(gw_now_ms(), ts);
	line = json_pack("{s:s, s:s, s:s}", "ts", ts, "level",
			 level_names[level], "msg", msg);
	text = line ? json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	/* One fputs per line: stdio locks the stream, so lines never interleave. */
	if (text) {
		fprintf(stderr, "%s\n", text);
		free(text);
	}
	json_decref(line);
}
