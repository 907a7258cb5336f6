/* libFuzzer target: the SQL classifier, on bytes that need not end in NUL
 * (it reads only sql[0..len)), and the reason always a terminated string. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "router/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char reason[96];
	enum router_sql_kind kind;

	memset(reason, 'x', sizeof(reason));
	kind = router_sql_classify((const char *)data, size, reason, sizeof(reason));
	if (kind > ROUTER_SQL_INVALID || !memchr(reason, '\0', sizeof(reason)))
		abort();
	return 0;
}
