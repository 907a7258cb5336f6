/* Unit tests of common/: names and labels, selectors, quantities, Spark
 * sizes, RFC 3339 times and the YAML loader. */
#include <math.h>
#include <string.h>

#include "common/labels.h"
#include "common/quantity.h"
#include "common/timeutil.h"
#include "common/yamljson.h"
#include "tests/testutil.h"

START_TEST(test_dns1123_label)
{
	char err[GW_ERRLEN];
	char long63[64], long64[65];

	memset(long63, 'a', 63);
	long63[63] = '\0';
	memset(long64, 'a', 64);
	long64[64] = '\0';
	ck_assert(gw_dns1123_label_valid("spark-pi", err));
	ck_assert(gw_dns1123_label_valid("a", err));
	ck_assert(gw_dns1123_label_valid("0abc9", err));
	ck_assert(gw_dns1123_label_valid(long63, err));
	ck_assert(!gw_dns1123_label_valid(long64, err));
	ck_assert(!gw_dns1123_label_valid("", err));
	ck_assert(!gw_dns1123_label_valid("Spark", err));
	ck_assert(!gw_dns1123_label_valid("-spark", err));
	ck_assert(!gw_dns1123_label_valid("spark-", err));
	ck_assert(!gw_dns1123_label_valid("spark_pi", err));
	ck_assert(!gw_dns1123_label_valid("spark.pi", err));
	ck_assert_msg(strstr(err, "alphanumeric") != NULL, "reason: %s", err);
}
END_TEST

START_TEST(test_label_keys_and_values)
{
	char err[GW_ERRLEN];

	ck_assert(gw_label_key_valid("team", err));
	ck_assert(gw_label_key_valid("app.kubernetes.io/name", err));
	ck_assert(gw_label_key_valid("sparkgw/job-id", err));
	ck_assert(gw_label_key_valid("A_b.c-D", err));
	ck_assert(!gw_label_key_valid("", err));
	ck_assert(!gw_label_key_valid("/name", err));
	ck_assert(!gw_label_key_valid("prefix/", err));
	ck_assert(!gw_label_key_valid("Bad_Prefix/name", err));
	ck_assert_msg(strstr(err, "prefix") != NULL, "reason: %s", err);
	ck_assert(!gw_label_key_valid("a/b/c", err));
	ck_assert(!gw_label_key_valid("-team", err));
	ck_assert(!gw_label_key_valid("team with space", err));

	ck_assert(gw_label_value_valid("", err));
	ck_assert(gw_label_value_valid("search", err));
	ck_assert(gw_label_value_valid("v1.2_3-x", err));
	ck_assert(!gw_label_value_valid("-x", err));
	ck_assert(!gw_label_value_valid("a/b", err));
	ck_assert(!gw_label_value_valid("0123456789012345678901234567890123456789012345678901234567890123", err));
	ck_assert_msg(strstr(err, "63") != NULL, "reason: %s", err);
}
END_TEST

static json_t *labels(const char *json)
{
	return json_loads(json, 0, NULL);
}

