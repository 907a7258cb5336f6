/* The gateway as a process: start-up errors, configuration files, signals,
 * and durability across kill -9. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "tests/testutil.h"

static char *dir;

static void setup(void)
{
	dir = tu_tmpdir("proc");
	ck_assert_ptr_nonnull(dir);
}

static void teardown(void)
{
	tu_rmtree(dir);
	free(dir);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static bool file_contains(const char *path, const char *needle)
{
	char buf[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* Runs the binary expecting start-up failure: exit 2, one line naming want. */
static void expect_startup_error(const char *want, const char *a1, const char *a2,
				 const char *a3, const char *a4)
{
	char err[4096];
	int status = tu_run_gateway(err, sizeof(err), a1, a2, a3, a4, NULL);

	ck_assert_msg(status == 2, "exit %d, output: %s", status, err);
	ck_assert_msg(strstr(err, want) != NULL, "want '%s' in: %s", want, err);
	ck_assert_msg(strchr(err, '\n') == err + strlen(err) - 1, "one line: %s", err);
}

START_TEST(test_config_errors_exit_2)
{
	char cfg[700], data[700], port_arg[64];

	snprintf(cfg, sizeof(cfg), "%s/bad.yaml", dir);
	write_file(cfg, "store:\n  synchronous: full\n  batch_max: [1\n");
	expect_startup_error("bad.yaml: line 4, column 1", "--config", cfg, NULL, NULL);

	write_file(cfg, "log:\n  level: info\nstore:\n  bogus: 1\n");
	expect_startup_error("line 4, column 10: unknown key 'store.bogus'", "--config", cfg,
			     NULL, NULL);
	write_file(cfg, "http:\n  threads: 1000\n");
	expect_startup_error("line 2, column 12: http.threads must be an integer from 1 to 64",
			     "--config", cfg, NULL, NULL);
	write_file(cfg, "log:\n  level: loud\n");
	expect_startup_error("log.level must be debug, info, warn or error", "--config", cfg,
			     NULL, NULL);
	write_file(cfg, "- a\n- b\n");
	expect_startup_error("must be a mapping", "--config", cfg, NULL, NULL);

	snprintf(cfg, sizeof(cfg), "%s/missing.yaml", dir);
	expect_startup_error("missing.yaml: No such file or directory", "--config", cfg,
			     NULL, NULL);

	expect_startup_error("listen address 'nonsense' is not HOST:PORT", "--listen",
			     "nonsense", "--data", dir);

	/* Data directory below a regular file cannot be created, even by root. */
	snprintf(cfg, sizeof(cfg), "%s/plain-file", dir);
	write_file(cfg, "x");
	snprintf(data, sizeof(data), "%s/plain-file/data", dir);
	snprintf(port_arg, sizeof(port_arg), "127.0.0.1:%d", tu_free_port());
	expect_startup_error("data directory", "--listen", port_arg, "--data", data);
	expect_startup_error("unexpected argument", "--data", dir, "stray", NULL);

	/* kubeconfig: in-cluster is the pod's own cluster: none out of one. */
	{
		char err[8192];
		int status;

		snprintf(cfg, sizeof(cfg), "%s/in-cluster.yaml", dir);
		write_file(cfg, "clusters:\n  - {name: home, kubeconfig: in-cluster}\n");
		unsetenv("KUBERNETES_SERVICE_HOST");
		status = tu_run_gateway(err, sizeof(err), "--config", cfg, "--data", dir, "--listen", port_arg, NULL);
		ck_assert_int_eq(status, 2);
		ck_assert_ptr_nonnull(strstr(err, "cluster home: not running in a cluster"));
	}
}
END_TEST

