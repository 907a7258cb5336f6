/* Lifecycle policies: restartPolicy OnFailure runs, cleanup of finished
 * jobs' cluster objects after their time to live, and pruning of finished
 * jobs past the retention. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/testutil.h"

static char *dir;

static void setup(void)
{
	dir = tu_tmpdir("life");
	ck_assert_ptr_nonnull(dir);
}

static void teardown(void)
{
	tu_rmtree(dir);
	free(dir);
}

Suite *lifecycle_suite(void)
{
	Suite *s = suite_create("lifecycle");
	TCase *tc = tcase_create("policies");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 90);
	suite_add_tcase(s, tc);
	return s;
}
