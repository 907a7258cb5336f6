/* Structured logging: one JSON object a line on stderr. The level is checked
 * before any formatting, so disabled levels cost a comparison. */
#ifndef GW_LOG_H
#define GW_LOG_H

enum gw_log_level { GW_LOG_DEBUG, GW_LOG_INFO, GW_LOG_WARN, GW_LOG_ERROR };

/* Set once at start-up, before threads exist. */
void gw_log_set_level(enum gw_log_level level);
/* Parses "debug", "info", "warn", "error"; -1 if none. */
int gw_log_level_parse(const char *name);
int gw_log_enabled(enum gw_log_level level);
void gw_log_write(enum gw_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The same, with the request's id and the job's (either may be NULL) as
 * fields of their own, so that one request or one job can be followed. */
void gw_log_write_ids(enum gw_log_level level, const char *request_id, const char *job_id,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define gw_log(level, ...)                        \
	do {                                          \
		if (gw_log_enabled(level))                \
			gw_log_write((level), __VA_ARGS__);   \
	} while (0)

#define gw_log_ids(level, request_id, job_id, ...)                          \
	do {                                                                    \
		if (gw_log_enabled(level))                                          \
			gw_log_write_ids((level), (request_id), (job_id), __VA_ARGS__); \
	} while (0)

#endif
