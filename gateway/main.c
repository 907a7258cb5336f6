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

#include "cli/cli.h"
#include "common/log.h"
#include "common/metrics.h"
#include "dispatch/dispatch.h"
#include "gateway/api/jobview.h"
#include "gateway/api/serve.h"
#include "gateway/auth/auth.h"
#include "gateway/auth/cli.h"
#include "gateway/config/config.h"
#include "gateway/http/http.h"
#include "pool/pool.h"
#include "router/router.h"
#include "store/store.h"

#define EXIT_STARTUP 2

/* What a reload needs: the file and the flags that override it. */
struct reload_ctx {
	const char *config_path;
	struct router_holder *policy;
	struct store *store;
	struct dispatch *dispatch;
	pthread_mutex_t lock;   /* one change at a time; guards the rest */
	json_t *overlay;        /* clusters added and removed at runtime */
	struct gateway_config file; /* the file as last loaded */
};

/* The clusters' connections are made once: a reload may change the policy
 * around them, not which clusters there are or how to reach them (the
 * cluster API adds and removes clusters). */
static bool same_clusters(const struct router *a, const struct router *b, char *err)
{
	if (a->nclusters != b->nclusters) {
		gw_seterr(err, "a reload cannot add or remove clusters (%zu in force, %zu in the file); "
			  "use POST or DELETE /api/v1/clusters", a->nclusters, b->nclusters);
		return false;
	}
	for (size_t i = 0; i < a->nclusters; i++) {
		const struct router_cluster *x = &a->clusters[i], *y = &b->clusters[i];

		if (strcmp(x->name, y->name) || strcmp(x->kubeconfig, y->kubeconfig) ||
		    (x->context == NULL) != (y->context == NULL) ||
		    (x->context && strcmp(x->context, y->context)) || x->mode != y->mode) {
			gw_seterr(err, "a reload cannot change cluster %s's connection or mode", x->name);
			return false;
		}
	}
	return true;
}

static enum gw_err reload_policy(void *arg, char *err)
{
	struct reload_ctx *rc = arg;
	struct gateway_config cfg;
	struct router *current;
	enum gw_err e = GW_OK;

	if (!rc->config_path) {
		gw_seterr(err, "the gateway was started without --config: there is nothing to reload");
		return GW_EINVAL;
	}
	pthread_mutex_lock(&rc->lock);
	if ((e = gateway_config_defaults(&cfg)) == GW_OK &&
	    (e = gateway_config_load(&cfg, rc->config_path, err)) == GW_OK)
		e = gateway_config_apply_overlay(&cfg, rc->overlay, err);
	current = router_holder_get(rc->policy);
	if (e == GW_OK && !same_clusters(current, cfg.router, err))
		e = GW_EINVAL;
	if (e == GW_OK) {
		router_holder_swap(rc->policy, router_ref(cfg.router));
		gateway_config_release(&rc->file);
		rc->file = cfg;
		gw_log(GW_LOG_INFO, "policy reloaded from %s", rc->config_path);
	} else {
		gateway_config_release(&cfg);
		gw_log(GW_LOG_WARN, "policy reload refused, the old one stays: %s", err);
	}
	router_unref(current);
	pthread_mutex_unlock(&rc->lock);
	return e;
}

/* Adds or removes a cluster: the policy with the change must load, the
 * change is committed before it takes effect, then dispatch follows. */
static enum gw_err change_clusters(void *arg, const char *remove, json_t *add, char *err)
{
	struct reload_ctx *rc = arg;
	const char *name = remove ? remove : json_string_value(json_object_get(add, "name"));
	json_t *next = NULL, *added, *removed, *list;
	struct router *next_router = NULL;
	struct store_op op = {.kind = STORE_OP_POLICY_OVERLAY};
	char *text = NULL;
	enum gw_err e = GW_OK;
	long active = 0;
	size_t i;
	json_t *v;

