/* Runs every suite in one Check runner and ends with the suite-wide line
 * "N passed, N failed". With SPARKGW_TEST_STORE=postgres (make
 * test-postgres), every gateway the suites start stores in PostgreSQL: a
 * server of the run's own, a database per gateway data directory. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "tests/testutil.h"

int main(void)
{
	const char *store = getenv("SPARKGW_TEST_STORE");
	bool on_postgres = store && !strcmp(store, "postgres");
	SRunner *sr;
	int run, failed;

	gw_log_set_level(GW_LOG_WARN); /* the store's own start-up notes */
	/* A server that closes a connection mid-write must fail a test, not
	 * kill the runner without a word. */
	signal(SIGPIPE, SIG_IGN);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (on_postgres) {
		tu_pg_suite_setup();
		if (!getenv(TU_PG_ENV))
			return EXIT_FAILURE;
	}
	sr = srunner_create(common_suite());
	srunner_add_suite(sr, submission_suite());
	srunner_add_suite(sr, router_suite());
	srunner_add_suite(sr, store_suite());
	srunner_add_suite(sr, k8s_suite());
	srunner_add_suite(sr, kubesim_suite());
	srunner_add_suite(sr, api_suite());
	srunner_add_suite(sr, api_pg_suite());
	srunner_add_suite(sr, process_suite());
	srunner_add_suite(sr, dispatch_suite());
	srunner_add_suite(sr, routing_suite());
	srunner_add_suite(sr, shared_suite());
	srunner_add_suite(sr, scheduler_suite());
	srunner_add_suite(sr, fairshare_suite());
	srunner_add_suite(sr, lifecycle_suite());
	srunner_add_suite(sr, auth_suite());
	srunner_add_suite(sr, observe_suite());
	srunner_add_suite(sr, faults_suite());
	srunner_add_suite(sr, compat_suite());
	srunner_add_suite(sr, cli_suite());
	srunner_add_suite(sr, deploy_suite());
	srunner_add_suite(sr, replicas_suite());
	srunner_run_all(sr, CK_NORMAL);
	run = srunner_ntests_run(sr);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (on_postgres)
		tu_pg_suite_teardown();
	tu_schema_unload();
	curl_global_cleanup();
	printf("%d passed, %d failed\n", run - failed, failed);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
