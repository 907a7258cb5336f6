/* The sparkgw command line, run as a user runs it, against a gateway with
 * one simulated cluster: files and spark-submit's flags, the -o formats,
 * watches, exit statuses, completion and the manual made from its tables;
 * and its JSONPath templates on their own. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/cli_int.h"
#include "common/yamljson.h"
#include "tests/testutil.h"

static char *dir;
static struct tu_kubesim sim;
static struct tu_gateway gw;

static void start_fleet(void)
{
	tu_one_cluster_start(&dir, &sim, &gw, "cli", "sim-cli", NULL);
}

static void stop_fleet(void)
{
	tu_one_cluster_stop(&dir, &sim, &gw);
}


/* A job file in YAML, as people write them. */
static const char *job_file(const char *name, const char *seconds, const char *exit_code)
{
	static char path[700];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.yaml", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f,
		"name: %s\n"
		"labels: {team: cli}\n"
		"spec:\n"
		"  type: Scala\n"
		"  sparkVersion: \"3.5\"\n"
		"  mainClass: org.apache.spark.examples.SparkPi\n"
		"  mainApplicationFile: local:///opt/spark/examples/jars/spark-examples.jar\n"
		"  sparkConf:\n"
		"    spark.kubesim.durationSeconds: \"%s\"\n"
		"    spark.kubesim.exitCode: \"%s\"\n"
		"  driver: {cores: 1, memory: 1g}\n"
		"  executor: {instances: 1, cores: 1, memory: 1g}\n",
		name, seconds, exit_code);
	fclose(f);
	return path;
}

/* The id the command printed alone on its first line. */
static void first_line(const char *text, char *out, size_t len)
{
	snprintf(out, len, "%.*s", (int)strcspn(text, "\n"), text);
}

START_TEST(test_cli_submit_wait_exit_codes)
{
	struct tu_cli_run run;
	char id[64], url[300];
	json_t *job;

	/* To success: exit 0, the id on stdout, the states on stderr. */
	tu_cli(&run, dir, NULL, "submit", "-f", job_file("ok", "1", "0"), "--label", "stage=prod", "--conf",
		"spark.sql.shuffle.partitions=8", "--wait", "-s", gw.base, NULL);
	ck_assert_msg(run.status == 0, "exit %d: %s", run.status, run.err);
	first_line(run.out, id, sizeof(id));
	ck_assert_int_eq(strlen(id), 21);
	ck_assert_ptr_nonnull(strstr(run.err, "RUNNING"));
	ck_assert_ptr_nonnull(strstr(run.err, "SUCCEEDED"));
	snprintf(url, sizeof(url), "%s/api/v1/jobs/%s", gw.base, id);
	job = tu_get_json(url);
	ck_assert_str_eq(json_string_value(json_object_get(job, "state")), "SUCCEEDED");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(job, "labels"), "stage")), "prod");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(json_object_get(job, "spec"), "sparkConf"),
							   "spark.sql.shuffle.partitions")),
			 "8");
	json_decref(job);

	/* To failure: exit 1, and the reason said. */
	tu_cli(&run, dir, NULL, "submit", "-f", job_file("bad", "1", "3"), "--wait", "-s", gw.base, NULL);
	ck_assert_msg(run.status == 1, "exit %d: %s", run.status, run.err);
	ck_assert_ptr_nonnull(strstr(run.err, "FAILED"));

	/* From standard input too, and JSON. */
	{
		char cmd[1600], path[700];
		char *body = tu_job_body("from-stdin", "cli");
		FILE *f;
		int rc;

		snprintf(path, sizeof(path), "%s/stdin.json", dir);
		f = fopen(path, "w");
		fputs(body, f);
		fclose(f);
		free(body);
		snprintf(cmd, sizeof(cmd), "%s submit -f - -s %s < %s > %s/stdin.out 2>&1", tu_gateway_bin(), gw.base,
			 path, dir);
		rc = system(cmd);
		ck_assert_int_eq(WEXITSTATUS(rc), 0);
		snprintf(cmd, sizeof(cmd), "%s submit -f - -s %s < /dev/null > /dev/null 2>&1", tu_gateway_bin(), gw.base);
		rc = system(cmd);
		ck_assert_int_eq(WEXITSTATUS(rc), 1); /* an empty document: the server says what is missing */
	}
}
END_TEST