	if (!name) {
		gw_seterr(err, "a cluster needs a name");
		return GW_EINVAL;
	}
	pthread_mutex_lock(&rc->lock);
	if (remove && !router_cluster_named(rc->file.router, name)) {
		gw_seterr(err, "no cluster named %s", name);
		e = GW_ENOTFOUND;
	} else if (!remove && router_cluster_named(rc->file.router, name)) {
		gw_seterr(err, "cluster %s exists", name);
		e = GW_ECONFLICT;
	} else if (remove && store_count_active(rc->store, name, &active, err) == GW_OK && active) {
		gw_seterr(err, "cluster %s still has %ld active job(s): drain it first", name, active);
		e = GW_ECONFLICT;
	}
	if (e)
		goto out;
	/* The overlay with the change: a cluster is in "added" or in
	 * "removed", never both. */
	next = json_deep_copy(rc->overlay);
	if (!(added = json_object_get(next, "added")))
		json_object_set_new(next, "added", added = json_array());
	if (!(removed = json_object_get(next, "removed")))
		json_object_set_new(next, "removed", removed = json_array());
	list = remove ? added : removed;
	json_array_foreach(list, i, v) {
		const char *n = json_is_string(v) ? json_string_value(v)
						  : json_string_value(json_object_get(v, "name"));

		if (n && !strcmp(n, name)) {
			json_array_remove(list, i);
			break;
		}
	}
	if (remove)
		json_array_append_new(removed, json_string(name));
	else
		json_array_append(added, add);
	if ((e = gateway_config_policy_with(&rc->file, next, &next_router, err)))
		goto out;
	text = json_dumps(next, JSON_COMPACT);
	op.document = text;
	if ((e = store_execute(rc->store, &op)) != GW_OK) {
		gw_seterr(err, "%s", op.err);
		goto out;
	}
	/* Committed: in force from now on. */
	if (!remove && dispatch_add_cluster(rc->dispatch, router_cluster_named(next_router, name), err))
		gw_log(GW_LOG_WARN, "cluster %s is in the policy but not connected: %s", name, err);
	if (remove)
		dispatch_remove_cluster(rc->dispatch, name);
	router_holder_swap(rc->policy, router_ref(next_router));
	router_unref(rc->file.router);
	rc->file.router = next_router;
	next_router = NULL;
	json_decref(rc->overlay);
	rc->overlay = json_incref(next);
	gw_log(GW_LOG_INFO, "cluster %s %s", name, remove ? "removed" : "added");
out:
	router_unref(next_router);
	free(text);
	json_decref(next);
	pthread_mutex_unlock(&rc->lock);
	return e;
}

/* Rotation and weights that operators set, as kept in the store. */
static void restore_cluster_settings(struct store *store, struct pool *pool)
{
	json_t *settings = NULL;
	const char *name;
	json_t *v;
	char err[GW_ERRLEN];

	if (store_cluster_settings(store, &settings, err) != GW_OK) {
		gw_log(GW_LOG_WARN, "cluster settings: %s", err);
		json_decref(settings);
		return;
	}
	json_object_foreach(settings, name, v) {
		int rot = pool_rotation_parse(json_string_value(json_object_get(v, "rotation")));

		pool_set_rotation(pool, name, rot < 0 ? POOL_ACTIVE : (enum pool_rotation)rot);
		pool_set_weight(pool, name, (unsigned)json_integer_value(json_object_get(v, "weight")));
	}
	json_decref(settings);
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sparkgw [--config FILE] [--listen HOST:PORT] [--data DIR] [--set KEY=VALUE]...\n"
		"       sparkgw token create|list|revoke ... (sparkgw token --help)\n"
		"       sparkgw [-s URL] submit|get|list|logs|cancel|events|queue|clusters|cordon|drain|\n"
		"                      uncordon|version ...: the client of a gateway (sparkgw COMMAND --help)\n"
		"       sparkgw --version\n"
		"  --config FILE       YAML configuration (every key has a default)\n"
		"  --listen HOST:PORT  address to serve on (default 127.0.0.1:8080)\n"
		"  --data DIR          directory for the database (default ./var)\n"
		"  --set KEY=VALUE     one configuration key, over the file (auth.mode=none)\n");
}

