/* Test helpers: processes, HTTP and schema checks. */
#include "tests/testutil.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <netinet/in.h>
#include <regex.h>
#include <sqlite3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "common/yamljson.h"

#define MAX_ARGS 48

const char *tu_gateway_bin(void)
{
	const char *bin = getenv("SPARKGW_BIN");

	return bin ? bin : "build/sparkgw";
}

/* A new directory under base (NULL: $TMPDIR, else /tmp). */
static char *tmpdir_in(const char *base, const char *tag)
{
	char *path = NULL;

	if (!base)
		base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	if (asprintf(&path, "%s/sparkgw-%s-XXXXXX", base, tag) < 0)
		return NULL;
	if (!mkdtemp(path)) {
		free(path);
		return NULL;
	}
	return path;
}

char *tu_tmpdir(const char *tag)
{
	return tmpdir_in(NULL, tag);
}

char *tu_pg_tmpdir(const char *tag)
{
	return tmpdir_in("/tmp", tag);
}

static int remove_entry(const char *path, const struct stat *st, int flag,
			struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void tu_rmtree(const char *path)
{
	if (path)
		nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int tu_free_port(void)
{
	struct sockaddr_in addr = {.sin_family = AF_INET};
	socklen_t len = sizeof(addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&addr, &len) == 0)
		port = ntohs(addr.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static bool port_free(int port)
{
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	bool ok;

	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

int tu_free_port_run(int n)
{
	/* Below the ephemeral range (32768 and up), where neither the other
	 * servers' free ports nor clients' outgoing connections land. */
	unsigned seed = (unsigned)getpid() * 7919u;

	for (int tries = 0; tries < 200; tries++) {
		int base = 20000 + (int)((seed + (unsigned)tries * 104729u) % 12000u), i;

		for (i = 0; i < n && port_free(base + i); i++)
			;
		if (i == n)
			return base;
	}
	return -1;
}

/* Runs argv with its output appended to log_path, as the user pw (NULL:
 * as we are). */
static pid_t spawn_as(char *const argv[], const char *log_path, const struct passwd *pw)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			dup2(fd, STDOUT_FILENO);
			close(fd);
		}
		if (pw && (setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0))
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static pid_t spawn(char *const argv[], const char *log_path)
{
	return spawn_as(argv, log_path, NULL);
}

/* PostgreSQL's server programs: Debian's /usr/lib/postgresql/N/bin. */
static bool postgres_bin(const char *prog, char *out, size_t len)
{
	glob_t g;
	bool found = false;

	if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &g) == 0 && g.gl_pathc > 0) {
		char *slash = strrchr(g.gl_pathv[g.gl_pathc - 1], '/');

		*slash = '\0';
		snprintf(out, len, "%s/%s", g.gl_pathv[g.gl_pathc - 1], prog);
		found = access(out, X_OK) == 0;
	}
	globfree(&g);
	return found;
}

bool tu_postgres_available(void)
{
	char path[256];

	return postgres_bin("initdb", path, sizeof(path)) && postgres_bin("postgres", path, sizeof(path));
}

/* Runs argv as the user postgres if we are root (the data directory is
 * handed to it first), with output appended to log_path. */
static pid_t spawn_postgres(char *const argv[], const char *dir, const char *log_path)
{
	struct passwd *pw = geteuid() == 0 ? getpwnam("postgres") : NULL;

	if (pw && chown(dir, pw->pw_uid, pw->pw_gid) != 0)
		return -1;
	return spawn_as(argv, log_path, pw);
}

int tu_postgres_start(struct tu_postgres *pg, const char *dir)
{
	char initdb[256], postgres[256], data[600], port[16], conn[160];
	int status;

	if (!postgres_bin("initdb", initdb, sizeof(initdb)) || !postgres_bin("postgres", postgres, sizeof(postgres)))
		return -1;
	snprintf(pg->dir, sizeof(pg->dir), "%s", dir);
	snprintf(pg->log, sizeof(pg->log), "%s/postgres.log", dir);
	snprintf(data, sizeof(data), "%s/pgdata", dir);
	if (access(data, F_OK) != 0) {
		char *const args[] = {initdb, (char *)(uintptr_t)"-D", data, (char *)(uintptr_t)"-U",
				      (char *)(uintptr_t)"sparkgw", (char *)(uintptr_t)"-A", (char *)(uintptr_t)"trust",
				      (char *)(uintptr_t)"-E", (char *)(uintptr_t)"UTF8", (char *)(uintptr_t)"--no-sync",
				      NULL};
		pid_t pid = spawn_postgres(args, dir, pg->log);

		if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			return -1;
	}
	if (!pg->port)
		pg->port = tu_free_port();
	snprintf(port, sizeof(port), "%d", pg->port);
	{
		/* Sockets in its own directory; connections enough for a few
		 * gateways with their reader pools. */
		char *const args[] = {postgres, (char *)(uintptr_t)"-D", data, (char *)(uintptr_t)"-p", port,
				      (char *)(uintptr_t)"-k", pg->dir, (char *)(uintptr_t)"-c",
				      (char *)(uintptr_t)"listen_addresses=127.0.0.1", (char *)(uintptr_t)"-c",
				      (char *)(uintptr_t)"max_connections=300", NULL};

		pg->pid = spawn_postgres(args, dir, pg->log);
	}
	snprintf(pg->dsn, sizeof(pg->dsn), "host=127.0.0.1 port=%d user=sparkgw", pg->port);
	snprintf(conn, sizeof(conn), "%s dbname=postgres connect_timeout=2", pg->dsn);
	for (int i = 0; pg->pid > 0 && i < 600; i++) {
		if (waitpid(pg->pid, &status, WNOHANG) == pg->pid) {
			pg->pid = -1;
			break;
		}
		if (PQping(conn) == PQPING_OK)
			return 0;
		usleep(50000);
	}
	tu_postgres_stop(pg, SIGKILL);
	return -1;
}

void tu_postgres_stop(struct tu_postgres *pg, int sig)
{
	if (pg->pid <= 0)
		return;
	kill(pg->pid, sig);
	waitpid(pg->pid, NULL, 0);
	pg->pid = -1;
}

int tu_postgres_database(const char *server_dsn, const char *name, char *dsn, size_t len)
{
	char conn[256], sql[128];
	PGconn *c;
	PGresult *res;
	int rc = -1;

	snprintf(conn, sizeof(conn), "%s dbname=postgres", server_dsn);
	c = PQconnectdb(conn);
	if (PQstatus(c) == CONNECTION_OK) {
		snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
		res = PQexec(c, sql);
		/* 42P04: it exists already (a gateway restarted on its data). */
		if (PQresultStatus(res) == PGRES_COMMAND_OK ||
		    !strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE) ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : "",
			    "42P04"))
			rc = 0;
		else
			fprintf(stderr, "postgres: %s", PQresultErrorMessage(res));
		PQclear(res);
	}
	PQfinish(c);
	snprintf(dsn, len, "%s dbname=%s", server_dsn, name);
	return rc;
}

