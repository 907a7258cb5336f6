/* The Kubernetes objects for a placed job, named after its id so that a
 * retried dispatch meets the objects it made before (409 AlreadyExists)
 * instead of making new ones. Driver-pod mode follows what spark-submit
 * --deploy-mode cluster creates: the driver Pod, a headless Service for its
 * ports and a ConfigMap with spark.properties and the executor pod template
 * (node role, priority class), the latter two owned by the Pod. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/quantity.h"
#include "dispatch/dispatch.h"
#include "dispatch/dispatch_int.h"

#define MIN_OVERHEAD (384LL << 20)
#define CONF_DIR "/opt/spark/conf"
#define EXECUTOR_TEMPLATE "executor-pod-template.yaml"
#define SQL_CLI_CLASS "org.apache.spark.sql.hive.thriftserver.SparkSQLCLIDriver"

static const char *jstr_or(const json_t *v, const char *def)
{
	const char *s = json_string_value(v);

	return s ? s : def;
}

static long long jint_or(const json_t *v, long long def)
{
	return json_is_integer(v) ? (long long)json_integer_value(v) : def;
}

void dispatch_names(const struct store_job *job, struct dispatch_names *n)
{
	int run = job->run > 1 ? job->run : 1;

	if (run > 1)
		snprintf(n->app, sizeof(n->app), "%s-r%d", job->id, run);
	else
		snprintf(n->app, sizeof(n->app), "%s", job->id);
	snprintf(n->driver_pod, sizeof(n->driver_pod), "%s-driver", n->app);
	snprintf(n->service, sizeof(n->service), "%s-driver-svc", n->app);
	snprintf(n->config_map, sizeof(n->config_map), "%s-driver-conf", n->app);
	snprintf(n->run, sizeof(n->run), "%d", run);
}

/* The image: the job's, the pool's for its Spark version ("3.5.1" looks up
 * "3.5.1", then "3.5"), or the cluster's. */
static const char *image_for(const json_t *spec, const struct router_decision *d)
{
	const char *version = jstr_or(json_object_get(spec, "sparkVersion"), "");
	const char *img = json_string_value(json_object_get(spec, "image"));
	char prefix[32];
	const char *dot;

	if (img)
		return img;
	if ((img = json_string_value(json_object_get(d->pool->images, version))))
		return img;
	dot = strchr(version, '.');
	dot = dot ? strchr(dot + 1, '.') : NULL;
	if (dot) {
		snprintf(prefix, sizeof(prefix), "%.*s", (int)(dot - version), version);
		if ((img = json_string_value(json_object_get(d->pool->images, prefix))))
			return img;
	}
	return d->cluster->image;
}

static const char *service_account(const struct router_decision *d)
{
	return d->ns->service_account ? d->ns->service_account : d->cluster->service_account;
}

