/* The Kubernetes objects for a job, named after its id so that a retried
 * dispatch meets the objects it made before (409 AlreadyExists) instead of
 * making new ones. Driver-pod mode follows what spark-submit --deploy-mode
 * cluster creates: the driver Pod, a headless Service for its ports and a
 * ConfigMap with spark.properties, the latter two owned by the Pod. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/quantity.h"
#include "dispatch/dispatch.h"
#include "dispatch/dispatch_int.h"

#define MIN_OVERHEAD (384LL << 20)

static const char *jstr_or(const json_t *v, const char *def)
{
	const char *s = json_string_value(v);

	return s ? s : def;
}

static long long jint_or(const json_t *v, long long def)
{
	return json_is_integer(v) ? (long long)json_integer_value(v) : def;
}

void dispatch_names(const char *job_id, struct dispatch_names *n)
{
	snprintf(n->driver_pod, sizeof(n->driver_pod), "%s-driver", job_id);
	snprintf(n->service, sizeof(n->service), "%s-driver-svc", job_id);
	snprintf(n->config_map, sizeof(n->config_map), "%s-driver-conf", job_id);
	snprintf(n->app, sizeof(n->app), "%s", job_id);
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

/* The Spark properties for driver-pod mode: defaults, then the user's
 * sparkConf, then what the gateway must decide (placement, names). */
static json_t *spark_properties(const struct store_job *job, const json_t *spec,
				const struct router_cluster *cluster, const char *ns,
				const struct dispatch_names *names)
{
	const json_t *driver = json_object_get(spec, "driver"), *exec = json_object_get(spec, "executor");
	json_t *conf = json_object(), *user = json_object_get(spec, "sparkConf");
	char buf[512];
	const char *key;
	json_t *v;

	json_object_set_new(conf, "spark.app.name", json_string(job->name));
	snprintf(buf, sizeof(buf), "%lld", jint_or(json_object_get(driver, "cores"), 1));
	json_object_set_new(conf, "spark.driver.cores", json_string(buf));
	json_object_set_new(conf, "spark.driver.memory", json_string(jstr_or(json_object_get(driver, "memory"), "1g")));
	snprintf(buf, sizeof(buf), "%lld", jint_or(json_object_get(exec, "instances"), 2));
	json_object_set_new(conf, "spark.executor.instances", json_string(buf));
	snprintf(buf, sizeof(buf), "%lld", jint_or(json_object_get(exec, "cores"), 1));
	json_object_set_new(conf, "spark.executor.cores", json_string(buf));
	json_object_set_new(conf, "spark.executor.memory", json_string(jstr_or(json_object_get(exec, "memory"), "1g")));
	json_object_foreach(user, key, v)
		json_object_set(conf, key, v);
	json_object_set_new(conf, "spark.master", json_string("k8s://https://kubernetes.default.svc"));
	json_object_set_new(conf, "spark.submit.deployMode", json_string("cluster"));
	json_object_set_new(conf, "spark.kubernetes.namespace", json_string(ns));
	json_object_set_new(conf, "spark.kubernetes.driver.pod.name", json_string(names->driver_pod));
	json_object_set_new(conf, "spark.kubernetes.executor.podNamePrefix", json_string(job->id));
	json_object_set_new(conf, "spark.kubernetes.container.image",
			    json_string(jstr_or(json_object_get(spec, "image"), cluster->image)));
	json_object_set_new(conf, "spark.kubernetes.authenticate.driver.serviceAccountName",
			    json_string(cluster->service_account));
	snprintf(buf, sizeof(buf), "%s.%s.svc", names->service, ns);
	json_object_set_new(conf, "spark.driver.host", json_string(buf));
	json_object_set_new(conf, "spark.driver.port", json_string("7078"));
	json_object_set_new(conf, "spark.driver.blockManager.port", json_string("7079"));
	json_object_set_new(conf, "spark.app.id", json_string(job->id));
	json_object_set_new(conf, "spark.kubernetes.executor.label." DISPATCH_JOB_LABEL, json_string(job->id));
	return conf;
}

