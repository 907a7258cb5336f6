/* Text of the shared error codes and the error-buffer helper. */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *gw_strerror(enum gw_err err)
{
	switch (err) {
#define GW_ERR_TEXT(name, text) \
	case name:                  \
		return text;
		GW_ERRORS(GW_ERR_TEXT)
#undef GW_ERR_TEXT
	}
	return "unknown error";
}

void gw_seterr(char *err, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(err, GW_ERRLEN, fmt, ap);
	va_end(ap);
}