json_t *dispatch_final_conf(const struct store_job *job, const struct router_decision *d)
{
	json_t *spec = json_loads(job->spec_json, 0, NULL);
	json_t *conf = json_deep_copy(d->conf);
	struct dispatch_names names;
	char host[300];

	dispatch_names(job, &names);
	snprintf(host, sizeof(host), "%s.%s.svc", names.service, d->ns->name);
	/* What the gateway decides; no layer may change it. */
	const char *fixed[][2] = {
		{"spark.app.name", job->name},
		{"spark.app.id", job->id},
		{"spark.master", "k8s://https://kubernetes.default.svc"},
		{"spark.submit.deployMode", "cluster"},
		{"spark.kubernetes.namespace", d->ns->name},
		{"spark.kubernetes.driver.pod.name", names.driver_pod},
		{"spark.kubernetes.executor.podNamePrefix", names.app},
		{"spark.kubernetes.container.image", image_for(spec, d)},
		{"spark.kubernetes.authenticate.driver.serviceAccountName", service_account(d)},
		{"spark.driver.host", host},
		{"spark.driver.port", "7078"},
		{"spark.driver.blockManager.port", "7079"},
		{"spark.kubernetes.executor.label." DISPATCH_JOB_LABEL, job->id},
		{"spark.kubernetes.executor.label." DISPATCH_RUN_LABEL, names.run},
		{d->cluster->mode == ROUTER_DRIVER_POD ? "spark.kubernetes.executor.podTemplateFile" : NULL,
		 CONF_DIR "/" EXECUTOR_TEMPLATE},
	};

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (fixed[i][0])
			json_object_set_new(conf, fixed[i][0], json_pack("{s:s, s:s}", "value", fixed[i][1],
									 "source", "gateway"));
	if (router_batch_scheduler(d))
		json_object_set_new(conf, "spark.kubernetes.scheduler.name",
				    json_pack("{s:s, s:s}", "value", router_batch_scheduler(d)->name, "source", "gateway"));
	/* Executors' GPUs as Spark asks them of Kubernetes: an amount of the
	 * vendor's resource (vendor/gpu), which the spec names. */
	{
		const json_t *gpu = json_object_get(json_object_get(spec, "executor"), "gpu");
		const char *resource = jstr_or(json_object_get(gpu, "name"), "nvidia.com/gpu");
		const char *slash = strrchr(resource, '/');
		char amount[24], vendor[200];

		if (json_is_object(gpu) && slash && !strcmp(slash, "/gpu")) {
			snprintf(amount, sizeof(amount), "%lld", jint_or(json_object_get(gpu, "quantity"), 1));
			snprintf(vendor, sizeof(vendor), "%.*s", (int)(slash - resource), resource);
			json_object_set_new(conf, "spark.executor.resource.gpu.amount",
					    json_pack("{s:s, s:s}", "value", amount, "source", "gateway"));
			json_object_set_new(conf, "spark.executor.resource.gpu.vendor",
					    json_pack("{s:s, s:s}", "value", vendor, "source", "gateway"));
		}
	}
	json_decref(spec);
	return conf;
}

json_t *dispatch_placement_json(const struct store_job *job, const struct router_decision *d, const char *server)
{
	json_t *p = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:O, s:o}", "pool", d->pool->name,
			      "namespaceGroup", d->group->name, "cluster", d->cluster->name,
			      "namespace", d->ns->name, "execution", d->shared ? "shared" : "dedicated",
			      "executionReason", d->execution, "reasons", d->reasons, "conf", dispatch_final_conf(job, d));

	if (d->role && !d->shared)
		json_object_set_new(p, "nodeRole", json_string(d->role->name));
	if (server)
		json_object_set_new(p, "sharedServer", json_string(server));
	return p;
}

/* Memory a pod requests: the JVM heap plus overhead, as Spark computes it
 * (memoryOverhead, or max(10%, 384 MiB)), in MiB. */
static long long pod_memory_mib(const json_t *pod_spec)
{
	int64_t heap = 1LL << 30, overhead = 0;

	gw_spark_memory_parse(jstr_or(json_object_get(pod_spec, "memory"), "1g"), &heap);
	if (!json_is_string(json_object_get(pod_spec, "memoryOverhead")) ||
	    gw_spark_memory_parse(json_string_value(json_object_get(pod_spec, "memoryOverhead")), &overhead))
		overhead = heap / 10 > MIN_OVERHEAD ? heap / 10 : MIN_OVERHEAD;
	return (long long)((heap + overhead) >> 20);
}