int tu_pg_dsn_for(const char *dir, char *dsn, size_t len)
{
	unsigned long h = 5381;
	char name[32];

	if (!getenv(TU_PG_ENV))
		return 0;
	for (const char *p = dir; *p; p++)
		h = h * 33 + (unsigned char)*p;
	snprintf(name, sizeof(name), "gw_%08lx", h & 0xffffffffUL);
	return tu_postgres_database(getenv(TU_PG_ENV), name, dsn, len) == 0 ? 1 : -1;
}

long long tu_store_sql(const char *dir, const char *sql)
{
	char target[700];
	long long v = -1;

	if (tu_pg_dsn_for(dir, target, sizeof(target)) == 1) {
		PGconn *c = PQconnectdb(target);
		PGresult *res = PQexec(c, sql);

		if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
			v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
		else if (PQresultStatus(res) == PGRES_COMMAND_OK)
			v = strtoll(PQcmdTuples(res), NULL, 10);
		PQclear(res);
		PQfinish(c);
	} else {
		sqlite3 *db;
		sqlite3_stmt *st = NULL;
		int rc;

		snprintf(target, sizeof(target), "%s/sparkgw.db", dir);
		if (sqlite3_open(target, &db) == SQLITE_OK) {
			sqlite3_busy_timeout(db, 5000);
			if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
				rc = sqlite3_step(st);
				if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
					v = sqlite3_column_int64(st, 0);
				else if (rc == SQLITE_DONE)
					v = sqlite3_changes(db);
			}
			sqlite3_finalize(st);
		}
		sqlite3_close(db);
	}
	return v;
}

static struct tu_postgres suite_pg;
static char *suite_pg_dir;
static int suite_pg_nested; /* setups that found a server in use already */

void tu_pg_suite_setup(void)
{
	/* A run on PostgreSQL already (make test-postgres): its server serves. */
	if (getenv(TU_PG_ENV)) {
		suite_pg_nested++;
		return;
	}
	suite_pg_dir = tu_pg_tmpdir("pg");
	memset(&suite_pg, 0, sizeof(suite_pg));
	if (!suite_pg_dir || tu_postgres_start(&suite_pg, suite_pg_dir) != 0) {
		fprintf(stderr, "cannot start PostgreSQL in %s\n", suite_pg_dir ? suite_pg_dir : "(no dir)");
		return;
	}
	setenv(TU_PG_ENV, suite_pg.dsn, 1);
}