/* --set KEY=VALUE, in order, over the file. */
static enum gw_err apply_sets(struct gateway_config *cfg, const char *const *sets, size_t n, char *err)
{
	for (size_t i = 0; i < n; i++) {
		const char *eq = strchr(sets[i], '=');
		char key[128];
		enum gw_err rc;

		if (!eq || eq == sets[i] || (size_t)(eq - sets[i]) >= sizeof(key)) {
			gw_seterr(err, "--set takes KEY=VALUE, not '%s'", sets[i]);
			return GW_EINVAL;
		}
		snprintf(key, sizeof(key), "%.*s", (int)(eq - sets[i]), sets[i]);
		if ((rc = gateway_config_set(cfg, key, eq + 1, err)))
			return rc;
	}
	return GW_OK;
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

/* Everything the serving process holds, owned here and freed by
 * gateway_teardown in the reverse order of starting. */
struct gateway {
	struct gateway_config cfg;
	struct gw_metrics *metrics;
	struct jobview *jobs_view;
	struct store *store;
	struct router_holder *policy;
	struct pool *pool;
	struct dispatch *dispatch;
	struct auth *auth;
	struct gateway_server *server;
	struct reload_ctx reload;
	bool reload_ready; /* reload.lock and reload.file initialised */
	int listen_fd;
	char instance[400]; /* host/listen, who holds leases */
};

struct flags {
	const char *config_path, *listen, *data, *sets[64];
	size_t nsets;
};

/* The serving flags; -1 to go on, else the exit code. */
static int parse_flags(int argc, char **argv, struct flags *f)
{
	static const struct option options[] = {
		{"config", required_argument, NULL, 'c'},
		{"listen", required_argument, NULL, 'l'},
		{"data", required_argument, NULL, 'd'},
		{"set", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "c:l:d:s:h", options, NULL)) != -1) {
		switch (opt) {
		case 'c': f->config_path = optarg; break;
		case 'l': f->listen = optarg; break;
		case 'd': f->data = optarg; break;
		case 's':
			if (f->nsets == sizeof(f->sets) / sizeof(f->sets[0])) {
				fprintf(stderr, "sparkgw: too many --set\n");
				return EXIT_STARTUP;
			}
			f->sets[f->nsets++] = optarg;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_STARTUP;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sparkgw: unexpected argument '%s'\n", argv[optind]);
		return EXIT_STARTUP;
	}
	return -1;
}

/* Defaults, then the file, then the flags over it. */
static enum gw_err load_config(struct gateway_config *cfg, const struct flags *f, char *err)
{
	enum gw_err rc;