START_TEST(test_selector_parse)
{
	struct gw_selector *sel;
	char err[GW_ERRLEN];

	ck_assert_int_eq(gw_selector_parse("team=search, priority in (high,critical),!experimental", &sel, err), GW_OK);
	ck_assert_uint_eq(sel->n, 3);
	ck_assert_str_eq(sel->reqs[0].key, "team");
	ck_assert_int_eq(sel->reqs[0].op, GW_SEL_EQ);
	ck_assert_str_eq(sel->reqs[0].values[0], "search");
	ck_assert_int_eq(sel->reqs[1].op, GW_SEL_IN);
	ck_assert_uint_eq(sel->reqs[1].nvalues, 2);
	ck_assert_str_eq(sel->reqs[1].values[1], "critical");
	ck_assert_int_eq(sel->reqs[2].op, GW_SEL_NOT_EXISTS);
	ck_assert_str_eq(sel->reqs[2].key, "experimental");
	gw_selector_free(sel);

	ck_assert_int_eq(gw_selector_parse("a==b,c!=d,e notin (f),g,h>3,i<10", &sel, err), GW_OK);
	ck_assert_uint_eq(sel->n, 6);
	ck_assert_int_eq(sel->reqs[0].op, GW_SEL_EQ);
	ck_assert_int_eq(sel->reqs[1].op, GW_SEL_NEQ);
	ck_assert_int_eq(sel->reqs[2].op, GW_SEL_NOTIN);
	ck_assert_int_eq(sel->reqs[3].op, GW_SEL_EXISTS);
	ck_assert_int_eq(sel->reqs[4].op, GW_SEL_GT);
	ck_assert_int_eq(sel->reqs[5].op, GW_SEL_LT);
	gw_selector_free(sel);

	ck_assert_int_eq(gw_selector_parse("", &sel, err), GW_OK);
	ck_assert_uint_eq(sel->n, 0);
	gw_selector_free(sel);

	ck_assert_int_eq(gw_selector_parse("team=", &sel, err), GW_OK); /* empty value is legal */
	gw_selector_free(sel);
}
END_TEST

START_TEST(test_selector_errors)
{
	static const char *const bad[] = {
		"team in (a,b", "team in a", "=x", "team=a b", "team=-x", "x>abc",
		"a,,b", "team in ()", "team ~ x", "!", "a=b,", "Bad Key=x",
	};
	char err[GW_ERRLEN];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct gw_selector *sel = (struct gw_selector *)1;

		err[0] = '\0';
		ck_assert_msg(gw_selector_parse(bad[i], &sel, err) == GW_EINVAL,
			      "'%s' should not parse", bad[i]);
		ck_assert_ptr_null(sel);
		ck_assert_msg(strstr(err, "position") != NULL, "'%s': %s", bad[i], err);
	}
}
END_TEST

START_TEST(test_selector_match)
{
	json_t *l = labels("{\"team\":\"search\",\"priority\":\"high\",\"gen\":\"7\"}");
	struct {
		const char *sel;
		bool want;
	} cases[] = {
		{"", true},
		{"team=search", true},
		{"team=ads", false},
		{"team!=ads", true},
		{"owner!=x", true}, /* absent key satisfies != */
		{"priority in (high,critical)", true},
		{"priority notin (high)", false},
		{"owner notin (x)", true},
		{"team", true},
		{"owner", false},
		{"!owner", true},
		{"!team", false},
		{"gen>5", true},
		{"gen<5", false},
		{"team=search,priority=low", false},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gw_selector *sel;
		char err[GW_ERRLEN];

		ck_assert_int_eq(gw_selector_parse(cases[i].sel, &sel, err), GW_OK);
		ck_assert_msg(gw_selector_matches(sel, l) == cases[i].want,
			      "'%s' should %smatch", cases[i].sel, cases[i].want ? "" : "not ");
		gw_selector_free(sel);
	}
	json_decref(l);
}
END_TEST

START_TEST(test_quantities)
{
	struct {
		const char *text;
		double value;
	} ok[] = {
		{"1", 1}, {"500m", 0.5}, {"1.5", 1.5}, {"2Gi", 2147483648.0},
		{"1k", 1000}, {"128974848", 128974848}, {"1e3", 1000}, {"+2", 2},
		{".5", 0.5}, {"100Mi", 104857600}, {"1E2", 100},
	};
	static const char *const bad[] = {"", "m", "1x", "1GiB", "1.2.3", "--1",
					   "1e", "0x10", "Gi", "1 Gi", "inf"};
	double v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ck_assert_msg(gw_quantity_parse(ok[i].text, &v) == 0, "%s", ok[i].text);
		ck_assert_msg(fabs(v - ok[i].value) < 1e-9 * (1 + ok[i].value), "%s = %g",
			      ok[i].text, v);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(gw_quantity_parse(bad[i], &v) == -1, "'%s' parsed", bad[i]);
}
END_TEST

