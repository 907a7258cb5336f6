/* The sparkgw command line: a client of a gateway's REST API (submit, get,
 * list, logs, cancel, events, queue, clusters, cordon, drain, uncordon,
 * version, help, completion); docs/cli.md is its manual. */
#ifndef GW_CLI_CLIENT_H
#define GW_CLI_CLIENT_H

#include <stdbool.h>

/* Where the client's command is in argv — after nothing but the global
 * options (--server, --token), as in `sparkgw -s URL list` — or 0 when
 * argv is not a client command line. */
int cli_command_at(int argc, char **argv);
/* Runs the command argv[0]. Exit status: 0 done (with --wait: the job
 * succeeded), 1 the job did not succeed or the server refused, 2 usage,
 * 3 the server could not be reached. */
int cli_main(int argc, char **argv);

#endif