	if ((rc = gateway_config_defaults(cfg)) ||
	    (f->config_path && (rc = gateway_config_load(cfg, f->config_path, err))) ||
	    (f->listen && (rc = gateway_config_set(cfg, "listen", f->listen, err))) ||
	    (f->data && (rc = gateway_config_set(cfg, "data", f->data, err))) ||
	    (rc = apply_sets(cfg, f->sets, f->nsets, err)))
		return rc;
	gw_log_set_level((enum gw_log_level)cfg->log_level);
	return GW_OK;
}

/* Every thread inherits this mask; only wait_for_stop sees the signals. */
static void block_signals(sigset_t *stop_signals)
{
	sigemptyset(stop_signals);
	sigaddset(stop_signals, SIGINT);
	sigaddset(stop_signals, SIGTERM);
	sigaddset(stop_signals, SIGHUP);
	pthread_sigmask(SIG_BLOCK, stop_signals, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* A file over its size limit is a failed write (503), not a dead process. */
	signal(SIGXFSZ, SIG_IGN);
}

/* The metrics registry and the job cache; then the listening socket, so
 * that a busy port is the first error reported; then the data directory
 * (SQLite's; PostgreSQL needs none) and the store. */
static enum gw_err open_store(struct gateway *gw, char *err)
{
	const struct gateway_config *cfg = &gw->cfg;
	struct store_options sopts = {0};
	char dbpath[PATH_MAX];
	enum gw_err rc;

	if (!(gw->metrics = gw_metrics_new()) || !(gw->jobs_view = jobview_new(cfg->http_job_cache_bytes))) {
		gw_seterr(err, "out of memory");
		return GW_ENOMEM;
	}
	if ((rc = http_listen(cfg->listen, &gw->listen_fd, err)))
		return rc;
	if (!cfg->store_postgres && prepare_data_dir(cfg->data_dir, err))
		return GW_EIO;
	if (cfg->store_postgres && !cfg->store_dsn) {
		gw_seterr(err, "store.driver postgres needs store.dsn");
		return GW_EINVAL;
	}
	snprintf(dbpath, sizeof(dbpath), "%s/sparkgw.db", cfg->data_dir);
	sopts.path = dbpath;
	sopts.postgres_dsn = cfg->store_postgres ? cfg->store_dsn : NULL;
	sopts.synchronous_full = cfg->store_sync_full;
	sopts.batch_max = cfg->store_batch_max;
	sopts.metrics = gw->metrics;
	sopts.jobs_changed = jobview_invalidate;
	sopts.jobs_changed_arg = gw->jobs_view;
	return store_open(&sopts, &gw->store, err);
}

/* The policy in force: the file's, with the clusters added or removed at
 * runtime, and the clusters' rotation and weights as operators left them. */
static enum gw_err load_policy(struct gateway *gw, char *err)
{
	if (store_policy_overlay(gw->store, &gw->reload.overlay, err) != GW_OK ||
	    gateway_config_apply_overlay(&gw->cfg, gw->reload.overlay, err) != GW_OK) {
		/* The file changed under clusters added at runtime: the file wins. */
		gw_log(GW_LOG_WARN, "clusters added or removed at runtime are not applied: %s", err);
		json_decref(gw->reload.overlay);
		gw->reload.overlay = json_object();
	}
	gw->policy = router_holder_new(router_ref(gw->cfg.router));
	gw->pool = pool_new(NULL);
	if (!gw->policy || !gw->pool) {
		gw_seterr(err, "out of memory");
		return GW_ENOMEM;
	}
	restore_cluster_settings(gw->store, gw->pool);
	return GW_OK;
}

static enum gw_err start_dispatch(struct gateway *gw, char *err)
{
	const struct gateway_config *cfg = &gw->cfg;
	struct dispatch_options dopts = {
		.policy = gw->policy, .pool = gw->pool,
		.workers = cfg->dispatch_workers, .probe_s = cfg->dispatch_probe_s,
		.lease_s = cfg->dispatch_lease_s,
		.max_attempts = cfg->dispatch_max_attempts,
		.retry_base_ms = cfg->dispatch_retry_base_ms,
		.pending_timeout_s = cfg->dispatch_pending_timeout_s,
		.image_pull_timeout_s = cfg->dispatch_image_pull_timeout_s,
		.aging_s = cfg->scheduler_aging_s,
		.cluster_qps = cfg->scheduler_cluster_qps,
		.cluster_concurrency = cfg->scheduler_cluster_concurrency,
		.max_running_per_team = cfg->scheduler_max_running_per_team,
		.max_run_s = cfg->scheduler_max_run_s,
		.cleanup_after_s = cfg->scheduler_cleanup_after_s,
		.retention_s = cfg->store_retention_s,
		.metrics = gw->metrics,
		.instance = gw->instance,
	};
	char host[256] = "localhost";

	gethostname(host, sizeof(host) - 1);
	snprintf(gw->instance, sizeof(gw->instance), "%s/%s", host, cfg->listen);
	if (!cfg->router->nclusters)
		gw_log(GW_LOG_WARN, "no clusters configured: jobs are stored, not dispatched");
	return dispatch_start(gw->store, &dopts, &gw->dispatch, err);
}

/* What SIGHUP and the cluster API rebuild the policy from. */
static void prepare_reload(struct gateway *gw, const char *config_path)
{
	struct reload_ctx *r = &gw->reload;

	r->config_path = config_path;
	r->policy = gw->policy;
	r->store = gw->store;
	r->dispatch = gw->dispatch;
	/* The file as loaded, to rebuild the policy from when clusters change. */
	gateway_config_defaults(&r->file);
	router_unref(r->file.router);
	r->file.router = router_ref(gw->cfg.router);
	r->file.policy_doc = gw->cfg.policy_doc ? json_incref(gw->cfg.policy_doc) : NULL;
	r->file.policy_marks = gw->cfg.policy_marks ? json_incref(gw->cfg.policy_marks) : NULL;
	r->file.path = gw->cfg.path ? strdup(gw->cfg.path) : NULL;
	pthread_mutex_init(&r->lock, NULL);
	gw->reload_ready = true;
}

static enum gw_err start_serving(struct gateway *gw, char *err)
{
	const struct gateway_config *cfg = &gw->cfg;
	struct gateway_services services;
	enum gw_err rc;

	if (cfg->auth_none) {
		gw_log(GW_LOG_WARN, "auth.mode is none: anyone who reaches %s may do anything", cfg->listen);
	} else if (!(gw->auth = auth_new(gw->store, cfg->auth_rate, cfg->auth_burst))) {
		gw_seterr(err, "out of memory");
		return GW_ENOMEM;
	}
	gateway_metrics_declare(gw->metrics);
	services = (struct gateway_services){.store = gw->store, .dispatch = gw->dispatch, .policy = gw->policy,
					     .pool = gw->pool, .auth = gw->auth, .metrics = gw->metrics,
					     .jobs_view = gw->jobs_view, .reload = reload_policy,
					     .change_clusters = change_clusters, .reload_arg = &gw->reload};
	rc = gateway_server_start(cfg, &services, gw->listen_fd, &gw->server, err);
	gw->listen_fd = -1; /* the server's from here, even on failure */
	if (rc)
		return rc;
	if (cfg->store_postgres)
		gw_log(GW_LOG_INFO, "sparkgw listening on %s, store on postgres", cfg->listen);
	else
		gw_log(GW_LOG_INFO, "sparkgw listening on %s, data in %s", cfg->listen, cfg->data_dir);
	return GW_OK;
}

/* Until SIGINT or SIGTERM; SIGHUP reloads the policy. */
static void wait_for_stop(struct gateway *gw, const sigset_t *stop_signals)
{
	char err[GW_ERRLEN];
	int sig = 0;

	for (;;) {
		if (sigwait(stop_signals, &sig) != 0)
			continue;
		if (sig != SIGHUP)
			break;
		reload_policy(&gw->reload, err);
	}
	gw_log(GW_LOG_INFO, "received %s: shutting down", strsignal(sig));
}

/* Stops accepting and finishes requests in flight, then the loops, then
 * closes the database; whatever of it was started. */
static void gateway_teardown(struct gateway *gw)
{
	gateway_server_stop(gw->server);
	if (gw->listen_fd >= 0)
		close(gw->listen_fd);
	dispatch_stop(gw->dispatch);
	auth_free(gw->auth);
	pool_free(gw->pool);
	router_holder_free(gw->policy);
	if (gw->reload_ready) {
		pthread_mutex_destroy(&gw->reload.lock);
		gateway_config_release(&gw->reload.file);
	}
	json_decref(gw->reload.overlay);
	store_close(gw->store);
	jobview_free(gw->jobs_view);
	gw_metrics_free(gw->metrics);
	gateway_config_release(&gw->cfg);
}

/* Everything, in order, up to serving. */
static enum gw_err start(struct gateway *gw, const struct flags *f, char *err)
{
	enum gw_err rc;

	if ((rc = open_store(gw, err)) || (rc = load_policy(gw, err)) || (rc = start_dispatch(gw, err)))
		return rc;
	prepare_reload(gw, f->config_path);
	return start_serving(gw, err);
}

/* The client with its command first and the global options it came
 * after behind it, where its option parser takes them. */
static int run_cli(int argc, char **argv, int command_at)
{
	char **args = calloc((size_t)argc + 1, sizeof(*args)); /* NULL-ended, as argv */
	int n = 0, rc;

	if (!args)
		return EXIT_STARTUP;
	args[n++] = argv[command_at];
	for (int i = 1; i < argc; i++)
		if (i != command_at)
			args[n++] = argv[i];
	rc = cli_main(n, args);
	free(args);
	return rc;
}

int main(int argc, char **argv)
{
	struct gateway gw = {.listen_fd = -1};
	struct flags flags = {0};
	char err[GW_ERRLEN];
	sigset_t stop_signals;
	int exit_code, command_at;

	if (argc > 1 && !strcmp(argv[1], "token"))
		return gateway_token_main(argc - 1, argv + 1);
	if (argc == 2 && !strcmp(argv[1], "--version")) {
		printf("sparkgw %s (commit %s)\n", GW_VERSION, GW_GIT_COMMIT);
		return 0;
	}
	if ((command_at = cli_command_at(argc, argv)) > 0)
		return run_cli(argc, argv, command_at);
	if ((exit_code = parse_flags(argc, argv, &flags)) >= 0)
		return exit_code;
	if (load_config(&gw.cfg, &flags, err)) {
		fprintf(stderr, "sparkgw: config: %s\n", err);
		gateway_config_release(&gw.cfg);
		return EXIT_STARTUP;
	}
	block_signals(&stop_signals);
	if (start(&gw, &flags, err)) {
		fprintf(stderr, "sparkgw: %s\n", err);
		gateway_teardown(&gw);
		return EXIT_STARTUP;
	}
	wait_for_stop(&gw, &stop_signals);
	gateway_teardown(&gw);
	gw_log(GW_LOG_INFO, "stopped");
	return 0;
}
