/* k8sclient: kubeconfig and in-cluster configuration, the retry policy,
 * watches, TLS and bearer tokens, against kubesim. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "k8sclient/k8s.h"
#include "tests/testutil.h"

static char *dir;

static void setup(void)
{
	dir = tu_tmpdir("k8s");
	ck_assert_ptr_nonnull(dir);
}

static void teardown(void)
{
	tu_rmtree(dir);
	free(dir);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static char *base64(const char *text)
{
	size_t n = strlen(text);
	char *out = malloc(4 * ((n + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)text, (int)n);
	return out;
}

START_TEST(test_kubeconfig_fields)
{
	char path[700], text[2048];
	char *ca = base64("-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n");
	struct k8s_config cfg;
	char err[GW_ERRLEN];

	snprintf(path, sizeof(path), "%s/config", dir);
	snprintf(text, sizeof(text),
		 "apiVersion: v1\nkind: Config\ncurrent-context: b\n"
		 "clusters:\n"
		 "- name: one\n  cluster:\n    server: https://10.0.0.1:6443\n    certificate-authority-data: %s\n"
		 "- name: two\n  cluster:\n    server: https://two:443\n    certificate-authority: certs/ca.crt\n"
		 "    insecure-skip-tls-verify: true\n"
		 "contexts:\n"
		 "- name: a\n  context: {cluster: one, user: alice, namespace: spark}\n"
		 "- name: b\n  context: {cluster: two, user: bob}\n"
		 "users:\n"
		 "- name: alice\n  user:\n    token: abc\n    client-certificate-data: %s\n    client-key-data: %s\n"
		 "- name: bob\n  user:\n    tokenFile: /var/run/token\n    client-certificate: bob.crt\n    client-key: /abs/bob.key\n",
		 ca, ca, ca);
	write_text(path, text);

	ck_assert_int_eq(k8s_kubeconfig_load(path, "a", &cfg, err), GW_OK);
	ck_assert_str_eq(cfg.server, "https://10.0.0.1:6443");
	ck_assert_str_eq(cfg.ca_pem, "-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n");
	ck_assert_str_eq(cfg.cert_pem, cfg.ca_pem);
	ck_assert_str_eq(cfg.token, "abc");
	ck_assert_str_eq(cfg.namespace, "spark");
	ck_assert(!cfg.insecure);
	k8s_config_release(&cfg);

	/* No context named: current-context; relative files beside the kubeconfig. */
	ck_assert_int_eq(k8s_kubeconfig_load(path, NULL, &cfg, err), GW_OK);
	ck_assert_str_eq(cfg.server, "https://two:443");
	ck_assert(cfg.insecure);
	snprintf(text, sizeof(text), "%s/certs/ca.crt", dir);
	ck_assert_str_eq(cfg.ca_file, text);
	snprintf(text, sizeof(text), "%s/bob.crt", dir);
	ck_assert_str_eq(cfg.cert_file, text);
	ck_assert_str_eq(cfg.key_file, "/abs/bob.key");
	ck_assert_str_eq(cfg.token_file, "/var/run/token");
	ck_assert_ptr_null(cfg.token);
	k8s_config_release(&cfg);

	ck_assert_int_eq(k8s_kubeconfig_load(path, "nope", &cfg, err), GW_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "context \"nope\" not found"));
	free(ca);
}
END_TEST

START_TEST(test_kubeconfig_errors)
{
	char path[700], err[GW_ERRLEN];
	struct k8s_config cfg;

	snprintf(path, sizeof(path), "%s/config", dir);
	write_text(path, "contexts:\n- name: a\n  context: {cluster: x, user: u}\nclusters: []\n");
	ck_assert_int_eq(k8s_kubeconfig_load(path, "a", &cfg, err), GW_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "cluster \"x\""));
	write_text(path, "current-context: a\ncontexts:\n- name: a\n  context: {cluster: x, user: u}\n"
			 "clusters:\n- name: x\n  cluster: {server: 'https://x', certificate-authority-data: '!!notbase64'}\n");
	ck_assert_int_eq(k8s_kubeconfig_load(path, NULL, &cfg, err), GW_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "not valid base64"));
	write_text(path, "kind: Config\n");
	ck_assert_int_eq(k8s_kubeconfig_load(path, NULL, &cfg, err), GW_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "no current-context"));
	ck_assert_int_eq(k8s_kubeconfig_load("/nonexistent/kubeconfig", NULL, &cfg, err), GW_EIO);
}
END_TEST

