/* kubeconfig files as kubectl writes them, and in-cluster configuration. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/yamljson.h"
#include "k8sclient/k8s.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

void k8s_config_release(struct k8s_config *cfg)
{
	free(cfg->server);
	free(cfg->ca_file);
	free(cfg->ca_pem);
	free(cfg->token);
	free(cfg->token_file);
	free(cfg->cert_file);
	free(cfg->cert_pem);
	free(cfg->key_file);
	free(cfg->key_pem);
	free(cfg->namespace);
	free(cfg->proxy_url);
	json_decref(cfg->exec);
	memset(cfg, 0, sizeof(*cfg));
}

static json_t *named(json_t *list, const char *name, const char *field)
{
	size_t i;
	json_t *e;

	json_array_foreach(list, i, e)
		if (json_is_string(json_object_get(e, "name")) &&
		    !strcmp(json_string_value(json_object_get(e, "name")), name))
			return json_object_get(e, field);
	return NULL;
}

/* base64 text to a new NUL-terminated buffer; NULL if it is not base64. */
static char *decode_base64(const char *text)
{
	size_t n = strlen(text), pad = 0;
	unsigned char *out;
	int len;

	if (n == 0 || n % 4 || n > (64u << 20))
		return NULL;
	out = malloc(n / 4 * 3 + 1);
	if (!out)
		return NULL;
	len = EVP_DecodeBlock(out, (const unsigned char *)text, (int)n);
	if (len < 0) {
		free(out);
		return NULL;
	}
	pad = (text[n - 1] == '=') + (text[n - 2] == '=');
	out[(size_t)len - pad] = '\0';
	return (char *)out;
}

static char *string_field(const json_t *obj, const char *key)
{
	const char *v = json_string_value(json_object_get(obj, key));

	return v ? strdup(v) : NULL;
}

/* A file named in the kubeconfig, relative to the kubeconfig's folder. */
static char *path_field(const json_t *obj, const char *key, const char *base_dir)
{
	const char *v = json_string_value(json_object_get(obj, key));
	char *out = NULL;

	if (!v)
		return NULL;
	if (v[0] == '/')
		return strdup(v);
	if (asprintf(&out, "%s/%s", base_dir, v) < 0)
		return NULL;
	return out;
}

static enum gw_err pem_field(const json_t *obj, const char *key, char **out,
			     const char *path, char *err)
{
	const char *v = json_string_value(json_object_get(obj, key));

	*out = NULL;
	if (!v)
		return GW_OK;
	*out = decode_base64(v);
	if (!*out) {
		gw_seterr(err, "%s: %s is not valid base64", path, key);
		return GW_EINVAL;
	}
	return GW_OK;
}

/* An exec credential plugin as kubectl takes it: checked here, run by the
 * client. Only plugins that need no terminal can serve a daemon. */
static enum gw_err exec_field(const json_t *exec, const char *base_dir, struct k8s_config *out, const char *path,
			      char *err)
{
	const char *api = json_string_value(json_object_get(exec, "apiVersion"));
	const char *command = json_string_value(json_object_get(exec, "command"));
	const char *mode = json_string_value(json_object_get(exec, "interactiveMode"));
	json_t *args = json_object_get(exec, "args"), *env = json_object_get(exec, "env"), *e;
	size_t i;

	if (!json_is_object(exec) || !command || !*command) {
		gw_seterr(err, "%s: user.exec needs a command", path);
		return GW_EINVAL;
	}
	if (!api || (strcmp(api, "client.authentication.k8s.io/v1") &&
		     strcmp(api, "client.authentication.k8s.io/v1beta1"))) {
		gw_seterr(err, "%s: user.exec.apiVersion must be client.authentication.k8s.io/v1 or v1beta1, not %s",
			  path, api ? api : "missing");
		return GW_EINVAL;
	}
	if (mode && !strcmp(mode, "Always")) {
		gw_seterr(err, "%s: user.exec.interactiveMode is Always, but sparkgw runs with no terminal: use a plugin"
			  " that needs none (interactiveMode Never or IfAvailable)", path);
		return GW_EINVAL;
	}
	if (args && !json_is_array(args)) {
		gw_seterr(err, "%s: user.exec.args must be a list of strings", path);
		return GW_EINVAL;
	}
	json_array_foreach(args, i, e)
		if (!json_is_string(e)) {
			gw_seterr(err, "%s: user.exec.args[%zu] must be a string", path, i);
			return GW_EINVAL;
		}
	if (env && !json_is_array(env) && !json_is_null(env)) {
		gw_seterr(err, "%s: user.exec.env must be a list of {name, value}", path);
		return GW_EINVAL;
	}
	json_array_foreach(env, i, e)
		if (!json_is_string(json_object_get(e, "name")) || !json_is_string(json_object_get(e, "value"))) {
			gw_seterr(err, "%s: user.exec.env[%zu] needs a name and a value", path, i);
			return GW_EINVAL;
		}
	out->exec = json_pack("{s:s, s:o, s:o}", "apiVersion", api, "args", args ? json_deep_copy(args) : json_array(),
			      "env", json_is_array(env) ? json_deep_copy(env) : json_array());
	if (!out->exec)
		return GW_ENOMEM;
	/* A bare name is looked up on PATH; a path is the kubeconfig's. */
	json_object_set_new(out->exec, "command", json_string(command));
	if (strchr(command, '/') && command[0] != '/') {
		char *full = NULL;

		if (asprintf(&full, "%s/%s", base_dir, command) < 0)
			return GW_ENOMEM;
		json_object_set_new(out->exec, "command", json_string(full));
		free(full);
	}
	return GW_OK;
}