/* key=value lines, escaped as java.util.Properties reads them. */
static char *properties_text(json_t *conf)
{
	struct gw_buf b;
	const char *key;
	json_t *v;

	gw_buf_init(&b, 4u << 20);
	json_object_foreach(conf, key, v) {
		const char *parts[2] = {key, json_string_value(json_object_get(v, "value"))};

		for (int p = 0; p < 2; p++) {
			for (const char *c = parts[p] ? parts[p] : ""; *c; c++) {
				const char *esc = *c == '\\' ? "\\\\" : *c == '\n' ? "\\n" :
						  (*c == '=' || *c == ':') && p == 0 ? (*c == '=' ? "\\=" : "\\:") : NULL;

				if (gw_buf_append(&b, esc ? esc : c, esc ? 2 : 1) != GW_OK)
					goto fail;
			}
			if (gw_buf_append(&b, p == 0 ? "=" : "\n", 1) != GW_OK)
				goto fail;
		}
	}
	return b.data ? b.data : strdup("");
fail:
	gw_buf_release(&b);
	return NULL;
}

static json_t *conf_values(json_t *conf)
{
	json_t *out = json_object();
	const char *key;
	json_t *v;

	json_object_foreach(conf, key, v)
		json_object_set(out, key, json_object_get(v, "value"));
	return out;
}

static void set_run_label(json_t *labels, const struct store_job *job)
{
	char run[16];

	snprintf(run, sizeof(run), "%d", job->run > 1 ? job->run : 1);
	json_object_set_new(labels, DISPATCH_RUN_LABEL, json_string(run));
}

static json_t *job_labels(const struct store_job *job)
{
	json_t *labels = json_loads(job->labels_json, 0, NULL);

	if (!json_is_object(labels)) {
		json_decref(labels);
		labels = json_object();
	}
	json_object_set_new(labels, DISPATCH_JOB_LABEL, json_string(job->id));
	set_run_label(labels, job);
	return labels;
}

static json_t *annotations(const struct store_job *job, const struct router_decision *d)
{
	json_t *a = json_deep_copy(d->cluster->annotations);

	json_object_set_new(a, "sparkgw/job-name", json_string(job->name));
	return a;
}

static json_t *resources(const json_t *pod_spec)
{
	long long mem = pod_memory_mib(pod_spec);
	char cpu[32], memq[32];
	const json_t *gpu = json_object_get(pod_spec, "gpu");
	json_t *res;

	snprintf(cpu, sizeof(cpu), "%s", jstr_or(json_object_get(pod_spec, "coreRequest"), ""));
	if (!*cpu)
		snprintf(cpu, sizeof(cpu), "%lld", jint_or(json_object_get(pod_spec, "cores"), 1));
	snprintf(memq, sizeof(memq), "%lldMi", mem);
	res = json_pack("{s:{s:s, s:s}, s:{s:s}}", "requests", "cpu", cpu, "memory", memq,
			"limits", "memory", memq);
	if (json_is_string(json_object_get(pod_spec, "coreLimit")))
		json_object_set(json_object_get(res, "limits"), "cpu", json_object_get(pod_spec, "coreLimit"));
	if (json_is_object(gpu)) {
		char n[24];

		snprintf(n, sizeof(n), "%lld", jint_or(json_object_get(gpu, "quantity"), 1));
		json_object_set_new(json_object_get(res, "limits"),
				    jstr_or(json_object_get(gpu, "name"), "nvidia.com/gpu"), json_string(n));
	}
	return res;
}

/* An ownerReferences entry naming the driver pod; its uid comes later. */
static json_t *owned_by_driver(const struct dispatch_names *names)
{
	return json_pack("[{s:s, s:s, s:s, s:s, s:b}]", "apiVersion", "v1", "kind", "Pod",
			 "name", names->driver_pod, "uid", "", "controller", 1);
}

static void pod_group_name(const struct dispatch_names *names, char *out, size_t len)
{
	snprintf(out, len, "%s-podgroup", names->app);
}

/* YuniKorn's gang: the driver, then every executor the job asks for,
 * each group with one member's resources. */