void tu_pg_suite_teardown(void)
{
	if (suite_pg_nested) {
		suite_pg_nested--;
		return;
	}
	unsetenv(TU_PG_ENV);
	tu_postgres_stop(&suite_pg, SIGINT);
	tu_rmtree(suite_pg_dir);
	free(suite_pg_dir);
	suite_pg_dir = NULL;
}

/* Waits (10 s at most, 60 under valgrind) until the process answers
 * base/healthz; -1 and *pid -1 if it exited first. */
static int wait_healthy(pid_t *pid, const char *base)
{
	int tries = getenv("SPARKGW_VALGRIND") ? 6000 : 1000;

	for (int i = 0; *pid > 0 && i < tries; i++) {
		struct tu_response r;
		char url[128];
		int status;

		if (waitpid(*pid, &status, WNOHANG) == *pid) {
			*pid = -1;
			return -1;
		}
		snprintf(url, sizeof(url), "%s/healthz", base);
		if (tu_http("GET", url, NULL, NULL, 0, &r) == 0 && r.status == 200) {
			tu_response_release(&r);
			return 0;
		}
		tu_response_release(&r);
		usleep(10000);
	}
	return -1;
}

/* Starts the gateway on port (0: a free one) with the extra arguments. */
static int start_gateway(struct tu_gateway *gw, const char *dir, int port, va_list ap)
{
	char listen[64], pg_dsn[256] = "store.dsn=";
	char *argv[MAX_ARGS];
	int argc = 0;

	gw->port = port ? port : tu_free_port();
	snprintf(gw->data, sizeof(gw->data), "%s", dir);
	snprintf(gw->log, sizeof(gw->log), "%s/gateway.log", dir);
	snprintf(gw->base, sizeof(gw->base), "http://127.0.0.1:%d", gw->port);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", gw->port);
	if (getenv("SPARKGW_VALGRIND")) {
		/* make test-valgrind: any error or definite leak fails the exit status. */
		static const char *const vg[] = {"/usr/bin/valgrind", "--quiet", "--error-exitcode=99",
						 "--leak-check=full", "--errors-for-leak-kinds=definite",
						 "--show-leak-kinds=definite"};

		for (size_t i = 0; i < sizeof(vg) / sizeof(vg[0]); i++)
			argv[argc++] = (char *)(uintptr_t)vg[i];
	}
	argv[argc++] = (char *)(uintptr_t)tu_gateway_bin();
	argv[argc++] = (char *)(uintptr_t)"--listen";
	argv[argc++] = listen;
	argv[argc++] = (char *)(uintptr_t)"--data";
	argv[argc++] = gw->data;
	/* Suites about other things run without tokens; the auth suite turns
	 * them on with a later --set auth.mode=token. */
	argv[argc++] = (char *)(uintptr_t)"--set";
	argv[argc++] = (char *)(uintptr_t)"auth.mode=none";
	switch (tu_pg_dsn_for(dir, pg_dsn + strlen("store.dsn="), sizeof(pg_dsn) - strlen("store.dsn="))) {
	case -1:
		return -1;
	case 1:
		argv[argc++] = (char *)(uintptr_t)"--set";
		argv[argc++] = (char *)(uintptr_t)"store.driver=postgres";
		argv[argc++] = (char *)(uintptr_t)"--set";
		argv[argc++] = pg_dsn;
		break;
	}
	for (const char *a; argc < MAX_ARGS - 1 && (a = va_arg(ap, const char *));) {
		argv[argc++] = (char *)(uintptr_t)a;
		if (!strncmp(a, "http.tls_cert=", 14))
			snprintf(gw->base, sizeof(gw->base), "https://127.0.0.1:%d", gw->port);
	}
	argv[argc] = NULL;

	gw->pid = spawn(argv, gw->log);
	if (wait_healthy(&gw->pid, gw->base) == 0)
		return 0;
	tu_gateway_signal(gw, SIGKILL);
	{
		/* Why it did not come up is in its log. */
		FILE *f = fopen(gw->log, "r");
		char line[512];

		while (f && fgets(line, sizeof(line), f))
			fprintf(stderr, "gateway log: %s", line);
		if (f)
			fclose(f);
	}
	return -1;
}

int tu_gateway_start(struct tu_gateway *gw, const char *dir, ...)
{
	va_list ap;
	int rc;

	va_start(ap, dir);
	rc = start_gateway(gw, dir, 0, ap);
	va_end(ap);
	return rc;
}

int tu_gateway_restart(struct tu_gateway *gw, const char *dir, ...)
{
	va_list ap;
	int rc;

	va_start(ap, dir);
	rc = start_gateway(gw, dir, gw->port, ap);
	va_end(ap);
	return rc;
}

