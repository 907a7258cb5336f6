/* Router unit tests: policy loading, rules, groups, protected keys, pod
 * size limits, GPU roles, weighted choice, live state (rotation, health,
 * namespace headroom), pins and the composer's precedence. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/yamljson.h"
#include "pool/pool.h"
#include "router/router.h"
#include "tests/testutil.h"

static const char policy_yaml[] =
	"clusters:\n"
	"  - name: a\n    kubeconfig: /k\n    defaults: {spark.x: cluster-a, spark.c: cluster}\n"
	"    overrides: {spark.o: override-a}\n"
	"    nodeRoles:\n"
	"      - {name: cpu-general, maxPod: {cores: 8, memory: 32Gi}}\n"
	"      - {name: memory-high, maxPod: {cores: 8, memory: 256Gi}}\n"
	"  - name: b\n    kubeconfig: /k\n"
	"    nodeRoles:\n"
	"      - {name: cpu-general, maxPod: {cores: 8, memory: 32Gi}}\n"
	"      - {name: gpu, maxPod: {cores: 16, memory: 128Gi, gpus: 4}, nodeSelector: {accel: gpu}}\n"
	"  - name: c\n    kubeconfig: /k\n"
	"pools:\n"
	"  - name: batch\n    clusters: [{name: a, weight: 3}, {name: b, weight: 1}]\n"
	"    defaults: {spark.x: pool, spark.p: pool, spark.c: pool}\n"
	"    nodeRole: cpu-general\n"
	"  - name: critical\n    clusters: [c]\n"
	"namespaceGroups:\n"
	"  - name: search\n    selector: team in (search)\n"
	"    namespaces:\n"
	"      - {name: search-1, maxPods: 10, overrides: {spark.n: ns-override, spark.o: ns}}\n"
	"      - {name: search-2, maxPods: 10}\n"
	"  - name: rest\n    namespaces: [shared]\n"
	"routing:\n"
	"  rules:\n"
	"    - {selector: 'priority=critical', pool: critical}\n"
	"    - {selector: 'team in (search,ads), !experimental', pool: batch, namespaceGroup: search}\n"
	"  defaultPool: batch\n";

static struct router *load(const char *yaml, char *err)
{
	json_t *doc, *marks;
	struct router *r = NULL;

	if (gw_yaml_load_string(yaml, strlen(yaml), &doc, &marks, err) == GW_OK) {
		router_load(doc, marks, "policy.yaml", &r, err);
		json_decref(doc);
		json_decref(marks);
	}
	return r;
}

/* Live state for tests: clusters named in `down` are unusable, and every
 * namespace holds `pods` pods. */
struct fake {
	const char *down;
	unsigned pods;
	const char *full_ns; /* holds max pods */
	unsigned weight_b;   /* 0: configured */
};

static bool fake_usable(void *arg, const char *cluster, char *why, size_t len)
{
	struct fake *f = arg;

	if (f->down && strstr(f->down, cluster)) {
		snprintf(why, len, "cordoned");
		return false;
	}
	return true;
}

static unsigned fake_weight(void *arg, const char *cluster, unsigned configured)
{
	struct fake *f = arg;

	return !strcmp(cluster, "b") && f->weight_b ? f->weight_b : configured;
}

static void fake_usage(void *arg, const char *cluster, const char *ns, struct router_usage *out)
{
	struct fake *f = arg;

	(void)cluster;
	memset(out, 0, sizeof(*out));
	out->pods = f->full_ns && !strcmp(ns, f->full_ns) ? 10 : f->pods;
}

static enum router_result place(struct router *r, struct fake *f, const char *labels, const char *spec,
				const char *key, struct router_decision *d, json_t **errors)
{
	struct router_live live = {.usable = fake_usable, .weight = fake_weight, .usage = fake_usage, .arg = f};
	json_t *l = json_loads(labels, 0, NULL), *s = json_loads(spec, 0, NULL);
	char detail[GW_ERRLEN];
	enum router_result res = router_place(r, f ? &live : NULL, NULL, l, s, key, d, errors, detail);

	json_decref(l);
	json_decref(s);
	return res;
}

#define SPEC "{\"type\":\"Python\",\"sparkVersion\":\"3.5.1\",\"mainApplicationFile\":\"a.py\"," \
	     "\"executor\":{\"instances\":1}}"

