/* kubectl's server-side printing (Accept: application/json;as=Table;
 * v=v1;g=meta.k8s.io): each kind's columns as the API server's printers
 * give them (priority 1 columns show with -o wide), custom resources'
 * from their CRD's additionalPrinterColumns, and Name and Age for kinds
 * without a printer. */
#include <stdio.h>
#include <string.h>

#include "common/timeutil.h"
#include "contrib/kubesim/kubesim.h"

struct column {
	const char *name, *type, *format;
	int priority;
};

/* The cells of one row; out gets one value per column. */
typedef void (*row_fn)(const json_t *obj, json_t *out);

static const char *str(const json_t *v, const char *path)
{
	char key[64];

	while (v && path) {
		const char *dot = strchr(path, '.');
		size_t len = dot ? (size_t)(dot - path) : strlen(path);

		snprintf(key, sizeof(key), "%.*s", (int)len, path);
		v = json_object_get(v, key);
		path = dot ? dot + 1 : NULL;
	}
	return json_string_value(v);
}

static const char *or_none(const char *s)
{
	return s && *s ? s : "<none>";
}

/* kubectl's short durations: 45s, 3m12s, 5h, 2d3h, … */
static void duration_text(int64_t secs, char *out, size_t len)
{
	if (secs < 0)
		secs = 0;
	if (secs < 120)
		snprintf(out, len, "%llds", (long long)secs);
	else if (secs < 600)
		snprintf(out, len, "%lldm%llds", (long long)secs / 60, (long long)secs % 60);
	else if (secs < 3 * 3600)
		snprintf(out, len, "%lldm", (long long)secs / 60);
	else if (secs < 8 * 3600)
		snprintf(out, len, "%lldh%lldm", (long long)secs / 3600, (long long)secs % 3600 / 60);
	else if (secs < 48 * 3600)
		snprintf(out, len, "%lldh", (long long)secs / 3600);
	else
		snprintf(out, len, "%lldd", (long long)secs / 86400);
}

static json_t *age_of(const char *timestamp)
{
	int64_t at = 0;
	char text[32];

	if (!timestamp || gw_time_parse(timestamp, &at))
		return json_string("<unknown>");
	duration_text((gw_now_ms() - at) / 1000, text, sizeof(text));
	return json_string(text);
}

static json_t *age(const json_t *obj)
{
	return age_of(str(obj, "metadata.creationTimestamp"));
}

static void name_age_row(const json_t *obj, json_t *out)
{
	json_array_append_new(out, json_string(str(obj, "metadata.name")));
	json_array_append_new(out, age(obj));
}

static const struct column name_age_columns[] = {
	{"Name", "string", "name", 0}, {"Age", "date", "", 0}, {NULL, NULL, NULL, 0}};

/* STATUS as kubectl shows it: Terminating, a container's waiting or
 * terminated reason, or the phase. */
static const char *pod_status(const json_t *pod)
{
	const json_t *cs = json_array_get(json_object_get(json_object_get(pod, "status"), "containerStatuses"), 0);
	const char *r;

	if (json_object_get(json_object_get(pod, "metadata"), "deletionTimestamp"))
		return "Terminating";
	if ((r = str(cs, "state.waiting.reason")) || (r = str(cs, "state.terminated.reason")))
		return r;
	return str(pod, "status.phase") ? str(pod, "status.phase") : "Unknown";
}

static void pod_row(const json_t *pod, json_t *out)
{
	json_t *statuses = json_object_get(json_object_get(pod, "status"), "containerStatuses"), *cs;
	size_t ready = 0, i;
	json_int_t restarts = 0;
	char readiness[32], restart_text[24];

	json_array_foreach(statuses, i, cs) {
		ready += json_is_true(json_object_get(cs, "ready"));
		restarts += json_integer_value(json_object_get(cs, "restartCount"));
	}
	snprintf(readiness, sizeof(readiness), "%zu/%zu", ready,
		 json_array_size(json_object_get(json_object_get(pod, "spec"), "containers")));
	json_array_append_new(out, json_string(str(pod, "metadata.name")));
	json_array_append_new(out, json_string(readiness));
	json_array_append_new(out, json_string(pod_status(pod)));
	snprintf(restart_text, sizeof(restart_text), "%lld", (long long)restarts);
	json_array_append_new(out, json_string(restart_text));
	json_array_append_new(out, age(pod));
	json_array_append_new(out, json_string(or_none(str(pod, "status.podIP"))));
	json_array_append_new(out, json_string(or_none(str(pod, "spec.nodeName"))));
	json_array_append_new(out, json_string(or_none(str(pod, "status.nominatedNodeName"))));
	json_array_append_new(out, json_string("<none>"));
}