START_TEST(test_cli_logs_follow_to_the_end)
{
	struct tu_cli_run run;
	char id[64];

	tu_cli(&run, dir, NULL, "submit", "-f", job_file("logged", "2", "0"), "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 0);
	first_line(run.out, id, sizeof(id));
	/* Followed from before the driver starts, the stream waits for it and
	 * ends when the driver does. */
	tu_cli(&run, dir, NULL, "logs", "-f", id, "-s", gw.base, NULL);
	ck_assert_msg(run.status == 0, "exit %d: %s", run.status, run.err);
	ck_assert_ptr_nonnull(strstr(run.out, "Running Spark version"));
	ck_assert_ptr_nonnull(strstr(run.out, "Successfully stopped SparkContext"));
	tu_cli(&run, dir, NULL, "logs", "--tail", "1", id, "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 0);
	ck_assert_ptr_nonnull(strstr(run.out, "Successfully stopped SparkContext"));
	ck_assert_ptr_null(strstr(run.out, "Running Spark version"));
}
END_TEST

START_TEST(test_cli_list_get_events_output)
{
	struct tu_cli_run run;
	char id[64], env_url[128], columns[] = "COLUMNS=60";
	const char *env[] = {env_url, columns, NULL};
	json_t *doc = NULL;
	char err[256];

	snprintf(env_url, sizeof(env_url), "SPARKGW_URL=%s", gw.base);
	tu_cli(&run, dir, env, "submit", "-f", job_file("listed-job-with-a-rather-long-name", "1", "0"), "--wait", NULL);
	ck_assert_int_eq(run.status, 0);
	first_line(run.out, id, sizeof(id));

	/* A table sized to the terminal: 60 columns, the name cut. */
	tu_cli(&run, dir, env, "list", "-l", "team=cli", NULL);
	ck_assert_int_eq(run.status, 0);
	ck_assert_ptr_nonnull(strstr(run.out, "ID"));
	ck_assert_ptr_nonnull(strstr(run.out, "STATE"));
	ck_assert_ptr_nonnull(strstr(run.out, id));
	for (char *line = run.out; *line; line += strcspn(line, "\n") + (line[strcspn(line, "\n")] != '\0'))
		ck_assert_int_le(strcspn(line, "\n"), 60);
	ck_assert_ptr_nonnull(strstr(run.out, "..."));
	tu_cli(&run, dir, env, "list", "-l", "team=nobody", NULL);
	ck_assert_ptr_null(strstr(run.out, id));

	tu_cli(&run, dir, env, "list", "--state", "SUCCEEDED", "-o", "json", NULL);
	ck_assert_int_eq(run.status, 0);
	doc = json_loads(run.out, 0, NULL);
	ck_assert_int_ge(json_array_size(json_object_get(doc, "items")), 1);
	json_decref(doc);

	tu_cli(&run, dir, env, "get", id, "-o", "yaml", NULL);
	ck_assert_int_eq(run.status, 0);
	ck_assert_int_eq(gw_yaml_load_string(run.out, strlen(run.out), &doc, NULL, err), GW_OK);
	ck_assert_str_eq(json_string_value(json_object_get(doc, "id")), id);
	json_decref(doc);
	tu_cli(&run, dir, env, "get", id, NULL);
	ck_assert_ptr_nonnull(strstr(run.out, "State:      SUCCEEDED"));

	tu_cli(&run, dir, env, "events", id, NULL);
	ck_assert_int_eq(run.status, 0);
	ck_assert_ptr_nonnull(strstr(run.out, "QUEUED"));
	ck_assert_ptr_nonnull(strstr(run.out, "SUCCEEDED"));
}
END_TEST

/* Refusals print the server's problem and exit 1; usage is 2, no server 3;
 * the server comes from the flag, the environment or the config file. */
START_TEST(test_cli_errors_and_settings)
{
	struct tu_cli_run run;
	char bad[700], config[700], cfg_env[800], nowhere[64], url_env[100];
	FILE *f;

	snprintf(bad, sizeof(bad), "%s/bad.json", dir);
	f = fopen(bad, "w");
	fputs("{\"name\":\"Bad Name\",\"spec\":{\"type\":\"Python\",\"sparkVersion\":\"3.5\"}}", f);
	fclose(f);
	tu_cli(&run, dir, NULL, "submit", "-f", bad, "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 1);
	ck_assert_ptr_nonnull(strstr(run.err, "invalid field"));
	ck_assert_ptr_nonnull(strstr(run.err, "spec.mainApplicationFile"));

	tu_cli(&run, dir, NULL, "get", "j0000000000000000000x", "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 1);
	ck_assert_ptr_nonnull(strstr(run.err, "not found"));

	tu_cli(&run, dir, NULL, "get", NULL);
	ck_assert_int_eq(run.status, 2);
	tu_cli(&run, dir, NULL, "list", "-o", "xml", NULL);
	ck_assert_int_eq(run.status, 2);

	snprintf(nowhere, sizeof(nowhere), "http://127.0.0.1:%d", tu_free_port());
	tu_cli(&run, dir, NULL, "list", "-s", nowhere, NULL);
	ck_assert_int_eq(run.status, 3);

	/* kubectl's habits: global options before the command, help per
	 * command, versions of both ends. */
	tu_cli(&run, dir, NULL, "--server", gw.base, "get", "j0000000000000000000x", NULL);
	ck_assert_int_eq(run.status, 1);
	ck_assert_ptr_nonnull(strstr(run.err, "not found"));
	tu_cli(&run, dir, NULL, "get", "--help", NULL);
	ck_assert_int_eq(run.status, 0);
	ck_assert_ptr_nonnull(strstr(run.out, "usage: sparkgw get ID"));
	ck_assert_ptr_null(strstr(run.out, "submit -f"));
	tu_cli(&run, dir, NULL, "-s", gw.base, "version", NULL);
	ck_assert_msg(run.status == 0, "%s", run.err);
	ck_assert_ptr_nonnull(strstr(run.out, "client: " GW_VERSION " (commit " GW_GIT_COMMIT ")"));
	ck_assert_ptr_nonnull(strstr(run.out, "server: " GW_VERSION " (commit " GW_GIT_COMMIT ", store "));
	tu_cli(&run, dir, NULL, "version", "-s", nowhere, NULL);
	ck_assert_int_eq(run.status, 3);
	ck_assert_ptr_nonnull(strstr(run.out, "client: " GW_VERSION));
	tu_cli(&run, dir, NULL, "--version", NULL);
	ck_assert_int_eq(run.status, 0);
	ck_assert_ptr_nonnull(strstr(run.out, "sparkgw " GW_VERSION));

	/* The config file serves when nothing else names a server; the
	 * environment wins over it. */
	snprintf(config, sizeof(config), "%s/cli.yaml", dir);
	f = fopen(config, "w");
	fprintf(f, "server: %s\n", gw.base);
	fclose(f);
	snprintf(cfg_env, sizeof(cfg_env), "SPARKGW_CONFIG=%s", config);
	{
		const char *env[] = {cfg_env, NULL};

		tu_cli(&run, dir, env, "clusters", NULL);
		ck_assert_msg(run.status == 0, "%s", run.err);
		ck_assert_ptr_nonnull(strstr(run.out, "sim-cli"));
	}
	snprintf(url_env, sizeof(url_env), "SPARKGW_URL=%s", nowhere);
	{
		const char *env[] = {cfg_env, url_env, NULL};

		tu_cli(&run, dir, env, "clusters", NULL);
		ck_assert_int_eq(run.status, 3);
	}
}
END_TEST

START_TEST(test_cli_dry_run_and_operators)
{
	struct tu_cli_run run;
	char id[64];

	tu_cli(&run, dir, NULL, "submit", "-f", job_file("dry", "1", "0"), "--dry-run", "-s", gw.base, NULL);
	ck_assert_msg(run.status == 0, "%s", run.err);
	ck_assert_ptr_nonnull(strstr(run.out, "placeable now"));
	ck_assert_ptr_nonnull(strstr(run.out, "cluster sim-cli"));
	ck_assert_ptr_nonnull(strstr(run.out, "spark.app.name"));

	/* Cordoned, the cluster takes nothing: the job waits in the queue. */
	tu_cli(&run, dir, NULL, "cordon", "sim-cli", "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 0);
	ck_assert_ptr_nonnull(strstr(run.out, "cordoned"));
	tu_cli(&run, dir, NULL, "clusters", "-s", gw.base, NULL);
	ck_assert_ptr_nonnull(strstr(run.out, "cordoned"));
	tu_cli(&run, dir, NULL, "submit", "-f", job_file("queued", "1", "0"), "-s", gw.base, NULL);
	first_line(run.out, id, sizeof(id));
	for (int i = 0; i < 50; i++) {
		tu_cli(&run, dir, NULL, "queue", "-s", gw.base, NULL);
		if (strstr(run.out, id))
			break;
		usleep(100000);
	}
	ck_assert_ptr_nonnull(strstr(run.out, id));
	tu_cli(&run, dir, NULL, "uncordon", "sim-cli", "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 0);
	ck_assert_ptr_nonnull(strstr(run.out, "active"));
	tu_cli(&run, dir, NULL, "cancel", id, "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 0);
	ck_assert_ptr_nonnull(strstr(run.out, id));
	tu_cli(&run, dir, NULL, "cordon", "no-such-cluster", "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 1);
}
END_TEST

/* The README's walk-through with the command line, against `make run`'s
 * gateway (contrib/run-demo.sh: three simulated clusters, the demo policy). */
START_TEST(test_cli_walkthrough_on_make_run)
{
	char port[16], data[700], build[600], base[64], url_env[100], ok_id[64], *slash;
	const char *env[] = {url_env, NULL};
	struct tu_cli_run run;
	pid_t demo;
	int status;
	bool up = false;

	snprintf(port, sizeof(port), "%d", tu_free_port_run(4));
	snprintf(data, sizeof(data), "%s/demo", dir);
	snprintf(build, sizeof(build), "%s", tu_gateway_bin());
	if ((slash = strrchr(build, '/')))
		*slash = '\0'; /* run-demo.sh takes the binaries' directory */
	else
		snprintf(build, sizeof(build), ".");
	snprintf(base, sizeof(base), "http://127.0.0.1:%s", port);
	snprintf(url_env, sizeof(url_env), "SPARKGW_URL=%s", base);
	demo = fork();
	ck_assert_int_ge(demo, 0);
	if (demo == 0) {
		char log[800];
		int fd;

		snprintf(log, sizeof(log), "%s/demo.log", dir);
		fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 1);
		dup2(fd, 2);
		setpgid(0, 0); /* one group: the script, its clusters and gateway */
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* a failed test takes them down too */
		setenv("SPARKGW_PORT", port, 1);
		setenv("SPARKGW_DATA", data, 1);
		setenv("BUILD", build, 1);
		execlp("sh", "sh", "contrib/run-demo.sh", (char *)NULL);
		_exit(127);
	}
	setpgid(demo, demo);
	for (int i = 0; i < 200 && !up; i++) {
		char healthz[100];
		struct tu_response r;

		snprintf(healthz, sizeof(healthz), "%s/healthz", base);
		up = tu_http("GET", healthz, NULL, NULL, 0, &r) == 0 && r.status == 200;
		tu_response_release(&r);
		if (!up)
			usleep(100000);
	}
	ck_assert_msg(up, "make run's gateway did not come up (see demo.log)");

	{
		FILE *f;
		char job[700];

		snprintf(job, sizeof(job), "%s/pi.yaml", dir);
		f = fopen(job, "w");
		fputs("name: spark-pi\n"
		      "labels: {team: search, priority: high}\n"
		      "spec:\n"
		      "  type: Scala\n"
		      "  sparkVersion: \"3.5.1\"\n"
		      "  mainClass: org.apache.spark.examples.SparkPi\n"
		      "  mainApplicationFile: local:///opt/spark/examples/jars/spark-examples.jar\n"
		      "  arguments: [\"1000\"]\n"
		      "  driver:   {cores: 1, memory: 1g}\n"
		      "  executor: {instances: 2, cores: 2, memory: 2g}\n",
		      f);
		fclose(f);

		tu_cli(&run, dir, env, "submit", "-f", job, "--dry-run", NULL);
		ck_assert_msg(run.status == 0, "%s", run.err);
		ck_assert_ptr_nonnull(strstr(run.out, "namespace spark-search-")); /* team search's group */
		tu_cli(&run, dir, env, "submit", "-f", job, "--wait", NULL);
		ck_assert_msg(run.status == 0, "exit %d: %s", run.status, run.err);
		first_line(run.out, ok_id, sizeof(ok_id));
		tu_cli(&run, dir, env, "submit", "-f", job, "--conf", "spark.kubesim.exitCode=1", "--wait", NULL);
		ck_assert_msg(run.status == 1, "exit %d: %s", run.status, run.err);
		ck_assert_ptr_nonnull(strstr(run.err, "FAILED"));
	}
	tu_cli(&run, dir, env, "logs", "-f", ok_id, NULL);
	ck_assert_int_eq(run.status, 0);
	ck_assert_ptr_nonnull(strstr(run.out, "Successfully stopped SparkContext"));
	tu_cli(&run, dir, env, "list", "-l", "team=search", "-o", "wide", NULL);
	ck_assert_int_eq(run.status, 0);
	ck_assert_ptr_nonnull(strstr(run.out, ok_id));
	ck_assert_ptr_nonnull(strstr(run.out, "FAILED"));
	ck_assert_ptr_nonnull(strstr(run.out, "NAMESPACE"));
	tu_cli(&run, dir, env, "cordon", "sim-b", NULL);
	ck_assert_int_eq(run.status, 0);
	tu_cli(&run, dir, env, "uncordon", "sim-b", NULL);
	ck_assert_int_eq(run.status, 0);

	kill(-demo, SIGTERM);
	for (int i = 0; i < 100 && waitpid(demo, &status, WNOHANG) != demo; i++)
		usleep(100000);
}
END_TEST

/* The value of a JSONPath template on a job, by the command line. */
static void job_path(const char *id, const char *template, char *out, size_t len)
{
	struct tu_cli_run run;
	char format[300];

	snprintf(format, sizeof(format), "jsonpath=%s", template);
	tu_cli(&run, dir, NULL, "get", id, "-o", format, "-s", gw.base, NULL);
	ck_assert_msg(run.status == 0, "get %s: %s", id, run.err);
	snprintf(out, len, "%s", run.out);
}

/* spark-submit's flags map to the submission body; after APP, everything
 * is the application's; a job file and flags combine, the flags winning. */
START_TEST(test_cli_spark_submit_flags)
{
	struct tu_cli_run run;
	char id[64], value[1024];

	tu_cli(&run, dir, NULL, "-s", gw.base, "submit", "--class", "org.apache.spark.examples.SparkPi", "--jars",
	       "a.jar,b.jar", "--jars", "c.jar", "--packages", "org.example:lib:1.0", "--driver-memory", "1g",
	       "--driver-cores", "1", "--executor-memory", "2g", "--executor-cores", "2", "--num-executors", "3", "-c",
	       "spark.kubesim.durationSeconds=1", "--conf", "spark.sql.shuffle.partitions=8", "--label", "team=cli",
	       "--wait", "local:///opt/spark/examples/jars/spark-examples.jar", "1000", "--verbose", NULL);
	ck_assert_msg(run.status == 0, "exit %d: %s", run.status, run.err);
	first_line(run.out, id, sizeof(id));
	job_path(id, "{.name} {.spec.type} {.spec.sparkVersion} {.spec.mainClass} {.spec.mainApplicationFile}", value,
		 sizeof(value));
	ck_assert_str_eq(value, "spark-pi Scala 3.5 org.apache.spark.examples.SparkPi "
				"local:///opt/spark/examples/jars/spark-examples.jar");
	job_path(id, "{.spec.arguments} {.spec.deps} {.spec.driver} {.spec.executor}", value, sizeof(value));
	ck_assert_str_eq(value, "[\"1000\",\"--verbose\"] {\"jars\":[\"a.jar\",\"b.jar\",\"c.jar\"],\"packages\":"
				"[\"org.example:lib:1.0\"]} {\"memory\":\"1g\",\"cores\":1} "
				"{\"memory\":\"2g\",\"cores\":2,\"instances\":3}");
	job_path(id, "{.spec.sparkConf['spark.sql.shuffle.partitions']} {.labels.team} {.state}", value, sizeof(value));
	ck_assert_str_eq(value, "8 cli SUCCEEDED");

	/* The type and name follow from APP, as spark-submit's do. */
	tu_cli(&run, dir, NULL, "submit", "--py-files", "deps.zip", "--label", "team=cli", "-o", "name", "-s", gw.base,
	       "s3a://bucket/jobs/etl_daily.py", NULL);
	ck_assert_msg(run.status == 0, "%s", run.err);
	ck_assert_int_eq(strncmp(run.out, "job/", 4), 0);
	first_line(run.out, id, sizeof(id));
	job_path(id, "{.name} {.spec.type} {.spec.deps.pyFiles[0]} {.spec.arguments}", value, sizeof(value));
	ck_assert_str_eq(value, "etl-daily Python deps.zip []");
	tu_cli(&run, dir, NULL, "submit", "-e", "CREATE TABLE t (a INT); SET spark.x=1", "--label", "team=cli", "-o",
	       "name", "-s", gw.base, NULL);
	ck_assert_msg(run.status == 0, "%s", run.err);
	first_line(run.out, id, sizeof(id));
	job_path(id, "{.name} {.spec.type} {.spec.sql}", value, sizeof(value));
	ck_assert_str_eq(value, "sql SQL CREATE TABLE t (a INT); SET spark.x=1");

	/* A file and flags: the flags win, the rest of the file stays. */
	tu_cli(&run, dir, NULL, "submit", "-f", job_file("from-file", "1", "0"), "--name", "renamed",
	       "--executor-cores", "3", "-s", gw.base, NULL);
	ck_assert_msg(run.status == 0, "%s", run.err);
	first_line(run.out, id, sizeof(id));
	job_path(id, "{.name} {.spec.executor.cores} {.spec.executor.memory} {.spec.mainClass}", value, sizeof(value));
	ck_assert_str_eq(value, "renamed 3 1g org.apache.spark.examples.SparkPi");

	/* Mistakes are usage errors, said before anything is sent. */
	tu_cli(&run, dir, NULL, "submit", "--driver-cores", "two", "x.jar", "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 2);
	ck_assert_ptr_nonnull(strstr(run.err, "--driver-cores takes a whole number"));
	tu_cli(&run, dir, NULL, "submit", "--label", "team", "x.jar", "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 2);
	ck_assert_ptr_nonnull(strstr(run.err, "KEY=VALUE"));
	tu_cli(&run, dir, NULL, "submit", "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 2);
	ck_assert_ptr_nonnull(strstr(run.err, "an APP or --sql"));
	/* What only the server knows is the server's 422, exit 1. */
	tu_cli(&run, dir, NULL, "submit", "--name", "Not A Label", "--class", "a.B", "-s", gw.base, "x.jar", NULL);
	ck_assert_int_eq(run.status, 1);
	ck_assert_ptr_nonnull(strstr(run.err, "name"));
}
END_TEST

/* kubectl's -o name, -o jsonpath= and -o wide, TYPE/NAME arguments, and
 * paging with --continue and --all. */
START_TEST(test_cli_output_formats)
{
	struct tu_cli_run run;
	char ids[3][64], names[3][16], token[256], value[1024];
	const char *hint;
	int lines = 0;

	for (int i = 0; i < 3; i++) {
		snprintf(names[i], sizeof(names[i]), "fmt-%d", i);
		tu_cli(&run, dir, NULL, "submit", "--name", names[i], "--class", "a.B", "--num-executors", "2",
		       "--executor-cores", "2", "-c", "spark.kubesim.durationSeconds=1", "--label", "team=fmt", "-o",
		       "name", "-s", gw.base, "x.jar", NULL);
		ck_assert_msg(run.status == 0, "%s", run.err);
		ck_assert_int_eq(sscanf(run.out, "job/%63s", ids[i]), 1);
	}
	tu_cli(&run, dir, NULL, "list", "-l", "team=fmt", "-o", "name", "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 0);
	for (int i = 0; i < 3; i++) {
		char line[80];

		snprintf(line, sizeof(line), "job/%s\n", ids[i]);
		ck_assert_ptr_nonnull(strstr(run.out, line));
	}
	for (const char *p = run.out; *p; p++)
		lines += *p == '\n';
	ck_assert_int_eq(lines, 3);

	/* job/ID as an argument, as -o name prints it. */
	snprintf(value, sizeof(value), "job/%s", ids[0]);
	tu_cli(&run, dir, NULL, "get", value, "-o", "jsonpath={.name}/{.labels.team}", "-s", gw.base, NULL);
	ck_assert_str_eq(run.out, "fmt-0/fmt");
	tu_cli(&run, dir, NULL, "list", "-l", "team=fmt", "-o",
	       "jsonpath={range .items[*]}{.name}{\"\\n\"}{end}", "-s", gw.base, NULL);
	ck_assert_str_eq(run.out, "fmt-2\nfmt-1\nfmt-0\n"); /* newest first */
	tu_cli(&run, dir, NULL, "list", "-l", "team=fmt", "-o", "jsonpath={.items[?(@.name==\"fmt-1\")].id}", "-s",
	       gw.base, NULL);
	ck_assert_str_eq(run.out, ids[1]);
	tu_cli(&run, dir, NULL, "list", "-o", "jsonpath={.items[", "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 2);
	ck_assert_ptr_nonnull(strstr(run.err, "jsonpath"));

	/* wide: the reason, the cores (1 + 2 x 2), where it runs. */
	tu_cli(&run, dir, NULL, "list", "-l", "team=fmt", "-o", "wide", "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 0);
	ck_assert_ptr_nonnull(strstr(run.out, "REASON"));
	ck_assert_ptr_nonnull(strstr(run.out, "CORES"));
	ck_assert_ptr_nonnull(strstr(run.out, "NAMESPACE"));
	ck_assert_ptr_nonnull(strstr(run.out, "   5   "));
	ck_assert_ptr_nonnull(strstr(run.out, "sim-cli"));

	/* A page at a time: the hint names the next page's token. */
	tu_cli(&run, dir, NULL, "list", "-l", "team=fmt", "--limit", "1", "-s", gw.base, NULL);
	ck_assert_ptr_nonnull(strstr(run.out, ids[2]));
	hint = strstr(run.err, "--continue ");
	ck_assert_ptr_nonnull(hint);
	ck_assert_int_eq(sscanf(hint, "--continue %255s", token), 1);
	tu_cli(&run, dir, NULL, "list", "-l", "team=fmt", "--limit", "1", "--continue", token, "-o", "name", "-s",
	       gw.base, NULL);
	ck_assert_msg(run.status == 0, "%s", run.err);
	ck_assert_ptr_nonnull(strstr(run.out, ids[1]));
	ck_assert_ptr_null(strstr(run.out, ids[2]));
	tu_cli(&run, dir, NULL, "list", "-l", "team=fmt", "--limit", "1", "--all", "-o", "json", "-s", gw.base, NULL);
	ck_assert_msg(run.status == 0, "%s", run.err);
	{
		json_t *doc = json_loads(run.out, 0, NULL);

		ck_assert_int_eq(json_array_size(json_object_get(doc, "items")), 3);
		ck_assert_ptr_null(json_object_get(doc, "continue"));
		json_decref(doc);
	}

	tu_cli(&run, dir, NULL, "clusters", "-o", "name", "-s", gw.base, NULL);
	ck_assert_str_eq(run.out, "cluster/sim-cli\n");
	tu_cli(&run, dir, NULL, "events", ids[0], "-o", "name", "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 2);
}
END_TEST

static int count_lines_with(const char *text, const char *a, const char *b)
{
	int n = 0;

	for (const char *line = text; *line; line += strcspn(line, "\n") + (line[strcspn(line, "\n")] != '\0')) {
		size_t len = strcspn(line, "\n");
		char copy[512];

		snprintf(copy, sizeof(copy), "%.*s", (int)len, line);
		n += strstr(copy, a) && strstr(copy, b);
	}
	return n;
}

/* get -w prints a row for each change until the job ends; list -w the
 * changes to the jobs its selector picks, until --timeout. */
START_TEST(test_cli_watch)
{
	const char *list_argv[] = {"list", "-w", "-l", "team=watch", "--timeout", "15", "-s", gw.base, NULL};
	struct tu_cli_run run, listed;
	char id[64];
	pid_t watcher = tu_cli_spawn(dir, "watch-list", NULL, list_argv);

	usleep(1500 * 1000);
	tu_cli(&run, dir, NULL, "submit", "--class", "a.B", "-c", "spark.kubesim.durationSeconds=3", "--label",
	       "team=watch", "-s", gw.base, "x.jar", NULL);
	ck_assert_msg(run.status == 0, "%s", run.err);
	first_line(run.out, id, sizeof(id));
	tu_cli(&run, dir, NULL, "get", id, "-w", "-s", gw.base, NULL);
	ck_assert_msg(run.status == 0, "%s", run.err);
	ck_assert_ptr_nonnull(strstr(run.out, "STATE"));
	ck_assert_int_eq(count_lines_with(run.out, id, "RUNNING"), 1);
	ck_assert_int_eq(count_lines_with(run.out, id, "SUCCEEDED"), 1);

	tu_cli_collect(watcher, dir, "watch-list", &listed);
	ck_assert_msg(listed.status == 0, "%s", listed.err);
	ck_assert_ptr_nonnull(strstr(listed.out, "STATE"));
	ck_assert_int_eq(count_lines_with(listed.out, id, "SUCCEEDED"), 1);
	ck_assert_int_eq(count_lines_with(listed.out, id, "fmt"), 0);
}
END_TEST

/* logs: a refusal from the server is exit 1 with its problem, never 3
 * (3 is for a server that cannot be reached). */
START_TEST(test_cli_logs_exit_codes)
{
	struct tu_cli_run run;
	char id[64], nowhere[64];

	tu_cli(&run, dir, NULL, "logs", "j0000000000000000000x", "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 1);
	ck_assert_ptr_nonnull(strstr(run.err, "not found"));
	tu_cli(&run, dir, NULL, "cordon", "cluster/sim-cli", "-o", "name", "-s", gw.base, NULL);
	ck_assert_str_eq(run.out, "cluster/sim-cli\n");
	tu_cli(&run, dir, NULL, "submit", "--class", "a.B", "--label", "team=cli", "-s", gw.base, "x.jar", NULL);
	first_line(run.out, id, sizeof(id));
	tu_cli(&run, dir, NULL, "logs", id, "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 1);
	ck_assert_ptr_nonnull(strstr(run.err, "driver"));
	tu_cli(&run, dir, NULL, "cancel", id, "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 0);
	tu_cli(&run, dir, NULL, "uncordon", "sim-cli", "-s", gw.base, NULL);
	ck_assert_int_eq(run.status, 0);
	snprintf(nowhere, sizeof(nowhere), "http://127.0.0.1:%d", tu_free_port());
	tu_cli(&run, dir, NULL, "logs", id, "-s", nowhere, NULL);
	ck_assert_int_eq(run.status, 3);
}
END_TEST

/* The bash completion offers commands, each command's own flags, a flag's
 * values, and job IDs and cluster names asked of the server named on the
 * line; the zsh one loads and registers itself. */
START_TEST(test_cli_completion)
{
	struct tu_cli_run run;
	char script[800], cmd[4000], bin_dir[600], id[64], *slash, out[8192];
	FILE *f;
	size_t n;

	tu_cli(&run, dir, NULL, "submit", "--class", "a.B", "--label", "team=cli", "-s", gw.base, "x.jar", NULL);
	first_line(run.out, id, sizeof(id));
	snprintf(bin_dir, sizeof(bin_dir), "%s", tu_gateway_bin());
	slash = strrchr(bin_dir, '/');
	if (slash)
		*slash = '\0';
	tu_cli(&run, dir, NULL, "completion", "bash", NULL);
	ck_assert_int_eq(run.status, 0);
	snprintf(script, sizeof(script), "%s/sparkgw.bash", dir);
	f = fopen(script, "w");
	fputs(run.out, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && PATH=\"$(realpath '%s'):$PATH\" bash --norc -c '"
		 "source %s; t() { COMP_WORDS=(\"$@\"); COMP_CWORD=$(($# - 1)); _sparkgw; echo \"[${COMPREPLY[*]}]\"; }; "
		 "t sparkgw lo; t sparkgw submit --dri; t sparkgw list --state SU; t sparkgw -s %s get \"\"; "
		 "t sparkgw -s %s cordon sim-; t sparkgw logs --; t sparkgw help ca' > %s/completion.out 2>&1",
		 getenv("PWD") ? getenv("PWD") : ".", bin_dir, script, gw.base, gw.base, dir);
	ck_assert_int_eq(WEXITSTATUS(system(cmd)), 0);
	snprintf(script, sizeof(script), "%s/completion.out", dir);
	f = fopen(script, "r");
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	fclose(f);
	ck_assert_msg(strstr(out, "[logs]\n[--driver-memory --driver-cores]\n[SUBMITTED SUCCEEDED]\n"), "%s", out);
	ck_assert_msg(strstr(out, id), "no job id offered: %s", out);
	ck_assert_msg(strstr(out, "[sim-cli]\n"), "%s", out);
	ck_assert_msg(strstr(out, "--follow") && strstr(out, "--tail") && !strstr(out, "--file"), "%s", out);
	ck_assert_msg(strstr(out, "[cancel]\n"), "%s", out);

	tu_cli(&run, dir, NULL, "completion", "zsh", NULL);
	ck_assert_int_eq(run.status, 0);
	snprintf(script, sizeof(script), "%s/_sparkgw", dir);
	f = fopen(script, "w");
	fputs(run.out, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd),
		 "zsh -f -c 'autoload -Uz compinit && compinit -u -d %s/zcompdump; source %s; print -r -- "
		 "${_comps[sparkgw]}' > %s/zsh.out 2>&1",
		 dir, script, dir);
	ck_assert_int_eq(WEXITSTATUS(system(cmd)), 0);
	snprintf(script, sizeof(script), "%s/zsh.out", dir);
	f = fopen(script, "r");
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	fclose(f);
	ck_assert_str_eq(out, "_sparkgw\n");
	tu_cli(&run, dir, NULL, "completion", "fish", NULL);
	ck_assert_int_eq(run.status, 2);
}
END_TEST

/* docs/cli.md is what `sparkgw help --markdown` makes of the tables, and
 * each command's usage lists its own flags only. */
START_TEST(test_cli_manual_is_current)
{
	const char *src = getenv("SPARKGW_SRC") ? getenv("SPARKGW_SRC") : ".";
	struct tu_cli_run run;
	char path[600], *doc;
	size_t n;
	FILE *f;

	tu_cli(&run, dir, NULL, "help", "--markdown", NULL);
	ck_assert_int_eq(run.status, 0);
	snprintf(path, sizeof(path), "%s/docs/cli.md", src);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	doc = calloc(1, sizeof(run.out));
	n = fread(doc, 1, sizeof(run.out) - 1, f);
	fclose(f);
	doc[n] = '\0';
	ck_assert_msg(!strcmp(doc, run.out), "docs/cli.md is stale: build/sparkgw help --markdown > docs/cli.md");
	free(doc);
	ck_assert_ptr_nonnull(strstr(run.out, "## sparkgw submit"));
	ck_assert_ptr_nonnull(strstr(run.out, "`--num-executors N`"));

	tu_cli(&run, dir, NULL, "submit", "--help", NULL);
	ck_assert_int_eq(run.status, 0);
	ck_assert_ptr_nonnull(strstr(run.out, "--num-executors N"));
	ck_assert_ptr_nonnull(strstr(run.out, "--server URL"));
	tu_cli(&run, dir, NULL, "list", "--help", NULL);
	ck_assert_ptr_null(strstr(run.out, "--num-executors"));
	ck_assert_ptr_nonnull(strstr(run.out, "--continue TOKEN"));
	tu_cli(&run, dir, NULL, "help", "logs", NULL);
	ck_assert_ptr_nonnull(strstr(run.out, "usage: sparkgw logs ID"));
	tu_cli(&run, dir, NULL, "help", "nothing", NULL);
	ck_assert_int_eq(run.status, 2);
}
END_TEST

/* ---- JSONPath templates ---- */

START_TEST(test_jsonpath_templates)
{
	static const struct {
		const char *template, *want;
	} cases[] = {
		{"{.items[*].id}", "a b"},
		{"{.items[0].id}", "a"},
		{"{.items[-1].id}", "b"},
		{"{.items[5].id}", ""},
		{"{$.items[1].id}", "b"},
		{"id: {.items[0].id}!", "id: a!"},
		{"{range .items[*]}{.id}={.n}{\"\\n\"}{end}", "a=1\nb=2\n"},
		{"{range .items[*]}{range .labels.*}[{@}]{end}{end}", "[x][p][y]"},
		{"{range .nothing[*]}{.id}{end}-", "-"},
		{"{.items[?(@.n>1)].id}", "b"},
		{"{.items[?(@.n <= 1.5)].id}", "a"},
		{"{.items[?(@.labels.team==\"x\")].id}", "a"},
		{"{.items[?(@.labels.team != 'x')].id}", "b"},
		{"{.items[?(@.gpu)].id}", "b"},
		{"{.items[?(@.missing)].id}", ""},
		{"{.items[0].labels['app.kubernetes.io/name']}", "p"},
		{"{.items[0].labels}", "{\"team\":\"x\",\"app.kubernetes.io/name\":\"p\"}"},
		{"{.items[1].gpu} {.items[0].n}", "true 1"},
		{"{.missing}", ""},
		{"{.}", "{\"items\":[{\"id\":\"a\",\"n\":1,\"labels\":{\"team\":\"x\",\"app.kubernetes.io/name\":\"p\"}},"
			"{\"id\":\"b\",\"n\":2,\"labels\":{\"team\":\"y\"},\"gpu\":true}]}"},
		{"{ .items[0].id }", "a"},
		{"{'}'}", "}"},
	};
	static const char *const invalid[] = {
		"{.items[", "{range .items[*]}{.id}", "{end}", "{.items[?(.n)]}", "{..id}", "{.items[?(@.n==)]}",
		"{\"open}", "x{", "{.a]", "{items}", "{.items[?(@.n>1)}",
	};
	json_t *doc = json_loads("{\"items\":[{\"id\":\"a\",\"n\":1,\"labels\":{\"team\":\"x\",\"app.kubernetes.io/name\":"
				 "\"p\"}},{\"id\":\"b\",\"n\":2,\"labels\":{\"team\":\"y\"},\"gpu\":true}]}",
				 JSON_PRESERVE_ORDER, NULL);
	char err[GW_ERRLEN];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gw_buf out;

		gw_buf_init(&out, 1u << 20);
		ck_assert_msg(cli_jsonpath(cases[i].template, doc, &out, err), "%s: %s", cases[i].template, err);
		ck_assert_msg(!strcmp(out.data ? out.data : "", cases[i].want), "%s: '%s', not '%s'", cases[i].template,
			      out.data ? out.data : "", cases[i].want);
		gw_buf_release(&out);
		gw_buf_init(&out, 1u << 20);
		ck_assert_msg(cli_jsonpath(cases[i].template, NULL, &out, err), "check only: %s", cases[i].template);
		ck_assert_int_eq(out.len, 0);
	}
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		struct gw_buf out;

		gw_buf_init(&out, 1u << 20);
		ck_assert_msg(!cli_jsonpath(invalid[i], doc, &out, err), "%s parsed", invalid[i]);
		ck_assert_msg(strstr(err, "jsonpath: ") && strstr(err, "offset"), "%s: %s", invalid[i], err);
		gw_buf_release(&out);
	}
	json_decref(doc);
}
END_TEST

Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *unit = tcase_create("jsonpath");
	TCase *cli = tcase_create("cli");

	tcase_add_test(unit, test_jsonpath_templates);
	suite_add_tcase(s, unit);

	tcase_add_unchecked_fixture(cli, start_fleet, stop_fleet);
	tcase_set_timeout(cli, 240);
	tcase_add_test(cli, test_cli_submit_wait_exit_codes);
	tcase_add_test(cli, test_cli_logs_follow_to_the_end);
	tcase_add_test(cli, test_cli_list_get_events_output);
	tcase_add_test(cli, test_cli_errors_and_settings);
	tcase_add_test(cli, test_cli_dry_run_and_operators);
	tcase_add_test(cli, test_cli_spark_submit_flags);
	tcase_add_test(cli, test_cli_output_formats);
	tcase_add_test(cli, test_cli_watch);
	tcase_add_test(cli, test_cli_logs_exit_codes);
	tcase_add_test(cli, test_cli_completion);
	tcase_add_test(cli, test_cli_manual_is_current);
	tcase_add_test(cli, test_cli_walkthrough_on_make_run);
	suite_add_tcase(s, cli);
	return s;
}