START_TEST(test_incluster_config)
{
	struct k8s_config cfg;
	char err[GW_ERRLEN];

	unsetenv("KUBERNETES_SERVICE_HOST");
	ck_assert_int_eq(k8s_incluster_config(&cfg, err), GW_EINVAL);
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	ck_assert_int_eq(k8s_incluster_config(&cfg, err), GW_OK);
	ck_assert_str_eq(cfg.server, "https://10.96.0.1:443");
	ck_assert_str_eq(cfg.token_file, "/var/run/secrets/kubernetes.io/serviceaccount/token");
	ck_assert_str_eq(cfg.ca_file, "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt");
	k8s_config_release(&cfg);
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	ck_assert_int_eq(k8s_incluster_config(&cfg, err), GW_OK);
	ck_assert_str_eq(cfg.server, "https://[fd00::1]:443");
	k8s_config_release(&cfg);
}
END_TEST

static struct k8s_client *client_for(const struct tu_kubesim *sim, int retries)
{
	struct k8s_config cfg = {.server = (char *)(uintptr_t)sim->base};
	struct k8s_client_options o = {.max_retries = retries, .backoff_base_ms = 1, .backoff_max_ms = 20};
	struct k8s_client *c;
	char err[GW_ERRLEN];

	ck_assert_int_eq(k8s_client_new(&cfg, &o, &c, err), GW_OK);
	return c;
}

START_TEST(test_retries_5xx_then_gives_up)
{
	struct tu_kubesim sim = {0};
	struct k8s_client *c;
	struct k8s_response r;
	char err[GW_ERRLEN];

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "broken", "--error-rate", "1", NULL), 0);
	c = client_for(&sim, 3);
	ck_assert_int_eq(k8s_request(c, "GET", "/api/v1/namespaces", NULL, &r, err), GW_OK);
	ck_assert_int_eq(r.status, 500);
	ck_assert_int_eq(r.attempts, 4);
	ck_assert_str_eq(k8s_status_reason(&r), "InternalError");
	k8s_response_release(&r);
	k8s_client_free(c);
	tu_kubesim_stop(&sim);
}
END_TEST

START_TEST(test_no_retry_on_4xx)
{
	struct tu_kubesim sim = {0};
	struct k8s_client *c;
	struct k8s_response r;
	json_t *ns = json_pack("{s:{s:s}}", "metadata", "name", "team-a");
	char err[GW_ERRLEN];

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "plain", NULL), 0);
	c = client_for(&sim, 3);
	ck_assert_int_eq(k8s_request(c, "GET", "/api/v1/namespaces/default/pods/nope", NULL, &r, err), GW_OK);
	ck_assert_int_eq(r.status, 404);
	ck_assert_int_eq(r.attempts, 1);
	ck_assert_str_eq(k8s_status_reason(&r), "NotFound");
	k8s_response_release(&r);
	ck_assert_int_eq(k8s_request(c, "POST", "/api/v1/namespaces", ns, &r, err), GW_OK);
	ck_assert_int_eq(r.status, 201);
	k8s_response_release(&r);
	ck_assert_int_eq(k8s_request(c, "POST", "/api/v1/namespaces", ns, &r, err), GW_OK);
	ck_assert_int_eq(r.status, 409);
	ck_assert_int_eq(r.attempts, 1);
	ck_assert_str_eq(k8s_status_reason(&r), "AlreadyExists");
	k8s_response_release(&r);
	json_decref(ns);
	k8s_client_free(c);
	tu_kubesim_stop(&sim);
}
END_TEST

