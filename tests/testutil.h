/* Helpers for the test suites: temporary directories, the gateway as a
 * child process on a free loopback port, HTTP calls with libcurl, and
 * response checks against api/openapi.yaml. */
#ifndef GW_TESTUTIL_H
#define GW_TESTUTIL_H

#include <check.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

Suite *common_suite(void);
Suite *submission_suite(void);
Suite *store_suite(void);
Suite *shared_suite(void);
Suite *api_suite(void);
Suite *api_pg_suite(void);
Suite *process_suite(void);
Suite *dispatch_suite(void);
Suite *k8s_suite(void);
Suite *kubesim_suite(void);
Suite *router_suite(void);
Suite *routing_suite(void);
Suite *scheduler_suite(void);
Suite *fairshare_suite(void);
Suite *lifecycle_suite(void);
Suite *auth_suite(void);
Suite *observe_suite(void);
Suite *faults_suite(void);
Suite *compat_suite(void);
Suite *cli_suite(void);
Suite *deploy_suite(void);
Suite *replicas_suite(void);

/* A new empty directory under $TMPDIR; caller frees the string. */
char *tu_tmpdir(const char *tag);
void tu_rmtree(const char *path);
/* The same under /tmp, whatever $TMPDIR is: PostgreSQL's directory, which
 * the user postgres must be able to reach. */
char *tu_pg_tmpdir(const char *tag);
/* A TCP port on 127.0.0.1 that was free a moment ago. */
int tu_free_port(void);
/* The first of n consecutive such ports, for a server that takes a run of
 * them (contrib/run-demo.sh: the gateway's, then its clusters'). */
int tu_free_port_run(int n);

struct tu_gateway {
	pid_t pid;
	int port;
	char data[512];
	char log[600];
	char base[64]; /* http://127.0.0.1:PORT */
};

/* Starts build/sparkgw (SPARKGW_BIN) on a free port with data in dir and
 * optional extra arguments (NULL-terminated), waiting until it answers
 * /healthz. Returns 0, or -1 if it exited or never answered. */
int tu_gateway_start(struct tu_gateway *gw, const char *dir, ...);
/* The same on the port it had, so that clients carry on. */
int tu_gateway_restart(struct tu_gateway *gw, const char *dir, ...);
/* The gateway binary (SPARKGW_BIN, else build/sparkgw). */
const char *tu_gateway_bin(void);
/* Sends sig and reaps the process; returns its exit status or -1. */
int tu_gateway_signal(struct tu_gateway *gw, int sig);
/* Runs the binary to completion with the given arguments (NULL-terminated),
 * capturing stderr into err; returns its exit status. */
int tu_run_gateway(char *err, size_t errlen, ...);

/* Runs `sparkgw token ARGS --data data`; returns its last line (the new
 * token, for create; caller frees) and its exit status in *status. */
char *tu_token_cli(const char *data, const char *args, int *status);

/* A PostgreSQL server of the test's own: initdb in dir/pgdata, on a free
 * loopback port, trusting local connections of the user sparkgw. Run as
 * the user postgres when the tests run as root (PostgreSQL refuses root). */
struct tu_postgres {
	pid_t pid;
	int port;
	char dir[512];
	char log[600];
	char dsn[128]; /* of the server, without a database */
};

/* Whether PostgreSQL's server programs are installed. */
bool tu_postgres_available(void);
/* initdb (the first time) and start; waits until it accepts connections. */
int tu_postgres_start(struct tu_postgres *pg, const char *dir);
/* Stops it with sig (SIGINT: a fast shutdown; SIGKILL: a crash) and reaps it. */
void tu_postgres_stop(struct tu_postgres *pg, int sig);
/* The DSN of database name on the server of dsn (created if missing). */
int tu_postgres_database(const char *server_dsn, const char *name, char *dsn, size_t len);
/* When SPARKGW_TEST_PG holds a server's DSN, every gateway the helpers
 * start stores in a database of its own there (one per data directory,
 * so that a restart finds its jobs): how a suite runs on PostgreSQL. */
#define TU_PG_ENV "SPARKGW_TEST_PG"
/* When it does, the DSN of dir's database (created if missing) in dsn:
 * 1; 0 when not on PostgreSQL; -1 on failure. */
int tu_pg_dsn_for(const char *dir, char *dsn, size_t len);
/* Runs sql on the store of the gateway with data directory dir, SQLite
 * or PostgreSQL as the run has it: the first column of the first row as a
 * number (-1 when there is none), or the rows a statement changed. */
long long tu_store_sql(const char *dir, const char *sql);
/* The unchecked fixture of such a suite: a server for its test case. */
void tu_pg_suite_setup(void);
void tu_pg_suite_teardown(void);

/* A kubesim cluster (KUBESIM_BIN) on a free port. */
struct tu_kubesim {
	pid_t pid;
	int port;
	bool keep_port; /* restart on the same port (a cluster coming back) */
	char name[32];
	char base[64];
	char log[600];
};