static json_t *task_groups(const json_t *spec, const struct router_decision *d)
{
	json_t *driver = resources(json_object_get(spec, "driver"));
	json_t *executor = resources(json_object_get(spec, "executor"));
	json_t *groups = json_pack("[{s:s, s:i, s:O}, {s:s, s:i, s:O}]", "name", "spark-driver", "minMember", 1,
				   "minResource", json_object_get(driver, "requests"), "name", "spark-executor",
				   "minMember", d->demand.pods > 1 ? (int)d->demand.pods - 1 : 0, "minResource",
				   json_object_get(executor, "requests"));
	char *text = json_dumps(groups, JSON_COMPACT);
	json_t *out = json_string(text ? text : "[]");

	free(text);
	json_decref(groups);
	json_decref(driver);
	json_decref(executor);
	return out;
}

/* A pod, or the executors' template, for the cluster's batch scheduler:
 * its schedulerName and the scheduler's gang metadata (Volcano's pod
 * group annotation; YuniKorn's application id, queue label and task
 * groups, as Spark's guide to YuniKorn sets them). */
static void batch_scheduling(json_t *pod, const struct store_job *job, const json_t *spec,
			     const struct router_decision *d, const struct dispatch_names *names, const char *task)
{
	const struct router_batch_scheduler *b = router_batch_scheduler(d);
	json_t *meta = json_object_get(pod, "metadata"), *ann, *labels;
	char group[STORE_ID_LEN + 48];

	if (!b)
		return;
	json_object_set_new(json_object_get(pod, "spec"), "schedulerName", json_string(b->name));
	if (!(ann = json_object_get(meta, "annotations")))
		json_object_set_new(meta, "annotations", ann = json_object());
	if (!(labels = json_object_get(meta, "labels")))
		json_object_set_new(meta, "labels", labels = json_object());
	if (!strcmp(b->name, "volcano")) {
		pod_group_name(names, group, sizeof(group));
		json_object_set_new(ann, "scheduling.k8s.io/group-name", json_string(group));
	} else if (!strcmp(b->name, "yunikorn")) {
		json_object_set_new(ann, "yunikorn.apache.org/app-id", json_string(job->id));
		json_object_set_new(ann, "yunikorn.apache.org/task-group-name", json_string(task));
		if (b->queue)
			json_object_set_new(labels, "queue", json_string(b->queue));
		if (!strcmp(task, "spark-driver"))
			json_object_set_new(ann, "yunikorn.apache.org/task-groups", task_groups(spec, d));
	}
}

/* Volcano's PodGroup for a driver-pod job, as Spark's guide to Volcano
 * writes it: one member (the driver; Spark asks for executors once the
 * driver runs, so a larger minMember could never be met) and the whole
 * job's resources as minResources, so that Volcano admits the driver only
 * when the driver and every executor fit. Owned by the driver, as the
 * job's other objects. */
static json_t *pod_group(const struct store_job *job, const struct router_decision *d,
			 const struct dispatch_names *names)
{
	const struct router_batch_scheduler *b = router_batch_scheduler(d);
	char group[STORE_ID_LEN + 48], cpu[32], memory[32];
	json_t *pg, *min;

	pod_group_name(names, group, sizeof(group));
	snprintf(cpu, sizeof(cpu), "%g", d->demand.cores);
	snprintf(memory, sizeof(memory), "%lldMi", (long long)((d->demand.memory + (1 << 20) - 1) >> 20));
	pg = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}, s:o}, s:{s:i, s:{s:s, s:s}, s:s}}", "apiVersion",
		       "scheduling.volcano.sh/v1beta1", "kind", "PodGroup", "metadata", "name", group, "namespace",
		       d->ns->name, "labels", DISPATCH_JOB_LABEL, job->id, "ownerReferences", owned_by_driver(names),
		       "spec", "minMember", 1, "minResources", "cpu", cpu, "memory", memory,
		       "priorityClassName", d->pool->driver_priority_class);
	min = json_object_get(json_object_get(pg, "spec"), "minResources");
	if (d->demand.gpus > 0) {
		char gpus[16];

		snprintf(gpus, sizeof(gpus), "%d", d->demand.gpus);
		json_object_set_new(min, "nvidia.com/gpu", json_string(gpus));
	}
	if (b && b->queue)
		json_object_set_new(json_object_get(pg, "spec"), "queue", json_string(b->queue));
	return pg;
}