START_TEST(test_port_in_use_exit_2)
{
	struct sockaddr_in addr = {.sin_family = AF_INET};
	socklen_t len = sizeof(addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	char listen_arg[64];

	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	ck_assert_int_eq(listen(fd, 1), 0);
	getsockname(fd, (struct sockaddr *)&addr, &len);
	snprintf(listen_arg, sizeof(listen_arg), "127.0.0.1:%d", ntohs(addr.sin_port));
	expect_startup_error("Address already in use", "--listen", listen_arg, "--data", dir);
	close(fd);
}
END_TEST

START_TEST(test_config_file_and_flag_precedence)
{
	char cfg[700], text[1400], u[128];
	struct tu_gateway gw;
	struct tu_response r;
	int file_port = tu_free_port();

	/* The file names a port; the flag given by tu_gateway_start wins. */
	snprintf(cfg, sizeof(cfg), "%s/gw.yaml", dir);
	snprintf(text, sizeof(text),
		 "listen: 127.0.0.1:%d\ndata: /nonexistent/ignored\nstore:\n"
		 "  synchronous: normal\n  batch_max: 8\nhttp:\n  threads: 1\n", file_port);
	write_file(cfg, text);
	ck_assert_int_eq(tu_gateway_start(&gw, dir, "--config", cfg, NULL), 0);
	snprintf(u, sizeof(u), "%s/readyz", gw.base);
	ck_assert_int_eq(tu_http("GET", u, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 200);
	tu_response_release(&r);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/healthz", file_port);
	ck_assert_int_ne(tu_http("GET", u, NULL, NULL, 0, &r), 0);
	tu_response_release(&r);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
}
END_TEST

START_TEST(test_sigterm_and_sigint_exit_0)
{
	struct tu_gateway gw;
	char *body = tu_job_body("before-stop", "ads");
	struct tu_response r;
	char u[128];

	ck_assert_int_eq(tu_gateway_start(&gw, dir, NULL), 0);
	snprintf(u, sizeof(u), "%s/api/v1/jobs", gw.base);
	ck_assert_int_eq(tu_post_json(u, body, NULL, &r), 0);
	ck_assert_int_eq(r.status, 201);
	tu_response_release(&r);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
	ck_assert(file_contains(gw.log, "\"stopped\""));

	ck_assert_int_eq(tu_gateway_start(&gw, dir, NULL), 0);
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGINT), 0);
	free(body);
}
END_TEST

START_TEST(test_acknowledged_job_survives_kill_9)
{
	struct tu_gateway gw;
	char u[256], ids[5][32], *body;

	for (int round = 0; round < 5; round++) {
		struct tu_response r;
		char name[32];

		ck_assert_int_eq(tu_gateway_start(&gw, dir, NULL), 0);
		snprintf(name, sizeof(name), "durable-%d", round);
		body = tu_job_body(name, "ads");
		snprintf(u, sizeof(u), "%s/api/v1/jobs", gw.base);
		ck_assert_int_eq(tu_post_json(u, body, NULL, &r), 0);
		ck_assert_int_eq(r.status, 201);
		snprintf(ids[round], sizeof(ids[round]), "%s",
			 json_string_value(json_object_get(r.json, "id")));
		tu_response_release(&r);
		free(body);
		/* No grace: the process dies right after the 201. */
		ck_assert_int_eq(tu_gateway_signal(&gw, SIGKILL), 128 + SIGKILL);
	}
	ck_assert_int_eq(tu_gateway_start(&gw, dir, NULL), 0);
	for (int round = 0; round < 5; round++) {
		struct tu_response r;
		char name[32];

		snprintf(u, sizeof(u), "%s/api/v1/jobs/%s", gw.base, ids[round]);
		ck_assert_int_eq(tu_http("GET", u, NULL, NULL, 0, &r), 0);
		ck_assert_int_eq(r.status, 200);
		snprintf(name, sizeof(name), "durable-%d", round);
		ck_assert_str_eq(json_string_value(json_object_get(r.json, "name")), name);
		ck_assert_str_eq(json_string_value(json_object_get(r.json, "state")), "QUEUED");
		tu_response_release(&r);
	}
	ck_assert_int_eq(tu_gateway_signal(&gw, SIGTERM), 0);
}
END_TEST

Suite *process_suite(void)
{
	Suite *s = suite_create("process");
	TCase *tc = tcase_create("lifecycle");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, test_config_errors_exit_2);
	tcase_add_test(tc, test_port_in_use_exit_2);
	tcase_add_test(tc, test_config_file_and_flag_precedence);
	tcase_add_test(tc, test_sigterm_and_sigint_exit_0);
	tcase_add_test(tc, test_acknowledged_job_survives_kill_9);
	suite_add_tcase(s, tc);
	return s;
}
