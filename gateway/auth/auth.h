/* Authentication and authorization: API tokens ("sgw_<id>_<secret>", the
 * secret 256 bits from the OpenSSL RNG, stored only as its SHA-256 and
 * compared in constant time), roles, team scope, and a token bucket per
 * token. */
#ifndef GW_AUTH_H
#define GW_AUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "store/store.h"

/* Each role can do what the ones before it can. */
enum auth_role {
	AUTH_VIEWER,    /* read its teams' jobs */
	AUTH_SUBMITTER, /* + submit and cancel its teams' jobs */
	AUTH_OPERATOR,  /* + every team's jobs, the queue, cordon and drain */
	AUTH_ADMIN,     /* + tokens, clusters, policy reload, audit */
};

const char *auth_role_name(enum auth_role role);
/* -1 if name is not a role. */
int auth_role_parse(const char *name);

/* Who a request is. */
struct auth_principal {
	char token_id[32];
	char owner[128];
	enum auth_role role;
	json_t *teams; /* array of team names (owned) */
};

void auth_principal_release(struct auth_principal *p);
/* Operators and admins see every team; others their token's teams. */
bool auth_sees_team(const struct auth_principal *p, const char *team);

struct auth;

/* rate and burst: requests a second per token, and the bucket's size. */
struct auth *auth_new(struct store *store, double rate, double burst);
void auth_free(struct auth *a);

/* Checks an Authorization header value. GW_OK fills *out; otherwise why
 * says what is wrong (missing, malformed, unknown, expired, revoked) and
 * the answer is 401. */
enum gw_err auth_check(struct auth *a, const char *authorization, struct auth_principal *out,
		       char *why);
/* Takes one request from the token's bucket; false (with the seconds until
 * the next one in *retry_after_s) when it is empty. */
bool auth_rate_take(struct auth *a, const char *token_id, unsigned *retry_after_s);
/* Drops a cached token (revoked through the API): effective at once. */
void auth_forget(struct auth *a, const char *token_id);

#define AUTH_TOKEN_LEN 64

/* Makes a token and stores its hash: the token text (shown once) in
 * token (AUTH_TOKEN_LEN bytes), its id in id (32 bytes). teams: array of
 * team names (label values); expires_ms 0 for never. */
enum gw_err auth_token_create(struct store *s, const char *owner, const json_t *teams,
			      enum auth_role role, int64_t expires_ms, char *token, char *id, char *err);

/* A duration such as "30d", "12h", "90m", "45s" in milliseconds; -1 if
 * malformed. */
int64_t auth_duration_ms(const char *text);

#endif
