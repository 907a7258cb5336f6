/* The API server's service proxy (GET /api/v1/namespaces/NS/services/
 * NAME[:PORT]/proxy/PATH) in front of a Spark driver's UI: the Service's
 * endpoints are its Running pods that match its selector; the UI is a
 * small simulation of Spark's (jobs page, REST API's applications,
 * redirect from the root) that honours X-Forwarded-Context as Spark's
 * UIUtils.uiRoot does, or a shared server's Livy REST API (livy.c); and, as the API server's proxy transport does,
 * absolute links in HTML and redirects get the proxy's path before them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/labels.h"
#include "contrib/kubesim/kubesim.h"

#define PAGE_MAX (1u << 20)
#define LIVY_PORT 8998

static const char *jstr(const json_t *v)
{
	return json_string_value(v) ? json_string_value(v) : "";
}

/* The first Running pod the Service selects. */
static json_t *endpoint(struct ks_state *st, const json_t *svc)
{
	json_t *selector = json_object_get(json_object_get(svc, "spec"), "selector"), *pod, *v;
	const char *key, *ns = ks_ns(svc);

	if (!json_object_size(selector))
		return NULL;
	json_object_foreach(st->pods, key, pod) {
		const json_t *labels = json_object_get(json_object_get(pod, "metadata"), "labels");
		const char *k;
		bool match = !strcmp(ks_ns(pod), ns) &&
			     !strcmp(jstr(json_object_get(json_object_get(pod, "status"), "phase")), "Running");

		json_object_foreach(selector, k, v)
			match = match && json_equal(json_object_get(labels, k), v);
		if (match)
			return pod;
	}
	return NULL;
}

/* The service port PORT names (a number or a port's name), or the only
 * one; 0 when there is no such port. */
static json_int_t service_port(const json_t *svc, const char *port)
{
	json_t *ports = json_object_get(json_object_get(svc, "spec"), "ports"), *p;
	size_t i;

	json_array_foreach(ports, i, p) {
		char number[24];

		snprintf(number, sizeof(number), "%lld", (long long)json_integer_value(json_object_get(p, "port")));
		if ((!*port && json_array_size(ports) == 1) || !strcmp(port, number) ||
		    !strcmp(port, jstr(json_object_get(p, "name"))))
			return json_integer_value(json_object_get(p, "targetPort"))
				       ? json_integer_value(json_object_get(p, "targetPort"))
				       : json_integer_value(json_object_get(p, "port"));
	}
	return 0;
}

static bool append(struct gw_buf *b, const char *text)
{
	return gw_buf_append(b, text, strlen(text)) == GW_OK;
}

/* An attribute's absolute path as the API server's proxy rewrites it. */
static bool link(struct gw_buf *b, const char *attr, const char *prefix, const char *root, const char *path)
{
	return append(b, " ") && append(b, attr) && append(b, "=\"") && append(b, prefix) && append(b, root) &&
	       append(b, path) && append(b, "\"");
}

