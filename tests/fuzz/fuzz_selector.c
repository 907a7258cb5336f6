/* libFuzzer target: label selector parsing and matching. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/labels.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1), err[GW_ERRLEN];
	struct gw_selector *sel;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (gw_selector_parse(text, &sel, err) == GW_OK) {
		json_t *labels = json_pack("{s:s, s:s}", "team", "search", "gen", "7");

		gw_selector_matches(sel, labels);
		json_decref(labels);
		gw_selector_free(sel);
	}
	gw_label_key_valid(text, err);
	gw_label_value_valid(text, err);
	gw_dns1123_subdomain_valid(text, err);
	free(text);
	return 0;
}
