/* The REST client: a small pool of libcurl handles per cluster (each keeps
 * its connections alive), retries with jittered backoff, and watch
 * streams split into events line by line. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "common/buf.h"
#include "common/timeutil.h"
#include "k8sclient/exec.h"
#include "k8sclient/k8s.h"

#define POOL_MAX 8
#define MAX_RESPONSE (256u << 20)
#define MAX_EVENT (64u << 20)
#define MAX_RETRY_AFTER_S 60L

struct k8s_client {
	struct k8s_config cfg;
	struct k8s_client_options opts;
	pthread_mutex_t lock; /* guards idle, nidle, rng */
	CURL *idle[POOL_MAX];
	int nidle;
	uint64_t rng;
	/* An exec plugin's token, until it expires or the server refuses it;
	 * held while the plugin runs, so that it runs once for all. */
	pthread_mutex_t cred_lock;
	char *exec_token;
	int64_t exec_expires_ms;
};

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

enum gw_err k8s_client_new(const struct k8s_config *cfg,
			   const struct k8s_client_options *opts,
			   struct k8s_client **out, char *err)
{
	struct k8s_client *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c)
		return GW_ENOMEM;
	c->cfg.server = dup_or_null(cfg->server);
	c->cfg.ca_file = dup_or_null(cfg->ca_file);
	c->cfg.ca_pem = dup_or_null(cfg->ca_pem);
	c->cfg.insecure = cfg->insecure;
	c->cfg.token = dup_or_null(cfg->token);
	c->cfg.token_file = dup_or_null(cfg->token_file);
	c->cfg.cert_file = dup_or_null(cfg->cert_file);
	c->cfg.cert_pem = dup_or_null(cfg->cert_pem);
	c->cfg.key_file = dup_or_null(cfg->key_file);
	c->cfg.key_pem = dup_or_null(cfg->key_pem);
	c->cfg.namespace = dup_or_null(cfg->namespace);
	c->cfg.proxy_url = dup_or_null(cfg->proxy_url);
	c->cfg.exec = cfg->exec ? json_deep_copy(cfg->exec) : NULL;
	if (!c->cfg.server) {
		k8s_config_release(&c->cfg);
		free(c);
		gw_seterr(err, "cluster has no server");
		return GW_EINVAL;
	}
	c->opts.connect_timeout_ms = opts && opts->connect_timeout_ms ? opts->connect_timeout_ms : 2000;
	c->opts.request_timeout_ms = opts && opts->request_timeout_ms ? opts->request_timeout_ms : 15000;
	c->opts.max_retries = opts ? opts->max_retries : 4;
	c->opts.backoff_base_ms = opts && opts->backoff_base_ms ? opts->backoff_base_ms : 100;
	c->opts.backoff_max_ms = opts && opts->backoff_max_ms ? opts->backoff_max_ms : 4000;
	if (getrandom(&c->rng, sizeof(c->rng), 0) != (ssize_t)sizeof(c->rng) || !c->rng)
		c->rng = 0x9e3779b97f4a7c15ULL;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->cred_lock, NULL);
	*out = c;
	return GW_OK;
}

void k8s_client_free(struct k8s_client *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->nidle; i++)
		curl_easy_cleanup(c->idle[i]);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->cred_lock);
	free(c->exec_token);
	k8s_config_release(&c->cfg);
	free(c);
}

void k8s_response_release(struct k8s_response *r)
{
	json_decref(r->body);
	free(r->text);
	memset(r, 0, sizeof(*r));
}

const char *k8s_status_reason(const struct k8s_response *r)
{
	const char *kind = json_string_value(json_object_get(r->body, "kind"));
	const char *reason = json_string_value(json_object_get(r->body, "reason"));

	return kind && !strcmp(kind, "Status") && reason ? reason : "";
}

/* The bearer token as kubectl picks it: the kubeconfig's token, else its
 * token file (read each time: tokens rotate), else the exec plugin's
 * (cached until it expires). *token is NULL when there is none. */
static enum gw_err bearer(struct k8s_client *c, char **token, char *err)
{
	enum gw_err rc = GW_OK;
	FILE *f;
	char buf[8192];
	size_t n;

