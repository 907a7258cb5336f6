/* libFuzzer target: raw bytes to the gateway's HTTP server, in process,
 * over loopback: the whole request path (parsing, routing, tokens, handlers,
 * the store) with a real SQLite file and no cluster. Each input is one
 * connection: sent, half-closed, read, closed. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/sha.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "gateway/api/jobview.h"
#include "gateway/api/serve.h"
#include "gateway/auth/auth.h"
#include "gateway/config/config.h"
#include "gateway/http/http.h"
#include "pool/pool.h"

/* The admin token the seeds carry. */
#define FUZZ_TOKEN_ID "fuzzfuzzfuzz"
#define FUZZ_SECRET "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sockaddr_in server_addr;

static enum gw_err no_reload(void *arg, char *err)
{
	(void)arg;
	gw_seterr(err, "no configuration file while fuzzing");
	return GW_EINVAL;
}

static enum gw_err no_cluster_change(void *arg, const char *remove, json_t *add, char *err)
{
	(void)arg;
	(void)remove;
	(void)add;
	gw_seterr(err, "no clusters while fuzzing");
	return GW_EINVAL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static struct gateway_config cfg;
	static struct gateway_services services;
	static char dir[] = "/tmp/fuzz-http-XXXXXX";
	struct store_options so = {.synchronous_full = false, .batch_max = 64};
	struct store_op token = {.kind = STORE_OP_TOKEN_CREATE};
	struct gateway_server *srv;
	struct store *store;
	struct jobview *view;
	socklen_t len = sizeof(server_addr);
	char path[128], err[GW_ERRLEN];
	int fd;

	(void)argc;
	(void)argv;
	gw_log_set_level(GW_LOG_ERROR);
	if (!mkdtemp(dir) || gateway_config_defaults(&cfg))
		abort();
	gateway_config_set(&cfg, "listen", "127.0.0.1:0", err);
	gateway_config_set(&cfg, "http.connection_timeout_seconds", "2", err);
	gateway_config_set(&cfg, "http.max_body_bytes", "65536", err);
	gateway_config_set(&cfg, "auth.rate_per_second", "0", err);
	snprintf(path, sizeof(path), "%s/sparkgw.db", dir);
	so.path = path;
	so.jobs_changed = jobview_invalidate;
	so.jobs_changed_arg = view = jobview_new(1 << 20);
	if (!view || store_open(&so, &store, err) || http_listen(cfg.listen, &fd, err) ||
	    getsockname(fd, (struct sockaddr *)&server_addr, &len))
		abort();
	snprintf(token.token.id, sizeof(token.token.id), FUZZ_TOKEN_ID);
	SHA256((const unsigned char *)FUZZ_SECRET, strlen(FUZZ_SECRET), token.token.secret_sha256);
	token.token.owner = strdup("fuzz");
	token.token.teams_json = strdup("[\"ads\"]");
	token.token.role = strdup("admin");
	if (store_execute(store, &token))
		abort();
	store_token_release(&token.token);
	services = (struct gateway_services){
		.store = store, .policy = router_holder_new(router_ref(cfg.router)), .pool = pool_new(NULL),
		.auth = auth_new(store, 0, 1), .jobs_view = view, .reload = no_reload,
		.change_clusters = no_cluster_change};
	if (!services.policy || !services.pool || !services.auth ||
	    gateway_server_start(&cfg, &services, fd, &srv, err))
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char buf[4096];

	if (fd < 0)
		return 0;
	if (connect(fd, (struct sockaddr *)&server_addr, sizeof(server_addr)) == 0) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		int wait_ms = 50;

		(void)!send(fd, data, size, MSG_NOSIGNAL);
		shutdown(fd, SHUT_WR);
		/* Answers come at once (the store commits in a few ms): read until
		 * the server closes or falls quiet; it may wait on for more bytes
		 * of a request cut short, which is not this input's business. */
		while (poll(&p, 1, wait_ms) == 1 && recv(fd, buf, sizeof(buf), 0) > 0)
			wait_ms = 2;
	}
	close(fd);
	return 0;
}
