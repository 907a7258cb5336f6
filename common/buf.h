/* A growable, always NUL-terminated byte buffer with a hard size cap, for
 * everything fed by the network: appends past the cap fail instead of
 * growing without bound. */
#ifndef GW_BUF_H
#define GW_BUF_H

#include <stddef.h>

#include "common/err.h"

struct gw_buf {
	char *data; /* NULL until the first append; NUL-terminated after */
	size_t len;
	size_t cap;  /* allocated bytes */
	size_t max;  /* hard limit on len */
};

void gw_buf_init(struct gw_buf *b, size_t max);
void gw_buf_release(struct gw_buf *b);
/* GW_EFULL when the result would exceed b->max (b is left unchanged). */
enum gw_err gw_buf_append(struct gw_buf *b, const void *data, size_t len)
	__attribute__((warn_unused_result));

#endif
