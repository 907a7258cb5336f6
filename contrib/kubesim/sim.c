/* The simulated control plane (the scheduler is sched.c): kubelet (image pulls, container start and exit), a Spark driver that
 * starts executor pods and ends as its Spark conf asks, and with
 * --operator a Spark operator that turns SparkApplications into drivers.
 *
 * Spark conf keys understood (from the driver's spark.properties ConfigMap,
 * or a SparkApplication's sparkConf):
 *   spark.kubesim.durationSeconds  run time of the driver (default 5)
 *   spark.kubesim.exitCode         driver exit code (default 0)
 *   spark.kubesim.oom=true         the driver is OOMKilled
 *   spark.kubesim.imagePullFail=true  the image never pulls: ErrImagePull
 *   spark.kubesim.executorDelaySeconds  how long the driver takes to ask
 *                                  for its executors (default 0)
 *   spark.executor.instances, spark.executor.cores, spark.executor.memory */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/quantity.h"
#include "common/timeutil.h"
#include "contrib/kubesim/kubesim.h"

#define TICK_MS 20

static const char *jstr(const json_t *v)
{
	const char *s = json_string_value(v);

	return s ? s : "";
}

static json_t *meta_of(json_t *obj)
{
	return json_object_get(obj, "metadata");
}

static const char *label(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(
		json_object_get(json_object_get(obj, "metadata"), "labels"), key));
}

static const char *annotation(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(
		json_object_get(json_object_get(obj, "metadata"), "annotations"), key));
}

static void set_annotation(json_t *obj, const char *key, const char *value)
{
	json_t *meta = meta_of(obj), *ann = json_object_get(meta, "annotations");

	if (!ann)
		json_object_set_new(meta, "annotations", ann = json_object());
	json_object_set_new(ann, key, json_string(value));
}

static int64_t annotation_ms(const json_t *obj, const char *key)
{
	const char *v = annotation(obj, key);

	return v ? strtoll(v, NULL, 10) : 0;
}

static void set_annotation_ms(json_t *obj, const char *key, int64_t ms)
{
	char text[24];

	snprintf(text, sizeof(text), "%lld", (long long)ms);
	set_annotation(obj, key, text);
}

void ks_pod_requests(const json_t *pod, double *cpu, double *mem)
{
	json_t *containers = json_object_get(json_object_get(pod, "spec"), "containers");
	size_t i;
	json_t *c;

	*cpu = *mem = 0;
	json_array_foreach(containers, i, c) {
		json_t *req = json_object_get(json_object_get(c, "resources"), "requests");
		double v;

		if (json_is_string(json_object_get(req, "cpu")) &&
		    gw_quantity_parse(json_string_value(json_object_get(req, "cpu")), &v) == 0)
			*cpu += v;
		if (json_is_string(json_object_get(req, "memory")) &&
		    gw_quantity_parse(json_string_value(json_object_get(req, "memory")), &v) == 0)
			*mem += v;
	}
}

/* Java properties, the subset spark-submit writes: key=value lines. */
static json_t *parse_properties(const char *text)
{
	json_t *conf = json_object();

	while (text && *text) {
		const char *eol = strchr(text, '\n');
		size_t len = eol ? (size_t)(eol - text) : strlen(text);
		char line[4096];
		char *eq;

		if (len < sizeof(line)) {
			memcpy(line, text, len);
			line[len] = '\0';
			if (len && line[len - 1] == '\r')
				line[len - 1] = '\0';
			eq = strchr(line, '=');
			if (line[0] != '#' && line[0] != '!' && eq) {
				*eq = '\0';
				json_object_set_new(conf, line, json_string(eq + 1));
			}
		}
		text = eol ? eol + 1 : NULL;
	}
	return conf;
}

static json_t *owner_of_kind(struct ks_state *st, const json_t *obj, const char *kind,
			     const struct ks_resource *r)
{
	json_t *refs = json_object_get(json_object_get(obj, "metadata"), "ownerReferences");
	size_t i;
	json_t *ref;

	json_array_foreach(refs, i, ref)
		if (!strcmp(jstr(json_object_get(ref, "kind")), kind))
			return ks_get(st, r, ks_ns(obj), jstr(json_object_get(ref, "name")));
	return NULL;
}

