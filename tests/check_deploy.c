/* contrib/deploy: the Kubernetes manifests against the upstream schemas
 * and against each other, and the configuration they ship run by a real
 * gateway. */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/yamljson.h"
#include "tests/testutil.h"

#define MANIFESTS "contrib/deploy/kubernetes"
#define SQLITE_OVERLAY "contrib/deploy/kubernetes-sqlite"
#define SPARK_CLUSTER "contrib/deploy/spark-cluster"

static char *dir;

static void setup(void)
{
	dir = tu_tmpdir("deploy");
	ck_assert_ptr_nonnull(dir);
}

static void teardown(void)
{
	tu_rmtree(dir);
	free(dir);
}

static json_t *load_from(const char *where, const char *file)
{
	char path[300], err[512];
	json_t *doc = NULL;

	snprintf(path, sizeof(path), "%s/%s", where, file);
	ck_assert_msg(gw_yaml_load_file(path, &doc, NULL, err) == GW_OK, "%s", err);
	return doc;
}

static json_t *load(const char *file)
{
	return load_from(MANIFESTS, file);
}

static const char *str_at(const json_t *v, const char *a, const char *b)
{
	return json_string_value(json_object_get(b ? json_object_get(v, a) : v, b ? b : a));
}

/* Every label of want is in have, with its value. */
static bool labels_within(json_t *want, const json_t *have)
{
	const char *k;
	json_t *v;

	if (!json_object_size(want))
		return false;
	json_object_foreach(want, k, v)
		if (!json_equal(v, json_object_get(have, k)))
			return false;
	return true;
}

/* Kinds of the manifests that the vendored schemas do not cover. */
static bool unvendored_kind(const char *kind)
{
	return !strcmp(kind, "PodDisruptionBudget") || !strcmp(kind, "ServiceMonitor");
}

/* Every object a kustomization renders (kubectl kustomize) passes the
 * upstream schema of its apiVersion and kind with unknown fields refused,
 * as kubectl apply --validate=strict would have the API server check it;
 * returns how many were checked. */
static int rendered_objects_valid(const char *kustomization)
{
	char cmd[300], out[4096], err[512];
	size_t len = 0, cap = 1 << 16, start = 0;
	char *text = malloc(cap);
	int checked = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "kubectl kustomize %s", kustomization);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while ((len += fread(text + len, 1, cap - len - 1, p)) == cap - 1)
		text = realloc(text, cap *= 2);
	ck_assert_int_eq(WEXITSTATUS(pclose(p)), 0);
	text[len] = '\0';
	while (start < len) {
		char *sep = strstr(text + start, "\n---\n");
		size_t end = sep ? (size_t)(sep - text) + 1 : len;
		json_t *doc = NULL;
		const char *kind;

		ck_assert_msg(gw_yaml_load_string(text + start, end - start, &doc, NULL, err) == GW_OK, "%s", err);
		kind = str_at(doc, "kind", NULL);
		ck_assert_ptr_nonnull(kind);
		if (!unvendored_kind(kind)) {
			ck_assert_msg(tu_validate_k8s(NULL, doc, dir, out, sizeof(out)) == 0, "%s %s: %s", kind,
				      str_at(doc, "metadata", "name"), out);
			checked++;
		}
		json_decref(doc);
		start = sep ? end + 4 : len;
	}
	free(text);
	return checked;
}

/* The manifests and the SQLite overlay, as rendered, match the upstream
 * schemas (core/v1, apps/v1, rbac/v1); the kustomization lists every file
 * there is. */
START_TEST(test_manifests_match_the_schemas)
{
	json_t *kust = load("kustomization.yaml"), *resources = json_object_get(kust, "resources"), *r, *doc;
	size_t listed = 0, i, unvendored = 0;
	char out[4096];
	struct dirent *e;
	DIR *d;

	json_array_foreach(resources, i, r) {
		doc = load(json_string_value(r));
		unvendored += unvendored_kind(str_at(doc, "kind", NULL));
		json_decref(doc);
	}
	ck_assert_int_eq(rendered_objects_valid(MANIFESTS), (int)(json_array_size(resources) - unvendored));
	ck_assert_int_ge(rendered_objects_valid(SQLITE_OVERLAY), 10);

	/* The check refuses what the API server would: an unknown field. */
	doc = load("deployment.yaml");
	json_object_set_new(json_object_get(doc, "spec"), "replica", json_integer(3));
	ck_assert_int_eq(tu_validate_k8s(NULL, doc, dir, out, sizeof(out)), 1);
	ck_assert_msg(strstr(out, "replica"), "%s", out);
	json_decref(doc);

	d = opendir(MANIFESTS);
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		bool found = false;
		size_t n = strlen(e->d_name);

		if (n < 6 || strcmp(e->d_name + n - 5, ".yaml") || !strcmp(e->d_name, "kustomization.yaml"))
			continue;
		listed++;
		json_array_foreach(resources, i, r)
			found = found || !strcmp(json_string_value(r), e->d_name);
		ck_assert_msg(found, "%s is not in kustomization.yaml", e->d_name);
	}
	closedir(d);
	ck_assert_int_eq(listed, json_array_size(resources));
	json_decref(kust);
}
END_TEST

