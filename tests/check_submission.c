/* Unit tests of submission parsing and validation. */
#include <stdlib.h>
#include <string.h>

#include "gateway/api/submission.h"
#include "tests/testutil.h"

/* Parses text; returns the status and leaves errors for inspection. */
static enum gateway_body_status parse(const char *text, json_t **errors,
				      struct gateway_submission *sub, char *detail)
{
	return gateway_submission_parse(text, strlen(text), sub, errors, detail);
}

static bool has_error(json_t *errors, const char *field, const char *msg_part)
{
	size_t i;
	json_t *e;

	json_array_foreach(errors, i, e) {
		const char *f = json_string_value(json_object_get(e, "field"));
		const char *m = json_string_value(json_object_get(e, "message"));

		if (f && !strcmp(f, field) && (!msg_part || (m && strstr(m, msg_part))))
			return true;
	}
	return false;
}

START_TEST(test_valid_submission_is_canonical)
{
	char *body = tu_job_body("spark-pi", "search");
	struct gateway_submission sub;
	json_t *errors, *labels;
	char detail[GW_ERRLEN];

	ck_assert_int_eq(parse(body, &errors, &sub, detail), BODY_OK);
	ck_assert_ptr_null(errors);
	ck_assert_str_eq(sub.name, "spark-pi");
	ck_assert_str_eq(sub.user, "anonymous");
	labels = json_loads(sub.labels_json, 0, NULL);
	ck_assert_str_eq(json_string_value(json_object_get(labels, "team")), "search");
	json_decref(labels);
	ck_assert_ptr_nonnull(strstr(sub.spec_json, "\"sparkVersion\":\"3.5.1\""));
	gateway_submission_release(&sub);
	free(body);
}
END_TEST

START_TEST(test_malformed_bodies)
{
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
		{"", "invalid JSON"},
		{"{", "invalid JSON"},
		{"[1,2]", "must be a JSON object"},
		{"\"x\"", "must be a JSON object"},
		{"{\"name\":\"a\",\"name\":\"b\"}", "duplicate"},
		{"{\"name\":\"\xff\xfe\"}", "invalid JSON"},
		{"{\"a\":1} trailing", "invalid JSON"},
	};
	struct gateway_submission sub;
	json_t *errors;
	char detail[GW_ERRLEN];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		detail[0] = '\0';
		ck_assert_int_eq(parse(cases[i].text, &errors, &sub, detail), BODY_MALFORMED);
		ck_assert_ptr_null(errors);
		ck_assert_msg(strstr(detail, cases[i].want) != NULL, "case %zu: %s", i, detail);
	}
}
END_TEST

START_TEST(test_depth_limit)
{
	char deep[200], ok[200];
	size_t n = 0;
	struct gateway_submission sub;
	json_t *errors;
	char detail[GW_ERRLEN];

	n += (size_t)snprintf(deep, sizeof(deep), "{\"spec\":");
	for (int i = 0; i < GATEWAY_MAX_DEPTH; i++)
		deep[n++] = '[';
	deep[n] = '\0';
	ck_assert_int_eq(parse(deep, &errors, &sub, detail), BODY_MALFORMED);
	ck_assert_msg(strstr(detail, "deeper") != NULL, "%s", detail);

	/* Brackets inside strings do not count. */
	snprintf(ok, sizeof(ok), "{\"name\":\"%s\"}", "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[");
	ck_assert_int_eq(parse(ok, &errors, &sub, detail), BODY_INVALID);
	json_decref(errors);
}
END_TEST