json_t *ks_spark_conf(struct ks_state *st, const json_t *pod)
{
	const struct ks_resource *apps = ks_resource_find("sparkoperator.k8s.io", "v1beta2",
							   "sparkapplications");
	json_t *app = owner_of_kind(st, pod, "SparkApplication", apps);
	json_t *volumes = json_object_get(json_object_get(pod, "spec"), "volumes");
	size_t i;
	json_t *v;

	if (app) {
		json_t *spec = json_object_get(app, "spec"), *exec = json_object_get(spec, "executor");
		json_t *conf = json_deep_copy(json_object_get(spec, "sparkConf"));
		char n[24];

		if (!conf)
			conf = json_object();
		if (json_is_integer(json_object_get(exec, "instances"))) {
			snprintf(n, sizeof(n), "%lld", (long long)json_integer_value(json_object_get(exec, "instances")));
			json_object_set_new(conf, "spark.executor.instances", json_string(n));
		}
		if (json_is_integer(json_object_get(exec, "cores"))) {
			snprintf(n, sizeof(n), "%lld", (long long)json_integer_value(json_object_get(exec, "cores")));
			json_object_set_new(conf, "spark.executor.cores", json_string(n));
		}
		if (json_is_string(json_object_get(exec, "memory")))
			json_object_set(conf, "spark.executor.memory", json_object_get(exec, "memory"));
		if (json_is_object(json_object_get(exec, "gpu"))) {
			const json_t *gpu = json_object_get(exec, "gpu");
			const char *gname = json_string_value(json_object_get(gpu, "name"));
			const char *slash = gname ? strrchr(gname, '/') : NULL;

			snprintf(n, sizeof(n), "%lld", json_is_integer(json_object_get(gpu, "quantity"))
				 ? (long long)json_integer_value(json_object_get(gpu, "quantity")) : 1LL);
			json_object_set_new(conf, "spark.executor.resource.gpu.amount", json_string(n));
			if (slash)
				json_object_set_new(conf, "spark.executor.resource.gpu.vendor",
						    json_stringn(gname, (size_t)(slash - gname)));
		}
		{
			/* The operator passes executor labels on as Spark conf. */
			const char *k;
			json_t *lv;

			json_object_foreach(json_object_get(exec, "labels"), k, lv) {
				char key[300];

				snprintf(key, sizeof(key), "spark.kubernetes.executor.label.%s", k);
				json_object_set(conf, key, lv);
			}
		}
		return conf;
	}
	json_array_foreach(volumes, i, v) {
		json_t *cmref = json_object_get(v, "configMap"), *cm;

		if (!cmref)
			continue;
		cm = ks_get(st, ks_resource_find("", "v1", "configmaps"), ks_ns(pod),
			    jstr(json_object_get(cmref, "name")));
		if (!cm)
			return NULL; /* not there yet: the kubelet waits for it */
		return parse_properties(json_string_value(
			json_object_get(json_object_get(cm, "data"), "spark.properties")));
	}
	return json_object(); /* a pod that mounts no Spark conf */
}

static const char *conf_get(const json_t *conf, const char *key, const char *def)
{
	const char *v = json_string_value(json_object_get(conf, key));

	return v ? v : def;
}

static void set_condition(json_t *pod, const char *type, const char *status,
			  const char *reason, const char *message)
{
	json_t *st = json_object_get(pod, "status"), *conds = json_object_get(st, "conditions");
	char now[32];
	json_t *c;

	ks_now_rfc3339(now);
	if (!conds)
		json_object_set_new(st, "conditions", conds = json_array());
	for (size_t i = 0; i < json_array_size(conds); i++)
		if (!strcmp(jstr(json_object_get(json_array_get(conds, i), "type")), type)) {
			json_array_remove(conds, i);
			break;
		}
	c = json_pack("{s:s, s:s, s:s}", "type", type, "status", status,
		      "lastTransitionTime", now);
	if (reason)
		json_object_set_new(c, "reason", json_string(reason));
	if (message)
		json_object_set_new(c, "message", json_string(message));
	json_array_append_new(conds, c);
}

static const char *condition_reason(const json_t *pod, const char *type)
{
	json_t *conds = json_object_get(json_object_get(pod, "status"), "conditions");
	size_t i;
	json_t *c;

	json_array_foreach(conds, i, c)
		if (!strcmp(jstr(json_object_get(c, "type")), type))
			return json_string_value(json_object_get(c, "reason"));
	return NULL;
}