/* A SQL job runs Spark's SQL CLI in the driver pod (client mode there, so
 * spark-submit accepts it) on its statements or its file of them. */
static bool sql_entry(const json_t *spec, json_t *args)
{
	const char *sql = json_string_value(json_object_get(spec, "sql"));

	if (!router_is_sql(spec))
		return false;
	json_array_append_new(args, json_string("--class"));
	json_array_append_new(args, json_string(SQL_CLI_CLASS));
	json_array_append_new(args, json_string("spark-internal"));
	json_array_append_new(args, json_string(sql ? "-e" : "-f"));
	json_array_append_new(args, json_string(sql ? sql : json_string_value(json_object_get(spec, "mainApplicationFile"))));
	return true;
}

static json_t *driver_pod(const struct store_job *job, const json_t *spec,
			  const struct router_decision *d, const struct dispatch_names *names)
{
	const json_t *driver = json_object_get(spec, "driver");
	json_t *labels = job_labels(job), *args, *pod;
	size_t i;
	json_t *a;

	json_object_set_new(labels, "spark-role", json_string("driver"));
	json_object_set_new(labels, "spark-app-selector", json_string(job->id));
	json_object_set_new(labels, "spark-app-name", json_string(job->name));
	args = json_pack("[s, s, s]", "driver", "--properties-file", CONF_DIR "/spark.properties");
	if (!sql_entry(spec, args)) {
		if (json_is_string(json_object_get(spec, "mainClass"))) {
			json_array_append_new(args, json_string("--class"));
			json_array_append(args, json_object_get(spec, "mainClass"));
		}
		json_array_append(args, json_object_get(spec, "mainApplicationFile"));
	}
	json_array_foreach(json_object_get(spec, "arguments"), i, a)
		json_array_append(args, a);
	pod = json_pack(
		"{s:s, s:s, s:{s:s, s:s, s:o, s:o},"
		" s:{s:s, s:s, s:s, s:O, s:O, s:[{s:s, s:s, s:s, s:o,"
		"   s:[{s:s, s:i, s:s}, {s:s, s:i, s:s}, {s:s, s:i, s:s}],"
		"   s:[{s:s, s:{s:{s:s, s:s}}}, {s:s, s:s}],"
		"   s:o, s:[{s:s, s:s}]}],"
		"  s:[{s:s, s:{s:s, s:[{s:s, s:s}, {s:s, s:s}]}}]}}",
		"apiVersion", "v1", "kind", "Pod",
		"metadata", "name", names->driver_pod, "namespace", d->ns->name, "labels", labels,
		"annotations", annotations(job, d),
		"spec", "restartPolicy", "Never", "serviceAccountName", service_account(d),
		"priorityClassName", d->pool->driver_priority_class,
		"nodeSelector", d->role->node_selector, "tolerations", d->role->tolerations,
		"containers", "name", "spark-kubernetes-driver", "image", image_for(spec, d),
		"imagePullPolicy", jstr_or(json_object_get(spec, "imagePullPolicy"), "IfNotPresent"),
		"args", args,
		"ports", "name", "driver-rpc-port", "containerPort", 7078, "protocol", "TCP",
		"name", "blockmanager", "containerPort", 7079, "protocol", "TCP",
		"name", "spark-ui", "containerPort", DISPATCH_UI_PORT, "protocol", "TCP",
		"env", "name", "SPARK_DRIVER_BIND_ADDRESS", "valueFrom", "fieldRef", "apiVersion", "v1",
		"fieldPath", "status.podIP", "name", "SPARK_CONF_DIR", "value", CONF_DIR,
		"resources", resources(driver),
		"volumeMounts", "name", "spark-conf-volume-driver", "mountPath", CONF_DIR,
		"volumes", "name", "spark-conf-volume-driver", "configMap", "name", names->config_map,
		"items", "key", "spark.properties", "path", "spark.properties",
		"key", EXECUTOR_TEMPLATE, "path", EXECUTOR_TEMPLATE);
	json_array_extend(json_object_get(json_object_get(pod, "spec"), "containers"), d->cluster->sidecars);
	batch_scheduling(pod, job, spec, d, names, "spark-driver");
	return pod;
}