START_TEST(test_field_errors)
{
	static const struct {
		const char *text;
		const char *field;
		const char *msg;
	} cases[] = {
		{"{\"spec\":{}}", "name", "required"},
		{"{\"name\":\"x\"}", "spec", "required"},
		{"{\"name\":\"x\",\"spec\":{},\"color\":1}", "color", "unknown field"},
		{"{\"name\":\"Bad_Name\",\"spec\":{}}", "name", "alphanumeric"},
		{"{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"spec\":{}}", "name", "1 to 63"},
		{"{\"name\":7,\"spec\":{}}", "name", "must be a string"},
		{"{\"name\":\"x\",\"labels\":{\"bad key\":\"v\"},\"spec\":{}}", "labels[bad key]", "label key"},
		{"{\"name\":\"x\",\"labels\":{\"team\":\"-v\"},\"spec\":{}}", "labels[team]", "label value"},
		{"{\"name\":\"x\",\"labels\":{\"team\":3},\"spec\":{}}", "labels[team]", "must be a string"},
		{"{\"name\":\"x\",\"labels\":[],\"spec\":{}}", "labels", "object"},
		{"{\"name\":\"x\",\"spec\":{\"type\":\"Go\"}}", "spec.type", "one of"},
		{"{\"name\":\"x\",\"spec\":{\"type\":\"Scala\"}}", "spec.mainClass", "required for Scala"},
		{"{\"name\":\"x\",\"spec\":{\"sparkVersion\":\"\"}}", "spec.sparkVersion", "characters"},
		{"{\"name\":\"x\",\"spec\":{\"driver\":{\"cores\":0}}}", "spec.driver.cores", "between 1"},
		{"{\"name\":\"x\",\"spec\":{\"driver\":{\"cores\":\"2\"}}}", "spec.driver.cores", "integer"},
		{"{\"name\":\"x\",\"spec\":{\"driver\":{\"cores\":1.5}}}", "spec.driver.cores", "integer"},
		{"{\"name\":\"x\",\"spec\":{\"executor\":{\"instances\":-1}}}", "spec.executor.instances", "between 0"},
		{"{\"name\":\"x\",\"spec\":{\"executor\":{\"memory\":\"12x\"}}}", "spec.executor.memory", "Spark size"},
		{"{\"name\":\"x\",\"spec\":{\"executor\":{\"memory\":\"100k\"}}}", "spec.executor.memory", "at least 1m"},
		{"{\"name\":\"x\",\"spec\":{\"driver\":{\"coreLimit\":\"1.2.3\"}}}", "spec.driver.coreLimit", "quantity"},
		{"{\"name\":\"x\",\"spec\":{\"driver\":{\"gpu\":{\"name\":\"nvidia.com/gpu\"}}}}", "spec.driver.gpu.quantity", "required"},
		{"{\"name\":\"x\",\"spec\":{\"driver\":{\"serviceAccount\":\"admin\"}}}", "spec.driver.serviceAccount", "unknown field"},
		{"{\"name\":\"x\",\"spec\":{\"sparkConf\":{\"spark.a\":1}}}", "spec.sparkConf[spark.a]", "string"},
		{"{\"name\":\"x\",\"spec\":{\"arguments\":[\"a\",2]}}", "spec.arguments[1]", "string"},
		{"{\"name\":\"x\",\"spec\":{\"dynamicAllocation\":{\"minExecutors\":5,\"maxExecutors\":2}}}", "spec.dynamicAllocation.minExecutors", "maxExecutors"},
		{"{\"name\":\"x\",\"spec\":{\"restartPolicy\":{\"type\":\"Sometimes\"}}}", "spec.restartPolicy.type", "one of"},
		{"{\"name\":\"x\",\"spec\":{\"deps\":{\"jars\":\"a.jar\"}}}", "spec.deps.jars", "array"},
		{"{\"name\":\"x\",\"spec\":{\"type\":\"Python\"}}", "spec.mainApplicationFile", "is required"},
		{"{\"name\":\"x\",\"spec\":{\"type\":\"Python\",\"sql\":\"SHOW TABLES\"}}", "spec.sql", "only for type SQL"},
		{"{\"name\":\"x\",\"spec\":{\"type\":\"SQL\"}}", "spec.sql", "required for type SQL"},
		{"{\"name\":\"x\",\"spec\":{\"type\":\"SQL\",\"sql\":\"USE a\",\"mainApplicationFile\":\"q.sql\"}}", "spec.sql", "exclusive"},
		{"{\"name\":\"x\",\"spec\":{\"type\":\"SQL\",\"sql\":\"USE a\",\"mainClass\":\"a.B\"}}", "spec.mainClass", "not for type SQL"},
		{"{\"name\":\"x\",\"spec\":{\"type\":\"SQL\",\"sql\":\"-- only a comment\"}}", "spec.sql", "no statements"},
		{"{\"name\":\"x\",\"spec\":{\"type\":\"SQL\",\"sql\":\"USE /* a\"}}", "spec.sql", "unterminated comment starting at offset 4"},
	};
	struct gateway_submission sub;
	char detail[GW_ERRLEN];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *errors = NULL;
		char *dump;

		ck_assert_msg(parse(cases[i].text, &errors, &sub, detail) == BODY_INVALID,
			      "case %zu should be invalid", i);
		dump = json_dumps(errors, JSON_COMPACT);
		ck_assert_msg(has_error(errors, cases[i].field, cases[i].msg),
			      "case %zu: want %s ~ '%s', got %s", i, cases[i].field,
			      cases[i].msg, dump);
		free(dump);
		json_decref(errors);
	}
}
END_TEST

START_TEST(test_all_errors_reported_at_once)
{
	struct gateway_submission sub;
	char detail[GW_ERRLEN];
	json_t *errors = NULL;

	ck_assert_int_eq(parse("{\"foo\":1,\"bar\":2,\"spec\":{\"baz\":3}}", &errors, &sub, detail),
			 BODY_INVALID);
	ck_assert(has_error(errors, "foo", "unknown"));
	ck_assert(has_error(errors, "bar", "unknown"));
	ck_assert(has_error(errors, "spec.baz", "unknown"));
	ck_assert(has_error(errors, "name", "required"));
	ck_assert(has_error(errors, "spec.type", "required"));
	ck_assert_msg(strstr(detail, "invalid field") != NULL, "%s", detail);
	json_decref(errors);
}
END_TEST

Suite *submission_suite(void)
{
	Suite *s = suite_create("submission");
	TCase *tc = tcase_create("validation");

	tcase_add_test(tc, test_valid_submission_is_canonical);
	tcase_add_test(tc, test_malformed_bodies);
	tcase_add_test(tc, test_depth_limit);
	tcase_add_test(tc, test_field_errors);
	tcase_add_test(tc, test_all_errors_reported_at_once);
	suite_add_tcase(s, tc);
	return s;
}