static const struct column pod_columns[] = {
	{"Name", "string", "name", 0}, {"Ready", "string", "", 0}, {"Status", "string", "", 0},
	{"Restarts", "string", "", 0}, {"Age", "string", "", 0}, {"IP", "string", "", 1},
	{"Node", "string", "", 1}, {"Nominated Node", "string", "", 1}, {"Readiness Gates", "string", "", 1},
	{NULL, NULL, NULL, 0}};

static void node_row(const json_t *node, json_t *out)
{
	json_t *conds = json_object_get(json_object_get(node, "status"), "conditions"), *c, *addrs, *labels, *v;
	const char *ready = "Unknown", *key, *internal = NULL, *external = NULL;
	char status[64], roles[256] = "";
	size_t i;

	json_array_foreach(conds, i, c)
		if (!strcmp(or_none(str(c, "type")), "Ready"))
			ready = !strcmp(or_none(str(c, "status")), "True") ? "Ready" : "NotReady";
	snprintf(status, sizeof(status), "%s%s", ready,
		 json_is_true(json_object_get(json_object_get(node, "spec"), "unschedulable")) ? ",SchedulingDisabled"
											: "");
	labels = json_object_get(json_object_get(node, "metadata"), "labels");
	json_object_foreach(labels, key, v)
		if (!strncmp(key, "node-role.kubernetes.io/", 24) && key[24]) {
			size_t at = strlen(roles);

			snprintf(roles + at, sizeof(roles) - at, "%s%s", at ? "," : "", key + 24);
		}
	addrs = json_object_get(json_object_get(node, "status"), "addresses");
	json_array_foreach(addrs, i, c) {
		if (!strcmp(or_none(str(c, "type")), "InternalIP") && !internal)
			internal = str(c, "address");
		if (!strcmp(or_none(str(c, "type")), "ExternalIP") && !external)
			external = str(c, "address");
	}
	json_array_append_new(out, json_string(str(node, "metadata.name")));
	json_array_append_new(out, json_string(status));
	json_array_append_new(out, json_string(or_none(roles)));
	json_array_append_new(out, age(node));
	json_array_append_new(out, json_string(or_none(str(node, "status.nodeInfo.kubeletVersion"))));
	json_array_append_new(out, json_string(or_none(internal)));
	json_array_append_new(out, json_string(or_none(external)));
	json_array_append_new(out, json_string(or_none(str(node, "status.nodeInfo.osImage"))));
	json_array_append_new(out, json_string(or_none(str(node, "status.nodeInfo.kernelVersion"))));
	json_array_append_new(out, json_string(or_none(str(node, "status.nodeInfo.containerRuntimeVersion"))));
}

static const struct column node_columns[] = {
	{"Name", "string", "name", 0}, {"Status", "string", "", 0}, {"Roles", "string", "", 0},
	{"Age", "string", "", 0}, {"Version", "string", "", 0}, {"Internal-IP", "string", "", 1},
	{"External-IP", "string", "", 1}, {"OS-Image", "string", "", 1}, {"Kernel-Version", "string", "", 1},
	{"Container-Runtime", "string", "", 1}, {NULL, NULL, NULL, 0}};