/* containerStatuses for the pod's containers, each in the given state. */
static void set_container_states(json_t *pod, json_t *state /* stolen */, bool ready)
{
	json_t *containers = json_object_get(json_object_get(pod, "spec"), "containers");
	json_t *statuses = json_array();
	size_t i;
	json_t *c;

	json_array_foreach(containers, i, c)
		json_array_append_new(statuses, json_pack("{s:s, s:s, s:s, s:b, s:i, s:O, s:b}",
			"name", jstr(json_object_get(c, "name")),
			"image", jstr(json_object_get(c, "image")),
			"imageID", "", "ready", ready, "restartCount", 0,
			"state", state, "started", ready));
	json_object_set_new(json_object_get(pod, "status"), "containerStatuses", statuses);
	json_decref(state);
}

/* Bound and Pending: pull the image and start, once the conf is there. */
/* A running pod's podIP (its own, as from a CNI's pod range) and hostIP
 * (its node's InternalIP). */
static void pod_addresses(struct ks_state *st, json_t *pod)
{
	const char *node_name = json_string_value(json_object_get(json_object_get(pod, "spec"), "nodeName"));
	json_t *status = json_object_get(pod, "status"), *addr;
	json_t *node = node_name ? ks_get(st, ks_resource_find("", "v1", "nodes"), NULL, node_name) : NULL;
	uint32_t n = st->pod_ips_given++ % (256u * 254u);
	char ip[32];
	size_t i;

	snprintf(ip, sizeof(ip), "10.244.%u.%u", n / 254, n % 254 + 1);
	json_object_set_new(status, "podIP", json_string(ip));
	json_object_set_new(status, "podIPs", json_pack("[{s:s}]", "ip", ip));
	json_array_foreach(json_object_get(json_object_get(node, "status"), "addresses"), i, addr)
		if (!strcmp(json_string_value(json_object_get(addr, "type")), "InternalIP")) {
			json_object_set(status, "hostIP", json_object_get(addr, "address"));
			json_object_set_new(status, "hostIPs", json_pack("[{s:O}]", "ip", json_object_get(addr, "address")));
		}
}

static void start_pod(struct ks_state *st, json_t *pod, const json_t *conf)
{
	bool driver = label(pod, "spark-role") && !strcmp(label(pod, "spark-role"), "driver");
	char now[32];

	if (driver && !strcmp(conf_get(conf, "spark.kubesim.imagePullFail", "false"), "true")) {
		const char *reason = condition_reason(pod, "Ready") ? "ImagePullBackOff" : "ErrImagePull";
		json_t *cs = json_array_get(json_object_get(json_object_get(pod, "status"), "containerStatuses"), 0);

		if (!strcmp(jstr(json_object_get(json_object_get(json_object_get(cs, "state"), "waiting"), "reason")),
			    "ImagePullBackOff"))
			return;
		pod = json_deep_copy(pod);
		set_container_states(pod, json_pack("{s:{s:s, s:s}}", "waiting", "reason", reason,
						     "message", "rpc error: code = NotFound desc = failed to pull and unpack image"),
				     false);
		set_condition(pod, "Ready", "False", "ContainersNotReady", "containers with unready status");
		ks_record_event(st, pod, "Warning", "Failed", "Failed to pull image: not found");
		ks_update(st, ks_resource_find("", "v1", "pods"), pod);
		return;
	}
	ks_now_rfc3339(now);
	pod = json_deep_copy(pod);
	json_object_set_new(json_object_get(pod, "status"), "phase", json_string("Running"));
	json_object_set_new(json_object_get(pod, "status"), "startTime", json_string(now));
	pod_addresses(st, pod);
	set_container_states(pod, json_pack("{s:{s:s}}", "running", "startedAt", now), true);
	set_condition(pod, "Ready", "True", NULL, NULL);
	set_annotation_ms(pod, "kubesim.io/started-ms", gw_now_ms());
	ks_record_event(st, pod, "Normal", "Started", "Started container");
	ks_update(st, ks_resource_find("", "v1", "pods"), pod);
}

/* What Spark takes from its conf for executors: labels
 * (spark.kubernetes.executor.label.*) and the pod template file, which
 * spark-submit ships in the driver's ConfigMap. */