static const char *kubesim_bin(void)
{
	const char *bin = getenv("KUBESIM_BIN");

	return bin ? bin : "build/kubesim";
}

int tu_kubesim_start(struct tu_kubesim *k, const char *dir, const char *name, ...)
{
	char listen[64], *argv[MAX_ARGS];
	int argc = 0;
	va_list ap;

	if (!k->keep_port || k->port <= 0)
		k->port = tu_free_port();
	snprintf(k->name, sizeof(k->name), "%s", name);
	snprintf(k->base, sizeof(k->base), "http://127.0.0.1:%d", k->port);
	snprintf(k->log, sizeof(k->log), "%s/kubesim-%s.log", dir, name);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", k->port);
	argv[argc++] = (char *)(uintptr_t)kubesim_bin();
	argv[argc++] = (char *)(uintptr_t)"--listen";
	argv[argc++] = listen;
	argv[argc++] = (char *)(uintptr_t)"--name";
	argv[argc++] = (char *)(uintptr_t)name;
	argv[argc++] = (char *)(uintptr_t)"--namespace";
	argv[argc++] = (char *)(uintptr_t)"spark-jobs";
	argv[argc++] = (char *)(uintptr_t)"--openapi";
	argv[argc++] = (char *)(uintptr_t)"tests/k8s/schemas";
	va_start(ap, name);
	for (const char *a; argc < MAX_ARGS - 1 && (a = va_arg(ap, const char *));)
		argv[argc++] = (char *)(uintptr_t)a;
	va_end(ap);
	argv[argc] = NULL;
	k->pid = spawn(argv, k->log);
	return wait_healthy(&k->pid, k->base);
}

void tu_kubesim_stop(struct tu_kubesim *k)
{
	int status;

	if (k->pid <= 0)
		return;
	kill(k->pid, SIGTERM);
	waitpid(k->pid, &status, 0);
	k->pid = -1;
}

char *tu_kubectl(const struct tu_kubesim *k, const char *dir, const char *args, int *status)
{
	char cmd[1200], *out = calloc(1, 1 << 16);
	size_t n = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "kubectl --server %s --token x --cache-dir %s/kube-cache %s 2>&1", k->base, dir,
		 args);
	p = popen(cmd, "r");
	if (p)
		n = fread(out, 1, (1 << 16) - 1, p);
	out[n] = '\0';
	*status = p ? WEXITSTATUS(pclose(p)) : -1;
	return out;
}

void tu_write_cluster_config(const char *dir, const struct tu_kubesim *sims,
			     const char *const *modes, int n, const char *extra,
			     char *config_path, size_t len)
{
	char path[700];
	FILE *f;

	snprintf(path, sizeof(path), "%s/kubeconfig", dir);
	f = fopen(path, "w");
	fprintf(f, "apiVersion: v1\nkind: Config\ncurrent-context: %s\nclusters:\n", sims[0].name);
	for (int i = 0; i < n; i++)
		fprintf(f, "- name: %s\n  cluster:\n    server: %s\n", sims[i].name, sims[i].base);
	fprintf(f, "contexts:\n");
	for (int i = 0; i < n; i++)
		fprintf(f, "- name: %s\n  context: {cluster: %s, user: test}\n", sims[i].name, sims[i].name);
	fprintf(f, "users:\n- name: test\n  user: {}\n");
	fclose(f);
	snprintf(config_path, len, "%s/gateway.yaml", dir);
	f = fopen(config_path, "w");
	fprintf(f, "clusters:\n");
	for (int i = 0; i < n; i++)
		fprintf(f, "  - {name: %s, kubeconfig: %s, context: %s, mode: %s, namespace: spark-jobs}\n",
			sims[i].name, path, sims[i].name, modes[i]);
	if (extra)
		fputs(extra, f);
	fclose(f);
}

json_t *tu_get_json(const char *url)
{
	for (int i = 0; i < 20; i++) {
		struct tu_response r;
		json_t *out = NULL;

		if (tu_http("GET", url, NULL, NULL, 0, &r) == 0 && r.status == 200)
			out = json_incref(r.json);
		tu_response_release(&r);
		if (out)
			return out;
		usleep(50000);
	}
	return NULL;
}

json_t *tu_wait_job(const char *base, const char *id, const char *want, int timeout_ms)
{
	static const char *const terminal[] = {"SUCCEEDED", "FAILED", "CANCELLED", "REJECTED"};
	char url[256];

	snprintf(url, sizeof(url), "%s/api/v1/jobs/%s", base, id);
	for (int waited = 0; waited <= timeout_ms; waited += 50) {
		json_t *job = tu_get_json(url);
		const char *state = json_string_value(json_object_get(job, "state"));
		bool done = false;

		if (state && want)
			done = !strcmp(state, want);
		for (size_t i = 0; state && !want && i < 4; i++)
			done = done || !strcmp(state, terminal[i]);
		if (done)
			return job;
		json_decref(job);
		usleep(50000);
	}
	return NULL;
}