static void event_row(const json_t *ev, json_t *out)
{
	const char *last = str(ev, "lastTimestamp") ? str(ev, "lastTimestamp") : str(ev, "eventTime");
	const char *kind = or_none(str(ev, "involvedObject.kind"));
	char object[300], lower[64], source[300];
	size_t i;

	for (i = 0; kind[i] && i < sizeof(lower) - 1; i++)
		lower[i] = (char)(kind[i] >= 'A' && kind[i] <= 'Z' ? kind[i] - 'A' + 'a' : kind[i]);
	lower[i] = '\0';
	snprintf(object, sizeof(object), "%s/%s", lower, or_none(str(ev, "involvedObject.name")));
	snprintf(source, sizeof(source), "%s%s%s", or_none(str(ev, "source.component")),
		 str(ev, "source.host") ? ", " : "", str(ev, "source.host") ? str(ev, "source.host") : "");
	json_array_append_new(out, age_of(last));
	json_array_append_new(out, json_string(or_none(str(ev, "type"))));
	json_array_append_new(out, json_string(or_none(str(ev, "reason"))));
	json_array_append_new(out, json_string(object));
	json_array_append_new(out, json_string(str(ev, "involvedObject.fieldPath") ? str(ev, "involvedObject.fieldPath")
										  : ""));
	json_array_append_new(out, json_string(source));
	json_array_append_new(out, json_string(str(ev, "message") ? str(ev, "message") : ""));
	json_array_append_new(out, age_of(str(ev, "firstTimestamp")));
	json_array_append_new(out, json_integer(json_integer_value(json_object_get(ev, "count"))));
	json_array_append_new(out, json_string(str(ev, "metadata.name")));
}

static const struct column event_columns[] = {
	{"Last Seen", "string", "", 0}, {"Type", "string", "", 0}, {"Reason", "string", "", 0},
	{"Object", "string", "", 0}, {"Subobject", "string", "", 1}, {"Source", "string", "", 1},
	{"Message", "string", "", 0}, {"First Seen", "string", "", 1}, {"Count", "string", "", 1},
	{"Name", "string", "name", 1}, {NULL, NULL, NULL, 0}};

static void service_row(const json_t *svc, json_t *out)
{
	const json_t *spec = json_object_get(svc, "spec"), *p;
	json_t *sel, *v;
	const char *type = str(spec, "type") ? str(spec, "type") : "ClusterIP", *key;
	char ports[512] = "", selector[512] = "";
	size_t i;

	json_array_foreach(json_object_get(spec, "ports"), i, p) {
		size_t at = strlen(ports);
		json_int_t node_port = json_integer_value(json_object_get(p, "nodePort"));

		snprintf(ports + at, sizeof(ports) - at, "%s%lld", at ? "," : "",
			 (long long)json_integer_value(json_object_get(p, "port")));
		at = strlen(ports);
		if (node_port)
			snprintf(ports + at, sizeof(ports) - at, ":%lld", (long long)node_port);
		at = strlen(ports);
		snprintf(ports + at, sizeof(ports) - at, "/%s", str(p, "protocol") ? str(p, "protocol") : "TCP");
	}
	sel = json_object_get(spec, "selector");
	json_object_foreach(sel, key, v) {
		size_t at = strlen(selector);

		snprintf(selector + at, sizeof(selector) - at, "%s%s=%s", at ? "," : "", key, or_none(json_string_value(v)));
	}
	json_array_append_new(out, json_string(str(svc, "metadata.name")));
	json_array_append_new(out, json_string(type));
	json_array_append_new(out, json_string(or_none(str(spec, "clusterIP"))));
	json_array_append_new(out, json_string(or_none(NULL)));
	json_array_append_new(out, json_string(or_none(ports)));
	json_array_append_new(out, age(svc));
	json_array_append_new(out, json_string(or_none(selector)));
}

static const struct column service_columns[] = {
	{"Name", "string", "name", 0}, {"Type", "string", "", 0}, {"Cluster-IP", "string", "", 0},
	{"External-IP", "string", "", 0}, {"Port(s)", "string", "", 0}, {"Age", "string", "", 0},
	{"Selector", "string", "", 1}, {NULL, NULL, NULL, 0}};

static void namespace_row(const json_t *ns, json_t *out)
{
	json_array_append_new(out, json_string(str(ns, "metadata.name")));
	json_array_append_new(out, json_string(or_none(str(ns, "status.phase"))));
	json_array_append_new(out, age(ns));
}