static void apply_executor_conf(struct ks_state *st, const json_t *driver, const json_t *conf, json_t *pod)
{
	static const char label_prefix[] = "spark.kubernetes.executor.label.";
	const char *tpl_path = conf_get(conf, "spark.kubernetes.executor.podTemplateFile", NULL);
	json_t *labels = json_object_get(json_object_get(pod, "metadata"), "labels");
	const char *key;
	json_t *v, *volumes = json_object_get(json_object_get(driver, "spec"), "volumes");
	size_t i;

	json_object_foreach((json_t *)(uintptr_t)conf, key, v)
		if (!strncmp(key, label_prefix, sizeof(label_prefix) - 1))
			json_object_set(labels, key + sizeof(label_prefix) - 1, v);
	if (!tpl_path)
		return;
	json_array_foreach(volumes, i, v) {
		const char *base = strrchr(tpl_path, '/') ? strrchr(tpl_path, '/') + 1 : tpl_path;
		json_t *cm = json_object_get(v, "configMap") ? ks_get(st, ks_resource_find("", "v1", "configmaps"),
			ks_ns(driver), jstr(json_object_get(json_object_get(v, "configMap"), "name"))) : NULL;
		const char *text = json_string_value(json_object_get(json_object_get(cm, "data"), base));
		json_t *tpl = text ? json_loads(text, 0, NULL) : NULL, *tspec = json_object_get(tpl, "spec");
		static const char *const fields[] = {"priorityClassName", "nodeSelector", "tolerations", "affinity"};
		json_t *tlimits = json_object_get(json_object_get(json_array_get(json_object_get(tspec, "containers"), 0),
								  "resources"), "limits");
		json_t *res = json_object_get(json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0),
					      "resources");
		const char *rk;
		json_t *rv;

		for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
			if (json_object_get(tspec, fields[f]))
				json_object_set(json_object_get(pod, "spec"), fields[f], json_object_get(tspec, fields[f]));
		/* Spark keeps the template's extended resources (GPUs). */
		json_object_foreach(tlimits, rk, rv)
			if (strcmp(rk, "cpu") && strcmp(rk, "memory")) {
				if (!json_object_get(res, "limits"))
					json_object_set_new(res, "limits", json_object());
				json_object_set(json_object_get(res, "limits"), rk, rv);
			}
		if (json_object_get(json_object_get(tpl, "metadata"), "annotations"))
			json_object_set(json_object_get(pod, "metadata"), "annotations",
					json_object_get(json_object_get(tpl, "metadata"), "annotations"));
		json_decref(tpl);
		if (text)
			break;
	}
}

/* spark.executor.resource.gpu.amount of the vendor's GPUs, as Spark asks
 * them of Kubernetes: a limit of VENDOR/gpu. */
static void executor_gpus(const json_t *conf, json_t *pod)
{
	const char *amount = conf_get(conf, "spark.executor.resource.gpu.amount", NULL);
	json_t *res = json_object_get(json_array_get(json_object_get(json_object_get(pod, "spec"), "containers"), 0),
				      "resources");
	char key[256];

	if (!amount || !res)
		return;
	snprintf(key, sizeof(key), "%s/gpu", conf_get(conf, "spark.executor.resource.gpu.vendor", "nvidia.com"));
	if (!json_object_get(res, "limits"))
		json_object_set_new(res, "limits", json_object());
	json_object_set_new(json_object_get(res, "limits"), key, json_string(amount));
}

