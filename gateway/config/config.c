/* Declarative configuration table and its YAML loader. */
#include "gateway/config/config.h"

#include <errno.h>
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/labels.h"
#include "common/log.h"
#include "common/yamljson.h"

/* KEY_PATH: a string that may be left unset (NULL by default). KEY_AUTH:
 * token or none. */
/* KEY_MOUNT: a URL path prefix ("/livy"), or "off" (NULL).
 * KEY_STORE_DRIVER: sqlite or postgres (true). KEY_URL: an http(s) URL
 * kept without a trailing slash, or unset (NULL). */
enum key_type { KEY_STRING, KEY_PATH, KEY_UINT, KEY_LOG_LEVEL, KEY_SYNC, KEY_AUTH, KEY_MOUNT, KEY_STORE_DRIVER,
		KEY_URL };

struct config_key {
	const char *name;
	enum key_type type;
	size_t offset;
	const char *def; /* default, as text */
	unsigned min, max;
};

#define CFG(field) offsetof(struct gateway_config, field)

static const struct config_key keys[] = {
	{"listen", KEY_STRING, CFG(listen), "127.0.0.1:8080", 0, 0},
	{"data", KEY_STRING, CFG(data_dir), "./var", 0, 0},
	{"log.level", KEY_LOG_LEVEL, CFG(log_level), "info", 0, 0},
	/* FULL: an acknowledged job survives power loss, not just a crash. */
	/* sqlite: the file data/sparkgw.db, for one gateway process;
	 * postgres: the database at store.dsn (a libpq connection string or
	 * URI; a password is better in PGPASSWORD or a ~/.pgpass file), for
	 * replicas behind one load balancer. */
	{"store.driver", KEY_STORE_DRIVER, CFG(store_postgres), "sqlite", 0, 0},
	{"store.dsn", KEY_PATH, CFG(store_dsn), NULL, 0, 0},
	{"store.synchronous", KEY_SYNC, CFG(store_sync_full), "full", 0, 0},
	{"store.batch_max", KEY_UINT, CFG(store_batch_max), "128", 1, 4096},
	/* Finished jobs are pruned this long after they ended; 0 keeps them. */
	{"store.retention_seconds", KEY_UINT, CFG(store_retention_s), "2592000", 0, 315360000},
	{"http.threads", KEY_UINT, CFG(http_threads), "2", 1, 64},
	{"http.max_connections", KEY_UINT, CFG(http_max_connections), "1024", 4, 100000},
	{"http.connection_timeout_seconds", KEY_UINT, CFG(http_connection_timeout_s), "30", 1, 3600},
	{"http.max_body_bytes", KEY_UINT, CFG(http_max_body_bytes), "1048576", 1024, 67108864},
	{"http.shutdown_grace_seconds", KEY_UINT, CFG(http_shutdown_grace_s), "10", 0, 600},
	{"http.max_log_followers", KEY_UINT, CFG(http_max_log_followers), "256", 0, 100000},
	/* Rendered jobs kept for reads (status polls, dashboards); 0: none. */
	{"http.job_cache_bytes", KEY_UINT, CFG(http_job_cache_bytes), "25165824", 0, 2147483647},
	/* One client cannot hold every connection. */
	{"http.max_connections_per_ip", KEY_UINT, CFG(http_max_connections_per_ip), "256", 0, 100000},
	/* TLS for the listener (TLS 1.2 and 1.3); with a client CA, clients
	 * must present a certificate it signed. */
	{"http.tls_cert", KEY_PATH, CFG(http_tls_cert), NULL, 0, 0},
	{"http.tls_key", KEY_PATH, CFG(http_tls_key), NULL, 0, 0},
	{"http.tls_client_ca", KEY_PATH, CFG(http_tls_client_ca), NULL, 0, 0},
	/* token: every API call needs a Bearer token; none: nobody is asked
	 * (a local demo), said at start and in /api/v1/version. */
	{"auth.mode", KEY_AUTH, CFG(auth_none), "token", 0, 0},
	/* Requests a second per token, and the burst allowed. */
	{"auth.rate_per_second", KEY_UINT, CFG(auth_rate), "50", 0, 1000000},
	{"auth.burst", KEY_UINT, CFG(auth_burst), "100", 1, 1000000},
	{"dispatch.workers", KEY_UINT, CFG(dispatch_workers), "8", 1, 256},
	{"dispatch.probe_seconds", KEY_UINT, CFG(dispatch_probe_s), "5", 1, 3600},
	/* A dead gateway's DISPATCHING jobs are taken over after this. */
	{"dispatch.lease_seconds", KEY_UINT, CFG(dispatch_lease_s), "15", 1, 3600},
	{"dispatch.max_attempts", KEY_UINT, CFG(dispatch_max_attempts), "5", 1, 100},
	{"dispatch.retry_base_ms", KEY_UINT, CFG(dispatch_retry_base_ms), "500", 1, 600000},
	{"dispatch.pending_timeout_seconds", KEY_UINT, CFG(dispatch_pending_timeout_s), "600", 1, 86400},
	{"dispatch.image_pull_timeout_seconds", KEY_UINT, CFG(dispatch_image_pull_timeout_s), "120", 1, 86400},
	/* A queued job rises one priority rank per this much waiting. */
	{"scheduler.aging_seconds", KEY_UINT, CFG(scheduler_aging_s), "300", 1, 86400},
	{"scheduler.max_queued_per_team", KEY_UINT, CFG(scheduler_max_queued_per_team), "0", 0, 100000000},
	{"scheduler.max_running_per_team", KEY_UINT, CFG(scheduler_max_running_per_team), "0", 0, 100000000},
	/* Jobs running longer are cancelled (DeadlineExceeded); a job's label
	 * max-run-seconds says otherwise for it. */
	{"scheduler.max_run_seconds", KEY_UINT, CFG(scheduler_max_run_s), "0", 0, 31536000},
	/* A finished job's driver, service and config map (or its
	 * SparkApplication) are deleted this long after it ended, unless its
	 * spec's timeToLiveSeconds says otherwise. */
	{"scheduler.cleanup_after_seconds", KEY_UINT, CFG(scheduler_cleanup_after_s), "3600", 0, 31536000},
	/* Admission: past these, new submissions are shed with 429 at once. */
	{"scheduler.max_queue_depth", KEY_UINT, CFG(scheduler_max_queue_depth), "0", 0, 1000000000},
	{"scheduler.max_commit_ms", KEY_UINT, CFG(scheduler_max_commit_ms), "0", 0, 600000},
	/* What one API server gets from dispatch: requests a second, and
	 * dispatches at once. */
	{"scheduler.cluster_qps", KEY_UINT, CFG(scheduler_cluster_qps), "100", 1, 100000},
	/* The compatibility APIs: where Livy's is mounted, and the Spark
	 * version given to its batches and to BPG's that name none. */
	{"compat.livy_prefix", KEY_MOUNT, CFG(livy_prefix), "/livy", 0, 0},
	/* The Spark History Server finished jobs' UIs link to
	 * ({url}/history/{spark application id}/); unset, they have none. */
	{"spark.history_server", KEY_URL, CFG(spark_history_server), NULL, 0, 0},
	{"compat.spark_version", KEY_STRING, CFG(compat_spark_version), "3.5", 0, 0},
	/* Livy lists only the sessions it still holds; GET /batches lists the
	 * jobs submitted this recently, so that its cost is a day's jobs, not
	 * the whole history's. */
	{"compat.livy_list_seconds", KEY_UINT, CFG(livy_list_s), "86400", 60, 31536000},
	{"scheduler.cluster_concurrency", KEY_UINT, CFG(scheduler_cluster_concurrency), "16", 1, 1024},
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

static const struct config_key *find_key(const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static enum gw_err set_value(struct gateway_config *cfg, const struct config_key *k,
			     const char *text, char *err)
{
	void *field = (char *)cfg + k->offset;

	switch (k->type) {
	case KEY_URL:
		if (!text)
			return GW_OK;
		if ((strncmp(text, "http://", 7) && strncmp(text, "https://", 8)) || strpbrk(text, " ?#")) {
			gw_seterr(err, "%s must be an http:// or https:// URL without query, not '%s'", k->name, text);
			return GW_EINVAL;
		}
		free(*(char **)field);
		if (!(*(char **)field = strndup(text, strlen(text) - (text[strlen(text) - 1] == '/'))))
			return GW_ENOMEM;
		return GW_OK;
	case KEY_PATH:
		if (!text)
			return GW_OK; /* unset by default */
		/* fall through */
	case KEY_STRING: {
		char *copy = strdup(text);

		if (!copy)
			return GW_ENOMEM;
		if (!*copy) {
			free(copy);
			gw_seterr(err, "%s must not be empty", k->name);
			return GW_EINVAL;
		}
		free(*(char **)field);
		*(char **)field = copy;
		return GW_OK;
	}
	case KEY_UINT: {
		char *end;
		unsigned long v;

		errno = 0;
		v = strtoul(text, &end, 10);
		if (!*text || *end || errno || text[0] == '-' || v < k->min || v > k->max) {
			gw_seterr(err, "%s must be an integer from %u to %u, not '%s'",
				  k->name, k->min, k->max, text);
			return GW_EINVAL;
		}
		*(unsigned *)field = (unsigned)v;
		return GW_OK;
	}
	case KEY_LOG_LEVEL: {
		int level = gw_log_level_parse(text);

		if (level < 0) {
			gw_seterr(err, "%s must be debug, info, warn or error", k->name);
			return GW_EINVAL;
		}
		*(int *)field = level;
		return GW_OK;
	}
	case KEY_SYNC:
		if (strcmp(text, "full") && strcmp(text, "normal")) {
			gw_seterr(err, "%s must be full or normal", k->name);
			return GW_EINVAL;
		}
		*(bool *)field = strcmp(text, "full") == 0;
		return GW_OK;
	case KEY_MOUNT: {
		size_t n = strlen(text);
		char *copy = NULL;

		if (strcmp(text, "off") &&
		    (text[0] != '/' || n < 2 || n > 64 || text[n - 1] == '/' || strpbrk(text, "?#*% "))) {
			gw_seterr(err, "%s must be a path such as /livy, or off", k->name);
			return GW_EINVAL;
		}
		if (strcmp(text, "off") && !(copy = strdup(text)))
			return GW_ENOMEM;
		free(*(char **)field);
		*(char **)field = copy;
		return GW_OK;
	}
	case KEY_STORE_DRIVER:
		if (strcmp(text, "sqlite") && strcmp(text, "postgres")) {
			gw_seterr(err, "%s must be sqlite or postgres", k->name);
			return GW_EINVAL;
		}
		*(bool *)field = strcmp(text, "postgres") == 0;
		return GW_OK;
	case KEY_AUTH:
		if (strcmp(text, "token") && strcmp(text, "none")) {
			gw_seterr(err, "%s must be token or none", k->name);
			return GW_EINVAL;
		}
		*(bool *)field = strcmp(text, "none") == 0;
		return GW_OK;
	}
	return GW_EINVAL;
}

enum gw_err gateway_config_defaults(struct gateway_config *cfg)
{
	json_t *empty = json_object();
	enum gw_err rc;

	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < NKEYS; i++)
		if ((rc = set_value(cfg, &keys[i], keys[i].def, NULL)))
			goto out;
	rc = router_load(empty, NULL, "(defaults)", &cfg->router, NULL);
out:
	json_decref(empty);
	return rc;
}

enum gw_err gateway_config_set(struct gateway_config *cfg, const char *key,
			       const char *value, char *err)
{
	const struct config_key *k = find_key(key);

	if (!k) {
		gw_seterr(err, "unknown configuration key '%s'", key);
		return GW_EINVAL;
	}
	return set_value(cfg, k, value, err);
}

void gateway_config_release(struct gateway_config *cfg)
{
	router_unref(cfg->router);
	cfg->router = NULL;
	json_decref(cfg->policy_doc);
	json_decref(cfg->policy_marks);
	free(cfg->path);
	json_decref(cfg->compat_queues);
	cfg->compat_queues = NULL;
	cfg->policy_doc = cfg->policy_marks = NULL;
	cfg->path = NULL;
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].type == KEY_STRING || keys[i].type == KEY_PATH || keys[i].type == KEY_MOUNT ||
		    keys[i].type == KEY_URL) {
			char **field = (char **)((char *)cfg + keys[i].offset);

			free(*field);
			*field = NULL;
		}
}

