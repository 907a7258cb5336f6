/* sparkgw token create|list|revoke --data DIR */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "gateway/auth/auth.h"
#include "gateway/auth/cli.h"

#define EXIT_USAGE 2

static void usage(FILE *out)
{
	fprintf(out,
		"usage: sparkgw token create --data DIR --team T [--team T]... --role ROLE\n"
		"                            [--owner NAME] [--expires 30d]\n"
		"       sparkgw token list --data DIR\n"
		"       sparkgw token revoke ID --data DIR\n"
		"  With the PostgreSQL store, --dsn DSN (the gateway's store.dsn) instead\n"
		"  of --data DIR.\n"
		"  ROLE is viewer, submitter, operator or admin. create prints the token\n"
		"  alone on its last line; it is shown once and stored only as a hash.\n");
}

static int open_store(const char *data, const char *dsn, struct store **out)
{
	struct store_options o = {.synchronous_full = true, .batch_max = 16, .postgres_dsn = dsn};
	char path[4096], err[GW_ERRLEN];

	if (!data == !dsn) {
		fprintf(stderr, "sparkgw token: --data DIR or --dsn DSN is required\n");
		return -1;
	}
	snprintf(path, sizeof(path), "%s/sparkgw.db", data ? data : "");
	o.path = path;
	if (store_open(&o, out, err)) {
		fprintf(stderr, "sparkgw token: %s\n", err);
		return -1;
	}
	return 0;
}

static int create(struct store *s, const char *owner, json_t *teams, const char *role_name,
		  const char *expires)
{
	int role = auth_role_parse(role_name);
	int64_t expires_ms = 0, ttl;
	char token[AUTH_TOKEN_LEN], id[32], err[GW_ERRLEN];

	if (role < 0) {
		fprintf(stderr, "sparkgw token: --role must be viewer, submitter, operator or admin\n");
		return EXIT_USAGE;
	}
	if (expires) {
		if ((ttl = auth_duration_ms(expires)) < 0) {
			fprintf(stderr, "sparkgw token: --expires must be a duration such as 30d, 12h, 90m\n");
			return EXIT_USAGE;
		}
		expires_ms = gw_now_ms() + ttl;
	}
	if (auth_token_create(s, owner, teams, (enum auth_role)role, expires_ms, token, id, err)) {
		fprintf(stderr, "sparkgw token: %s\n", err);
		return 1;
	}
	printf("token %s for %s, role %s%s%s; keep it now, it is not shown again:\n%s\n", id, owner,
	       role_name, expires ? ", expires in " : "", expires ? expires : "", token);
	return 0;
}

static int list(struct store *s)
{
	json_t *items;
	char err[GW_ERRLEN];
	size_t i;
	json_t *t;

	if (store_token_list(s, &items, err)) {
		fprintf(stderr, "sparkgw token: %s\n", err);
		json_decref(items);
		return 1;
	}
	printf("%-14s %-16s %-10s %-24s %-24s %s\n", "ID", "OWNER", "ROLE", "TEAMS", "EXPIRES", "STATE");
	json_array_foreach(items, i, t) {
		char *teams = json_dumps(json_object_get(t, "teams"), JSON_COMPACT);
		int64_t expires = json_integer_value(json_object_get(t, "expiresMs"));
		char at[GW_TIME_LEN] = "never";

		if (expires)
			gw_time_format(expires, at);
		printf("%-14s %-16s %-10s %-24s %-24s %s\n", json_string_value(json_object_get(t, "id")),
		       json_string_value(json_object_get(t, "owner")), json_string_value(json_object_get(t, "role")),
		       teams ? teams : "", at,
		       json_integer_value(json_object_get(t, "revokedMs")) ? "revoked"
		       : expires && expires <= gw_now_ms()		    ? "expired"
									    : "active");
		free(teams);
	}
	json_decref(items);
	return 0;
}

static int revoke(struct store *s, const char *id)
{
	struct store_op op = {.kind = STORE_OP_TOKEN_REVOKE};

	snprintf(op.token.id, sizeof(op.token.id), "%s", id);
	if (store_execute(s, &op)) {
		fprintf(stderr, "sparkgw token: %s\n", op.err);
		return 1;
	}
	printf("token %s revoked\n", op.token.id);
	return 0;
}

int gateway_token_main(int argc, char **argv)
{
	static const struct option options[] = {
		{"data", required_argument, NULL, 'd'}, {"dsn", required_argument, NULL, 'D'},
		{"team", required_argument, NULL, 't'},
		{"role", required_argument, NULL, 'r'}, {"owner", required_argument, NULL, 'o'},
		{"expires", required_argument, NULL, 'e'}, {"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *cmd = argc > 1 ? argv[1] : "", *data = NULL, *dsn = NULL, *role = NULL, *owner = "cli", *expires = NULL;
	json_t *teams = json_array();
	struct store *s = NULL;
	int opt, rc = EXIT_USAGE;

	gw_log_set_level(GW_LOG_WARN);
	optind = 2;
	while ((opt = getopt_long(argc, argv, "d:D:t:r:o:e:h", options, NULL)) != -1) {
		switch (opt) {
		case 'd': data = optarg; break;
		case 'D': dsn = optarg; break;
		case 't': json_array_append_new(teams, json_string(optarg)); break;
		case 'r': role = optarg; break;
		case 'o': owner = optarg; break;
		case 'e': expires = optarg; break;
		case 'h': usage(stdout); json_decref(teams); return 0;
		default: usage(stderr); json_decref(teams); return EXIT_USAGE;
		}
	}
	if (!strcmp(cmd, "create") && optind == argc && role) {
		if (open_store(data, dsn, &s) == 0)
			rc = create(s, owner, teams, role, expires);
	} else if (!strcmp(cmd, "list") && optind == argc) {
		if (open_store(data, dsn, &s) == 0)
			rc = list(s);
	} else if (!strcmp(cmd, "revoke") && optind == argc - 1) {
		if (open_store(data, dsn, &s) == 0)
			rc = revoke(s, argv[optind]);
	} else {
		usage(stderr);
	}
	store_close(s);
	json_decref(teams);
	return rc;
}
