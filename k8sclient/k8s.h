/* Kubernetes REST client: kubeconfig and in-cluster configuration, JSON
 * requests over libcurl with connection reuse and retries, and watch
 * streams. Knows nothing of jobs. */
#ifndef GW_K8S_H
#define GW_K8S_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* Where a cluster is and how to authenticate to it. PEM blobs are decoded
 * from the *-data fields; files are read by libcurl. */
struct k8s_config {
	char *server;       /* https://host:port */
	char *ca_file, *ca_pem;
	bool insecure;      /* insecure-skip-tls-verify */
	char *token, *token_file;
	char *cert_file, *cert_pem;
	char *key_file, *key_pem;
	char *namespace;    /* the context's namespace, may be NULL */
	char *proxy_url;    /* the cluster's proxy-url (http, https, socks5) */
	/* users[].user.exec: a client.authentication.k8s.io credential plugin
	 * (apiVersion, command resolved against the kubeconfig's folder when
	 * it has a slash, args, env), run for a token when one is needed;
	 * NULL when the user has none. */
	json_t *exec;
};

/* Loads context (NULL: current-context) from a kubeconfig file; relative
 * file paths in it are taken from the kubeconfig's directory, as kubectl
 * does. Errors name the file and what is missing. */
enum gw_err k8s_kubeconfig_load(const char *path, const char *context,
				struct k8s_config *out, char *err);
/* The service account of the pod this runs in. */
enum gw_err k8s_incluster_config(struct k8s_config *out, char *err);
void k8s_config_release(struct k8s_config *cfg);

struct k8s_client_options {
	long connect_timeout_ms; /* default 2000 */
	long request_timeout_ms; /* default 15000 */
	int max_retries;         /* default 4 */
	long backoff_base_ms;    /* default 100, doubled per retry, jittered */
	long backoff_max_ms;     /* default 4000 */
};

struct k8s_client;

/* cfg is copied. opts may be NULL for the defaults. */
enum gw_err k8s_client_new(const struct k8s_config *cfg,
			   const struct k8s_client_options *opts,
			   struct k8s_client **out, char *err);
void k8s_client_free(struct k8s_client *c);

struct k8s_response {
	long status;   /* HTTP status */
	json_t *body;  /* parsed JSON, or NULL */
	char *text;    /* raw body, NUL-terminated */
	size_t text_len;
	char content_type[128], location[1024]; /* those headers, or "" */
	int attempts;  /* requests sent, retries included */
};

void k8s_response_release(struct k8s_response *r);

/* Sends a request, retrying connection errors, 5xx and 429 (after its
 * Retry-After) with jittered exponential backoff; never other 4xx. GW_OK
 * when an answer arrived, whatever its status; GW_EIO when none did. */
enum gw_err k8s_request(struct k8s_client *c, const char *method,
			const char *path, const json_t *body,
			struct k8s_response *resp, char *err);

/* The same with headers of the caller's ("Name: value", NULL-terminated;
 * an Accept among them replaces application/json). */
enum gw_err k8s_request_with(struct k8s_client *c, const char *method, const char *path, const json_t *body,
			     const char *const *headers, struct k8s_response *resp, char *err);

/* The Status reason of an error answer ("AlreadyExists", "NotFound", …),
 * or "" . */
const char *k8s_status_reason(const struct k8s_response *r);

/* Called with each piece of a streamed body; return false to stop. */
typedef bool (*k8s_data_fn)(void *arg, const char *data, size_t len);

/* GETs path and streams the body to fn until it ends, fn returns false, or
 * *stop becomes true (checked at least once a second). *status gets the
 * HTTP status; an error answer's body is streamed too. GW_EIO when the
 * connection broke. */
enum gw_err k8s_stream(struct k8s_client *c, const char *path, long timeout_s,
		       k8s_data_fn fn, void *arg, const atomic_bool *stop,
		       long *status, char *err);

/* Called per watch event; return false to stop watching. */
typedef bool (*k8s_watch_fn)(void *arg, const char *type, json_t *object);

/* Streams `path?watch=true&resourceVersion=RV&allowWatchBookmarks=true`
 * (path may carry a query already) to fn until the server ends it, fn
 * returns false, or *stop becomes true. GW_OK when the stream ended
 * normally, GW_EIO when it broke (the caller resumes from the last rv). */
enum gw_err k8s_watch(struct k8s_client *c, const char *path,
		      const char *resource_version, long timeout_s,
		      k8s_watch_fn fn, void *arg, const atomic_bool *stop,
		      char *err);

#endif