/* key=value lines, escaped as java.util.Properties reads them. */
static char *properties_text(json_t *conf)
{
	struct gw_buf b;
	const char *key;
	json_t *v;

	gw_buf_init(&b, 4u << 20);
	json_object_foreach(conf, key, v) {
		const char *parts[2] = {key, json_string_value(v)};

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

static json_t *job_labels(const struct store_job *job)
{
	json_t *labels = json_loads(job->labels_json, 0, NULL);

	if (!json_is_object(labels)) {
		json_decref(labels);
		labels = json_object();
	}
	json_object_set_new(labels, DISPATCH_JOB_LABEL, json_string(job->id));
	return labels;
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

static json_t *driver_pod(const struct store_job *job, const json_t *spec,
			  const struct router_cluster *cluster, const char *ns,
			  const struct dispatch_names *names)
{
	const json_t *driver = json_object_get(spec, "driver");
	json_t *labels = job_labels(job), *args, *pod;
	size_t i;
	json_t *a;

	json_object_set_new(labels, "spark-role", json_string("driver"));
	json_object_set_new(labels, "spark-app-selector", json_string(job->id));
	json_object_set_new(labels, "spark-app-name", json_string(job->name));
	args = json_pack("[s, s, s]", "driver", "--properties-file", "/opt/spark/conf/spark.properties");
	if (json_is_string(json_object_get(spec, "mainClass"))) {
		json_array_append_new(args, json_string("--class"));
		json_array_append(args, json_object_get(spec, "mainClass"));
	}
	json_array_append(args, json_object_get(spec, "mainApplicationFile"));
	json_array_foreach(json_object_get(spec, "arguments"), i, a)
		json_array_append(args, a);
	pod = json_pack(
		"{s:s, s:s, s:{s:s, s:s, s:o, s:{s:s}},"
		" s:{s:s, s:s, s:[{s:s, s:s, s:s, s:o,"
		"   s:[{s:s, s:i, s:s}, {s:s, s:i, s:s}, {s:s, s:i, s:s}],"
		"   s:[{s:s, s:{s:{s:s, s:s}}}, {s:s, s:s}],"
		"   s:o, s:[{s:s, s:s}]}],"
		"  s:[{s:s, s:{s:s, s:[{s:s, s:s}]}}]}}",
		"apiVersion", "v1", "kind", "Pod",
		"metadata", "name", names->driver_pod, "namespace", ns, "labels", labels,
		"annotations", "sparkgw/job-name", job->name,
		"spec", "restartPolicy", "Never", "serviceAccountName", cluster->service_account,
		"containers", "name", "spark-kubernetes-driver",
		"image", jstr_or(json_object_get(spec, "image"), cluster->image),
		"imagePullPolicy", jstr_or(json_object_get(spec, "imagePullPolicy"), "IfNotPresent"),
		"args", args,
		"ports", "name", "driver-rpc-port", "containerPort", 7078, "protocol", "TCP",
		"name", "blockmanager", "containerPort", 7079, "protocol", "TCP",
		"name", "spark-ui", "containerPort", 4040, "protocol", "TCP",
		"env", "name", "SPARK_DRIVER_BIND_ADDRESS", "valueFrom", "fieldRef", "apiVersion", "v1",
		"fieldPath", "status.podIP", "name", "SPARK_CONF_DIR", "value", "/opt/spark/conf",
		"resources", resources(driver),
		"volumeMounts", "name", "spark-conf-volume-driver", "mountPath", "/opt/spark/conf",
		"volumes", "name", "spark-conf-volume-driver", "configMap", "name", names->config_map,
		"items", "key", "spark.properties", "path", "spark.properties");
	return pod;
}

/* An ownerReferences entry naming the driver pod; its uid comes later. */
static json_t *owned_by_driver(const struct dispatch_names *names)
{
	return json_pack("[{s:s, s:s, s:s, s:s, s:b}]", "apiVersion", "v1", "kind", "Pod",
			 "name", names->driver_pod, "uid", "", "controller", 1);
}

static json_t *driver_service(const struct store_job *job, const char *ns,
			      const struct dispatch_names *names)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}, s:o},"
			 " s:{s:s, s:{s:s, s:s}, s:[{s:s, s:i, s:i, s:s}, {s:s, s:i, s:i, s:s},"
			 " {s:s, s:i, s:i, s:s}]}}",
			 "apiVersion", "v1", "kind", "Service",
			 "metadata", "name", names->service, "namespace", ns,
			 "labels", DISPATCH_JOB_LABEL, job->id, "ownerReferences", owned_by_driver(names),
			 "spec", "clusterIP", "None", "selector", "spark-app-selector", job->id,
			 "spark-role", "driver",
			 "ports", "name", "driver-rpc-port", "port", 7078, "targetPort", 7078, "protocol", "TCP",
			 "name", "blockmanager", "port", 7079, "targetPort", 7079, "protocol", "TCP",
			 "name", "spark-ui", "port", 4040, "targetPort", 4040, "protocol", "TCP");
}