static void spark_ui(struct ks_state *st, const json_t *driver, const char *path, const char *prefix,
		     const char *root, struct ks_proxied *out)
{
	json_t *conf = ks_spark_conf(st, driver);
	const char *labelled = jstr(json_object_get(json_object_get(json_object_get(driver, "metadata"), "labels"),
						    "spark-app-selector"));
	/* Spark on Kubernetes names the application as the label says. */
	const char *id = *labelled ? labelled : jstr(json_object_get(conf, "spark.app.id"));
	const char *name = json_string_value(json_object_get(conf, "spark.app.name"))
				   ? json_string_value(json_object_get(conf, "spark.app.name")) : ks_name(driver);
	struct gw_buf b;
	bool ok = true;

	gw_buf_init(&b, PAGE_MAX);
	out->code = 200;
	if (!*path) {
		out->code = 302;
		snprintf(out->location, sizeof(out->location), "%s%s/jobs/", prefix, root);
		out->content_type = "text/plain";
	} else if (!strcmp(path, "jobs/")) {
		out->content_type = "text/html;charset=utf-8";
		ok = append(&b, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><link rel=\"stylesheet\"") &&
		     link(&b, "href", prefix, root, "/static/bootstrap.min.css") && append(&b, "><script") &&
		     link(&b, "src", prefix, root, "/static/webui.js") && append(&b, "></script><script>setUIRoot('") &&
		     append(&b, root) && append(&b, "')</script><title>") && append(&b, name) &&
		     append(&b, " - Spark Jobs</title></head><body><ul class=\"nav\"><li><a") &&
		     link(&b, "href", prefix, root, "/jobs/") && append(&b, ">Jobs</a></li><li><a") &&
		     link(&b, "href", prefix, root, "/stages/") && append(&b, ">Stages</a></li><li><a") &&
		     link(&b, "href", prefix, root, "/executors/") && append(&b, ">Executors</a></li></ul><h3>Spark Jobs") &&
		     append(&b, "</h3><p>Application: ") && append(&b, id) && append(&b, "</p></body></html>");
	} else if (!strcmp(path, "api/v1/applications")) {
		json_t *apps = json_pack("[{s:s, s:s, s:[{s:b, s:s}]}]", "id", id, "name", name, "attempts",
					 "completed", false, "sparkUser", "spark");
		char *text = json_dumps(apps, JSON_COMPACT);

		out->content_type = "application/json";
		ok = text && append(&b, text);
		free(text);
		json_decref(apps);
	} else if (!strcmp(path, "static/bootstrap.min.css")) {
		out->content_type = "text/css";
		ok = append(&b, ".nav{list-style:none}\n");
	} else {
		out->code = 404;
		out->content_type = "text/html;charset=utf-8";
		ok = append(&b, "<html><body><h2>HTTP ERROR 404 Not Found</h2></body></html>");
	}
	json_decref(conf);
	if (!ok) {
		gw_buf_release(&b);
		out->code = 500;
		return;
	}
	out->body = b.data ? b.data : strdup("");
	out->len = b.len;
}

int ks_service_proxy(struct ks_state *st, const char *ns, const char *service, const char *path,
		     const char *ui_root, const char *method, const char *body, size_t len, struct ks_proxied *out)
{
	const struct ks_resource *services = ks_resource_find("", "v1", "services");
	char name[256], prefix[600];
	const char *colon = strchr(service, ':');
	json_t *svc, *pod;
	json_int_t port;

	memset(out, 0, sizeof(*out));
	snprintf(name, sizeof(name), "%.*s", (int)(colon ? (size_t)(colon - service) : strlen(service)), service);
	snprintf(prefix, sizeof(prefix), "/api/v1/namespaces/%s/services/%s/proxy", ns, service);
	pthread_mutex_lock(&st->lock);
	svc = ks_get(st, services, ns, name);
	if (!svc) {
		pthread_mutex_unlock(&st->lock);
		out->code = 404;
		snprintf(out->message, sizeof(out->message), "services \"%s\" not found", name);
		return -1;
	}
	port = service_port(svc, colon ? colon + 1 : "");
	pod = port ? endpoint(st, svc) : NULL;
	if (pod && port == LIVY_PORT &&
	    json_object_get(json_object_get(json_object_get(pod, "metadata"), "labels"), "sparkgw/shared-server")) {
		ks_livy(st, pod, method, path, body, len, out);
		pthread_mutex_unlock(&st->lock);
		return out->code == 500 ? -1 : 0;
	}
	/* Only a Spark driver's UI (GET) or a shared server's Livy listens
	 * there in this simulation. */
	if (!pod || port != 4040 || strcmp(method, "GET") ||
	    strcmp(jstr(json_object_get(json_object_get(json_object_get(pod, "metadata"), "labels"), "spark-role")),
		   "driver")) {
		pthread_mutex_unlock(&st->lock);
		out->code = 503;
		snprintf(out->message, sizeof(out->message), "no endpoints available for service \"%s\"", name);
		return -1;
	}
	spark_ui(st, pod, path, prefix, ui_root ? ui_root : "", out);
	pthread_mutex_unlock(&st->lock);
	return out->code == 500 ? -1 : 0;
}