/* Top-level keys that make the routing policy (router_load reads them). */
static bool is_policy_key(const char *key)
{
	return !strcmp(key, "clusters") || !strcmp(key, "pools") ||
	       !strcmp(key, "namespaceGroups") || !strcmp(key, "routing") ||
	       !strcmp(key, "teams") || !strcmp(key, "priorities");
}

/* compat.queues: each queue name maps to the labels its jobs get. */
static bool queues_valid(json_t *queues, char *err)
{
	const char *queue, *key;
	json_t *labels, *value;
	char why[GW_ERRLEN];

	if (!json_is_object(queues)) {
		gw_seterr(err, "compat.queues must map queue names to labels");
		return false;
	}
	json_object_foreach(queues, queue, labels) {
		if (!json_is_object(labels)) {
			gw_seterr(err, "compat.queues.%s must be a mapping of labels", queue);
			return false;
		}
		json_object_foreach(labels, key, value) {
			if (!gw_label_key_valid(key, why) || !json_is_string(value) ||
			    !gw_label_value_valid(json_string_value(value), why)) {
				gw_seterr(err, "compat.queues.%s.%s: %s", queue, key,
					  json_is_string(value) ? why : "must be a string");
				return false;
			}
		}
	}
	return true;
}

/* Walks the tree; every leaf must be a known key of a scalar type. */
static enum gw_err apply_tree(struct gateway_config *cfg, json_t *node,
			      const char *prefix, const json_t *marks,
			      const char *path, char *err)
{
	const char *name;
	json_t *value;

	json_object_foreach(node, name, value) {
		char key[256], inner[GW_ERRLEN];
		const json_t *mark;
		enum gw_err rc = GW_OK;

		snprintf(key, sizeof(key), "%s%s%s", prefix, *prefix ? "." : "", name);
		mark = json_object_get(marks, key);
		if (!*prefix && is_policy_key(key))
			continue; /* the router's */
		if (!strcmp(key, "compat.queues")) {
			if (!queues_valid(value, inner))
				rc = GW_EINVAL;
			else {
				json_decref(cfg->compat_queues);
				cfg->compat_queues = json_incref(value);
			}
			if (rc) {
				gw_seterr(err, "%s: line %d, column %d: %s", path,
					  (int)json_integer_value(json_array_get(mark, 0)),
					  (int)json_integer_value(json_array_get(mark, 1)), inner);
				return rc;
			}
			continue;
		}
		if (json_is_object(value)) {
			if ((rc = apply_tree(cfg, value, key, marks, path, err)))
				return rc;
			continue;
		}
		if (!find_key(key)) {
			gw_seterr(inner, "unknown key '%s'", key);
			rc = GW_EINVAL;
		} else if (json_is_string(value)) {
			rc = gateway_config_set(cfg, key, json_string_value(value), inner);
		} else if (json_is_integer(value) || json_is_boolean(value)) {
			char text[32];

			if (json_is_integer(value))
				snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT,
					 json_integer_value(value));
			else
				snprintf(text, sizeof(text), "%s",
					 json_is_true(value) ? "true" : "false");
			rc = gateway_config_set(cfg, key, text, inner);
		} else {
			gw_seterr(inner, "%s must be a scalar value", key);
			rc = GW_EINVAL;
		}
		if (rc) {
			gw_seterr(err, "%s: line %d, column %d: %s", path,
				  (int)json_integer_value(json_array_get(mark, 0)),
				  (int)json_integer_value(json_array_get(mark, 1)), inner);
			return rc;
		}
	}
	return GW_OK;
}