/* The index-th document of a multi-document YAML file. */
static json_t *yaml_document(const char *path, int index)
{
	char text[8192], err[512];
	const char *start = text, *sep;
	json_t *doc = NULL;
	FILE *f = fopen(path, "r");
	size_t len;

	ck_assert_ptr_nonnull(f);
	len = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[len] = '\0';
	for (int i = 0; i < index; i++) {
		sep = strstr(start, "\n---\n");
		ck_assert_ptr_nonnull(sep);
		start = sep + 5;
	}
	sep = strstr(start, "\n---\n");
	ck_assert_msg(gw_yaml_load_string(start, sep ? (size_t)(sep - start) + 1 : strlen(start), &doc, NULL, err) ==
			      GW_OK, "%s", err);
	return doc;
}

/* The classes every Spark cluster gets are valid scheduling.k8s.io/v1
 * objects, drivers above executors and both below the system classes, and
 * kubesim serves the same values, so that what tests preempt is what a
 * cluster set up from the manifests would. */
START_TEST(test_spark_cluster_priority_classes)
{
	static const char *const names[] = {"sparkgw-driver", "sparkgw-executor"};
	json_int_t value[2];
	struct tu_kubesim sim = {0};

	ck_assert_int_eq(rendered_objects_valid(SPARK_CLUSTER), 2);
	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "deploy", NULL), 0);
	for (int i = 0; i < 2; i++) {
		char url[200];
		json_t *doc = yaml_document(SPARK_CLUSTER "/priorityclasses.yaml", i), *served;

		ck_assert_ptr_nonnull(doc);
		ck_assert_str_eq(str_at(doc, "metadata", "name"), names[i]);
		value[i] = json_integer_value(json_object_get(doc, "value"));
		snprintf(url, sizeof(url), "%s/apis/scheduling.k8s.io/v1/priorityclasses/%s", sim.base, names[i]);
		served = tu_get_json(url);
		ck_assert_ptr_nonnull(served);
		ck_assert_int_eq(json_integer_value(json_object_get(served, "value")), value[i]);
		json_decref(served);
		json_decref(doc);
	}
	ck_assert_int_gt(value[0], value[1]);
	ck_assert_int_lt(value[0], 2000000000);
	tu_kubesim_stop(&sim);
}
END_TEST

/* The objects agree: selectors find the pod, probes and the Service use
 * the container's port, the binding names the service account, the
 * config file is where the container reads it. */
