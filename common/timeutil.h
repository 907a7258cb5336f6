/* Wall-clock time as integer milliseconds since the Unix epoch, and its
 * RFC 3339 form ("2026-11-26T18:54:34.123Z") used on the wire. */
#ifndef GW_TIMEUTIL_H
#define GW_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#define GW_TIME_LEN 64

int64_t gw_now_ms(void);
/* Writes the RFC 3339 UTC form of ms into out[GW_TIME_LEN]. */
void gw_time_format(int64_t ms, char out[GW_TIME_LEN]);
/* Parses RFC 3339 (date-time with 'Z' or a numeric offset, optional
 * fraction). Returns 0 on success, -1 on bad syntax or range. */
int gw_time_parse(const char *s, int64_t *ms);

#endif
