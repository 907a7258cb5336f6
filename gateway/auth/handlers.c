/* Who may call what: the check before every handler, the audit trail after
 * every call, and the /api/v1/tokens and /api/v1/audit handlers. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "common/timeutil.h"
#include "gateway/api/api.h"

bool gateway_sees_team(const struct request *rq, const char *team)
{
	return !rq->services->auth || auth_sees_team(&rq->who, team && *team ? team : NULL);
}

bool gateway_authorize(struct request *rq, enum auth_role min_role, enum MHD_Result *reply)
{
	struct auth *auth = rq->services->auth;
	char why[GW_ERRLEN], detail[GW_ERRLEN + 64], retry[16], from_cookie[256];
	const char *authorization, *cookie;
	unsigned wait_s = 1;

	if (!auth) { /* auth.mode none */
		rq->who.role = AUTH_ADMIN;
		snprintf(rq->who.owner, sizeof(rq->who.owner), "anonymous");
		return true;
	}
	authorization = MHD_lookup_connection_value(rq->http.conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	/* A browser following a Spark UI link sends no header: the dashboard
	 * leaves the token in a cookie, which counts for those pages alone
	 * (GET, so no cross-site request can change anything with it). */
	if (!authorization && rq->http.route && !strcmp(rq->http.route, UI_ROUTE) &&
	    (cookie = MHD_lookup_connection_value(rq->http.conn, MHD_COOKIE_KIND, UI_TOKEN_COOKIE))) {
		snprintf(from_cookie, sizeof(from_cookie), "Bearer %s", cookie);
		authorization = from_cookie;
	}
	if (auth_check(auth, authorization, &rq->who, why)) {
		rq->http.denied = true;
		*reply = http_reply_problem_header(&rq->http, 401, "unauthenticated", why,
						   MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"sparkgw\"");
		return false;
	}
	if (!auth_rate_take(auth, rq->who.token_id, &wait_s)) {
		snprintf(detail, sizeof(detail), "token %s is over its %u requests a second", rq->who.token_id,
			 rq->cfg->auth_rate);
		snprintf(retry, sizeof(retry), "%u", wait_s);
		rq->http.denied = true;
		*reply = http_reply_problem_retry(&rq->http, 429, "rate-limited", detail, retry);
		return false;
	}
	if (rq->who.role < min_role) {
		snprintf(detail, sizeof(detail), "role %s may not do this; it needs %s", auth_role_name(rq->who.role),
			 auth_role_name(min_role));
		rq->http.denied = true;
		*reply = http_reply_problem(&rq->http, 403, "forbidden", detail, NULL);
		return false;
	}
	return true;
}

static void remote_address(struct MHD_Connection *conn, char *out, size_t len)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	*out = '\0';
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out, (socklen_t)len);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
			  (socklen_t)len);
}

static void audit_done(struct store_op *op, void *arg)
{
	(void)arg;
	if (op->rc)
		gw_log(GW_LOG_WARN, "audit: %s", op->err);
	free(op);
}

/* Audit strings are copied into the op's own block. */
struct audit_op {
	struct store_op op;
	char token_id[32], team[64], action[300], target[128], outcome[16], remote[64];
};

void gateway_audit(struct request *rq)
{
	bool mutating = strcmp(rq->http.method, "GET") && strcmp(rq->http.method, "HEAD");
	struct audit_op *a;

	if (!rq->http.status || (!mutating && !rq->http.denied))
		return;
	a = calloc(1, sizeof(*a));
	if (!a)
		return;
	snprintf(a->token_id, sizeof(a->token_id), "%s", rq->who.token_id);
	snprintf(a->team, sizeof(a->team), "%s",
		 rq->audit_team[0] ? rq->audit_team : json_string_value(json_array_get(rq->who.teams, 0))
							   ? json_string_value(json_array_get(rq->who.teams, 0)) : "");
	snprintf(a->action, sizeof(a->action), "%s %s", rq->http.method, rq->http.path);
	snprintf(a->target, sizeof(a->target), "%s", rq->audit_target);
	snprintf(a->outcome, sizeof(a->outcome), "%s",
		 rq->http.denied ? "denied" : rq->http.status < 400 ? "ok" : "failed");
	remote_address(rq->http.conn, a->remote, sizeof(a->remote));
	a->op.kind = STORE_OP_AUDIT;
	a->op.audit = (struct store_audit){
		.time_ms = gw_now_ms(), .token_id = a->token_id[0] ? a->token_id : NULL,
		.team = a->team[0] ? a->team : NULL, .action = a->action,
		.target = a->target[0] ? a->target : NULL, .outcome = a->outcome, .status = (int)rq->http.status,
		.remote = a->remote[0] ? a->remote : NULL};
	a->op.done = audit_done;
	/* Not awaited: it commits with the next group of writes. */
	if (store_enqueue(rq->store, &a->op) != GW_OK)
		free(a);
}