static void create_executors(struct ks_state *st, json_t *driver, const json_t *conf)
{
	const struct ks_resource *pods = ks_resource_find("", "v1", "pods");
	long instances = strtol(conf_get(conf, "spark.executor.instances", "2"), NULL, 10);
	const char *cores = conf_get(conf, "spark.executor.cores", "1");
	int64_t mem = 0;
	char memq[32], prefix[256];
	const char *name = ks_name(driver);
	size_t len = strlen(name);

	if (gw_spark_memory_parse(conf_get(conf, "spark.executor.memory", "1g"), &mem))
		mem = 1LL << 30;
	/* Spark adds max(10%, 384 MiB) of overhead to the executor's request. */
	mem += mem / 10 > (384LL << 20) ? mem / 10 : (384LL << 20);
	snprintf(memq, sizeof(memq), "%lldMi", (long long)(mem >> 20));
	if (len > 7 && !strcmp(name + len - 7, "-driver"))
		len -= 7;
	snprintf(prefix, sizeof(prefix), "%.*s", (int)len, name);
	for (long i = 1; i <= instances && i <= 1000; i++) {
		char ename[300];
		json_t *pod;

		snprintf(ename, sizeof(ename), "%s-exec-%ld", prefix, i);
		if (ks_get(st, pods, ks_ns(driver), ename))
			continue;
		pod = json_pack("{s:{s:s, s:s, s:{s:s, s:s}, s:[{s:s, s:s, s:s, s:s, s:b, s:b}]},"
				" s:{s:s, s:[{s:s, s:s, s:{s:{s:s, s:s}}}]}, s:{s:s}}",
				"metadata", "name", ename, "namespace", ks_ns(driver),
				"labels", "spark-role", "executor", "spark-app-selector",
				label(driver, "spark-app-selector") ? label(driver, "spark-app-selector") : prefix,
				"ownerReferences", "apiVersion", "v1", "kind", "Pod", "name", name,
				"uid", jstr(json_object_get(meta_of(driver), "uid")),
				"controller", 1, "blockOwnerDeletion", 1,
				"spec", "restartPolicy", "Never", "containers", "name", "spark-kubernetes-executor",
				"image", jstr(json_object_get(json_array_get(json_object_get(json_object_get(driver, "spec"), "containers"), 0), "image")),
				"resources", "requests", "cpu", cores, "memory", memq,
				"status", "phase", "Pending");
		apply_executor_conf(st, driver, conf, pod);
		executor_gpus(conf, pod);
		if (ks_admit_priority(st, pod) < 0) /* Spark's request would fail; here it runs unranked */
			json_object_set_new(json_object_get(pod, "spec"), "priority", json_integer(0));
		ks_insert(st, pods, pod);
	}
}

static void finish_driver(struct ks_state *st, json_t *pod, const json_t *conf)
{
	bool oom = !strcmp(conf_get(conf, "spark.kubesim.oom", "false"), "true");
	long code = oom ? 137 : strtol(conf_get(conf, "spark.kubesim.exitCode", "0"), NULL, 10);
	const char *reason = oom ? "OOMKilled" : code ? "Error" : "Completed";
	const char *key;
	json_t *obj, *keys = json_array();
	const char *uid = jstr(json_object_get(meta_of(pod), "uid"));
	char now[32];
	size_t i;
	json_t *k;

	ks_now_rfc3339(now);
	/* Spark removes its executors when the application ends: the pods
	 * the driver owns (by the owner index, not a walk over every pod). */
	json_object_foreach(json_object_get(st->dependents, uid), key, obj) {
		json_t *exec = json_object_get(st->pods, key);

		if (exec && label(exec, "spark-role") && !strcmp(label(exec, "spark-role"), "executor"))
			json_array_append_new(keys, json_string(ks_name(exec)));
	}
	json_array_foreach(keys, i, k) {
		json_t *exec = ks_get(st, ks_resource_find("", "v1", "pods"), ks_ns(pod), json_string_value(k));

		if (exec)
			ks_delete(st, ks_resource_find("", "v1", "pods"), exec, "Background");
	}
	json_decref(keys);

	pod = json_deep_copy(pod);
	json_object_set_new(json_object_get(pod, "status"), "phase",
			    json_string(code ? "Failed" : "Succeeded"));
	set_container_states(pod, json_pack("{s:{s:i, s:s, s:s, s:s}}", "terminated", "exitCode",
					    (int)code, "reason", reason, "startedAt",
					    jstr(json_object_get(json_object_get(pod, "status"), "startTime")),
					    "finishedAt", now),
			     false);
	set_condition(pod, "Ready", "False", "PodCompleted", NULL);
	if (oom)
		ks_record_event(st, pod, "Warning", "OOMKilling", "Memory cgroup out of memory: Killed process (java)");
	ks_update(st, ks_resource_find("", "v1", "pods"), pod);
}

/* Whether a pod has anything to do this tick: what it waits for is due. A
 * running pod otherwise costs a few lookups, not a Spark conf parse. */
static bool pod_due(const json_t *pod, int64_t now)
{
	const json_t *meta = json_object_get(pod, "metadata");
	const char *phase = jstr(json_object_get(json_object_get(pod, "status"), "phase"));
	const char *role;

	if (json_object_get(meta, "deletionTimestamp") || !strcmp(phase, "Pending"))
		return true;
	role = label(pod, "spark-role");
	if (strcmp(phase, "Running") || !role || strcmp(role, "driver"))
		return false;
	return !annotation(pod, "kubesim.io/executors") || now >= annotation_ms(pod, "kubesim.io/ends-ms");
}

