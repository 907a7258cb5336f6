/* libFuzzer target: a Livy (first byte even) or BPG (odd) request body,
 * JSON or YAML, through translation, then the native validation it feeds;
 * and the parsed body written as YAML must read back the same. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/yamljson.h"
#include "gateway/compat/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *queues = json_pack("{s:{s:s}, s:{}}", "etl", "team", "data", "default");
	struct compat_settings cs = {"3.5", queues};
	json_t *body = NULL, *native = NULL, *errors = NULL, *back = NULL;
	char detail[GW_ERRLEN], *text = NULL;
	bool livy;

	if (size < 1)
		goto out;
	livy = data[0] % 2 == 0;
	data++, size--;
	if (size && data[0] == '{')
		body = gateway_json_parse((const char *)data, size, detail);
	else if (gw_yaml_load_string((const char *)data, size, &body, NULL, detail) != GW_OK)
		body = NULL;
	if (!json_is_object(body))
		goto out;
	if (gw_yaml_dump(body, &text, detail) == GW_OK) {
		if (gw_yaml_load_string(text, strlen(text), &back, NULL, detail) != GW_OK || !json_equal(body, back))
			abort();
		free(text);
		text = NULL;
	}
	if ((livy ? compat_livy_submission : compat_bpg_submission)(body, &cs, &native, &errors, detail) == BODY_OK) {
		struct gateway_submission sub;

		text = json_dumps(native, JSON_COMPACT);
		if (text && gateway_submission_parse(text, strlen(text), &sub, &errors, detail) == BODY_OK)
			gateway_submission_release(&sub);
	}
	if (errors)
		(livy ? compat_livy_fields : compat_bpg_fields)(errors);
out:
	free(text);
	json_decref(back);
	json_decref(errors);
	json_decref(native);
	json_decref(body);
	json_decref(queues);
	return 0;
}