START_TEST(test_429_honours_retry_after)
{
	struct tu_kubesim sim = {0};
	struct k8s_client *c;
	struct k8s_response r;
	char err[GW_ERRLEN];
	int64_t t0;
	int throttled = 0;

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "slow", "--throttle-qps", "1", NULL), 0);
	c = client_for(&sim, 3);
	/* The bucket holds one token: the second request waits for Retry-After. */
	for (int i = 0; i < 3; i++) {
		t0 = gw_now_ms();
		ck_assert_int_eq(k8s_request(c, "GET", "/api/v1/namespaces", NULL, &r, err), GW_OK);
		ck_assert_int_eq(r.status, 200);
		if (r.attempts > 1) {
			throttled++;
			ck_assert_int_ge(gw_now_ms() - t0, 900);
		}
		k8s_response_release(&r);
	}
	ck_assert_int_ge(throttled, 1);
	k8s_client_free(c);
	tu_kubesim_stop(&sim);
}
END_TEST

struct seen {
	int added;
	bool expired;
};

static bool count_events(void *arg, const char *type, json_t *obj)
{
	struct seen *s = arg;

	if (!strcmp(type, "ADDED"))
		s->added++;
	if (!strcmp(type, "ERROR") && json_integer_value(json_object_get(obj, "code")) == 410)
		s->expired = true;
	return !s->expired && s->added < 1;
}

START_TEST(test_watch_events_and_expiry)
{
	struct tu_kubesim sim = {0};
	struct k8s_client *c;
	struct k8s_response r;
	json_t *ns = json_pack("{s:{s:s}}", "metadata", "name", "watched");
	atomic_bool stop = false;
	struct seen s = {0};
	char err[GW_ERRLEN], rv[32];

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "watch", "--compact-every", "1", NULL), 0);
	c = client_for(&sim, 2);
	ck_assert_int_eq(k8s_request(c, "GET", "/api/v1/namespaces", NULL, &r, err), GW_OK);
	snprintf(rv, sizeof(rv), "%s", json_string_value(json_object_get(json_object_get(r.body, "metadata"), "resourceVersion")));
	k8s_response_release(&r);
	ck_assert_int_eq(k8s_request(c, "POST", "/api/v1/namespaces", ns, &r, err), GW_OK);
	k8s_response_release(&r);
	/* From the list's version: the namespace made since is ADDED. */
	ck_assert_int_eq(k8s_watch(c, "/api/v1/namespaces", rv, 5, count_events, &s, &stop, err), GW_OK);
	ck_assert_int_eq(s.added, 1);
	/* After a compaction the old version is gone: 410 in an ERROR event. */
	sleep(2);
	s.added = 0;
	ck_assert_int_eq(k8s_watch(c, "/api/v1/namespaces", rv, 5, count_events, &s, &stop, err), GW_OK);
	ck_assert(s.expired);
	json_decref(ns);
	k8s_client_free(c);
	tu_kubesim_stop(&sim);
}
END_TEST

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 16384);

	if (f) {
		size_t n = fread(buf, 1, 16383, f);

		buf[n] = '\0';
		fclose(f);
	}
	return buf;
}

