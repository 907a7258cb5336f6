/* libFuzzer target: Kubernetes quantities, Spark sizes and RFC 3339 times. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/quantity.h"
#include "common/timeutil.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	double q;
	int64_t bytes, ms;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	gw_quantity_parse(text, &q);
	gw_spark_memory_parse(text, &bytes);
	if (gw_time_parse(text, &ms) == 0) {
		char out[GW_TIME_LEN];

		gw_time_format(ms, out);
	}
	free(text);
	return 0;
}