	*token = NULL;
	if (c->cfg.token) {
		*token = strdup(c->cfg.token);
		return *token ? GW_OK : GW_ENOMEM;
	}
	if (c->cfg.token_file) {
		if (!(f = fopen(c->cfg.token_file, "r")))
			return GW_OK; /* the server says 401 */
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		buf[strcspn(buf, "\r\n")] = '\0';
		*token = strdup(buf);
		return *token ? GW_OK : GW_ENOMEM;
	}
	if (!c->cfg.exec)
		return GW_OK;
	pthread_mutex_lock(&c->cred_lock);
	if (!c->exec_token || gw_now_ms() >= c->exec_expires_ms) {
		free(c->exec_token);
		c->exec_token = NULL;
		rc = k8s_exec_credential(c->cfg.exec, c->cfg.server, c->cfg.insecure, &c->exec_token,
					 &c->exec_expires_ms, err);
	}
	if (rc == GW_OK && !(*token = strdup(c->exec_token)))
		rc = GW_ENOMEM;
	pthread_mutex_unlock(&c->cred_lock);
	return rc;
}

/* The server refused the token: a plugin's is fetched again next time
 * (unless another request already did). True when there is a new one to
 * try. */
static bool forget_token(struct k8s_client *c, const char *refused)
{
	if (!c->cfg.exec || c->cfg.token || c->cfg.token_file)
		return false;
	pthread_mutex_lock(&c->cred_lock);
	if (c->exec_token && refused && !strcmp(c->exec_token, refused)) {
		free(c->exec_token);
		c->exec_token = NULL;
	}
	pthread_mutex_unlock(&c->cred_lock);
	return true;
}

static void blob(CURL *h, CURLoption opt, const char *pem)
{
	struct curl_blob b = {.data = (void *)(uintptr_t)pem, .len = strlen(pem),
			      .flags = CURL_BLOB_COPY};

	curl_easy_setopt(h, opt, &b);
}

/* Options every request to this cluster shares: TLS and client identity. */
static void apply_common(const struct k8s_client *c, CURL *h)
{
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->opts.connect_timeout_ms);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	/* The kubeconfig's proxy-url, as kubectl; never the environment's
	 * proxies, which are meant for the outside, not for API servers. */
	if (c->cfg.proxy_url)
		curl_easy_setopt(h, CURLOPT_PROXY, c->cfg.proxy_url);
	else
		curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	if (c->cfg.insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (c->cfg.ca_pem)
		blob(h, CURLOPT_CAINFO_BLOB, c->cfg.ca_pem);
	else if (c->cfg.ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, c->cfg.ca_file);
	if (c->cfg.cert_pem)
		blob(h, CURLOPT_SSLCERT_BLOB, c->cfg.cert_pem);
	else if (c->cfg.cert_file)
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->cfg.cert_file);
	if (c->cfg.key_pem)
		blob(h, CURLOPT_SSLKEY_BLOB, c->cfg.key_pem);
	else if (c->cfg.key_file)
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->cfg.key_file);
}

static CURL *handle_get(struct k8s_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->lock);
	if (c->nidle)
		h = c->idle[--c->nidle];
	pthread_mutex_unlock(&c->lock);
	if (h)
		curl_easy_reset(h); /* options go; live connections stay */
	else
		h = curl_easy_init();
	if (h)
		apply_common(c, h);
	return h;
}