START_TEST(test_tls_and_token_from_kubeconfig)
{
	char cmd[2048], cert[700], key[700], path[700], text[16384];
	char *pem, *ca;
	struct tu_kubesim sim = {0};
	struct k8s_config cfg;
	struct k8s_client *c;
	struct k8s_response r;
	char err[GW_ERRLEN];

	snprintf(cert, sizeof(cert), "%s/tls.crt", dir);
	snprintf(key, sizeof(key), "%s/tls.key", dir);
	snprintf(cmd, sizeof(cmd),
		 "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 1 "
		 "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1", key, cert);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "tls", "--tls-cert", cert, "--tls-key", key,
					  "--token", "s3cret", NULL), -1); /* /healthz over http fails */
	/* tu_kubesim_start probes plain HTTP; give the TLS server a moment. */
	usleep(300000);
	pem = read_all(cert);
	ca = base64(pem);
	snprintf(path, sizeof(path), "%s/kubeconfig", dir);
	snprintf(text, sizeof(text),
		 "current-context: t\ncontexts:\n- name: t\n  context: {cluster: t, user: u}\n"
		 "- name: wrong\n  context: {cluster: t, user: w}\n- name: noca\n  context: {cluster: n, user: u}\n"
		 "- name: insecure\n  context: {cluster: i, user: u}\n"
		 "clusters:\n- name: t\n  cluster:\n    server: https://127.0.0.1:%d\n    certificate-authority-data: %s\n"
		 "- name: n\n  cluster:\n    server: https://127.0.0.1:%d\n"
		 "- name: i\n  cluster:\n    server: https://127.0.0.1:%d\n    insecure-skip-tls-verify: true\n"
		 "users:\n- name: u\n  user: {token: s3cret}\n- name: w\n  user: {token: guess}\n",
		 sim.port, ca, sim.port, sim.port);
	write_text(path, text);

	ck_assert_int_eq(k8s_kubeconfig_load(path, NULL, &cfg, err), GW_OK);
	ck_assert_int_eq(k8s_client_new(&cfg, NULL, &c, err), GW_OK);
	k8s_config_release(&cfg);
	ck_assert_int_eq(k8s_request(c, "GET", "/api/v1/namespaces", NULL, &r, err), GW_OK);
	ck_assert_int_eq(r.status, 200);
	k8s_response_release(&r);
	k8s_client_free(c);

	ck_assert_int_eq(k8s_kubeconfig_load(path, "wrong", &cfg, err), GW_OK);
	ck_assert_int_eq(k8s_client_new(&cfg, NULL, &c, err), GW_OK);
	k8s_config_release(&cfg);
	ck_assert_int_eq(k8s_request(c, "GET", "/api/v1/namespaces", NULL, &r, err), GW_OK);
	ck_assert_int_eq(r.status, 401);
	k8s_response_release(&r);
	k8s_client_free(c);

	/* Verification is on by default: an unknown CA does not pass. */
	ck_assert_int_eq(k8s_kubeconfig_load(path, "noca", &cfg, err), GW_OK);
	ck_assert_int_eq(k8s_client_new(&cfg, &(struct k8s_client_options){.max_retries = 0}, &c, err), GW_OK);
	k8s_config_release(&cfg);
	ck_assert_int_eq(k8s_request(c, "GET", "/api/v1/namespaces", NULL, &r, err), GW_EIO);
	ck_assert_msg(strstr(err, "SSL") || strstr(err, "certificate"), "%s", err);
	k8s_client_free(c);
	/* Unless the kubeconfig says to skip it, as kubectl honours. */
	ck_assert_int_eq(k8s_kubeconfig_load(path, "insecure", &cfg, err), GW_OK);
	ck_assert_int_eq(k8s_client_new(&cfg, &(struct k8s_client_options){.max_retries = 0}, &c, err), GW_OK);
	k8s_config_release(&cfg);
	ck_assert_int_eq(k8s_request(c, "GET", "/api/v1/namespaces", NULL, &r, err), GW_OK);
	ck_assert_int_eq(r.status, 200);
	k8s_response_release(&r);
	k8s_client_free(c);
	free(pem);
	free(ca);
	tu_kubesim_stop(&sim);
}
END_TEST

/* Lines in a file (0 when it does not exist). */
static int lines_in(const char *path)
{
	FILE *f = fopen(path, "r");
	int n = 0, ch;

	if (!f)
		return 0;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

static void write_in(const char *name, const char *text)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	write_text(path, text);
}

static long get_status(struct k8s_client *c, char *err)
{
	struct k8s_response r;
	long status;

	if (k8s_request(c, "GET", "/api/v1/namespaces", NULL, &r, err) != GW_OK)
		return -1;
	status = r.status;
	k8s_response_release(&r);
	return status;
}

/* A kubeconfig user with an exec plugin, as EKS, GKE and AKS write them:
 * the plugin runs with its args and env and KUBERNETES_EXEC_INFO, once
 * while its token is good, again when it expires or the server refuses
 * it (a restarted server with a new token); a failing plugin's exit is
 * the request's error. */