/* A gateway that died of a signal it was not sent: its last words, which
 * are gone with the test's directory otherwise. */
static void print_log_tail(const char *path, int code)
{
	char tail[4096];
	size_t n = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return;
	if (fseek(f, -(long)(sizeof(tail) - 1), SEEK_END) != 0)
		rewind(f);
	n = fread(tail, 1, sizeof(tail) - 1, f);
	tail[n] = '\0';
	fclose(f);
	fprintf(stderr, "gateway exited %d; the end of %s:\n%s\n", code, path, tail);
}

int tu_gateway_signal(struct tu_gateway *gw, int sig)
{
	int status;

	if (gw->pid <= 0)
		return -1;
	kill(gw->pid, sig);
	/* Bounded: a gateway that ignores SIGTERM for 20 s is a failure. */
	for (int i = 0; i < 2000; i++) {
		if (waitpid(gw->pid, &status, WNOHANG) == gw->pid) {
			int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

			gw->pid = -1;
			if (code > 128 && sig != SIGKILL)
				print_log_tail(gw->log, code);
			return code;
		}
		usleep(10000);
	}
	kill(gw->pid, SIGKILL);
	waitpid(gw->pid, &status, 0);
	gw->pid = -1;
	return -1;
}

int tu_run_gateway(char *err, size_t errlen, ...)
{
	char *argv[MAX_ARGS], log_path[] = "/tmp/sparkgw-run-XXXXXX";
	int argc = 0, status, fd;
	ssize_t n;
	pid_t pid;
	va_list ap;

	fd = mkstemp(log_path);
	if (fd < 0)
		return -1;
	argv[argc++] = (char *)(uintptr_t)tu_gateway_bin();
	va_start(ap, errlen);
	for (const char *a; argc < MAX_ARGS - 1 && (a = va_arg(ap, const char *));)
		argv[argc++] = (char *)(uintptr_t)a;
	va_end(ap);
	argv[argc] = NULL;
	pid = spawn(argv, log_path);
	/* Start-up errors must come quickly; a process still running after
	 * 10 s has not failed at start-up. */
	for (int i = 0; i < 1000 && waitpid(pid, &status, WNOHANG) != pid; i++) {
		usleep(10000);
		if (i == 999) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
		}
	}
	n = read(fd, err, errlen - 1);
	err[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(log_path);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

char *tu_token_cli(const char *data, const char *args, int *status)
{
	char cmd[1200], line[512], last[512] = "";
	FILE *p;

	char dsn[256];

	if (tu_pg_dsn_for(data, dsn, sizeof(dsn)) == 1)
		snprintf(cmd, sizeof(cmd), "%s token %s --dsn '%s' 2>&1", tu_gateway_bin(), args, dsn);
	else
		snprintf(cmd, sizeof(cmd), "%s token %s --data %s 2>&1", tu_gateway_bin(), args, data);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while (fgets(line, sizeof(line), p))
		snprintf(last, sizeof(last), "%s", line);
	*status = WEXITSTATUS(pclose(p));
	last[strcspn(last, "\n")] = '\0';
	return strdup(last);
}

/* ---- HTTP ---- */

struct sink {
	char *data;
	size_t len;
};

static size_t write_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct sink *s = userdata;
	size_t n = size * nmemb;
	char *p = realloc(s->data, s->len + n + 1);

	if (!p)
		return 0;
	memcpy(p + s->len, ptr, n);
	s->data = p;
	s->len += n;
	s->data[s->len] = '\0';
	return n;
}

static void copy_header(const char *line, size_t n, const char *name,
			char *out, size_t outlen)
{
	size_t nl = strlen(name);

	if (n > nl && strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
		const char *v = line + nl + 1;
		size_t vl = n - nl - 1;

		while (vl && (*v == ' '))
			v++, vl--;
		while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n'))
			vl--;
		snprintf(out, outlen, "%.*s", (int)vl, v);
	}
}

static size_t write_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct tu_response *r = userdata;
	size_t n = size * nmemb;

	copy_header(ptr, n, "Content-Type", r->content_type, sizeof(r->content_type));
	copy_header(ptr, n, "Location", r->location, sizeof(r->location));
	copy_header(ptr, n, "Retry-After", r->retry_after, sizeof(r->retry_after));
	copy_header(ptr, n, "Allow", r->allow, sizeof(r->allow));
	copy_header(ptr, n, "WWW-Authenticate", r->www_authenticate, sizeof(r->www_authenticate));
	copy_header(ptr, n, "X-Request-Id", r->request_id, sizeof(r->request_id));
	copy_header(ptr, n, "ETag", r->etag, sizeof(r->etag));
	return n;
}