START_TEST(test_manifests_fit_together)
{
	json_t *dep = load("deployment.yaml"), *svc = load("service.yaml"), *pdb = load("poddisruptionbudget.yaml");
	json_t *sm = load("servicemonitor.yaml"), *sa = load("serviceaccount.yaml"), *crb = load("clusterrolebinding.yaml");
	json_t *cr = load("clusterrole.yaml"), *cm = load("configmap.yaml");
	json_t *tpl = json_object_get(json_object_get(dep, "spec"), "template");
	json_t *pod_labels = json_object_get(json_object_get(tpl, "metadata"), "labels");
	json_t *pod = json_object_get(tpl, "spec"), *c = json_array_get(json_object_get(pod, "containers"), 0);
	json_t *args = json_object_get(c, "args"), *mounts = json_object_get(c, "volumeMounts"), *m, *rule;
	const char *config = json_string_value(json_array_get(args, 1)), *config_dir = NULL;
	bool sparkapps = false, pods = false, nodes = false;
	size_t i;

	ck_assert(labels_within(json_object_get(json_object_get(json_object_get(dep, "spec"), "selector"), "matchLabels"),
				pod_labels));
	ck_assert(labels_within(json_object_get(json_object_get(svc, "spec"), "selector"), pod_labels));
	ck_assert(labels_within(json_object_get(json_object_get(json_object_get(pdb, "spec"), "selector"), "matchLabels"),
				pod_labels));
	ck_assert(labels_within(json_object_get(json_object_get(json_object_get(sm, "spec"), "selector"), "matchLabels"),
				json_object_get(json_object_get(svc, "metadata"), "labels")));

	ck_assert_str_eq(str_at(json_array_get(json_object_get(c, "ports"), 0), "name", NULL), "http");
	ck_assert_str_eq(str_at(json_object_get(c, "readinessProbe"), "httpGet", "path"), "/readyz");
	ck_assert_str_eq(str_at(json_object_get(c, "livenessProbe"), "httpGet", "path"), "/healthz");
	ck_assert_str_eq(str_at(json_object_get(c, "readinessProbe"), "httpGet", "port"), "http");
	ck_assert_str_eq(str_at(json_array_get(json_object_get(json_object_get(svc, "spec"), "ports"), 0), "targetPort", NULL),
			 "http");
	ck_assert_str_eq(str_at(json_array_get(json_object_get(json_object_get(sm, "spec"), "endpoints"), 0), "port", NULL),
			 "http");

	ck_assert_str_eq(str_at(pod, "serviceAccountName", NULL), str_at(sa, "metadata", "name"));
	ck_assert_str_eq(str_at(json_array_get(json_object_get(crb, "subjects"), 0), "name", NULL),
			 str_at(sa, "metadata", "name"));
	ck_assert_str_eq(str_at(json_array_get(json_object_get(crb, "subjects"), 0), "namespace", NULL),
			 str_at(sa, "metadata", "namespace"));
	ck_assert_str_eq(str_at(json_object_get(crb, "roleRef"), "name", NULL), str_at(cr, "metadata", "name"));
	json_array_foreach(json_object_get(cr, "rules"), i, rule) {
		const char *res = json_string_value(json_array_get(json_object_get(rule, "resources"), 0));

		pods = pods || (res && !strcmp(res, "pods"));
		sparkapps = sparkapps || (res && !strcmp(res, "sparkapplications"));
		/* Placement lists nodes to know what clusters can hold. */
		if (res && !strcmp(res, "nodes")) {
			json_t *verb;
			size_t k;

			json_array_foreach(json_object_get(rule, "verbs"), k, verb)
				nodes = nodes || !strcmp(json_string_value(verb), "list");
		}
	}
	ck_assert(pods && sparkapps && nodes);

	/* The container reads its config from the ConfigMap's key. */
	json_array_foreach(mounts, i, m)
		if (!strcmp(str_at(m, "name", NULL), "config"))
			config_dir = str_at(m, "mountPath", NULL);
	ck_assert_ptr_nonnull(config_dir);
	ck_assert_int_eq(strncmp(config, config_dir, strlen(config_dir)), 0);
	ck_assert_ptr_nonnull(json_object_get(json_object_get(cm, "data"), config + strlen(config_dir) + 1));

	/* libpq's settings come from keys the PostgreSQL Secret has. */
	{
		json_t *secret = load("secret-postgres.yaml"), *env;
		size_t n = 0;

		json_array_foreach(json_object_get(c, "env"), i, env) {
			json_t *ref = json_object_get(json_object_get(env, "valueFrom"), "secretKeyRef");

			ck_assert_str_eq(str_at(ref, "name", NULL), str_at(secret, "metadata", "name"));
			ck_assert_ptr_nonnull(json_object_get(json_object_get(secret, "stringData"), str_at(ref, "key", NULL)));
			n += !strncmp(str_at(env, "name", NULL), "PG", 2);
		}
		ck_assert_int_eq(n, 3);
		json_decref(secret);
	}
	/* Replicas on PostgreSQL, taken down one at a time at most. */
	ck_assert_int_gt(json_integer_value(json_object_get(json_object_get(dep, "spec"), "replicas")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(pdb, "spec"), "maxUnavailable")), 1);

	json_decref(dep);
	json_decref(svc);
	json_decref(pdb);
	json_decref(sm);
	json_decref(sa);
	json_decref(crb);
	json_decref(cr);
	json_decref(cm);
}
END_TEST

/* Writes the ConfigMap's configuration into dir; its path in path. */
static void write_shipped_config(char *path, size_t len)
{
	json_t *cm = load("configmap.yaml");
	const char *text = str_at(cm, "data", "sparkgw.yaml");
	FILE *f;

	ck_assert_ptr_nonnull(text);
	snprintf(path, len, "%s/sparkgw.yaml", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	json_decref(cm);
}

/* As in a pod: its in-cluster cluster from the service's environment
 * (nothing listens there: the cluster is unhealthy, the gateway up). */
static void in_cluster_environment(void)
{
	char port[16];

	snprintf(port, sizeof(port), "%d", tu_free_port());
	setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", port, 1);
}

/* The gateway is ready, on the store driver it should have. */
static void assert_ready_on(const struct tu_gateway *gw, const char *driver)
{
	char url[100];
	json_t *ready, *version;

	snprintf(url, sizeof(url), "%s/readyz", gw->base);
	ready = tu_get_json(url);
	ck_assert_ptr_nonnull(ready);
	json_decref(ready);
	snprintf(url, sizeof(url), "%s/api/v1/version", gw->base);
	version = tu_get_json(url);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(version, "store"), "driver")), driver);
	json_decref(version);
}