START_TEST(test_spark_memory)
{
	int64_t b;

	ck_assert_int_eq(gw_spark_memory_parse("512m", &b), 0);
	ck_assert_int_eq(b, 512LL << 20);
	ck_assert_int_eq(gw_spark_memory_parse("4g", &b), 0);
	ck_assert_int_eq(b, 4LL << 30);
	ck_assert_int_eq(gw_spark_memory_parse("2GB", &b), 0);
	ck_assert_int_eq(b, 2LL << 30);
	ck_assert_int_eq(gw_spark_memory_parse("1024", &b), 0); /* MiB */
	ck_assert_int_eq(b, 1LL << 30);
	ck_assert_int_eq(gw_spark_memory_parse("100k", &b), 0);
	ck_assert_int_eq(b, 100LL << 10);
	ck_assert_int_eq(gw_spark_memory_parse("7b", &b), 0);
	ck_assert_int_eq(b, 7);
	ck_assert_int_eq(gw_spark_memory_parse("", &b), -1);
	ck_assert_int_eq(gw_spark_memory_parse("g", &b), -1);
	ck_assert_int_eq(gw_spark_memory_parse("1.5g", &b), -1);
	ck_assert_int_eq(gw_spark_memory_parse("-1g", &b), -1);
	ck_assert_int_eq(gw_spark_memory_parse("12x", &b), -1);
	ck_assert_int_eq(gw_spark_memory_parse("1Gi", &b), -1);
	ck_assert_int_eq(gw_spark_memory_parse("99999999999999999999g", &b), -1);
	ck_assert_int_eq(gw_spark_memory_parse("9999999999p", &b), -1);
}
END_TEST

START_TEST(test_time_roundtrip)
{
	char text[GW_TIME_LEN];
	int64_t ms;

	ck_assert_int_eq(gw_time_parse("1970-01-01T00:00:00Z", &ms), 0);
	ck_assert_int_eq(ms, 0);
	ck_assert_int_eq(gw_time_parse("2026-11-26T18:54:34.123Z", &ms), 0);
	gw_time_format(ms, text);
	ck_assert_str_eq(text, "2026-11-26T18:54:34.123Z");
	ck_assert_int_eq(gw_time_parse("2026-11-26T19:54:34.123+01:00", &ms), 0);
	gw_time_format(ms, text);
	ck_assert_str_eq(text, "2026-11-26T18:54:34.123Z");
	ck_assert_int_eq(gw_time_parse("2024-02-29T00:00:00.5Z", &ms), 0);
	gw_time_format(ms, text);
	ck_assert_str_eq(text, "2024-02-29T00:00:00.500Z");
	ck_assert_int_eq(gw_time_parse("2026-13-01T00:00:00Z", &ms), -1);
	ck_assert_int_eq(gw_time_parse("2026-11-26 18:54:34Z", &ms), -1);
	ck_assert_int_eq(gw_time_parse("2026-11-26T18:54:34", &ms), -1);
	ck_assert_int_eq(gw_time_parse("yesterday", &ms), -1);
	ck_assert_int_eq(gw_time_parse("2026-11-26T18:54:34Zjunk", &ms), -1);
}
END_TEST

