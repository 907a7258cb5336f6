/* Capped growable buffer. */
#include "common/buf.h"

#include <stdlib.h>
#include <string.h>

void gw_buf_init(struct gw_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void gw_buf_release(struct gw_buf *b)
{
	free(b->data);
	gw_buf_init(b, b->max);
}

enum gw_err gw_buf_append(struct gw_buf *b, const void *data, size_t len)
{
	size_t need;

	if (len > b->max || b->len > b->max - len)
		return GW_EFULL;
	need = b->len + len + 1;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < need)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return GW_ENOMEM;
		b->data = p;
		b->cap = cap;
	}
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return GW_OK;
}