static json_t *driver_config_map(const struct store_job *job, const json_t *spec,
				 const struct router_cluster *cluster, const char *ns,
				 const struct dispatch_names *names)
{
	json_t *conf = spark_properties(job, spec, cluster, ns, names);
	char *text = properties_text(conf);
	json_t *cm = NULL;

	json_decref(conf);
	if (text)
		cm = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}, s:o}, s:{s:s}}",
			       "apiVersion", "v1", "kind", "ConfigMap",
			       "metadata", "name", names->config_map, "namespace", ns,
			       "labels", DISPATCH_JOB_LABEL, job->id, "ownerReferences", owned_by_driver(names),
			       "data", "spark.properties", text);
	free(text);
	return cm;
}

static json_t *spark_application(const struct store_job *job, json_t *spec,
				 const struct router_cluster *cluster, const char *ns,
				 const struct dispatch_names *names)
{
	json_t *app_spec = json_deep_copy(spec), *driver, *exec, *labels;

	if (!json_object_get(app_spec, "image"))
		json_object_set_new(app_spec, "image", json_string(cluster->image));
	json_object_set_new(app_spec, "mode", json_string("cluster"));
	if (!json_object_get(app_spec, "restartPolicy"))
		json_object_set_new(app_spec, "restartPolicy", json_pack("{s:s}", "type", "Never"));
	driver = json_object_get(app_spec, "driver");
	if (!driver)
		json_object_set_new(app_spec, "driver", driver = json_pack("{s:i, s:s}", "cores", 1, "memory", "1g"));
	exec = json_object_get(app_spec, "executor");
	if (!exec)
		json_object_set_new(app_spec, "executor",
				    exec = json_pack("{s:i, s:i, s:s}", "instances", 2, "cores", 1, "memory", "1g"));
	json_object_set_new(driver, "serviceAccount", json_string(cluster->service_account));
	labels = json_object_get(driver, "labels");
	if (!labels)
		json_object_set_new(driver, "labels", labels = json_object());
	json_object_set_new(labels, DISPATCH_JOB_LABEL, json_string(job->id));
	labels = json_object_get(exec, "labels");
	if (!labels)
		json_object_set_new(exec, "labels", labels = json_object());
	json_object_set_new(labels, DISPATCH_JOB_LABEL, json_string(job->id));
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:o, s:{s:s}}, s:o}",
			 "apiVersion", "sparkoperator.k8s.io/v1beta2", "kind", "SparkApplication",
			 "metadata", "name", names->app, "namespace", ns, "labels", job_labels(job),
			 "annotations", "sparkgw/job-name", job->name, "spec", app_spec);
}

json_t *dispatch_manifests(const struct store_job *job,
			   const struct router_cluster *cluster,
			   const char *namespace, char *err)
{
	struct dispatch_names names;
	json_t *spec = json_loads(job->spec_json, 0, NULL), *out = NULL;

	if (!json_is_object(spec)) {
		gw_seterr(err, "job %s has no readable spec", job->id);
		goto done;
	}
	dispatch_names(job->id, &names);
	if (cluster->mode == ROUTER_SPARK_OPERATOR)
		out = json_pack("[o]", spark_application(job, spec, cluster, namespace, &names));
	else
		out = json_pack("[o, o, o]", driver_pod(job, spec, cluster, namespace, &names),
				driver_service(job, namespace, &names),
				driver_config_map(job, spec, cluster, namespace, &names));
	if (!out)
		gw_seterr(err, "cannot build the manifests of job %s", job->id);
done:
	json_decref(spec);
	return out;
}