/* What https:// requests trust and present (see tu_http_tls). */
static struct {
	char ca[600], cert[600], key[600];
	long version;
} tls;

void tu_http_tls(const char *ca, const char *cert, const char *key, long version)
{
	snprintf(tls.ca, sizeof(tls.ca), "%s", ca ? ca : "");
	snprintf(tls.cert, sizeof(tls.cert), "%s", cert ? cert : "");
	snprintf(tls.key, sizeof(tls.key), "%s", key ? key : "");
	tls.version = version;
}

int tu_http(const char *method, const char *url, const char *const *headers,
	    const char *body, size_t len, struct tu_response *out)
{
	CURL *c = curl_easy_init();
	struct curl_slist *hl = NULL;
	struct sink sink = {0};
	CURLcode rc;

	memset(out, 0, sizeof(*out));
	if (!c)
		return -1;
	for (size_t i = 0; headers && headers[i]; i++)
		hl = curl_slist_append(hl, headers[i]);
	/* No "Expect: 100-continue" round trip for large bodies. */
	hl = curl_slist_append(hl, "Expect:");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, write_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (!strncmp(url, "https:", 6)) {
		if (*tls.ca)
			curl_easy_setopt(c, CURLOPT_CAINFO, tls.ca);
		if (*tls.cert)
			curl_easy_setopt(c, CURLOPT_SSLCERT, tls.cert);
		if (*tls.key)
			curl_easy_setopt(c, CURLOPT_SSLKEY, tls.key);
		if (tls.version) {
			curl_easy_setopt(c, CURLOPT_SSLVERSION, tls.version);
			/* Old protocol versions need the client's security level down. */
			curl_easy_setopt(c, CURLOPT_SSL_CIPHER_LIST, "DEFAULT@SECLEVEL=0");
		}
	}
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
		curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &out->connects);
	}
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
	out->body = sink.data;
	if (out->body)
		out->json = json_loads(out->body, 0, NULL);
	return rc == CURLE_OK ? 0 : -1;
}

void tu_response_release(struct tu_response *r)
{
	free(r->body);
	json_decref(r->json);
	memset(r, 0, sizeof(*r));
}

int tu_post_json(const char *url, const char *body, const char *idem_key,
		 struct tu_response *out)
{
	char key[300];
	const char *headers[3] = {"Content-Type: application/json", NULL, NULL};

	if (idem_key) {
		snprintf(key, sizeof(key), "Idempotency-Key: %s", idem_key);
		headers[1] = key;
	}
	return tu_http("POST", url, headers, body, strlen(body), out);
}

char *tu_submit(const char *base, const char *body)
{
	struct tu_response r;
	char url[256];
	char *id;

	snprintf(url, sizeof(url), "%s/api/v1/jobs", base);
	ck_assert_int_eq(tu_post_json(url, body, NULL, &r), 0);
	ck_assert_msg(r.status == 201, "%ld %s", r.status, r.body);
	id = strdup(json_string_value(json_object_get(r.json, "id")));
	tu_response_release(&r);
	return id;
}

char *tu_job_body(const char *name, const char *team)
{
	json_t *doc = json_pack(
		"{s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:[s], s:{s:s},"
		" s:{s:i, s:s}, s:{s:i, s:i, s:s}}}",
		"name", name, "labels", "team", team, "priority", "normal", "spec",
		"type", "Scala", "sparkVersion", "3.5.1", "mainClass",
		"org.apache.spark.examples.SparkPi", "mainApplicationFile",
		"local:///opt/spark/examples/jars/spark-examples.jar", "arguments", "100",
		"sparkConf", "spark.kubesim.durationSeconds", "1", "driver", "cores", 1,
		"memory", "1g", "executor", "instances", 2, "cores", 1, "memory", "1g");
	char *text = json_dumps(doc, JSON_COMPACT);

	json_decref(doc);
	return text;
}

/* ---- a subset of JSON Schema 2020-12, enough for api/openapi.yaml ---- */

static json_t *openapi_doc;

static bool schema_fail(char *why, size_t len, const char *path, const char *msg)
{
	snprintf(why, len, "%s: %s", *path ? path : "(root)", msg);
	return false;
}

static bool type_matches(const char *t, json_t *v)
{
	if (!strcmp(t, "object")) return json_is_object(v);
	if (!strcmp(t, "array")) return json_is_array(v);
	if (!strcmp(t, "string")) return json_is_string(v);
	if (!strcmp(t, "integer")) return json_is_integer(v);
	if (!strcmp(t, "number")) return json_is_number(v);
	if (!strcmp(t, "boolean")) return json_is_boolean(v);
	if (!strcmp(t, "null")) return json_is_null(v);
	return false;
}