START_TEST(test_yaml_types_and_marks)
{
	static const char text[] =
		"listen: 127.0.0.1:8080\n"
		"store:\n"
		"  synchronous: full\n"
		"  batch_max: 64\n"
		"quoted: \"64\"\n"
		"flags: [true, no, ~, 1.5]\n"
		"pools:\n"
		"  - name: a\n";
	json_t *doc, *marks;
	char err[GW_ERRLEN];

	ck_assert_int_eq(gw_yaml_load_string(text, strlen(text), &doc, &marks, err), GW_OK);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "listen")), "127.0.0.1:8080");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(doc, "store"), "batch_max")), 64);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "quoted")), "64");
	ck_assert(json_is_true(json_array_get(json_object_get(doc, "flags"), 0)));
	/* YAML 1.2: "no" is a string, not a boolean. */
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(doc, "flags"), 1)), "no");
	ck_assert(json_is_null(json_array_get(json_object_get(doc, "flags"), 2)));
	ck_assert(json_is_real(json_array_get(json_object_get(doc, "flags"), 3)));
	ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(marks, "store.batch_max"), 0)), 4);
	ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(marks, "store.batch_max"), 1)), 14);
	ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(marks, "pools[0].name"), 0)), 8);
	json_decref(doc);
	json_decref(marks);
}
END_TEST

START_TEST(test_yaml_numbers)
{
	static const char text[] =
		"hex: 0x1F\noct: 0o17\nneg: -12\nexp: +.5e3\ntrail: 1.\n"
		"big: 99999999999999999999\nver: 3.5.1\nip: 127.0.0.1\ne: 1e\n";
	json_t *doc;
	char err[GW_ERRLEN];

	ck_assert_int_eq(gw_yaml_load_string(text, strlen(text), &doc, NULL, err), GW_OK);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "hex")), 31);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "oct")), 15);
	ck_assert_int_eq(json_integer_value(json_object_get(doc, "neg")), -12);
	ck_assert(json_real_value(json_object_get(doc, "exp")) == 500.0);
	ck_assert(json_real_value(json_object_get(doc, "trail")) == 1.0);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "big")), "99999999999999999999");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "ver")), "3.5.1");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "ip")), "127.0.0.1");
	ck_assert_str_eq(json_string_value(json_object_get(doc, "e")), "1e");
	json_decref(doc);
}
END_TEST

START_TEST(test_yaml_errors)
{
	static const struct {
		const char *text;
		const char *want;
	} cases[] = {
		{"a: 1\na: 2\n", "line 2, column 1: duplicate key 'a'"},
		{"a: &x 1\nb: *x\n", "aliases are not supported"},
		{"a: [1, 2\n", "line"},
		{"? [a]\n: 1\n", "mapping keys must be scalars"},
		{"a: 1\n---\nb: 2\n", "only one YAML document"},
	};
	json_t *doc;
	char err[GW_ERRLEN];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		ck_assert_int_eq(gw_yaml_load_string(cases[i].text, strlen(cases[i].text),
						     &doc, NULL, err), GW_EINVAL);
		ck_assert_msg(strstr(err, cases[i].want) != NULL, "case %zu: %s", i, err);
	}
	ck_assert_int_eq(gw_yaml_load_string("", 0, &doc, NULL, err), GW_OK);
	ck_assert(json_is_object(doc) && json_object_size(doc) == 0);
	json_decref(doc);
	ck_assert_int_eq(gw_yaml_load_file("/nonexistent/x.yaml", &doc, NULL, err), GW_EIO);
	ck_assert_msg(strstr(err, "/nonexistent/x.yaml") != NULL, "%s", err);
}
END_TEST

Suite *common_suite(void)
{
	Suite *s = suite_create("common");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_dns1123_label);
	tcase_add_test(tc, test_label_keys_and_values);
	tcase_add_test(tc, test_selector_parse);
	tcase_add_test(tc, test_selector_errors);
	tcase_add_test(tc, test_selector_match);
	tcase_add_test(tc, test_quantities);
	tcase_add_test(tc, test_spark_memory);
	tcase_add_test(tc, test_time_roundtrip);
	tcase_add_test(tc, test_yaml_types_and_marks);
	tcase_add_test(tc, test_yaml_numbers);
	tcase_add_test(tc, test_yaml_errors);
	suite_add_tcase(s, tc);
	return s;
}