static void handle_put(struct k8s_client *c, CURL *h)
{
	pthread_mutex_lock(&c->lock);
	if (c->nidle < POOL_MAX) {
		c->idle[c->nidle++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	if (h)
		curl_easy_cleanup(h);
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	return gw_buf_append(userdata, ptr, size * nmemb) == GW_OK ? size * nmemb : 0;
}

struct header_state {
	long retry_after_s;
	char content_type[128], location[1024];
};

/* A header's value, without its leading blanks and the line's end. */
static void header_value(const char *ptr, size_t n, size_t name_len, char *out, size_t len)
{
	size_t from = name_len, to = n;

	while (from < to && (ptr[from] == ' ' || ptr[from] == '\t'))
		from++;
	while (to > from && (ptr[to - 1] == '\r' || ptr[to - 1] == '\n' || ptr[to - 1] == ' '))
		to--;
	snprintf(out, len, "%.*s", (int)(to - from), ptr + from);
}

static size_t read_headers(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct header_state *hs = userdata;
	size_t n = size * nmemb;

	if (n > 12 && !strncasecmp(ptr, "Retry-After:", 12))
		hs->retry_after_s = strtol(ptr + 12, NULL, 10);
	else if (n > 13 && !strncasecmp(ptr, "Content-Type:", 13))
		header_value(ptr, n, 13, hs->content_type, sizeof(hs->content_type));
	else if (n > 9 && !strncasecmp(ptr, "Location:", 9))
		header_value(ptr, n, 9, hs->location, sizeof(hs->location));
	return n;
}

static long backoff_ms(struct k8s_client *c, int attempt)
{
	long cap = c->opts.backoff_base_ms << (attempt < 16 ? attempt : 16);
	uint64_t r;

	if (cap > c->opts.backoff_max_ms || cap <= 0)
		cap = c->opts.backoff_max_ms;
	pthread_mutex_lock(&c->lock);
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	r = c->rng;
	pthread_mutex_unlock(&c->lock);
	/* "Equal jitter": half fixed, half random, so retries spread out but
	 * never hammer back at once. */
	return cap / 2 + (long)(r % (uint64_t)(cap / 2 + 1));
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static struct curl_slist *request_headers(const char *token, const char *method, bool has_body,
					  const char *const *extra)
{
	struct curl_slist *hl = NULL;
	bool accept_given = false;

	for (size_t i = 0; extra && extra[i]; i++) {
		hl = curl_slist_append(hl, extra[i]);
		accept_given = accept_given || !strncasecmp(extra[i], "Accept:", 7);
	}
	if (!accept_given)
		hl = curl_slist_append(hl, "Accept: application/json");

	if (token) {
		char *auth = NULL;

		if (asprintf(&auth, "Authorization: Bearer %s", token) >= 0) {
			hl = curl_slist_append(hl, auth);
			free(auth);
		}
	}
	if (has_body)
		hl = curl_slist_append(hl, !strcmp(method, "PATCH")
					       ? "Content-Type: application/merge-patch+json"
					       : "Content-Type: application/json");
	return curl_slist_append(hl, "Expect:");
}

enum gw_err k8s_request(struct k8s_client *c, const char *method,
			const char *path, const json_t *body,
			struct k8s_response *resp, char *err)
{
	return k8s_request_with(c, method, path, body, NULL, resp, err);
}

enum gw_err k8s_request_with(struct k8s_client *c, const char *method, const char *path, const json_t *body,
			     const char *const *headers, struct k8s_response *resp, char *err)
{
	char *url = NULL, *payload = NULL, *token = NULL;
	struct curl_slist *hl = NULL;
	bool token_renewed = false;
	enum gw_err rc = GW_EIO;

	memset(resp, 0, sizeof(*resp));
	if (asprintf(&url, "%s%s", c->cfg.server, path) < 0)
		return GW_ENOMEM;
	if (body && !(payload = json_dumps(body, JSON_COMPACT))) {
		free(url);
		return GW_ENOMEM;
	}
	if ((rc = bearer(c, &token, err)) != GW_OK)
		goto out;
	hl = request_headers(token, method, payload != NULL, headers);
	for (int attempt = 0;; attempt++) {
		CURL *h = handle_get(c);
		struct gw_buf out;
		struct header_state hs = {0};
		CURLcode cc;
		long status = 0;
		bool retry;

		if (!h) {
			rc = GW_ENOMEM;
			break;
		}
		gw_buf_init(&out, MAX_RESPONSE);
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->opts.request_timeout_ms);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &out);
		curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, read_headers);
		curl_easy_setopt(h, CURLOPT_HEADERDATA, &hs);
		if (payload) {
			curl_easy_setopt(h, CURLOPT_POSTFIELDS, payload);
			curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(payload));
		}
		cc = curl_easy_perform(h);
		resp->attempts = attempt + 1;
		if (cc == CURLE_OK)
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		handle_put(c, h);
		/* A plugin's token may have been revoked before it expired: one
		 * more try with a new one, as kubectl does. */
		if (status == 401 && !token_renewed && forget_token(c, token)) {
			token_renewed = true;
			gw_buf_release(&out);
			free(token);
			curl_slist_free_all(hl);
			hl = NULL;
			if ((rc = bearer(c, &token, err)) != GW_OK)
				break;
			hl = request_headers(token, method, payload != NULL, headers);
			attempt--;
			continue;
		}
		retry = cc != CURLE_OK || status == 429 || status >= 500;
		if (!retry || attempt >= c->opts.max_retries) {
			if (cc != CURLE_OK) {
				gw_seterr(err, "%s %s: %s", method, path, curl_easy_strerror(cc));
				gw_buf_release(&out);
				rc = GW_EIO;
				break;
			}
			resp->status = status;
			resp->text_len = out.len;
			snprintf(resp->content_type, sizeof(resp->content_type), "%s", hs.content_type);
			snprintf(resp->location, sizeof(resp->location), "%s", hs.location);
			resp->text = out.data ? out.data : strdup("");
			resp->body = json_loads(resp->text, 0, NULL);
			if (status >= 400)
				gw_seterr(err, "%s %s: %ld %s", method, path, status,
					  json_string_value(json_object_get(resp->body, "message"))
						  ? json_string_value(json_object_get(resp->body, "message"))
						  : "");
			rc = GW_OK;
			break;
		}
		gw_buf_release(&out);
		/* The server's Retry-After wins over our backoff (within reason). */
		sleep_ms(status == 429 && hs.retry_after_s > 0
				 ? (hs.retry_after_s < MAX_RETRY_AFTER_S ? hs.retry_after_s : MAX_RETRY_AFTER_S) * 1000
				 : backoff_ms(c, attempt));
	}