START_TEST(test_exec_credential_plugin)
{
	char path[700], calls[700], text[2048], err[GW_ERRLEN];
	struct tu_kubesim sim = {0};
	struct k8s_config cfg;
	struct k8s_client *c;
	char *info;

	write_in("plugin.sh",
		 "#!/bin/sh\n"
		 "echo \"$*\" >> \"$PLUGIN_DIR/calls\"\n"
		 "printf '%s' \"$KUBERNETES_EXEC_INFO\" > \"$PLUGIN_DIR/info\"\n"
		 "if [ -f \"$PLUGIN_DIR/fail\" ]; then echo 'plugin: no credentials' >&2; exit 3; fi\n"
		 "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\","
		 "\"status\":{\"token\":\"%s\",\"expirationTimestamp\":\"%s\"}}\\n' "
		 "\"$(cat \"$PLUGIN_DIR/token\")\" \"$(cat \"$PLUGIN_DIR/expires\")\"\n");
	snprintf(path, sizeof(path), "%s/plugin.sh", dir);
	ck_assert_int_eq(chmod(path, 0755), 0);
	write_in("token", "s3cret");
	write_in("expires", "2099-01-01T00:00:00Z");
	snprintf(calls, sizeof(calls), "%s/calls", dir);
	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "exec", "--token", "s3cret", NULL), 0);
	snprintf(path, sizeof(path), "%s/kubeconfig", dir);
	snprintf(text, sizeof(text),
		 "current-context: t\ncontexts:\n- name: t\n  context: {cluster: t, user: eks}\n"
		 "clusters:\n- name: t\n  cluster: {server: '%s'}\n"
		 "users:\n- name: eks\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
		 "      command: ./plugin.sh\n      args: [eks, get-token, --cluster-name, t]\n"
		 "      env: [{name: PLUGIN_DIR, value: '%s'}]\n      interactiveMode: Never\n",
		 sim.base, dir);
	write_text(path, text);
	ck_assert_int_eq(k8s_kubeconfig_load(path, NULL, &cfg, err), GW_OK);
	ck_assert_int_eq(k8s_client_new(&cfg, NULL, &c, err), GW_OK);
	k8s_config_release(&cfg);

	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(get_status(c, err), 200);
	ck_assert_int_eq(lines_in(calls), 1); /* cached until it expires */
	info = read_all(calls);
	ck_assert_str_eq(info, "eks get-token --cluster-name t\n");
	free(info);
	snprintf(path, sizeof(path), "%s/info", dir);
	info = read_all(path);
	ck_assert_msg(strstr(info, "\"kind\":\"ExecCredential\"") && strstr(info, "\"interactive\":false") &&
			      strstr(info, "client.authentication.k8s.io/v1"), "%s", info);
	free(info);

	/* The server now wants another token: one 401, the plugin again. */
	tu_kubesim_stop(&sim);
	sim.keep_port = true;
	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "exec", "--token", "n3w", NULL), 0);
	write_in("token", "n3w");
	ck_assert_int_eq(get_status(c, err), 200);
	ck_assert_int_eq(lines_in(calls), 2);

	/* An expired token is not sent: each request runs the plugin. */
	write_in("expires", "2020-01-01T00:00:00Z");
	write_in("token", "n3w");
	ck_assert_int_eq(get_status(c, err), 200); /* the cached one is good till 2099 */
	ck_assert_int_eq(lines_in(calls), 2);
	tu_kubesim_stop(&sim);
	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "exec", "--token", "l4st", NULL), 0);
	write_in("token", "l4st");
	ck_assert_int_eq(get_status(c, err), 200);
	ck_assert_int_eq(get_status(c, err), 200);
	ck_assert_int_eq(lines_in(calls), 4); /* once refused, once expired */

	/* A plugin that fails fails the request, saying how. */
	write_in("fail", "");
	ck_assert_int_eq(get_status(c, err), -1);
	ck_assert_msg(strstr(err, "plugin.sh") && strstr(err, "exited with status 3"), "%s", err);
	k8s_client_free(c);
	tu_kubesim_stop(&sim);

	/* Plugins that need a terminal cannot serve a daemon. */
	snprintf(path, sizeof(path), "%s/kubeconfig", dir);
	write_text(path, "current-context: t\ncontexts:\n- name: t\n  context: {cluster: t, user: u}\n"
			 "clusters:\n- name: t\n  cluster: {server: 'http://127.0.0.1:1'}\n"
			 "users:\n- name: u\n  user:\n    exec: {apiVersion: client.authentication.k8s.io/v1,"
			 " command: gcloud, interactiveMode: Always}\n");
	ck_assert_int_eq(k8s_kubeconfig_load(path, NULL, &cfg, err), GW_EINVAL);
	ck_assert_msg(strstr(err, "interactiveMode"), "%s", err);
}
END_TEST

/* A cluster's proxy-url is where requests go: through a proxy that is
 * not there they fail, while the same server without it answers. */
