/* libFuzzer target: a submission body through parsing and validation and,
 * when it fails validation, the policy's refusals on what it holds (labels
 * and spec of any shape), as a 422 answer gathers them. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/yamljson.h"
#include "gateway/api/submission.h"
#include "router/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char policy[] =
	"clusters:\n  - {name: a, kubeconfig: /k}\n"
	"pools:\n  - {name: p, clusters: [a], sparkConf: {allow: [spark.sql.*]}}\n"
	"namespaceGroups:\n  - {name: g, namespaces: [ns]}\n"
	"routing:\n  rules:\n    - {selector: 'team in (a,b), !x', pool: p}\n";

static struct router *load_policy(void)
{
	json_t *doc = NULL, *marks = NULL;
	struct router *r = NULL;
	char err[GW_ERRLEN];

	if (gw_yaml_load_string(policy, strlen(policy), &doc, &marks, err) == GW_OK)
		router_load(doc, marks, "fuzz.yaml", &r, err);
	json_decref(doc);
	json_decref(marks);
	return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct router *r = load_policy();
	struct gateway_submission sub;
	json_t *errors = NULL, *doc;
	char detail[GW_ERRLEN];

	if (!r)
		__builtin_trap(); /* the fixed policy must load */
	switch (gateway_submission_parse((const char *)data, size, &sub, &errors, detail)) {
	case BODY_OK:
		gateway_submission_release(&sub);
		break;
	case BODY_INVALID:
		doc = json_loadb((const char *)data, size, 0, NULL);
		router_refusals(r, json_object_get(doc, "labels"), json_object_get(doc, "spec"), errors);
		json_decref(doc);
		break;
	default:
		break;
	}
	json_decref(errors);
	router_unref(r);
	return 0;
}