static const struct column namespace_columns[] = {
	{"Name", "string", "name", 0}, {"Status", "string", "", 0}, {"Age", "string", "", 0}, {NULL, NULL, NULL, 0}};

static void configmap_row(const json_t *cm, json_t *out)
{
	json_array_append_new(out, json_string(str(cm, "metadata.name")));
	json_array_append_new(out, json_integer((json_int_t)(json_object_size(json_object_get(cm, "data")) +
							     json_object_size(json_object_get(cm, "binaryData")))));
	json_array_append_new(out, age(cm));
}

static const struct column configmap_columns[] = {
	{"Name", "string", "name", 0}, {"Data", "string", "", 0}, {"Age", "string", "", 0}, {NULL, NULL, NULL, 0}};

static void secret_row(const json_t *s, json_t *out)
{
	json_array_append_new(out, json_string(str(s, "metadata.name")));
	json_array_append_new(out, json_string(str(s, "type") ? str(s, "type") : "Opaque"));
	json_array_append_new(out, json_integer((json_int_t)json_object_size(json_object_get(s, "data"))));
	json_array_append_new(out, age(s));
}

static const struct column secret_columns[] = {
	{"Name", "string", "name", 0}, {"Type", "string", "", 0}, {"Data", "string", "", 0},
	{"Age", "string", "", 0}, {NULL, NULL, NULL, 0}};

static void deployment_row(const json_t *d, json_t *out)
{
	const json_t *status = json_object_get(d, "status");
	json_int_t want = json_object_get(json_object_get(d, "spec"), "replicas")
				  ? json_integer_value(json_object_get(json_object_get(d, "spec"), "replicas"))
				  : 1;
	json_t *containers = json_object_get(json_object_get(json_object_get(json_object_get(d, "spec"), "template"),
							     "spec"), "containers"), *c;
	char ready[48], names[512] = "", images[1024] = "";
	size_t i;

	snprintf(ready, sizeof(ready), "%lld/%lld", (long long)json_integer_value(json_object_get(status, "readyReplicas")),
		 (long long)want);
	json_array_foreach(containers, i, c) {
		size_t at = strlen(names), ai = strlen(images);

		snprintf(names + at, sizeof(names) - at, "%s%s", at ? "," : "", or_none(str(c, "name")));
		snprintf(images + ai, sizeof(images) - ai, "%s%s", ai ? "," : "", or_none(str(c, "image")));
	}
	json_array_append_new(out, json_string(str(d, "metadata.name")));
	json_array_append_new(out, json_string(ready));
	json_array_append_new(out, json_integer(json_integer_value(json_object_get(status, "updatedReplicas"))));
	json_array_append_new(out, json_integer(json_integer_value(json_object_get(status, "availableReplicas"))));
	json_array_append_new(out, age(d));
	json_array_append_new(out, json_string(names));
	json_array_append_new(out, json_string(images));
}

static const struct column deployment_columns[] = {
	{"Name", "string", "name", 0}, {"Ready", "string", "", 0}, {"Up-to-date", "string", "", 0},
	{"Available", "string", "", 0}, {"Age", "string", "", 0}, {"Containers", "string", "", 1},
	{"Images", "string", "", 1}, {NULL, NULL, NULL, 0}};

static void priority_class_row(const json_t *pc, json_t *out)
{
	json_array_append_new(out, json_string(str(pc, "metadata.name")));
	json_array_append_new(out, json_integer(json_integer_value(json_object_get(pc, "value"))));
	json_array_append_new(out, json_boolean(json_is_true(json_object_get(pc, "globalDefault"))));
	json_array_append_new(out, age(pc));
	json_array_append_new(out, json_string(str(pc, "preemptionPolicy") ? str(pc, "preemptionPolicy")
									     : "PreemptLowerPriority"));
}

static const struct column priority_class_columns[] = {
	{"Name", "string", "name", 0}, {"Value", "integer", "", 0}, {"Global-Default", "boolean", "", 0},
	{"Age", "string", "", 0}, {"PreemptionPolicy", "string", "", 0}, {NULL, NULL, NULL, 0}};