static void step_pod(struct ks_state *st, const char *key, json_t *pod)
{
	const struct ks_resource *pods = ks_resource_find("", "v1", "pods");
	json_t *meta = meta_of(pod), *status = json_object_get(pod, "status"), *conf;
	const char *phase = jstr(json_object_get(status, "phase"));
	bool driver = label(pod, "spark-role") && !strcmp(label(pod, "spark-role"), "driver");

	if (json_object_get(meta, "deletionTimestamp")) {
		if (json_array_size(json_object_get(meta, "finalizers")) == 0)
			ks_remove(st, pods, ks_ns(pod), ks_name(pod));
		return;
	}
	if (!strcmp(phase, "Pending") && !json_object_get(json_object_get(pod, "spec"), "nodeName")) {
		ks_schedule(st, pod);
		return;
	}
	if (strcmp(phase, "Pending") && strcmp(phase, "Running"))
		return;
	conf = ks_spark_conf(st, pod);
	if (!conf)
		return; /* its ConfigMap is not there yet */
	if (!strcmp(phase, "Pending")) {
		start_pod(st, pod, conf);
	} else if (driver) {
		double secs = strtod(conf_get(conf, "spark.kubesim.durationSeconds", "5"), NULL);

		double delay = strtod(conf_get(conf, "spark.kubesim.executorDelaySeconds", "0"), NULL);
		int64_t started = annotation_ms(pod, "kubesim.io/started-ms");

		if (!annotation(pod, "kubesim.io/executors") && gw_now_ms() >= started + (int64_t)(delay * 1000)) {
			json_t *copy = json_deep_copy(pod);
			int64_t ends = started + (int64_t)(secs * 1000);

			create_executors(st, pod, conf);
			set_annotation(copy, "kubesim.io/executors", "created");
			set_annotation_ms(copy, "kubesim.io/ends-ms", ends);
			ks_update(st, pods, copy);
			json_object_set_new(st->drivers_ending, key, json_integer(ends));
		} else if (!annotation(pod, "kubesim.io/executors")) {
			/* Looked at again when it asks for them. */
			json_object_set_new(st->drivers_ending, key, json_integer(started + (int64_t)(delay * 1000)));
		} else if (gw_now_ms() >= annotation_ms(pod, "kubesim.io/ends-ms")) {
			json_object_del(st->drivers_ending, key);
			finish_driver(st, pod, conf);
		}
	}
	json_decref(conf);
}

/* The Service the operator puts in front of a driver's UI,
 * "<app>-ui-svc", port 4040, owned by the application. */
static void operator_ui_service(struct ks_state *st, json_t *app, const char *app_id)
{
	const struct ks_resource *services = ks_resource_find("", "v1", "services");
	char name[300];

	snprintf(name, sizeof(name), "%s-ui-svc", ks_name(app));
	if (ks_get(st, services, ks_ns(app), name))
		return;
	ks_insert(st, services, json_pack(
		"{s:{s:s, s:s, s:{s:s}, s:[{s:s, s:s, s:s, s:s, s:b}]}, s:{s:s, s:{s:s, s:s},"
		" s:[{s:s, s:i, s:i, s:s}]}}",
		"metadata", "name", name, "namespace", ks_ns(app), "labels", "sparkoperator.k8s.io/app-name",
		ks_name(app), "ownerReferences", "apiVersion", "sparkoperator.k8s.io/v1beta2", "kind",
		"SparkApplication", "name", ks_name(app), "uid", jstr(json_object_get(meta_of(app), "uid")),
		"controller", 1, "spec", "type", "ClusterIP", "selector", "spark-app-selector", app_id,
		"spark-role", "driver", "ports", "name", "spark-driver-ui-port", "port", 4040, "targetPort", 4040,
		"protocol", "TCP"));
}

/* What the operator passes from the application to its driver pod:
 * where it may run, its priority, its GPUs. */
