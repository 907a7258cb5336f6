/* libFuzzer target: a routing policy as YAML, loaded, then asked to place
 * a job, as a reload or start-up would. */
#include <stdint.h>

#include "common/yamljson.h"
#include "router/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *doc = NULL, *marks = NULL, *labels, *spec, *errors = NULL;
	struct router *r = NULL;
	struct router_decision d;
	char err[GW_ERRLEN];

	if (gw_yaml_load_string((const char *)data, size, &doc, &marks, err) != GW_OK)
		return 0;
	if (json_is_object(doc) && router_load(doc, marks, "fuzz.yaml", &r, err) == GW_OK) {
		labels = json_pack("{s:s, s:s}", "team", "search", "accelerator", "gpu");
		spec = json_pack("{s:{s:i, s:s}, s:{s:i}}", "driver", "cores", 2, "memory", "4g",
				 "executor", "instances", 3);
		if (router_place(r, NULL, NULL, labels, spec, "job", &d, &errors, err) == ROUTER_OK)
			router_decision_release(&d);
		json_decref(errors);
		json_decref(labels);
		json_decref(spec);
		router_unref(r);
	}
	json_decref(doc);
	json_decref(marks);
	return 0;
}