/* Starts kubesim named name with its log in dir and extra arguments
 * (NULL-terminated) after --listen/--name/--namespace spark-jobs. */
int tu_kubesim_start(struct tu_kubesim *k, const char *dir, const char *name, ...);
void tu_kubesim_stop(struct tu_kubesim *k);

/* Runs kubectl args against k, with a discovery cache of its own under
 * dir: its output (stdout and stderr; free it) and exit status. */
char *tu_kubectl(const struct tu_kubesim *k, const char *dir, const char *args, int *status);

/* Writes dir/kubeconfig (a context per cluster) and dir/gateway.yaml that
 * configures the gateway for them, plus extra YAML (may be NULL). modes[i]
 * is "driver-pod" or "spark-operator". Returns the config's path (static
 * storage in the caller's buffer). */
void tu_write_cluster_config(const char *dir, const struct tu_kubesim *sims,
			     const char *const *modes, int n, const char *extra,
			     char *config_path, size_t len);

/* GET url as JSON, retrying a few times on 5xx and 429 (for faulty
 * kubesims); NULL if it never answered 200. */
json_t *tu_get_json(const char *url);
/* Polls the job until its state is want (or any terminal state when want
 * is NULL) for at most timeout_ms; returns the job, or NULL. */
json_t *tu_wait_job(const char *base, const char *id, const char *want, int timeout_ms);

struct tu_response {
	long status;
	char *body;
	json_t *json; /* parsed body, or NULL */
	char content_type[128];
	char location[256];
	char retry_after[32];
	char allow[128];
	char www_authenticate[128];
	char request_id[80];
	char etag[64];
	long connects; /* new connections this request opened */
};

/* headers: NULL-terminated "Name: value" strings, may be NULL. */
int tu_http(const char *method, const char *url, const char *const *headers,
	    const char *body, size_t len, struct tu_response *out);
void tu_response_release(struct tu_response *r);
/* From now on, https:// requests trust ca and present cert and key (NULL:
 * none); version is a CURL_SSLVERSION_ value (0: the default). */
void tu_http_tls(const char *ca, const char *cert, const char *key, long version);
/* POSTs a submission to base's /api/v1/jobs, asserts 201 and returns the
 * new job's id (caller frees). */
char *tu_submit(const char *base, const char *body);
/* POST application/json, with an optional Idempotency-Key. */
int tu_post_json(const char *url, const char *body, const char *idem_key,
		 struct tu_response *out);

/* Validates v against components/schemas/NAME of api/openapi.yaml; on
 * failure returns false and the reason in why. */
bool tu_schema_valid(const char *name, json_t *v, char *why, size_t whylen);
void tu_schema_unload(void);

/* Validates obj against the vendored upstream schemas with unknown fields
 * refused (tests/k8s/validate.js): as kind (pod, sparkapp, a definition
 * name such as io.k8s.api.core.v1.PodTemplateSpec) or, when kind is NULL,
 * as its own apiVersion and kind say; 0 when valid, else its output in out. */
int tu_validate_k8s(const char *kind, json_t *obj, const char *tmpdir, char *out, size_t outlen);

/* One kubesim cluster (driver-pod mode) and a gateway on it, in a fresh
 * temporary directory (*dir): the fixture of test cases that only talk
 * to them. extra is more of the gateway's YAML config, or NULL. */
void tu_one_cluster_start(char **dir, struct tu_kubesim *sim, struct tu_gateway *gw, const char *tag,
			  const char *cluster, const char *extra);
void tu_one_cluster_stop(char **dir, struct tu_kubesim *sim, struct tu_gateway *gw);

/* The sparkgw command line, run as a user would: in an environment
 * without SPARKGW_* settings or COLUMNS, HOME at dir, with env's "K=V"
 * (NULL-ended, may be NULL) on top; argv NULL-ended after sparkgw. */
struct tu_cli_run {
	int status; /* the exit status, or 128 + the signal */
	char out[32768], err[8192];
};
/* Starts it with its output in dir/TAG.out and .err; returns its pid. */
pid_t tu_cli_spawn(const char *dir, const char *tag, const char *const *env, const char *const *argv);
/* Waits (90 s at most, then kills) for a spawned run and reads its output. */
void tu_cli_collect(pid_t pid, const char *dir, const char *tag, struct tu_cli_run *res);
/* Both: a run to its end. */
void tu_cli(struct tu_cli_run *res, const char *dir, const char *const *env, ...);

/* A valid submission body, with the given name and team label. */
char *tu_job_body(const char *name, const char *team);

#define ck_assert_schema(name, v)                                         \
	do {                                                              \
		char why_[512];                                           \
		ck_assert_msg(tu_schema_valid((name), (v), why_, sizeof(why_)), \
			      "schema %s: %s", (name), why_);             \
	} while (0)

#endif