static void operator_driver_scheduling(const json_t *app_spec, json_t *pod)
{
	static const char *const fields[] = {"nodeSelector", "tolerations", "affinity", "priorityClassName"};
	const json_t *driver = json_object_get(app_spec, "driver"), *gpu = json_object_get(driver, "gpu");
	json_t *pspec = json_object_get(pod, "spec");

	if (json_object_get(app_spec, "nodeSelector"))
		json_object_set(pspec, "nodeSelector", json_object_get(app_spec, "nodeSelector"));
	for (size_t f = 0; f < sizeof(fields) / sizeof(fields[0]); f++)
		if (json_object_get(driver, fields[f]))
			json_object_set(pspec, fields[f], json_object_get(driver, fields[f]));
	if (json_is_object(gpu)) {
		json_t *res = json_object_get(json_array_get(json_object_get(pspec, "containers"), 0), "resources");
		char n[24];

		snprintf(n, sizeof(n), "%lld", json_is_integer(json_object_get(gpu, "quantity"))
			 ? (long long)json_integer_value(json_object_get(gpu, "quantity")) : 1LL);
		json_object_set_new(res, "limits", json_object());
		json_object_set_new(json_object_get(res, "limits"),
				    json_string_value(json_object_get(gpu, "name")) ? json_string_value(json_object_get(gpu, "name"))
										: "nvidia.com/gpu",
				    json_string(n));
	}
}

/* The operator: a new SparkApplication gets its driver; after that the
 * application's state follows the driver pod's. */
static void step_app(struct ks_state *st, json_t *app)
{
	const struct ks_resource *apps = ks_resource_find("sparkoperator.k8s.io", "v1beta2", "sparkapplications");
	const struct ks_resource *pods = ks_resource_find("", "v1", "pods");
	json_t *spec = json_object_get(app, "spec"), *status = json_object_get(app, "status");
	const char *state = jstr(json_object_get(json_object_get(status, "applicationState"), "state"));
	char driver_name[300], now[32], app_id[64] = "spark-";
	json_t *driver, *copy;
	const char *want = NULL, *error = NULL, *submitted, *uid = jstr(json_object_get(meta_of(app), "uid"));

	if (json_object_get(meta_of(app), "deletionTimestamp"))
		return;
	/* spark-submit names the application "spark-" and 32 hex digits. */
	for (size_t i = 0, at = 6; uid[i] && at < 38; i++)
		if (uid[i] != '-')
			app_id[at++] = uid[i], app_id[at] = '\0';
	snprintf(driver_name, sizeof(driver_name), "%s-driver", ks_name(app));
	driver = ks_get(st, pods, ks_ns(app), driver_name);
	ks_now_rfc3339(now);
	if (!*state) {
		json_t *d = json_object_get(spec, "driver");
		char cores[24], mem[32];
		int64_t bytes = 1LL << 30;
		json_t *pod;

		snprintf(cores, sizeof(cores), "%lld",
			 json_is_integer(json_object_get(d, "cores")) ? (long long)json_integer_value(json_object_get(d, "cores")) : 1LL);
		if (json_is_string(json_object_get(d, "memory")))
			gw_spark_memory_parse(json_string_value(json_object_get(d, "memory")), &bytes);
		bytes += bytes / 10 > (384LL << 20) ? bytes / 10 : (384LL << 20);
		snprintf(mem, sizeof(mem), "%lldMi", (long long)(bytes >> 20));
		if (!driver) {
			json_t *labels = json_deep_copy(json_object_get(meta_of(app), "labels"));

			if (!labels)
				labels = json_object();
			json_object_set_new(labels, "spark-role", json_string("driver"));
			json_object_set_new(labels, "sparkoperator.k8s.io/app-name", json_string(ks_name(app)));
			json_object_set_new(labels, "spark-app-selector", json_string(app_id));
			pod = json_pack("{s:{s:s, s:s, s:o, s:[{s:s, s:s, s:s, s:s, s:b, s:b}]},"
					" s:{s:s, s:[{s:s, s:s, s:{s:{s:s, s:s}}}]}, s:{s:s}}",
					"metadata", "name", driver_name, "namespace", ks_ns(app), "labels", labels,
					"ownerReferences", "apiVersion", "sparkoperator.k8s.io/v1beta2",
					"kind", "SparkApplication", "name", ks_name(app),
					"uid", jstr(json_object_get(meta_of(app), "uid")), "controller", 1,
					"blockOwnerDeletion", 1,
					"spec", "restartPolicy", "Never", "containers", "name", "spark-kubernetes-driver",
					"image", json_is_string(json_object_get(spec, "image")) ? json_string_value(json_object_get(spec, "image")) : "apache/spark:3.5.1",
					"resources", "requests", "cpu", cores, "memory", mem,
					"status", "phase", "Pending");
			operator_driver_scheduling(spec, pod);
			if (ks_admit_priority(st, pod) < 0)
				json_object_set_new(json_object_get(pod, "spec"), "priority", json_integer(0));
			ks_insert(st, pods, pod);
			operator_ui_service(st, app, app_id);
		}
		want = "SUBMITTED";
	} else if (!driver) {
		if (strcmp(state, "COMPLETED") && strcmp(state, "FAILED")) {
			want = "FAILED";
			error = "driver pod not found";
		}
	} else {
		const char *phase = jstr(json_object_get(json_object_get(driver, "status"), "phase"));

		if (!strcmp(phase, "Running"))
			want = "RUNNING";
		else if (!strcmp(phase, "Succeeded"))
			want = "COMPLETED";
		else if (!strcmp(phase, "Failed")) {
			json_t *cs = json_array_get(json_object_get(json_object_get(driver, "status"), "containerStatuses"), 0);
			json_t *term = json_object_get(json_object_get(cs, "state"), "terminated");

			want = "FAILED";
			error = json_string_value(json_object_get(term, "reason"));
		}
	}
	if (!want || !strcmp(want, state))
		return;
	copy = json_deep_copy(app);
	/* The submission's time stays that of the submission; an execution
	 * attempt counts once the driver has run. */
	submitted = jstr(json_object_get(json_object_get(app, "status"), "lastSubmissionAttemptTime"));
	status = json_pack("{s:{s:s}, s:{s:s, s:s}, s:i, s:s, s:s}",
			   "applicationState", "state", want, "driverInfo", "podName", driver_name,
			   "webUIAddress", "10.0.0.1:4040", "submissionAttempts", 1,
			   "lastSubmissionAttemptTime", *submitted ? submitted : now, "sparkApplicationId", app_id);
	if (strcmp(want, "SUBMITTED"))
		json_object_set_new(status, "executionAttempts", json_integer(1));
	if (error)
		json_object_set_new(json_object_get(status, "applicationState"), "errorMessage",
				    json_string(error));
	if (!strcmp(want, "COMPLETED") || !strcmp(want, "FAILED"))
		json_object_set_new(status, "terminationTime", json_string(now));
	json_object_set_new(copy, "status", status);
	ks_update(st, apps, copy);
}