static bool error_mentions(json_t *errors, const char *field, const char *part)
{
	size_t i;
	json_t *e;

	json_array_foreach(errors, i, e)
		if (!strcmp(json_string_value(json_object_get(e, "field")), field) &&
		    strstr(json_string_value(json_object_get(e, "message")), part))
			return true;
	return false;
}

START_TEST(test_rules_pools_and_groups)
{
	char err[GW_ERRLEN];
	struct router *r = load(policy_yaml, err);
	struct router_decision d;
	json_t *errors;

	ck_assert_msg(r != NULL, "%s", err);
	ck_assert_int_eq(place(r, NULL, "{\"team\":\"search\"}", SPEC, "k", &d, &errors), ROUTER_OK);
	ck_assert_str_eq(d.pool->name, "batch");
	ck_assert_str_eq(d.group->name, "search");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_array_get(d.reasons, 0)), "rule 2"));
	router_decision_release(&d);

	ck_assert_int_eq(place(r, NULL, "{\"team\":\"search\",\"priority\":\"critical\"}", SPEC, "k", &d, &errors), ROUTER_OK);
	ck_assert_str_eq(d.pool->name, "critical");
	ck_assert_str_eq(d.cluster->name, "c");
	ck_assert_str_eq(d.group->name, "search"); /* by the group's own selector */
	router_decision_release(&d);

	/* Experimental search jobs miss rule 2: default pool, group by selector. */
	ck_assert_int_eq(place(r, NULL, "{\"team\":\"ads\",\"experimental\":\"1\"}", SPEC, "k", &d, &errors), ROUTER_OK);
	ck_assert_str_eq(d.pool->name, "batch");
	ck_assert_str_eq(d.group->name, "rest");
	ck_assert_str_eq(d.ns->name, "shared");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_array_get(d.reasons, 0)), "default pool"));
	router_decision_release(&d);
	router_unref(r);

	/* No rule, no default pool: 422 that names the labels. */
	r = load("clusters: [{name: a, kubeconfig: /k}]\n"
		 "pools: [{name: p, clusters: [a]}, {name: q, clusters: [a]}]\n"
		 "routing: {rules: [{selector: team=x, pool: p}]}\n", err);
	ck_assert_msg(r != NULL, "%s", err);
	ck_assert_int_eq(place(r, NULL, "{\"team\":\"y\"}", SPEC, "k", &d, &errors), ROUTER_INVALID);
	ck_assert(error_mentions(errors, "labels", "no routing rule matches labels team=y"));
	json_decref(errors);
	router_unref(r);
}
END_TEST

START_TEST(test_protected_keys_and_pod_limits)
{
	char err[GW_ERRLEN];
	struct router *r = load(policy_yaml, err);
	struct router_decision d;
	json_t *errors;

	ck_assert_int_eq(place(r, NULL, "{\"team\":\"search\"}",
			       "{\"sparkConf\":{\"spark.kubernetes.namespace\":\"kube-system\","
			       "\"spark.kubernetes.authenticate.driver.serviceAccountName\":\"admin\","
			       "\"spark.kubernetes.driver.volumes.hostPath.x.mount.path\":\"/\","
			       "\"spark.kubernetes.executor.podTemplateFile\":\"/t\",\"spark.sql.shuffle.partitions\":\"8\"}}",
			       "k", &d, &errors), ROUTER_INVALID);
	ck_assert(error_mentions(errors, "spec.sparkConf[spark.kubernetes.namespace]", "may not be set"));
	ck_assert(error_mentions(errors, "spec.sparkConf[spark.kubernetes.authenticate.driver.serviceAccountName]", "may not"));
	ck_assert(error_mentions(errors, "spec.sparkConf[spark.kubernetes.driver.volumes.hostPath.x.mount.path]", "may not"));
	ck_assert(error_mentions(errors, "spec.sparkConf[spark.kubernetes.executor.podTemplateFile]", "may not"));
	ck_assert_int_eq(json_array_size(errors), 4);
	json_decref(errors);
	ck_assert_ptr_null(router_protected_key("spark.sql.shuffle.partitions"));
	ck_assert_ptr_null(router_protected_key("spark.kubernetes.namespaceX"));

	/* 300 GiB executors fit no role of pool batch; the largest allows 256 GiB. */
	ck_assert_int_eq(place(r, NULL, "{\"team\":\"search\"}",
			       "{\"executor\":{\"instances\":1,\"memory\":\"300g\"}}", "k", &d, &errors),
			 ROUTER_INVALID);
	ck_assert_msg(error_mentions(errors, "spec.executor", "allows at most 262144 MiB"), "%s",
		      json_dumps(errors, 0));
	json_decref(errors);
	/* 100 GiB fits memory-high only (cpu-general: 32 GiB). */
	ck_assert_int_eq(place(r, NULL, "{\"team\":\"search\"}",
			       "{\"executor\":{\"instances\":1,\"memory\":\"100g\"}}", "a-key", &d, &errors),
			 ROUTER_OK);
	ck_assert_str_eq(d.cluster->name, "a");
	ck_assert_str_eq(d.role->name, "memory-high");
	router_decision_release(&d);
	router_unref(r);
}
END_TEST

