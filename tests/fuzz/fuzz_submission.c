/* libFuzzer target: a submission body through parsing and validation. */
#include <stddef.h>
#include <stdint.h>

#include "gateway/api/submission.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gateway_submission sub;
	json_t *errors = NULL;
	char detail[GW_ERRLEN];

	if (gateway_submission_parse((const char *)data, size, &sub, &errors, detail) == BODY_OK)
		gateway_submission_release(&sub);
	json_decref(errors);
	return 0;
}