enum gw_err gateway_config_load(struct gateway_config *cfg, const char *path,
				char *err)
{
	json_t *doc = NULL, *marks = NULL;
	enum gw_err rc = gw_yaml_load_file(path, &doc, &marks, err);

	if (rc)
		return rc;
	if (!json_is_object(doc)) {
		gw_seterr(err, "%s: line 1, column 1: the configuration must be a mapping", path);
		rc = GW_EINVAL;
	} else if ((rc = apply_tree(cfg, doc, "", marks, path, err)) == GW_OK) {
		struct router *r;

		if ((rc = router_load(doc, marks, path, &r, err)) == GW_OK) {
			router_unref(cfg->router);
			cfg->router = r;
			json_decref(cfg->policy_doc);
			json_decref(cfg->policy_marks);
			free(cfg->path);
			cfg->policy_doc = json_incref(doc);
			cfg->policy_marks = json_incref(marks);
			cfg->path = strdup(path);
		}
	}
	json_decref(doc);
	json_decref(marks);
	return rc;
}

enum gw_err gateway_parse_listen(const char *listen, char *host, size_t hostlen,
				 unsigned *port, char *err)
{
	const char *colon, *hstart = listen;
	size_t hlen;
	char *end;
	unsigned long p;

	if (listen[0] == '[') {
		const char *close = strchr(listen, ']');

		if (!close || close[1] != ':')
			goto bad;
		hstart = listen + 1;
		hlen = (size_t)(close - hstart);
		colon = close + 1;
	} else {
		colon = strrchr(listen, ':');
		if (!colon)
			goto bad;
		hlen = (size_t)(colon - listen);
	}
	if (hlen == 0 || hlen >= hostlen)
		goto bad;
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || p > 65535)
		goto bad;
	memcpy(host, hstart, hlen);
	host[hlen] = '\0';
	*port = (unsigned)p;
	return GW_OK;
