/* sparkgw: entry point. Reads configuration, opens the store, serves HTTP
 * until SIGINT or SIGTERM, then shuts down in order: stop accepting, finish
 * requests in flight, close the database. Start-up errors exit with 2. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "dispatch/dispatch.h"
#include "gateway/config.h"
#include "gateway/server.h"
#include "store/store.h"

#define EXIT_STARTUP 2

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sparkgw [--config FILE] [--listen HOST:PORT] [--data DIR]\n"
		"  --config FILE       YAML configuration (every key has a default)\n"
		"  --listen HOST:PORT  address to serve on (default 127.0.0.1:8080)\n"
		"  --data DIR          directory for the database (default ./var)\n");
}

/* mkdir -p, then proves the directory is writable by creating a file. */
static int prepare_data_dir(const char *dir, char *err)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);
	FILE *probe;

	if (len == 0 || len >= sizeof(path) - 32) {
		gw_seterr(err, "data directory path is empty or too long");
		return -1;
	}
	memcpy(path, dir, len + 1);
	for (size_t i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0750) != 0 && errno != EEXIST) {
			gw_seterr(err, "data directory %s: cannot create %s: %s", dir, path,
				  strerror(errno));
			return -1;
		}
		path[i] = dir[i];
	}
	snprintf(path, sizeof(path), "%s/.write-test", dir);
	probe = fopen(path, "w");
	if (!probe) {
		gw_seterr(err, "data directory %s is not writable: %s", dir, strerror(errno));
		return -1;
	}
	fclose(probe);
	unlink(path);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"config", required_argument, NULL, 'c'},
		{"listen", required_argument, NULL, 'l'},
		{"data", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *config_path = NULL, *listen = NULL, *data = NULL;
	struct gateway_config cfg;
	struct store *store = NULL;
	struct gateway_server *server = NULL;
	struct dispatch *dispatch = NULL;
	struct store_options sopts;
	char err[GW_ERRLEN], dbpath[PATH_MAX];
	sigset_t stop_signals;
	int opt, sig = 0, listen_fd = -1;
	enum gw_err started;

	while ((opt = getopt_long(argc, argv, "c:l:d:h", options, NULL)) != -1) {
		switch (opt) {
		case 'c': config_path = optarg; break;
		case 'l': listen = optarg; break;
		case 'd': data = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_STARTUP;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sparkgw: unexpected argument '%s'\n", argv[optind]);
		return EXIT_STARTUP;
	}

	if (gateway_config_defaults(&cfg) ||
	    (config_path && gateway_config_load(&cfg, config_path, err)) ||
	    (listen && gateway_config_set(&cfg, "listen", listen, err)) ||
	    (data && gateway_config_set(&cfg, "data", data, err))) {
		fprintf(stderr, "sparkgw: config: %s\n", err);
		gateway_config_release(&cfg);
		return EXIT_STARTUP;
	}
	gw_log_set_level((enum gw_log_level)cfg.log_level);

	/* Every thread inherits this mask; only sigwait below sees the signals. */
	sigemptyset(&stop_signals);
	sigaddset(&stop_signals, SIGINT);
	sigaddset(&stop_signals, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (gateway_listen(cfg.listen, &listen_fd, err) ||
	    prepare_data_dir(cfg.data_dir, err))
		goto startup_failed;
	snprintf(dbpath, sizeof(dbpath), "%s/sparkgw.db", cfg.data_dir);
	sopts.path = dbpath;
	sopts.synchronous_full = cfg.store_sync_full;
	sopts.batch_max = cfg.store_batch_max;
	if (store_open(&sopts, &store, err))
		goto startup_failed;
	if (cfg.nclusters) {
		struct dispatch_options dopts = {
			.clusters = cfg.clusters, .nclusters = cfg.nclusters,
			.workers = cfg.dispatch_workers, .lease_s = cfg.dispatch_lease_s,
			.max_attempts = cfg.dispatch_max_attempts,
			.retry_base_ms = cfg.dispatch_retry_base_ms,
			.pending_timeout_s = cfg.dispatch_pending_timeout_s,
			.image_pull_timeout_s = cfg.dispatch_image_pull_timeout_s,
		};

		if (dispatch_start(store, &dopts, &dispatch, err))
			goto startup_failed;
	} else {
		gw_log(GW_LOG_WARN, "no clusters configured: jobs are stored, not dispatched");
	}
	started = gateway_server_start(&cfg, store, dispatch, listen_fd, &server, err);
	listen_fd = -1; /* the server's from here, even on failure */
	if (started != GW_OK)
		goto startup_failed;
	gw_log(GW_LOG_INFO, "sparkgw listening on %s, data in %s", cfg.listen, cfg.data_dir);

	while (sigwait(&stop_signals, &sig) != 0)
		;
	gw_log(GW_LOG_INFO, "received %s: shutting down", strsignal(sig));
	gateway_server_stop(server);
	dispatch_stop(dispatch);
	store_close(store);
	gateway_config_release(&cfg);
	gw_log(GW_LOG_INFO, "stopped");
	return 0;

startup_failed:
	fprintf(stderr, "sparkgw: %s\n", err);
	if (listen_fd >= 0)
		close(listen_fd);
	dispatch_stop(dispatch);
	store_close(store);
	gateway_config_release(&cfg);
	return EXIT_STARTUP;
}