/* A forward HTTP proxy, as a proxy-url names one: each connection's
 * requests (absolute-form, as clients send them to a proxy) go to the
 * server in origin form, the answers come back; the request lines seen
 * are kept. One connection at a time is enough for one client. */
struct forward_proxy {
	int listener, port;
	pthread_t thread;
	pthread_mutex_t lock;
	char seen[4096];
};

static void relay(int client, int upstream_port, struct forward_proxy *fp)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)upstream_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int up = socket(AF_INET, SOCK_STREAM, 0);
	char buf[65536], prefix[64];
	struct pollfd p[2] = {{.fd = client, .events = POLLIN}, {.fd = up, .events = POLLIN}};

	snprintf(prefix, sizeof(prefix), "http://127.0.0.1:%d", upstream_port);
	if (up < 0 || connect(up, (struct sockaddr *)&to, sizeof(to))) {
		if (up >= 0)
			close(up);
		return;
	}
	p[1].fd = up;
	for (int rounds = 0; rounds < 100000 && poll(p, 2, 5000) > 0; rounds++) {
		if (p[0].revents & (POLLIN | POLLHUP)) {
			ssize_t n = read(client, buf, sizeof(buf) - 1);
			char *at;

			if (n <= 0)
				break;
			buf[n] = '\0';
			/* Absolute form to origin form, noting the request line. */
			if ((at = strstr(buf, prefix)) && at - buf < 8) {
				char *eol = strstr(buf, "\r\n");

				pthread_mutex_lock(&fp->lock);
				snprintf(fp->seen + strlen(fp->seen), sizeof(fp->seen) - strlen(fp->seen), "%.*s\n",
					 eol ? (int)(eol - buf) : 0, buf);
				pthread_mutex_unlock(&fp->lock);
				memmove(at, at + strlen(prefix), (size_t)n - (size_t)(at - buf) - strlen(prefix) + 1);
				n -= (ssize_t)strlen(prefix);
			}
			if (write(up, buf, (size_t)n) != n)
				break;
		}
		if (p[1].revents & (POLLIN | POLLHUP)) {
			ssize_t n = read(up, buf, sizeof(buf));

			if (n <= 0 || write(client, buf, (size_t)n) != n)
				break;
		}
	}
	close(up);
}

struct proxy_run {
	struct forward_proxy *fp;
	int upstream_port;
};

static void *proxy_main(void *arg)
{
	struct proxy_run *run = arg;
	int client;

	while ((client = accept(run->fp->listener, NULL, NULL)) >= 0) {
		relay(client, run->upstream_port, run->fp);
		close(client);
	}
	free(run);
	return NULL;
}

static void proxy_start(struct forward_proxy *fp, int upstream_port)
{
	struct sockaddr_in at = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(at);
	struct proxy_run *run = malloc(sizeof(*run));

	memset(fp, 0, sizeof(*fp));
	pthread_mutex_init(&fp->lock, NULL);
	fp->listener = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fp->listener, 0);
	ck_assert_int_eq(bind(fp->listener, (struct sockaddr *)&at, sizeof(at)), 0);
	ck_assert_int_eq(listen(fp->listener, 4), 0);
	ck_assert_int_eq(getsockname(fp->listener, (struct sockaddr *)&at, &len), 0);
	fp->port = ntohs(at.sin_port);
	run->fp = fp;
	run->upstream_port = upstream_port;
	ck_assert_int_eq(pthread_create(&fp->thread, NULL, proxy_main, run), 0);
}

static void proxy_stop(struct forward_proxy *fp)
{
	shutdown(fp->listener, SHUT_RDWR); /* accept() returns */
	pthread_join(fp->thread, NULL);
	close(fp->listener);
	pthread_mutex_destroy(&fp->lock);
}

/* A cluster's proxy-url carries every request to it, as kubectl's does;
 * a proxy that is down is the request's error. */
