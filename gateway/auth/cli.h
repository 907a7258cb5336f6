/* Commands of the sparkgw binary besides serving. */
#ifndef GW_CLI_H
#define GW_CLI_H

/* sparkgw token create|list|revoke: tokens straight in the database, for
 * bootstrap (the first admin token) and recovery. argv[0] is "token". */
int gateway_token_main(int argc, char **argv);

#endif