START_TEST(test_gpu_jobs_only_on_gpu_roles)
{
	char err[GW_ERRLEN], key[32];
	struct router *r = load(policy_yaml, err);
	struct router_decision d;
	json_t *errors;

	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "gpu-%d", i);
		ck_assert_int_eq(place(r, NULL, "{\"team\":\"search\",\"accelerator\":\"gpu\"}", SPEC, key, &d,
				       &errors), ROUTER_OK);
		ck_assert_str_eq(d.cluster->name, "b");
		ck_assert_str_eq(d.role->name, "gpu");
		router_decision_release(&d);
		snprintf(key, sizeof(key), "cpu-%d", i);
		ck_assert_int_eq(place(r, NULL, "{\"team\":\"search\"}", SPEC, key, &d, &errors), ROUTER_OK);
		ck_assert_str_eq(d.role->name, "cpu-general");
		router_decision_release(&d);
	}
	/* Pool critical has no GPU role. */
	ck_assert_int_eq(place(r, NULL, "{\"priority\":\"critical\",\"accelerator\":\"gpu\"}", SPEC, "k", &d, &errors),
			 ROUTER_INVALID);
	ck_assert(error_mentions(errors, "labels[accelerator]", "no node role for GPU jobs"));
	json_decref(errors);
	router_unref(r);
}
END_TEST

START_TEST(test_weights_respected)
{
	char err[GW_ERRLEN], key[32];
	struct router *r = load(policy_yaml, err);
	struct fake f = {0};
	struct router_decision d;
	json_t *errors;
	int on_a = 0, n = 20000;

	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "j%08x", (unsigned)(i * 2654435761u));
		ck_assert_int_eq(place(r, &f, "{\"team\":\"search\"}", SPEC, key, &d, &errors), ROUTER_OK);
		on_a += !strcmp(d.cluster->name, "a");
		router_decision_release(&d);
	}
	/* Weights 3:1; a binomial's sd here is ~0.3%, so 1.5% is far out. */
	ck_assert_msg(fabs((double)on_a / n - 0.75) < 0.015, "a got %d of %d", on_a, n);
	/* An operator's weight change wins over the configured one. */
	f.weight_b = 3;
	on_a = 0;
	for (int i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "j%08x", (unsigned)(i * 2654435761u));
		place(r, &f, "{\"team\":\"search\"}", SPEC, key, &d, &errors);
		on_a += !strcmp(d.cluster->name, "a");
		router_decision_release(&d);
	}
	ck_assert_msg(fabs((double)on_a / n - 0.5) < 0.015, "a got %d of %d", on_a, n);
	router_unref(r);
}
END_TEST