/* POST /api/v1/tokens {owner, teams, role, expires}: the token, once. */
enum MHD_Result api_token_create(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	json_t *body, *teams;
	const char *owner, *role_name, *expires;
	char detail[GW_ERRLEN], token[AUTH_TOKEN_LEN], token_id[32], at[GW_TIME_LEN];
	int64_t expires_ms = 0, ttl;
	int role;
	enum gw_err rc;
	enum MHD_Result reply;

	(void)id;
	body = gateway_json_parse(rq->http.body.data ? rq->http.body.data : "", rq->http.body.len, detail);
	if (!body)
		return http_reply_problem(&rq->http, 400, "malformed-body", detail, NULL);
	owner = json_string_value(json_object_get(body, "owner"));
	role_name = json_string_value(json_object_get(body, "role"));
	expires = json_string_value(json_object_get(body, "expires"));
	teams = json_object_get(body, "teams");
	role = auth_role_parse(role_name);
	if (!owner || role < 0 || !json_is_array(teams) || (json_object_get(body, "expires") && !expires)) {
		json_decref(body);
		return http_reply_problem(&rq->http, 422, "validation-failed",
					  "a token needs owner (string), teams (list of team names), role (viewer,"
					  " submitter, operator or admin) and may have expires (\"30d\", \"12h\")", NULL);
	}
	if (expires) {
		if ((ttl = auth_duration_ms(expires)) < 0) {
			json_decref(body);
			return http_reply_problem(&rq->http, 422, "validation-failed",
						  "expires must be a duration such as 30d, 12h, 90m or 45s", NULL);
		}
		expires_ms = gw_now_ms() + ttl;
	}
	rc = auth_token_create(rq->store, owner, teams, (enum auth_role)role, expires_ms, token, token_id, detail);
	if (rc == GW_EINVAL) {
		json_decref(body);
		return http_reply_problem(&rq->http, 422, "validation-failed", detail, NULL);
	}
	if (rc) {
		json_decref(body);
		return gateway_reply_store_error(rq, rc, detail);
	}
	snprintf(rq->audit_target, sizeof(rq->audit_target), "token %s", token_id);
	if (expires_ms)
		gw_time_format(expires_ms, at);
	reply = http_reply_json(&rq->http, 201, json_pack("{s:s, s:s, s:s, s:O, s:s, s:s*}", "id", token_id,
		"token", token, "owner", owner, "teams", teams, "role", role_name, "expiresAt", expires_ms ? at : NULL),
		NULL);
	OPENSSL_cleanse(token, sizeof(token));
	json_decref(body);
	return reply;
}

enum MHD_Result api_token_list(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	json_t *items;
	char err[GW_ERRLEN];
	enum gw_err rc;

	(void)id;
	if ((rc = store_token_list(rq->store, &items, err))) {
		json_decref(items);
		return gateway_reply_store_error(rq, rc, err);
	}
	return http_reply_json(&rq->http, 200, json_pack("{s:o}", "items", items), NULL);
}

enum MHD_Result api_token_revoke(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	struct store_op op = {.kind = STORE_OP_TOKEN_REVOKE};
	enum gw_err rc;

	snprintf(op.token.id, sizeof(op.token.id), "%s", id);
	snprintf(rq->audit_target, sizeof(rq->audit_target), "token %s", op.token.id);
	rc = store_execute(rq->store, &op);
	if (rc == GW_ENOTFOUND)
		return http_reply_problem(&rq->http, 404, "not-found", op.err, NULL);
	if (rc)
		return gateway_reply_store_error(rq, rc, op.err);
	auth_forget(rq->services->auth, op.token.id);
	return http_reply_json(&rq->http, 200, json_pack("{s:s, s:b}", "id", op.token.id, "revoked", 1), NULL);
}

/* GET /api/v1/audit?token=&team=&action=&outcome=&since=&limit=&continue= */
enum MHD_Result api_audit(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	struct store_audit_query q = {.limit = 100};
	const char *since = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, "since");
	const char *limit = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, "limit");
	const char *cont = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, "continue");
	char err[GW_ERRLEN], next[24];
	int64_t next_seq;
	json_t *items, *out;
	enum gw_err rc;

	(void)id;
	q.token_id = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, "token");
	q.team = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, "team");
	q.action = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, "action");
	q.outcome = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, "outcome");
	if (since && gw_time_parse(since, &q.since_ms))
		return http_reply_problem(&rq->http, 400, "bad-query", "since must be an RFC 3339 time", NULL);
	if (limit) {
		char *end;
		long v;

		errno = 0;
		v = strtol(limit, &end, 10);
		if (!*limit || *end || errno || v < 1 || v > 1000)
			return http_reply_problem(&rq->http, 400, "bad-query", "limit must be an integer from 1 to 1000", NULL);
		q.limit = (size_t)v;
	}
	if (cont) {
		char *end;

		errno = 0;
		q.before_seq = strtoll(cont, &end, 10);
		if (!*cont || *end || errno || q.before_seq < 1)
			return http_reply_problem(&rq->http, 400, "bad-query", "continue is not a cursor of this list", NULL);
	}
	if ((rc = store_audit_list(rq->store, &q, &items, &next_seq, err))) {
		json_decref(items);
		return gateway_reply_store_error(rq, rc, err);
	}
	out = json_pack("{s:o}", "items", items);
	if (next_seq) {
		snprintf(next, sizeof(next), "%lld", (long long)next_seq);
		json_object_set_new(out, "continue", json_string(next));
	}
	return http_reply_json(&rq->http, 200, out, NULL);
}