/* The shipped configuration starts a gateway that answers /readyz, on a
 * PostgreSQL server found as the Secret would have libpq find it. */
START_TEST(test_shipped_config_runs)
{
	char path[700], port[16], server_dsn[256], pg_dir_dsn[300];
	char *pg_dir = tu_pg_tmpdir("deploy-pg");
	struct tu_postgres pg = {0};
	struct tu_gateway gw;

	write_shipped_config(path, sizeof(path));
	in_cluster_environment();
	unsetenv(TU_PG_ENV); /* the configuration says where the store is */
	ck_assert_int_eq(tu_postgres_start(&pg, pg_dir), 0);
	snprintf(server_dsn, sizeof(server_dsn), "%s", pg.dsn);
	ck_assert_int_eq(tu_postgres_database(server_dsn, "sparkgw", pg_dir_dsn, sizeof(pg_dir_dsn)), 0);
	snprintf(port, sizeof(port), "%d", pg.port);
	setenv("PGHOST", "127.0.0.1", 1);
	setenv("PGPORT", port, 1);
	setenv("PGUSER", "sparkgw", 1);
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", path, NULL), 0);
	assert_ready_on(&gw, "postgres");
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	tu_postgres_stop(&pg, SIGINT);
	tu_rmtree(pg_dir);
	free(pg_dir);
}
END_TEST

/* The SQLite overlay renders (kubectl kustomize) as one replica replaced
 * with Recreate on a volume, and its container's arguments start a gateway
 * on the shipped configuration. */
START_TEST(test_sqlite_overlay_runs)
{
	char cmd[200], path[700], line[512], *argv[8] = {0};
	bool pvc = false, recreate = false, one = false, in_args = false;
	int argc = 0;
	struct tu_gateway gw;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "kubectl kustomize %s 2>&1", SQLITE_OVERLAY);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while (fgets(line, sizeof(line), p)) {
		line[strcspn(line, "\n")] = '\0';
		pvc = pvc || !strcmp(line, "kind: PersistentVolumeClaim");
		recreate = recreate || strstr(line, "type: Recreate");
		one = one || !strcmp(line, "  replicas: 1");
		if (strstr(line, "- args:")) {
			in_args = true;
		} else if (in_args && !strncmp(line, "        - ", 10) && argc < 7) {
			argv[argc++] = strdup(line + 10);
		} else {
			in_args = false;
		}
	}
	ck_assert_int_eq(WEXITSTATUS(pclose(p)), 0);
	ck_assert(pvc && recreate && one);
	ck_assert_int_eq(argc, 6);
	ck_assert_str_eq(argv[3], "store.driver=sqlite");
	ck_assert_str_eq(argv[4], "--data");
	write_shipped_config(path, sizeof(path));
	in_cluster_environment();
	/* Its arguments but the paths, which are the pod's. */
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", path, argv[2], argv[3], NULL), 0);
	assert_ready_on(&gw, "sqlite");
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	for (int i = 0; i < argc; i++)
		free(argv[i]);
}
END_TEST

