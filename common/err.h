/* Error codes shared by every module: one X-macro list gives the enum and
 * the text, so a code and its message can never drift apart. Detail goes in
 * a caller's buffer of GW_ERRLEN bytes. */
#ifndef GW_ERR_H
#define GW_ERR_H

#include <stddef.h>

#define GW_ERRLEN 256

#define GW_ERRORS(X)                                   \
	X(GW_OK, "success")                                \
	X(GW_ENOMEM, "out of memory")                      \
	X(GW_EINVAL, "invalid input")                      \
	X(GW_ENOTFOUND, "not found")                       \
	X(GW_ECONFLICT, "conflict")                        \
	X(GW_ESTATE, "illegal state transition")           \
	X(GW_EIO, "i/o error")                             \
	X(GW_EFULL, "storage full")                        \
	X(GW_EBUSY, "busy")                                \
	X(GW_ECLOSED, "shutting down")

enum gw_err {
#define GW_ERR_ENUM(name, text) name,
	GW_ERRORS(GW_ERR_ENUM)
#undef GW_ERR_ENUM
};

const char *gw_strerror(enum gw_err err);

/* printf into an error buffer of GW_ERRLEN bytes; NULL buffers are allowed. */
void gw_seterr(char *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
