/* libFuzzer target: the command line's JSONPath templates (-o jsonpath=),
 * on a job list like the server's; a template either renders or says why. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static json_t *doc;
	char *template = malloc(size + 1), err[GW_ERRLEN];
	struct gw_buf out;
	bool rendered, checked;

	if (!doc)
		doc = json_loads("{\"items\":[{\"id\":\"j1\",\"state\":\"RUNNING\",\"labels\":{\"team\":\"a\"},"
				 "\"spec\":{\"executor\":{\"instances\":2}}},{\"id\":\"j2\",\"state\":\"FAILED\","
				 "\"reason\":\"OOMKilled\",\"labels\":{}}],\"continue\":\"djE6Mg\"}",
				 0, NULL);
	if (!template)
		return 0;
	memcpy(template, data, size);
	template[size] = '\0';
	gw_buf_init(&out, 1u << 20);
	rendered = cli_jsonpath(template, doc, &out, err);
	gw_buf_release(&out);
	gw_buf_init(&out, 1u << 20);
	checked = cli_jsonpath(template, NULL, &out, err);
	/* Checking alone must agree with rendering, but for output size. */
	if (rendered && (!checked || out.len))
		abort();
	gw_buf_release(&out);
	free(template);
	return 0;
}