enum gw_err k8s_kubeconfig_load(const char *path, const char *context,
				struct k8s_config *out, char *err)
{
	json_t *doc = NULL, *ctx, *cluster, *user;
	const char *cluster_name, *user_name;
	char copy[PATH_MAX], dir[PATH_MAX];
	enum gw_err rc;

	memset(out, 0, sizeof(*out));
	if ((rc = gw_yaml_load_file(path, &doc, NULL, err)))
		return rc;
	/* dirname() may write into its argument: give it a copy. */
	snprintf(copy, sizeof(copy), "%s", path);
	snprintf(dir, sizeof(dir), "%s", dirname(copy));
	if (!context)
		context = json_string_value(json_object_get(doc, "current-context"));
	if (!context) {
		gw_seterr(err, "%s: no context given and no current-context", path);
		rc = GW_EINVAL;
		goto out;
	}
	ctx = named(json_object_get(doc, "contexts"), context, "context");
	if (!ctx) {
		gw_seterr(err, "%s: context \"%s\" not found", path, context);
		rc = GW_EINVAL;
		goto out;
	}
	cluster_name = json_string_value(json_object_get(ctx, "cluster"));
	user_name = json_string_value(json_object_get(ctx, "user"));
	cluster = cluster_name ? named(json_object_get(doc, "clusters"), cluster_name, "cluster") : NULL;
	if (!cluster || !json_is_string(json_object_get(cluster, "server"))) {
		gw_seterr(err, "%s: cluster \"%s\" of context \"%s\" not found or has no server",
			  path, cluster_name ? cluster_name : "", context);
		rc = GW_EINVAL;
		goto out;
	}
	user = user_name ? named(json_object_get(doc, "users"), user_name, "user") : NULL;
	out->server = string_field(cluster, "server");
	out->ca_file = path_field(cluster, "certificate-authority", dir);
	out->insecure = json_is_true(json_object_get(cluster, "insecure-skip-tls-verify"));
	out->namespace = string_field(ctx, "namespace");
	out->token = string_field(user, "token");
	out->token_file = path_field(user, "tokenFile", dir);
	out->cert_file = path_field(user, "client-certificate", dir);
	out->key_file = path_field(user, "client-key", dir);
	if ((rc = pem_field(cluster, "certificate-authority-data", &out->ca_pem, path, err)) ||
	    (rc = pem_field(user, "client-certificate-data", &out->cert_pem, path, err)) ||
	    (rc = pem_field(user, "client-key-data", &out->key_pem, path, err)))
		goto out;
	out->proxy_url = string_field(cluster, "proxy-url");
	if (json_object_get(user, "exec") && (rc = exec_field(json_object_get(user, "exec"), dir, out, path, err)))
		goto out;
	if (!out->server) {
		rc = GW_ENOMEM;
		goto out;
	}
out:
	if (rc)
		k8s_config_release(out);
	json_decref(doc);
	return rc;
}

enum gw_err k8s_incluster_config(struct k8s_config *out, char *err)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");
	FILE *ns;

	memset(out, 0, sizeof(*out));
	if (!host || !port) {
		gw_seterr(err, "not running in a cluster: KUBERNETES_SERVICE_HOST/PORT unset");
		return GW_EINVAL;
	}
	/* An IPv6 service address needs brackets in a URL. */
	if (asprintf(&out->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s",
		     host, port) < 0) {
		out->server = NULL;
		return GW_ENOMEM;
	}
	out->token_file = strdup(SA_DIR "/token");
	out->ca_file = strdup(SA_DIR "/ca.crt");
	ns = fopen(SA_DIR "/namespace", "r");
	if (ns) {
		char buf[256];

		if (fgets(buf, sizeof(buf), ns)) {
			buf[strcspn(buf, "\n")] = '\0';
			out->namespace = strdup(buf);
		}
		fclose(ns);
	}
	if (!out->token_file || !out->ca_file) {
		k8s_config_release(out);
		return GW_ENOMEM;
	}
	return GW_OK;
}