bad:
	gw_seterr(err, "listen address '%s' is not HOST:PORT", listen);
	return GW_EINVAL;
}

/* The index of the entry named name in a list of clusters or of pool
 * members (a name, or an object with a name), or -1. */
static long member_index(json_t *members, const char *name)
{
	size_t i;
	json_t *m;

	json_array_foreach(members, i, m) {
		const char *n = json_is_string(m) ? json_string_value(m)
						  : json_string_value(json_object_get(m, "name"));

		if (n && !strcmp(n, name))
			return (long)i;
	}
	return -1;
}

enum gw_err gateway_config_policy_with(const struct gateway_config *cfg, const json_t *overlay,
				       struct router **out, char *err)
{
	json_t *doc = cfg->policy_doc ? json_deep_copy(cfg->policy_doc) : json_object();
	json_t *clusters = json_object_get(doc, "clusters"), *pools = json_object_get(doc, "pools");
	enum gw_err rc;
	size_t i, p;
	json_t *v, *pool;

	*out = NULL;
	if (!clusters)
		json_object_set_new(doc, "clusters", clusters = json_array());
	json_array_foreach(json_object_get(overlay, "removed"), i, v) {
		const char *name = json_string_value(v);
		long at = member_index(clusters, name ? name : "");

		if (at >= 0)
			json_array_remove(clusters, (size_t)at);
		json_array_foreach(pools, p, pool)
			if ((at = member_index(json_object_get(pool, "clusters"), name ? name : "")) >= 0)
				json_array_remove(json_object_get(pool, "clusters"), (size_t)at);
	}
	json_array_foreach(json_object_get(overlay, "added"), i, v) {
		json_t *c = json_deep_copy(v);
		const char *pool_name = json_string_value(json_object_get(v, "pool"));
		json_t *weight = json_object_get(v, "weight");
		bool joined = false;

		json_object_del(c, "pool");
		json_object_del(c, "weight");
		json_array_append_new(clusters, c);
		json_array_foreach(pools, p, pool)
			if (pool_name && !strcmp(json_string_value(json_object_get(pool, "name")), pool_name)) {
				json_array_append_new(json_object_get(pool, "clusters"),
						      json_pack("{s:O, s:I}", "name", json_object_get(v, "name"),
								"weight", json_is_integer(weight) ? json_integer_value(weight) : 1));
				joined = true;
			}
		/* Without pools in the file every cluster is in the one implicit pool. */
		if (pools && !joined) {
			gw_seterr(err, "cluster %s: no pool named '%s' to join",
				  json_string_value(json_object_get(v, "name")), pool_name ? pool_name : "");
			json_decref(doc);
			return GW_EINVAL;
		}
	}
	rc = router_load(doc, cfg->policy_marks, cfg->path ? cfg->path : "(policy)", out, err);
	json_decref(doc);
	return rc;
}

enum gw_err gateway_config_apply_overlay(struct gateway_config *cfg, const json_t *overlay,
					 char *err)
{
	struct router *r;
	enum gw_err rc = gateway_config_policy_with(cfg, overlay, &r, err);

	if (rc == GW_OK) {
		router_unref(cfg->router);
		cfg->router = r;
	}
	return rc;
}