out:
	curl_slist_free_all(hl);
	free(token);
	free(url);
	free(payload);
	return rc;
}

/* ---- streams ---- */

struct stream_state {
	k8s_data_fn fn;
	void *arg;
	const atomic_bool *stop;
	bool stopped_by_fn;
};

static size_t stream_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct stream_state *ss = userdata;

	if (!ss->fn(ss->arg, ptr, size * nmemb)) {
		ss->stopped_by_fn = true;
		return 0;
	}
	return size * nmemb;
}

static int stream_progress(void *userdata, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct stream_state *ss = userdata;

	(void)a;
	(void)b;
	(void)c;
	(void)d;
	return ss->stop && atomic_load(ss->stop) ? 1 : 0;
}

enum gw_err k8s_stream(struct k8s_client *c, const char *path, long timeout_s,
		       k8s_data_fn fn, void *arg, const atomic_bool *stop,
		       long *status, char *err)
{
	struct stream_state ss = {.fn = fn, .arg = arg, .stop = stop};
	CURL *h = curl_easy_init();
	struct curl_slist *hl;
	char *url = NULL, *token = NULL;
	CURLcode cc;
	enum gw_err rc = GW_OK;

	*status = 0;
	if (!h)
		return GW_ENOMEM;
	if (asprintf(&url, "%s%s", c->cfg.server, path) < 0) {
		curl_easy_cleanup(h);
		return GW_ENOMEM;
	}
	if ((rc = bearer(c, &token, err)) != GW_OK) {
		curl_easy_cleanup(h);
		free(url);
		return rc;
	}
	apply_common(c, h);
	hl = request_headers(token, "GET", false, NULL);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, stream_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &ss);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, stream_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, &ss);
	cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	if (cc != CURLE_OK && !ss.stopped_by_fn && cc != CURLE_ABORTED_BY_CALLBACK) {
		gw_seterr(err, "GET %s: %s", path, curl_easy_strerror(cc));
		rc = GW_EIO;
	}
	if (*status == 401) /* the caller's next try gets a new plugin token */
		forget_token(c, token);
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	free(token);
	free(url);
	return rc;
}

/* ---- watch ---- */

struct watch_state {
	struct gw_buf line;
	k8s_watch_fn fn;
	void *arg;
};

static const char *watch_type(const json_t *ev)
{
	const char *t = json_string_value(json_object_get(ev, "type"));

	return t ? t : "";
}

/* Splits the stream into lines, one event each. */
static bool watch_data(void *arg, const char *data, size_t n)
{
	struct watch_state *ws = arg;

	for (size_t i = 0; i < n; i++) {
		json_t *ev;
		bool go_on;

		if (data[i] != '\n') {
			if (gw_buf_append(&ws->line, data + i, 1) != GW_OK)
				return false; /* absurd event: drop the stream */
			continue;
		}
		ev = ws->line.len ? json_loadb(ws->line.data, ws->line.len, 0, NULL) : NULL;
		ws->line.len = 0;
		if (!ev)
			continue;
		go_on = ws->fn(ws->arg, watch_type(ev), json_object_get(ev, "object"));
		json_decref(ev);
		if (!go_on)
			return false;
	}
	return true;
}

enum gw_err k8s_watch(struct k8s_client *c, const char *path,
		      const char *resource_version, long timeout_s,
		      k8s_watch_fn fn, void *arg, const atomic_bool *stop,
		      char *err)
{
	struct watch_state ws = {.fn = fn, .arg = arg};
	char *full = NULL;
	long status;
	enum gw_err rc;

	if (asprintf(&full, "%s%cwatch=true&allowWatchBookmarks=true&timeoutSeconds=%ld%s%s",
		     path, strchr(path, '?') ? '&' : '?', timeout_s,
		     resource_version ? "&resourceVersion=" : "",
		     resource_version ? resource_version : "") < 0)
		return GW_ENOMEM;
	gw_buf_init(&ws.line, MAX_EVENT);
	/* The server ends the watch at timeoutSeconds; the rest is a backstop. */
	rc = k8s_stream(c, full, timeout_s + 30, watch_data, &ws, stop, &status, err);
	if (rc == GW_OK && status >= 400) {
		gw_seterr(err, "watch %s: HTTP %ld", path, status);
		rc = GW_EIO;
	}
	gw_buf_release(&ws.line);
	free(full);
	return rc;
}