/* The operator CRD's additionalPrinterColumns (v1beta2). */
static void spark_application_row(const json_t *app, json_t *out)
{
	const json_t *status = json_object_get(app, "status");
	json_t *attempts = json_object_get(status, "executionAttempts");

	json_array_append_new(out, json_string(str(app, "metadata.name")));
	json_array_append_new(out, json_object_get(json_object_get(app, "spec"), "suspend")
					   ? json_boolean(json_is_true(json_object_get(json_object_get(app, "spec"), "suspend")))
					   : json_null());
	json_array_append_new(out, str(status, "applicationState.state") ? json_string(str(status, "applicationState.state"))
									 : json_null());
	json_array_append_new(out, attempts ? json_incref(attempts) : json_null());
	json_array_append_new(out, str(status, "lastSubmissionAttemptTime")
					   ? json_string(str(status, "lastSubmissionAttemptTime")) : json_null());
	json_array_append_new(out, str(status, "terminationTime") ? json_string(str(status, "terminationTime"))
								  : json_null());
	json_array_append_new(out, age(app)); /* a date column: the server prints it as an age */
}

static const struct column spark_application_columns[] = {
	{"Name", "string", "name", 0}, {"Suspend", "boolean", "", 0}, {"Status", "string", "", 0},
	{"Attempts", "string", "", 0}, {"Start", "string", "", 0}, {"Finish", "string", "", 0},
	{"Age", "date", "", 0}, {NULL, NULL, NULL, 0}};

static const struct printer {
	const char *resource;
	const struct column *columns;
	row_fn row;
} printers[] = {
	{"pods", pod_columns, pod_row},
	{"nodes", node_columns, node_row},
	{"events", event_columns, event_row},
	{"services", service_columns, service_row},
	{"namespaces", namespace_columns, namespace_row},
	{"configmaps", configmap_columns, configmap_row},
	{"secrets", secret_columns, secret_row},
	{"deployments", deployment_columns, deployment_row},
	{"priorityclasses", priority_class_columns, priority_class_row},
	{"sparkapplications", spark_application_columns, spark_application_row},
};

static const struct printer *printer_for(const struct ks_resource *r)
{
	static const struct printer fallback = {NULL, name_age_columns, name_age_row};

	for (size_t i = 0; i < sizeof(printers) / sizeof(printers[0]); i++)
		if (!strcmp(printers[i].resource, r->name))
			return &printers[i];
	return &fallback;
}

static json_t *row(const struct printer *p, json_t *obj, bool whole_object)
{
	json_t *cells = json_array(), *object;

	p->row(obj, cells);
	if (whole_object)
		object = json_incref(obj);
	else
		object = json_pack("{s:s, s:s, s:O}", "kind", "PartialObjectMetadata", "apiVersion", "meta.k8s.io/v1",
				   "metadata", json_object_get(obj, "metadata"));
	return json_pack("{s:o, s:o}", "cells", cells, "object", object);
}

json_t *ks_table(const struct ks_resource *r, json_t *items, const char *rv, bool with_columns,
		 bool whole_objects)
{
	const struct printer *p = printer_for(r);
	json_t *rows = json_array(), *table, *obj;
	size_t i;

	json_array_foreach(items, i, obj)
		json_array_append_new(rows, row(p, obj, whole_objects));
	table = json_pack("{s:s, s:s, s:{s:s}, s:o}", "kind", "Table", "apiVersion", "meta.k8s.io/v1", "metadata",
			  "resourceVersion", rv ? rv : "", "rows", rows);
	if (with_columns) {
		json_t *columns = json_array();

		for (const struct column *c = p->columns; c->name; c++)
			json_array_append_new(columns, json_pack("{s:s, s:s, s:s, s:s, s:i}", "name", c->name, "type",
								 c->type, "format", c->format, "description", "",
								 "priority", c->priority));
		json_object_set_new(table, "columnDefinitions", columns);
	}
	return table;
}
