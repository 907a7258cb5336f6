/* libFuzzer target: the YAML loader behind config, policy and kubeconfig. */
#include <stdint.h>

#include "common/yamljson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *doc = NULL, *marks = NULL;
	char err[GW_ERRLEN];

	if (gw_yaml_load_string((const char *)data, size, &doc, &marks, err) == GW_OK) {
		json_decref(doc);
		json_decref(marks);
	}
	return 0;
}