START_TEST(test_proxy_url)
{
	char path[700], text[1024], err[GW_ERRLEN], want[128];
	struct tu_kubesim sim = {0};
	struct forward_proxy fp;
	struct k8s_config cfg;
	struct k8s_client *c;

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "proxied", NULL), 0);
	proxy_start(&fp, sim.port);
	snprintf(path, sizeof(path), "%s/kubeconfig", dir);
	snprintf(text, sizeof(text),
		 "current-context: proxied\ncontexts:\n- name: proxied\n  context: {cluster: p, user: u}\n"
		 "- name: down\n  context: {cluster: d, user: u}\n"
		 "clusters:\n- name: p\n  cluster: {server: '%s', proxy-url: 'http://127.0.0.1:%d'}\n"
		 "- name: d\n  cluster: {server: '%s', proxy-url: 'http://127.0.0.1:%d'}\n"
		 "users:\n- name: u\n  user: {}\n", sim.base, fp.port, sim.base, tu_free_port());
	write_text(path, text);
	ck_assert_int_eq(k8s_kubeconfig_load(path, "proxied", &cfg, err), GW_OK);
	ck_assert_int_eq(k8s_client_new(&cfg, &(struct k8s_client_options){.max_retries = 0}, &c, err), GW_OK);
	k8s_config_release(&cfg);
	ck_assert_int_eq(get_status(c, err), 200);
	ck_assert_int_eq(get_status(c, err), 200);
	k8s_client_free(c);
	snprintf(want, sizeof(want), "GET %s/api/v1/namespaces HTTP/1.1\nGET %s/api/v1/namespaces HTTP/1.1\n",
		 sim.base, sim.base);
	pthread_mutex_lock(&fp.lock);
	ck_assert_str_eq(fp.seen, want);
	pthread_mutex_unlock(&fp.lock);
	proxy_stop(&fp);

	ck_assert_int_eq(k8s_kubeconfig_load(path, "down", &cfg, err), GW_OK);
	ck_assert_int_eq(k8s_client_new(&cfg, &(struct k8s_client_options){.max_retries = 0}, &c, err), GW_OK);
	k8s_config_release(&cfg);
	ck_assert_int_eq(get_status(c, err), -1);
	k8s_client_free(c);
	tu_kubesim_stop(&sim);
}
END_TEST

/* A tokenFile is read again for each request, so a rotated token (a
 * projected service account token, a sidecar's) takes effect at once. */
START_TEST(test_token_file_rotation)
{
	char path[700], token[700], text[1024], err[GW_ERRLEN];
	struct tu_kubesim sim = {0};
	struct k8s_config cfg;
	struct k8s_client *c;

	ck_assert_int_eq(tu_kubesim_start(&sim, dir, "rotating", "--token", "second-token", NULL), 0);
	snprintf(token, sizeof(token), "%s/token", dir);
	write_text(token, "first-token\n");
	snprintf(path, sizeof(path), "%s/kubeconfig", dir);
	snprintf(text, sizeof(text),
		 "current-context: t\ncontexts:\n- name: t\n  context: {cluster: t, user: u}\n"
		 "clusters:\n- name: t\n  cluster: {server: '%s'}\n"
		 "users:\n- name: u\n  user: {tokenFile: token}\n", sim.base);
	write_text(path, text);
	ck_assert_int_eq(k8s_kubeconfig_load(path, NULL, &cfg, err), GW_OK);
	ck_assert_int_eq(k8s_client_new(&cfg, NULL, &c, err), GW_OK);
	k8s_config_release(&cfg);
	ck_assert_int_eq(get_status(c, err), 401);
	write_text(token, "second-token\n");
	ck_assert_int_eq(get_status(c, err), 200);
	k8s_client_free(c);
	tu_kubesim_stop(&sim);
}
END_TEST

Suite *k8s_suite(void)
{
	Suite *s = suite_create("k8sclient");
	TCase *tc = tcase_create("client");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_kubeconfig_fields);
	tcase_add_test(tc, test_kubeconfig_errors);
	tcase_add_test(tc, test_incluster_config);
	tcase_add_test(tc, test_retries_5xx_then_gives_up);
	tcase_add_test(tc, test_no_retry_on_4xx);
	tcase_add_test(tc, test_429_honours_retry_after);
	tcase_add_test(tc, test_watch_events_and_expiry);
	tcase_add_test(tc, test_tls_and_token_from_kubeconfig);
	tcase_add_test(tc, test_exec_credential_plugin);
	tcase_add_test(tc, test_proxy_url);
	tcase_add_test(tc, test_token_file_rotation);
	suite_add_tcase(s, tc);
	return s;
}