static void tick(struct ks_state *st)
{
	json_t *keys = json_array();
	int64_t now = gw_now_ms();
	const char *key;
	json_t *obj, *k, *v;
	size_t i;

	json_object_foreach(st->pods_touched, key, v)
		json_array_append_new(keys, json_string(key));
	json_object_clear(st->pods_touched);
	json_object_foreach(st->drivers_ending, key, v)
		if (json_integer_value(v) <= now)
			json_array_append_new(keys, json_string(key));
	if (st->opts->operator_mode)
		json_object_foreach(st->apps, key, obj)
			json_array_append_new(keys, json_string(key));
	json_array_foreach(keys, i, k) {
		const char *name = json_string_value(k);

		if (!(obj = json_object_get(st->objects, name)))
			continue;
		if (strncmp(name, "pods/", 5)) {
			json_incref(obj);
			step_app(st, obj);
			json_decref(obj);
			continue;
		}
		if (!pod_due(obj, now))
			continue;
		json_incref(obj);
		step_pod(st, name, obj);
		/* Unchanged and still waiting (for a node, its conf): again next tick. */
		if (json_object_get(st->pods, name) == obj && pod_due(obj, now))
			json_object_set_new(st->pods_touched, name, json_true());
		json_decref(obj);
	}
	json_decref(keys);
	ks_expire_events(st, now);
	if (st->gc_due) {
		st->gc_due = false;
		ks_collect_garbage(st);
	}
	if (st->opts->compact_every_s > 0) {
		now = gw_now_ms();
		if (st->compacted_at_ms == 0)
			st->compacted_at_ms = now;
		if (now - st->compacted_at_ms >= (int64_t)(st->opts->compact_every_s * 1000)) {
			/* Every event before now is gone: watches from before a
			 * resource's latest one must re-list. */
			json_object_update(st->compacted_of, st->last_rv_of);
			st->compacted_at_ms = now;
			pthread_cond_broadcast(&st->changed);
		}
	}
}

void *ks_sim_main(void *arg)
{
	struct ks_state *st = arg;
	struct timespec pause = {0, TICK_MS * 1000000L};

	pthread_mutex_lock(&st->lock);
	while (!st->stopping) {
		tick(st);
		pthread_mutex_unlock(&st->lock);
		nanosleep(&pause, NULL);
		pthread_mutex_lock(&st->lock);
	}
	pthread_mutex_unlock(&st->lock);
	return NULL;
}