static void write_text(const char *name, const char *text, char *path, size_t len)
{
	FILE *f;

	snprintf(path, len, "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

/* The shipped kustomization applies to a kubesim as to a cluster: created,
 * then unchanged (bar Secrets given as stringData, which kubectl reports
 * configured every time against real clusters too, kubernetes#87736); a
 * strategic merge patch changes one container's field and keeps the
 * rest; kubectl explain, auth can-i and server dry runs work; an unknown
 * field is refused under kubectl's default strict validation. */
START_TEST(test_manifests_apply_to_kubesim)
{
	struct tu_kubesim k = {0};
	char args[700], path[600], *out;
	int status;

	ck_assert_int_eq(tu_kubesim_start(&k, dir, "apply", NULL), 0);
	out = tu_kubectl(&k, dir, "apply -k " MANIFESTS, &status);
	ck_assert_msg(status == 0, "%s", out);
	ck_assert_msg(strstr(out, "deployment.apps/sparkgw created") &&
		      strstr(out, "clusterrolebinding.rbac.authorization.k8s.io/sparkgw created") &&
		      strstr(out, "poddisruptionbudget.policy/sparkgw created") &&
		      strstr(out, "servicemonitor.monitoring.coreos.com/sparkgw created"), "%s", out);
	free(out);
	out = tu_kubectl(&k, dir, "apply -k " MANIFESTS, &status);
	ck_assert_msg(status == 0 && strstr(out, "deployment.apps/sparkgw unchanged") &&
		      strstr(out, "configmap/sparkgw unchanged") && strstr(out, "service/sparkgw unchanged") &&
		      strstr(out, "clusterrole.rbac.authorization.k8s.io/sparkgw unchanged") &&
		      strstr(out, "poddisruptionbudget.policy/sparkgw unchanged") && !strstr(out, "created"),
		      "%s", out);
	free(out);

	out = tu_kubectl(&k, dir, "-n sparkgw set image deployment/sparkgw sparkgw=example.com/sparkgw:9.9", &status);
	ck_assert_msg(status == 0, "%s", out);
	free(out);
	out = tu_kubectl(&k, dir, "-n sparkgw get deployment sparkgw -o "
			 "jsonpath='{.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].ports[0].containerPort}'",
			 &status);
	ck_assert_str_eq(out, "example.com/sparkgw:9.9 8080");
	free(out);
	out = tu_kubectl(&k, dir, "apply -k " MANIFESTS, &status);
	ck_assert_msg(status == 0 && strstr(out, "deployment.apps/sparkgw configured"), "%s", out);
	free(out);
	out = tu_kubectl(&k, dir, "-n sparkgw get deployment sparkgw -o jsonpath='{.spec.template.spec.containers[0].image}'",
			 &status);
	ck_assert_msg(!strstr(out, "9.9") && strstr(out, "sparkgw:"), "%s", out);
	free(out);

	out = tu_kubectl(&k, dir, "explain deployment.spec.replicas", &status);
	ck_assert_msg(status == 0 && strstr(out, "KIND:       Deployment") && strstr(out, "<integer>"), "%s", out);
	free(out);
	out = tu_kubectl(&k, dir, "explain pod.spec.containers.resources", &status);
	ck_assert_msg(status == 0 && strstr(out, "<ResourceRequirements>"), "%s", out);
	free(out);
	out = tu_kubectl(&k, dir, "auth can-i create pods -n sparkgw", &status);
	ck_assert_msg(status == 0 && !strcmp(out, "yes\n"), "%s", out);
	free(out);

	write_text("bad.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: bad, namespace: sparkgw}\n"
		   "spec:\n  containers: [{name: c, image: busybox, imagePullPolicyy: Always}]\n", path, sizeof(path));
	snprintf(args, sizeof(args), "apply -f %s", path);
	out = tu_kubectl(&k, dir, args, &status);
	ck_assert_msg(status != 0 && strstr(out, "strict decoding error: unknown field \"spec.containers[0].imagePullPolicyy\""),
		      "%s", out);
	free(out);
	write_text("secret.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: token, namespace: sparkgw}\n"
		   "stringData: {token: hello}\n", path, sizeof(path));
	snprintf(args, sizeof(args), "apply --dry-run=server -f %s", path);
	out = tu_kubectl(&k, dir, args, &status);
	ck_assert_msg(status == 0 && strstr(out, "secret/token created (server dry run)"), "%s", out);
	free(out);
	out = tu_kubectl(&k, dir, "-n sparkgw get secret token", &status);
	ck_assert_msg(status != 0 && strstr(out, "NotFound"), "%s", out);
	free(out);
	snprintf(args, sizeof(args), "apply -f %s", path);
	free(tu_kubectl(&k, dir, args, &status));
	ck_assert_int_eq(status, 0);
	out = tu_kubectl(&k, dir, "-n sparkgw get secret token -o jsonpath='{.data.token}|{.stringData}'", &status);
	ck_assert_str_eq(out, "aGVsbG8=|");
	free(out);
	tu_kubesim_stop(&k);
}
END_TEST

Suite *deploy_suite(void)
{
	Suite *s = suite_create("deploy");
	TCase *tc = tcase_create("kubernetes");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_manifests_match_the_schemas);
	tcase_add_test(tc, test_manifests_fit_together);
	tcase_add_test(tc, test_spark_cluster_priority_classes);
	tcase_add_test(tc, test_shipped_config_runs);
	tcase_add_test(tc, test_sqlite_overlay_runs);
	tcase_add_test(tc, test_manifests_apply_to_kubesim);
	suite_add_tcase(s, tc);
	return s;
}