START_TEST(test_live_state_rotation_and_headroom)
{
	char err[GW_ERRLEN], key[32], detail[GW_ERRLEN];
	struct router *r = load(policy_yaml, err);
	struct fake f = {.down = "a"};
	struct router_decision d;
	json_t *errors;

	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		ck_assert_int_eq(place(r, &f, "{\"team\":\"search\"}", SPEC, key, &d, &errors), ROUTER_OK);
		ck_assert_str_eq(d.cluster->name, "b");
		ck_assert_str_eq(json_string_value(json_array_get(d.reasons, 2)), "cluster a skipped: cordoned");
		router_decision_release(&d);
	}
	/* Both down: wait, and say why. */
	f.down = "a,b";
	ck_assert_int_eq(place(r, &f, "{\"team\":\"search\"}", SPEC, "k", &d, &errors), ROUTER_WAIT);
	{
		struct router_live live = {.usable = fake_usable, .weight = fake_weight, .usage = fake_usage, .arg = &f};
		json_t *l = json_loads("{\"team\":\"search\"}", 0, NULL), *s = json_loads(SPEC, 0, NULL);

		ck_assert_int_eq(router_place(r, &live, NULL, l, s, "k", &d, &errors, detail), ROUTER_WAIT);
		ck_assert_msg(strstr(detail, "a: cordoned") && strstr(detail, "b: cordoned"), "%s", detail);
		json_decref(l);
		json_decref(s);
	}
	/* search-1 is full: the job goes to search-2. */
	f.down = NULL;
	f.full_ns = "search-1";
	ck_assert_int_eq(place(r, &f, "{\"team\":\"search\"}", SPEC, "k", &d, &errors), ROUTER_OK);
	ck_assert_str_eq(d.ns->name, "search-2");
	router_decision_release(&d);
	/* Room for 2 pods left (8 of 10) and the job has 2: fits; 3 would not. */
	f.full_ns = NULL;
	f.pods = 8;
	ck_assert_int_eq(place(r, &f, "{\"team\":\"search\"}", SPEC, "k", &d, &errors), ROUTER_OK);
	router_decision_release(&d);
	/* The pool waits rather than flooding what is left. */
	ck_assert_int_eq(place(r, &f, "{\"team\":\"search\"}",
			       "{\"executor\":{\"instances\":2}}", "k", &d, &errors), ROUTER_WAIT);
	router_unref(r);
}
END_TEST

START_TEST(test_pin_keeps_the_placement)
{
	char err[GW_ERRLEN], detail[GW_ERRLEN];
	struct router *r = load(policy_yaml, err);
	struct fake f = {.down = "b"};
	struct router_live live = {.usable = fake_usable, .weight = fake_weight, .usage = fake_usage, .arg = &f};
	struct router_pin pin = {.cluster = "b", .namespace = "search-2"};
	json_t *l = json_loads("{\"team\":\"search\"}", 0, NULL), *s = json_loads(SPEC, 0, NULL), *errors;
	struct router_decision d;

	/* A job placed on b before goes back to b, even though b is cordoned. */
	ck_assert_int_eq(router_place(r, &live, &pin, l, s, "k", &d, &errors, detail), ROUTER_OK);
	ck_assert_str_eq(d.cluster->name, "b");
	ck_assert_str_eq(d.ns->name, "search-2");
	router_decision_release(&d);
	json_decref(l);
	json_decref(s);
	router_unref(r);
}
END_TEST

START_TEST(test_composer_precedence)
{
	char err[GW_ERRLEN];
	struct router *r = load(policy_yaml, err);
	struct fake f = {.full_ns = "search-2"}; /* so that search-1 and its override apply */
	struct router_decision d;
	json_t *errors, *c;

	ck_assert_int_eq(place(r, &f, "{\"team\":\"search\"}",
			       "{\"sparkConf\":{\"spark.c\":\"user\",\"spark.o\":\"user\",\"spark.u\":\"user\"},"
			       "\"executor\":{\"instances\":1,\"memory\":\"2g\"}}",
			       "a-key", &d, &errors), ROUTER_OK);
	ck_assert_str_eq(d.cluster->name, "a");
	ck_assert_str_eq(d.ns->name, "search-1");
	c = d.conf;
#define SRC(k) json_string_value(json_object_get(json_object_get(c, k), "source"))
#define VAL(k) json_string_value(json_object_get(json_object_get(c, k), "value"))
	ck_assert_str_eq(VAL("spark.p"), "pool");            /* only the pool sets it */
	ck_assert_str_eq(SRC("spark.p"), "pool:batch");
	ck_assert_str_eq(VAL("spark.x"), "cluster-a");       /* cluster defaults > pool */
	ck_assert_str_eq(SRC("spark.x"), "cluster:a");
	ck_assert_str_eq(VAL("spark.c"), "user");            /* user > cluster defaults */
	ck_assert_str_eq(SRC("spark.c"), "user");
	ck_assert_str_eq(VAL("spark.o"), "ns");              /* namespace > cluster override > user */
	ck_assert_str_eq(SRC("spark.o"), "namespace-override:search-1");
	ck_assert_str_eq(VAL("spark.n"), "ns-override");
	ck_assert_str_eq(VAL("spark.executor.memory"), "2g"); /* spec fields are the user's */
	ck_assert_str_eq(SRC("spark.executor.memory"), "user");
#undef SRC
#undef VAL
	router_decision_release(&d);
	router_unref(r);
}
END_TEST