static bool validate(json_t *schema, json_t *v, const char *path, char *why,
		     size_t len)
{
	json_t *kw;
	char sub[512];

	if ((kw = json_object_get(schema, "$ref"))) {
		const char *ref = json_string_value(kw);
		const char *prefix = "#/components/schemas/";

		if (!ref || strncmp(ref, prefix, strlen(prefix)))
			return schema_fail(why, len, path, "unsupported $ref");
		schema = json_object_get(json_object_get(json_object_get(openapi_doc,
			"components"), "schemas"), ref + strlen(prefix));
		if (!schema)
			return schema_fail(why, len, path, "dangling $ref");
		return validate(schema, v, path, why, len);
	}
	if ((kw = json_object_get(schema, "oneOf"))) {
		int matched = 0;
		char inner[512];

		for (size_t i = 0; i < json_array_size(kw); i++)
			matched += validate(json_array_get(kw, i), v, path, inner, sizeof(inner));
		if (matched != 1)
			return schema_fail(why, len, path, matched ? "matches more than one of oneOf"
								   : "matches none of oneOf");
	}
	if ((kw = json_object_get(schema, "type"))) {
		bool ok = false;

		if (json_is_string(kw))
			ok = type_matches(json_string_value(kw), v);
		for (size_t i = 0; json_is_array(kw) && i < json_array_size(kw); i++)
			ok = ok || type_matches(json_string_value(json_array_get(kw, i)), v);
		if (!ok)
			return schema_fail(why, len, path, "wrong type");
	}
	if ((kw = json_object_get(schema, "const")) && !json_equal(kw, v))
		return schema_fail(why, len, path, "not the const value");
	if ((kw = json_object_get(schema, "enum"))) {
		bool found = false;

		for (size_t i = 0; i < json_array_size(kw); i++)
			found = found || json_equal(json_array_get(kw, i), v);
		if (!found)
			return schema_fail(why, len, path, "not in enum");
	}
	if (json_is_number(v)) {
		double d = json_number_value(v);

		if ((kw = json_object_get(schema, "minimum")) && d < json_number_value(kw))
			return schema_fail(why, len, path, "below minimum");
		if ((kw = json_object_get(schema, "maximum")) && d > json_number_value(kw))
			return schema_fail(why, len, path, "above maximum");
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		int64_t ms;

		if ((kw = json_object_get(schema, "maxLength")) &&
		    (json_int_t)json_string_length(v) > json_integer_value(kw))
			return schema_fail(why, len, path, "too long");
		if ((kw = json_object_get(schema, "minLength")) &&
		    (json_int_t)json_string_length(v) < json_integer_value(kw))
			return schema_fail(why, len, path, "too short");
		if ((kw = json_object_get(schema, "pattern"))) {
			regex_t re;
			int m;

			if (regcomp(&re, json_string_value(kw), REG_EXTENDED | REG_NOSUB))
				return schema_fail(why, len, path, "pattern does not compile");
			m = regexec(&re, s, 0, NULL, 0);
			regfree(&re);
			if (m)
				return schema_fail(why, len, path, "does not match pattern");
		}
		if ((kw = json_object_get(schema, "format")) &&
		    !strcmp(json_string_value(kw), "date-time") && gw_time_parse(s, &ms))
			return schema_fail(why, len, path, "not a date-time");
	}
	if (json_is_object(v)) {
		json_t *props = json_object_get(schema, "properties");
		json_t *extra = json_object_get(schema, "additionalProperties");
		const char *key;
		json_t *val;

		kw = json_object_get(schema, "required");
		for (size_t i = 0; i < json_array_size(kw); i++)
			if (!json_object_get(v, json_string_value(json_array_get(kw, i)))) {
				snprintf(sub, sizeof(sub), "%s.%s", path,
					 json_string_value(json_array_get(kw, i)));
				return schema_fail(why, len, sub, "required property missing");
			}
		json_object_foreach(v, key, val) {
			json_t *ps = json_object_get(props, key);

			snprintf(sub, sizeof(sub), "%s.%s", path, key);
			if (ps && !validate(ps, val, sub, why, len))
				return false;
			if (!ps && json_is_false(extra))
				return schema_fail(why, len, sub, "property not allowed");
			if (!ps && json_is_object(extra) && !validate(extra, val, sub, why, len))
				return false;
		}
	}
	if (json_is_array(v) && (kw = json_object_get(schema, "items"))) {
		for (size_t i = 0; i < json_array_size(v); i++) {
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			if (!validate(kw, json_array_get(v, i), sub, why, len))
				return false;
		}
	}
	return true;
}