static json_t *driver_service(const struct store_job *job, const struct router_decision *d,
			      const struct dispatch_names *names)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}, s:o},"
			 " s:{s:s, s:{s:s, s:s}, s:[{s:s, s:i, s:i, s:s}, {s:s, s:i, s:i, s:s},"
			 " {s:s, s:i, s:i, s:s}]}}",
			 "apiVersion", "v1", "kind", "Service",
			 "metadata", "name", names->service, "namespace", d->ns->name,
			 "labels", DISPATCH_JOB_LABEL, job->id, "ownerReferences", owned_by_driver(names),
			 "spec", "clusterIP", "None", "selector", "spark-app-selector", job->id,
			 "spark-role", "driver",
			 "ports", "name", "driver-rpc-port", "port", 7078, "targetPort", 7078, "protocol", "TCP",
			 "name", "blockmanager", "port", 7079, "targetPort", 7079, "protocol", "TCP",
			 "name", "spark-ui", "port", DISPATCH_UI_PORT, "targetPort", DISPATCH_UI_PORT, "protocol", "TCP");
}

/* Spark reads executor scheduling from a pod template file: the node role
 * and the lower priority class, so that executors are preempted first. */
static char *executor_template(const struct store_job *job, const json_t *spec, const struct router_decision *d,
			       const struct dispatch_names *names)
{
	/* The first container is Spark's; sidecars follow it. */
	json_t *tpl = json_pack("{s:s, s:s, s:{s:o}, s:{s:s, s:O, s:O, s:[{s:s}]}}", "apiVersion", "v1",
				"kind", "Pod", "metadata", "annotations", annotations(job, d),
				"spec", "priorityClassName", d->pool->executor_priority_class,
				"nodeSelector", d->role->node_selector, "tolerations", d->role->tolerations,
				"containers", "name", "spark-kubernetes-executor");
	char *text;

	json_array_extend(json_object_get(json_object_get(tpl, "spec"), "containers"), d->cluster->sidecars);
	batch_scheduling(tpl, job, spec, d, names, "spark-executor");
	text = json_dumps(tpl, JSON_INDENT(2) | JSON_SORT_KEYS); /* JSON is YAML */

	json_decref(tpl);
	return text;
}

static json_t *driver_config_map(const struct store_job *job, const json_t *spec, const struct router_decision *d,
				 const struct dispatch_names *names)
{
	json_t *conf = dispatch_final_conf(job, d);
	char *props = properties_text(conf), *tpl = executor_template(job, spec, d, names);
	json_t *cm = NULL;

	json_decref(conf);
	if (props && tpl)
		cm = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}, s:o}, s:{s:s, s:s}}",
			       "apiVersion", "v1", "kind", "ConfigMap",
			       "metadata", "name", names->config_map, "namespace", d->ns->name,
			       "labels", DISPATCH_JOB_LABEL, job->id, "ownerReferences", owned_by_driver(names),
			       "data", "spark.properties", props, EXECUTOR_TEMPLATE, tpl);
	free(props);
	free(tpl);
	return cm;
}