START_TEST(test_policy_errors_name_line_and_column)
{
	static const struct {
		const char *yaml, *want;
	} cases[] = {
		{"clusters: [{name: a, kubeconfig: /k}]\npools:\n  - name: p\n    clusters: [nope]\n",
		 "policy.yaml: line 4, column 16: no cluster named 'nope'"},
		{"clusters: [{name: a, kubeconfig: /k}]\nrouting:\n  rules:\n    - {selector: 'team in (', pool: default}\n",
		 "line 4, column 7: invalid selector"},
		{"clusters: [{name: a, kubeconfig: /k, colour: red}]\n", "unknown key 'clusters[0].colour'"},
		{"clusters: [{name: a, kubeconfig: /k}, {name: a, kubeconfig: /k}]\n", "cluster names must be unique"},
		{"clusters:\n  - name: a\n    kubeconfig: /k\n    nodeRoles: [{name: r, maxPod: {memory: lots}}]\n",
		 "must be a memory size"},
		{"clusters: [{name: a, kubeconfig: /k}]\nnamespaceGroups: [{name: g, namespaces: [Bad_NS]}]\n",
		 "is not a DNS-1123 label"},
		{"clusters: [{name: a, kubeconfig: /k}]\nrouting: {defaultPool: none}\n", "no pool named 'none'"},
		/* Found by fuzz_policy: a count too large for its type. */
		{"clusters:\n  - name: a\n    kubeconfig: /k\n    nodeRoles: [{name: g, maxPod: {gpus: 1e300}}]\n",
		 "gpus must be a number from 0 to"},
		{"clusters: [{name: a, kubeconfig: /k}]\nnamespaceGroups: [{name: g, namespaces: [{name: n, maxPods: 1e20}]}]\n",
		 "maxPods must be a number from 0 to"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[GW_ERRLEN] = "";
		struct router *r = load(cases[i].yaml, err);

		ck_assert_msg(r == NULL, "case %zu loaded", i);
		ck_assert_msg(strstr(err, cases[i].want) != NULL, "case %zu: %s", i, err);
	}
}
END_TEST

/* DDL-only scripts may go to a shared server; anything that reads or writes
 * data may not, however its keywords hide in strings and comments. */
START_TEST(test_sql_ddl_and_dml)
{
	static const struct {
		const char *sql;
		enum router_sql_kind want;
		const char *reason;
	} cases[] = {
		{"CREATE TABLE t (a INT) USING parquet; ALTER TABLE t ADD COLUMNS (b STRING);\nset spark.sql.x=1",
		 ROUTER_SQL_DDL, "all 3 statements are DDL (ALTER, CREATE, SET)"},
		{"drop table if exists t", ROUTER_SQL_DDL, "all 1 statement is DDL (DROP)"},
		{"MSCK REPAIR TABLE t; ANALYZE TABLE t COMPUTE STATISTICS; USE db; TRUNCATE TABLE t;",
		 ROUTER_SQL_DDL, "(ANALYZE, MSCK, TRUNCATE, USE)"},
		/* RESET is not SET, and both are named. */
		{"RESET; SET a=b", ROUTER_SQL_DDL, "(RESET, SET)"},
		/* A view stores its query, not data. */
		{"CREATE OR REPLACE VIEW v AS SELECT * FROM t", ROUTER_SQL_DDL, "(CREATE)"},
		{"CREATE FUNCTION f AS 'com.example.F'", ROUTER_SQL_DDL, "(CREATE)"},
		/* CTAS writes data, however the query is introduced. */
		{"CREATE TABLE t USING parquet AS SELECT * FROM s", ROUTER_SQL_DML,
		 "statement 1 is CREATE TABLE ... AS a query"},
		{"create table t as (select 1)", ROUTER_SQL_DML, "statement 1 is CREATE TABLE ... AS a query"},
		{"CREATE TABLE t TBLPROPERTIES ('k'='v') AS WITH x AS (SELECT 1) SELECT * FROM x", ROUTER_SQL_DML,
		 "AS a query"},
		{"REPLACE TABLE t USING delta AS SELECT 1", ROUTER_SQL_DML, "REPLACE TABLE ... AS a query"},
		/* A column named "as" inside the column list is not CTAS. */
		{"CREATE TABLE t (`as` INT, select_count INT)", ROUTER_SQL_DDL, "(CREATE)"},
		{"CREATE TABLE t (a INT); INSERT INTO t VALUES (1)", ROUTER_SQL_DML, "statement 2 is INSERT, not DDL"},
		{"(SELECT 1)", ROUTER_SQL_DML, "statement 1 is a query, not DDL"},
		{"WITH x AS (SELECT 1) SELECT * FROM x", ROUTER_SQL_DML, "statement 1 is WITH"},
		/* DDL words inside strings, identifiers and comments count for nothing. */
		{"SELECT 'CREATE TABLE x; DROP' FROM t", ROUTER_SQL_DML, "statement 1 is SELECT"},
		{"-- DROP TABLE t;\nINSERT INTO t SELECT 1", ROUTER_SQL_DML, "statement 1 is INSERT"},
		{"/* CREATE /* nested; */ ALTER; */ UPDATE t SET a = 1", ROUTER_SQL_DML, "statement 1 is UPDATE"},
		{"ALTER TABLE t SET TBLPROPERTIES ('c'='it''s; INSERT', 'd'=\"a\\\"; b\")", ROUTER_SQL_DDL,
		 "all 1 statement is DDL (ALTER)"},
		{"DROP TABLE `we;ird``name`; -- trailing ; INSERT\n", ROUTER_SQL_DDL, "all 1 statement is DDL (DROP)"},
		{"'CREATE TABLE t'", ROUTER_SQL_DML, "statement 1 is a query"},
		{" ;; -- nothing\n/* at all */ ;", ROUTER_SQL_EMPTY, "no statements"},
		{"", ROUTER_SQL_EMPTY, "no statements"},
		{"CREATE TABLE t COMMENT 'unterminated", ROUTER_SQL_INVALID, "unterminated string starting at offset 23"},
		{"DROP TABLE t /* open", ROUTER_SQL_INVALID, "unterminated comment starting at offset 13"},
		{"DROP TABLE `t", ROUTER_SQL_INVALID, "unterminated quoted identifier"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char reason[256] = "";
		enum router_sql_kind got = router_sql_classify(cases[i].sql, strlen(cases[i].sql), reason, sizeof(reason));

		ck_assert_msg(got == cases[i].want, "case %zu (%s): kind %d, %s", i, cases[i].sql, got, reason);
		ck_assert_msg(strstr(reason, cases[i].reason) != NULL, "case %zu: reason '%s'", i, reason);
	}
}
END_TEST

/* spark-submit refuses Spark's SQL CLI in cluster mode, the one a Spark
 * operator submits in: SQL jobs go to driver-pod clusters only. */
START_TEST(test_sql_jobs_only_on_driver_pod_clusters)
{
	static const char yaml[] =
		"clusters:\n"
		"  - {name: op, kubeconfig: /k, mode: spark-operator}\n"
		"  - {name: pods, kubeconfig: /k}\n"
		"pools:\n"
		"  - {name: mixed, clusters: [op, pods]}\n"
		"  - {name: operators, clusters: [op]}\n"
		"namespaceGroups:\n  - {name: all, namespaces: [ns]}\n"
		"routing:\n  rules:\n    - {selector: 'team=op', pool: operators}\n  defaultPool: mixed\n";
	static const char sql[] = "{\"type\":\"SQL\",\"sparkVersion\":\"3.5.1\",\"sql\":\"SHOW TABLES\"}";
	char err[GW_ERRLEN] = "", key[32];
	struct router *r = load(yaml, err);
	struct router_decision d;
	json_t *errors;

	ck_assert_msg(r != NULL, "%s", err);
	for (int i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "sql-%d", i);
		ck_assert_int_eq(place(r, NULL, "{\"team\":\"t\"}", sql, key, &d, &errors), ROUTER_OK);
		ck_assert_str_eq(d.cluster->name, "pods");
		router_decision_release(&d);
	}
	ck_assert_int_eq(place(r, NULL, "{\"team\":\"op\"}", sql, "k", &d, &errors), ROUTER_TOO_BIG);
	ck_assert(error_mentions(errors, "spec", "Spark's SQL CLI does not run"));
	json_decref(errors);
	/* Other types still go there. */
	ck_assert_int_eq(place(r, NULL, "{\"team\":\"op\"}", SPEC, "k", &d, &errors), ROUTER_OK);
	router_decision_release(&d);
	router_unref(r);
}
END_TEST

/* ---- pool: what reservations take, as placement reads it ---- */

static struct router_usage ns_usage(struct pool *p, const char *ns)
{
	struct router_live live = pool_live(p);
	struct router_usage u;

	live.usage(live.arg, "k", ns, &u);
	return u;
}

static double free_cores(struct pool *p, const struct router_node_role *role)
{
	struct router_live live = pool_live(p);
	struct router_capacity cap;

	ck_assert(live.capacity(live.arg, "k", role, &cap));
	return cap.free.cores;
}

/* Two Ready nodes of 10 cores each. */
static void two_nodes(struct pool *p)
{
	json_t *nodes = json_loads("[{\"metadata\":{\"name\":\"n1\"},\"status\":{\"allocatable\":{\"cpu\":\"10\","
				   "\"memory\":\"64Gi\",\"pods\":\"110\"},\"conditions\":[{\"type\":\"Ready\","
				   "\"status\":\"True\"}]}},{\"metadata\":{\"name\":\"n2\"},\"status\":{\"allocatable\":"
				   "{\"cpu\":\"10\",\"memory\":\"64Gi\",\"pods\":\"110\"},\"conditions\":[{\"type\":"
				   "\"Ready\",\"status\":\"True\"}]}}]", 0, NULL);

	pool_set_nodes(p, "k", nodes);
	json_decref(nodes);
}

START_TEST(test_pool_reservations_count_what_pods_do_not_hold)
{
	struct pool *p = pool_new(NULL);
	json_t *empty = json_object(), *tolerations = json_array();
	char role_name[] = "cpu";
	struct router_node_role role = {.name = role_name, .node_selector = empty, .tolerations = tolerations};
	char ns_name[] = "ns";
	struct router_namespace ns = {.name = ns_name, .max_pods = 10};
	struct router_demand a = {.pods = 3, .cores = 2.5, .memory = 3 << 20}, b = {.pods = 2, .cores = 4};
	struct router_usage u;

	two_nodes(p);
	ck_assert_double_eq_tol(free_cores(p, &role), 20, 1e-9);
	ck_assert(pool_reserve(p, "k", "job-a", &ns, &role, &a, false, 60000));
	ck_assert(pool_reserve(p, "k", "job-b", &ns, &role, &b, false, 60000));
	u = ns_usage(p, "ns");
	ck_assert_uint_eq(u.pods, 5);
	ck_assert_double_eq_tol(u.cores, 6.5, 1e-9);
	ck_assert_int_eq(u.memory, 3 << 20);
	ck_assert_double_eq_tol(free_cores(p, &role), 13.5, 1e-9);

	/* a's driver runs (1 core of its 2.5), not bound yet: the namespace
	 * counts it once; on the nodes, its whole demand is still pending. */
	pool_pod(p, "k", "uid-1", "job-a", "ns", NULL, true, 1, 1 << 20, 0);
	u = ns_usage(p, "ns");
	ck_assert_uint_eq(u.pods, 5);
	ck_assert_double_eq_tol(u.cores, 6.5, 1e-9);
	ck_assert_double_eq_tol(free_cores(p, &role), 13.5, 1e-9);
	/* Bound to n1: n1 holds it, and the reservation takes the rest. */
	pool_pod(p, "k", "uid-1", "job-a", "ns", "n1", true, 1, 1 << 20, 0);
	ck_assert_double_eq_tol(free_cores(p, &role), 13.5, 1e-9);
	/* Pods beyond the demand take more, never less. */
	pool_pod(p, "k", "uid-2", "job-a", "ns", "n1", true, 2, 1 << 20, 0);
	pool_pod(p, "k", "uid-3", "job-a", "ns", "n2", true, 2, 1 << 20, 0);
	u = ns_usage(p, "ns");
	ck_assert_uint_eq(u.pods, 5);
	ck_assert_double_eq_tol(u.cores, 9, 1e-9);
	ck_assert_double_eq_tol(free_cores(p, &role), 11, 1e-9);

	/* Room is checked net of the job's own reservation: b again fits,
	 * a third job that needs 12 cores does not. */
	ck_assert(pool_reserve(p, "k", "job-b", &ns, &role, &b, false, 60000));
	ck_assert(!pool_reserve(p, "k", "job-c", &ns, &role, &(struct router_demand){.pods = 1, .cores = 12}, false,
				60000));
	ck_assert(!pool_reserve(p, "k", "job-c", &ns, &role, &(struct router_demand){.pods = 6}, false, 60000));
	ck_assert(pool_reserve(p, "k", "job-c", &ns, &role, &(struct router_demand){.pods = 2, .cores = 1}, false,
				60000));
	pool_release(p, "job-c");

	/* Released, b takes nothing; a's pods gone, a's reservation goes too. */
	pool_release(p, "job-b");
	u = ns_usage(p, "ns");
	ck_assert_uint_eq(u.pods, 3);
	ck_assert_double_eq_tol(u.cores, 5, 1e-9);
	pool_pod(p, "k", "uid-1", "job-a", "ns", "n1", false, 1, 1 << 20, 0);
	pool_pod(p, "k", "uid-2", "job-a", "ns", "n1", false, 2, 1 << 20, 0);
	pool_pod(p, "k", "uid-3", "job-a", "ns", "n2", false, 2, 1 << 20, 0);
	u = ns_usage(p, "ns");
	ck_assert_uint_eq(u.pods, 0);
	ck_assert_double_eq_tol(u.cores, 0, 1e-9);
	ck_assert_int_eq(u.memory, 0);
	ck_assert_double_eq_tol(free_cores(p, &role), 20, 1e-9);

	/* A role's nodes follow its selector (a policy reload) and the nodes
	 * the cluster lists. */
	json_object_set_new(empty, "zone", json_string("b"));
	ck_assert_double_eq_tol(free_cores(p, &role), 0, 1e-9);
	json_object_clear(empty);
	pool_pod(p, "k", "uid-4", "job-d", "ns", "n2", true, 3, 0, 0);
	ck_assert_double_eq_tol(free_cores(p, &role), 17, 1e-9);
	pool_set_nodes(p, "k", NULL);
	ck_assert(!pool_live(p).capacity(p, "k", &role, &(struct router_capacity){0}));
	two_nodes(p);
	ck_assert_double_eq_tol(free_cores(p, &role), 17, 1e-9);
	pool_free(p);
	json_decref(empty);
	json_decref(tolerations);
}
END_TEST

START_TEST(test_pool_reservations_lapse_and_renew)
{
	struct pool *p = pool_new(NULL);
	char ns_name[] = "ns";
	struct router_namespace ns = {.name = ns_name, .max_pods = 10};
	struct router_demand d = {.pods = 2, .cores = 1};
	struct router_usage u;

	ck_assert(pool_reserve(p, "k", "short", &ns, NULL, &d, false, 300));
	ck_assert(pool_reserve(p, "k", "renewed", &ns, NULL, &d, false, 300));
	ck_assert(pool_reserve(p, "k", "renewed", &ns, NULL, &d, false, 60000));
	ck_assert(pool_reserve(p, "k", "long", &ns, NULL, &d, false, 60000));
	ck_assert_uint_eq(ns_usage(p, "ns").pods, 6);
	usleep(400 * 1000);
	/* The short one lapsed; the renewed one keeps its new end. */
	u = ns_usage(p, "ns");
	ck_assert_uint_eq(u.pods, 4);
	ck_assert_double_eq_tol(u.cores, 2, 1e-9);
	/* A re-list replaces what pods hold; reservations count in full. */
	pool_pod(p, "k", "uid", "long", "ns", NULL, true, 1, 0, 0);
	ck_assert_uint_eq(ns_usage(p, "ns").pods, 4);
	pool_forget_pods(p, "k");
	ck_assert_uint_eq(ns_usage(p, "ns").pods, 4);
	pool_release(p, "renewed");
	pool_release(p, "long");
	ck_assert_uint_eq(ns_usage(p, "ns").pods, 0);
	pool_free(p);
}
END_TEST

Suite *router_suite(void)
{
	Suite *s = suite_create("router");
	TCase *tc = tcase_create("policy");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_rules_pools_and_groups);
	tcase_add_test(tc, test_protected_keys_and_pod_limits);
	tcase_add_test(tc, test_gpu_jobs_only_on_gpu_roles);
	tcase_add_test(tc, test_weights_respected);
	tcase_add_test(tc, test_live_state_rotation_and_headroom);
	tcase_add_test(tc, test_pin_keeps_the_placement);
	tcase_add_test(tc, test_composer_precedence);
	tcase_add_test(tc, test_policy_errors_name_line_and_column);
	tcase_add_test(tc, test_sql_ddl_and_dml);
	tcase_add_test(tc, test_sql_jobs_only_on_driver_pod_clusters);
	suite_add_tcase(s, tc);
	tc = tcase_create("pool");
	tcase_add_test(tc, test_pool_reservations_count_what_pods_do_not_hold);
	tcase_add_test(tc, test_pool_reservations_lapse_and_renew);
	suite_add_tcase(s, tc);
	return s;
}