bool tu_schema_valid(const char *name, json_t *v, char *why, size_t whylen)
{
	char err[GW_ERRLEN];
	json_t *schema;

	if (!openapi_doc) {
		const char *src = getenv("SPARKGW_SRC") ? getenv("SPARKGW_SRC") : ".";
		char path[512];

		snprintf(path, sizeof(path), "%s/api/openapi.yaml", src);
		if (gw_yaml_load_file(path, &openapi_doc, NULL, err)) {
			snprintf(why, whylen, "cannot load the API: %s", err);
			return false;
		}
	}
	schema = json_object_get(json_object_get(json_object_get(openapi_doc,
		"components"), "schemas"), name);
	if (!schema) {
		snprintf(why, whylen, "no schema named %s", name);
		return false;
	}
	if (!v) {
		snprintf(why, whylen, "no JSON body");
		return false;
	}
	return validate(schema, v, "", why, whylen);
}

void tu_schema_unload(void)
{
	json_decref(openapi_doc);
	openapi_doc = NULL;
}

int tu_validate_k8s(const char *kind, json_t *obj, const char *tmpdir, char *out, size_t outlen)
{
	char path[600], cmd[1600];
	FILE *p;
	size_t n;
	int status;

	snprintf(path, sizeof(path), "%s/object-to-validate.json", tmpdir);
	if (json_dump_file(obj, path, JSON_INDENT(1)))
		return -1;
	snprintf(cmd, sizeof(cmd), "node tests/k8s/validate.js %s%s %s 2>&1", kind ? "--kind " : "",
		 kind ? kind : "", path);
	p = popen(cmd, "r");
	n = p ? fread(out, 1, outlen - 1, p) : 0;
	out[n] = '\0';
	status = p ? pclose(p) : -1;
	unlink(path);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void tu_one_cluster_start(char **dir, struct tu_kubesim *sim, struct tu_gateway *gw, const char *tag,
			  const char *cluster, const char *extra)
{
	static const char *const mode = "driver-pod";
	char cfg[700];

	*dir = tu_tmpdir(tag);
	ck_assert_ptr_nonnull(*dir);
	ck_assert_int_eq(tu_kubesim_start(sim, *dir, cluster, NULL), 0);
	tu_write_cluster_config(*dir, sim, &mode, 1, extra, cfg, sizeof(cfg));
	ck_assert_int_eq(tu_gateway_start(gw, *dir, "--config", cfg, NULL), 0);
}

void tu_one_cluster_stop(char **dir, struct tu_kubesim *sim, struct tu_gateway *gw)
{
	tu_gateway_signal(gw, SIGTERM);
	tu_kubesim_stop(sim);
	tu_rmtree(*dir);
	free(*dir);
	*dir = NULL;
}

/* ---- the command line ---- */

pid_t tu_cli_spawn(const char *dir, const char *tag, const char *const *env, const char *const *argv)
{
	char out_path[700], err_path[700];
	const char *args[48];
	size_t n = 0;
	pid_t pid;

	args[n++] = tu_gateway_bin();
	for (; argv[n - 1] && n < 47; n++)
		args[n] = argv[n - 1];
	args[n] = NULL;
	snprintf(out_path, sizeof(out_path), "%s/%s.out", dir, tag);
	snprintf(err_path, sizeof(err_path), "%s/%s.err", dir, tag);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600), e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(o, 1);
		dup2(e, 2);
		unsetenv("SPARKGW_URL");
		unsetenv("SPARKGW_TOKEN");
		unsetenv("SPARKGW_CONFIG");
		unsetenv("COLUMNS");
		setenv("HOME", dir, 1);
		for (size_t i = 0; env && env[i]; i++)
			putenv((char *)(uintptr_t)env[i]);
		execv(args[0], (char *const *)(uintptr_t)args);
		_exit(127);
	}
	return pid;
}

static void read_into(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, size - 1, f) : 0;

	buf[n] = '\0';
	if (f)
		fclose(f);
}

void tu_cli_collect(pid_t pid, const char *dir, const char *tag, struct tu_cli_run *res)
{
	char path[700];
	int status = 0;

	for (int i = 0; i < 900 && waitpid(pid, &status, WNOHANG) != pid; i++) {
		usleep(100000);
		if (i == 899) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
		}
	}
	res->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	snprintf(path, sizeof(path), "%s/%s.out", dir, tag);
	read_into(path, res->out, sizeof(res->out));
	snprintf(path, sizeof(path), "%s/%s.err", dir, tag);
	read_into(path, res->err, sizeof(res->err));
}

void tu_cli(struct tu_cli_run *res, const char *dir, const char *const *env, ...)
{
	const char *argv[40];
	size_t n = 0;
	va_list ap;

	va_start(ap, env);
	while (n < 39 && (argv[n] = va_arg(ap, const char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	tu_cli_collect(tu_cli_spawn(dir, "cli", env, argv), dir, "cli", res);
}
