/* The sparkgw command line: a client of a gateway's REST API (submit, get,
 * list, logs, cancel, events, queue, clusters, cordon, drain, uncordon). */
#ifndef GW_CLI_CLIENT_H
#define GW_CLI_CLIENT_H

#include <stdbool.h>

/* Whether name is one of the client's commands. */
bool cli_is_command(const char *name);
/* Runs the command argv[0]. Exit status: 0 done (with --wait: the job
 * succeeded), 1 the job did not succeed or the server refused, 2 usage,
 * 3 the server could not be reached. */
int cli_main(int argc, char **argv);

#endif