static void schedule_pod(json_t *pod, const struct store_job *job, const struct router_decision *d,
			 const char *priority)
{
	json_t *labels = json_object_get(pod, "labels");
	json_t *ann = annotations(job, d);

	if (!labels)
		json_object_set_new(pod, "labels", labels = json_object());
	json_object_set_new(labels, DISPATCH_JOB_LABEL, json_string(job->id));
	set_run_label(labels, job);
	json_object_update(ann, json_object_get(pod, "annotations"));
	json_object_set_new(pod, "annotations", ann);
	json_object_set_new(pod, "priorityClassName", json_string(priority));
	if (json_object_size(d->role->node_selector))
		json_object_set(pod, "nodeSelector", d->role->node_selector);
	if (json_array_size(d->role->tolerations))
		json_object_set(pod, "tolerations", d->role->tolerations);
	if (json_array_size(d->cluster->sidecars))
		json_object_set_new(pod, "sidecars", json_deep_copy(d->cluster->sidecars));
}

static json_t *spark_application(const struct store_job *job, json_t *spec,
				 const struct router_decision *d, const struct dispatch_names *names)
{
	json_t *app_spec = json_deep_copy(spec), *driver, *exec, *conf = dispatch_final_conf(job, d);

	json_object_set_new(app_spec, "image", json_string(image_for(spec, d)));
	json_object_set_new(app_spec, "mode", json_string("cluster"));
	json_object_set_new(app_spec, "sparkConf", conf_values(conf));
	json_decref(conf);
	/* The gateway runs restarts and cleanup itself, the same in both
	 * modes, so that every run shows in the job's events and goes
	 * through the scheduler again. */
	json_object_set_new(app_spec, "restartPolicy", json_pack("{s:s}", "type", "Never"));
	json_object_del(app_spec, "timeToLiveSeconds");
	driver = json_object_get(app_spec, "driver");
	if (!driver)
		json_object_set_new(app_spec, "driver", driver = json_pack("{s:i, s:s}", "cores", 1, "memory", "1g"));
	exec = json_object_get(app_spec, "executor");
	if (!exec)
		json_object_set_new(app_spec, "executor",
				    exec = json_pack("{s:i, s:i, s:s}", "instances", 2, "cores", 1, "memory", "1g"));
	json_object_set_new(driver, "serviceAccount", json_string(service_account(d)));
	schedule_pod(driver, job, d, d->pool->driver_priority_class);
	schedule_pod(exec, job, d, d->pool->executor_priority_class);
	/* The operator makes the batch scheduler's objects itself. */
	if (router_batch_scheduler(d)) {
		const struct router_batch_scheduler *b = router_batch_scheduler(d);
		json_t *options = json_pack("{s:s}", "priorityClassName", d->pool->driver_priority_class);

		if (b->queue)
			json_object_set_new(options, "queue", json_string(b->queue));
		json_object_set_new(app_spec, "batchScheduler", json_string(b->name));
		json_object_set_new(app_spec, "batchSchedulerOptions", options);
	}
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:o, s:o}, s:o}",
			 "apiVersion", "sparkoperator.k8s.io/v1beta2", "kind", "SparkApplication",
			 "metadata", "name", names->app, "namespace", d->ns->name, "labels", job_labels(job),
			 "annotations", annotations(job, d), "spec", app_spec);
}

json_t *dispatch_manifests(const struct store_job *job, const struct router_decision *d,
			   char *err)
{
	struct dispatch_names names;
	json_t *spec = json_loads(job->spec_json, 0, NULL), *out = NULL;

	if (!json_is_object(spec)) {
		gw_seterr(err, "job %s has no readable spec", job->id);
		goto done;
	}
	dispatch_names(job, &names);
	if (d->cluster->mode == ROUTER_SPARK_OPERATOR)
		out = json_pack("[o]", spark_application(job, spec, d, &names));
	else {
		const struct router_batch_scheduler *b = router_batch_scheduler(d);

		out = json_pack("[o, o, o]", driver_pod(job, spec, d, &names), driver_service(job, d, &names),
				driver_config_map(job, spec, d, &names));
		if (out && b && !strcmp(b->name, "volcano"))
			json_array_append_new(out, pod_group(job, d, &names));
	}
	if (!out)
		gw_seterr(err, "cannot build the manifests of job %s", job->id);
done:
	json_decref(spec);
	return out;
}
