/* API tokens and the audit trail. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timeutil.h"
#include "store/store_int.h"

void store_token_release(struct store_token *t)
{
	free(t->owner);
	free(t->teams_json);
	free(t->role);
	memset(t, 0, sizeof(*t));
}

enum gw_err store_apply_auth_op(struct store_conn *c, struct store_op *op)
{
	const struct store_token *t = &op->token;
	const struct store_audit *a = &op->audit;
	struct db_stmt *st;
	enum gw_err rc;

	switch (op->kind) {
	case STORE_OP_TOKEN_CREATE:
		if (!(st = store_conn_stmt(c, STMT_TOKEN_INSERT, op->err)))
			return GW_EIO;
		db_bind_text(st, 1, t->id);
		db_bind_blob(st, 2, t->secret_sha256, 32);
		db_bind_text(st, 3, t->owner);
		db_bind_text(st, 4, t->teams_json);
		db_bind_text(st, 5, t->role);
		db_bind_int64(st, 6, t->created_ms);
		db_bind_int64(st, 7, t->expires_ms);
		rc = store_step_done(c, st, op->err);
		if (rc == GW_ECONFLICT)
			gw_seterr(op->err, "a token with id %s exists", t->id);
		return rc;
	case STORE_OP_TOKEN_REVOKE:
		if (!(st = store_conn_stmt(c, STMT_TOKEN_REVOKE, op->err)))
			return GW_EIO;
		db_bind_text(st, 1, t->id);
		db_bind_int64(st, 2, gw_now_ms());
		rc = store_step_done(c, st, op->err);
		if (rc == GW_OK && db_changes(c->db) == 0) {
			gw_seterr(op->err, "no token %s", t->id);
			rc = GW_ENOTFOUND;
		}
		return rc;
	default:
		if (!(st = store_conn_stmt(c, STMT_AUDIT_INSERT, op->err)))
			return GW_EIO;
		db_bind_int64(st, 1, a->time_ms ? a->time_ms : gw_now_ms());
		db_bind_text(st, 2, a->token_id);
		db_bind_text(st, 3, a->team);
		db_bind_text(st, 4, a->action ? a->action : "");
		db_bind_text(st, 5, a->target);
		db_bind_text(st, 6, a->outcome ? a->outcome : "");
		db_bind_int64(st, 7, a->status);
		db_bind_text(st, 8, a->remote);
		return store_step_done(c, st, op->err);
	}
}

static char *text_copy(struct db_stmt *st, int col)
{
	const char *t = db_col_text(st, col);

	return strdup(t ? t : "");
}

enum gw_err store_token_get(struct store *s, const char *id, struct store_token *out, char *err)
{
	struct store_conn *c;
	struct db_stmt *st = store_read_begin(s, "SELECT id, secret_sha256, owner, teams, role, created_ms,"
					       " expires_ms, revoked_ms FROM tokens WHERE id = ?1", &c, err);
	const void *secret;
	size_t len;
	enum gw_err rc;
	bool found;
	int src;

	memset(out, 0, sizeof(*out));
	if (!st)
		return GW_EIO;
	db_bind_text(st, 1, id);
	src = db_step(st);
	if ((found = src == DB_ROW && (secret = db_col_blob(st, 1, &len)) && len == 32)) {
		snprintf(out->id, sizeof(out->id), "%s", db_col_text(st, 0));
		memcpy(out->secret_sha256, secret, 32);
		out->owner = text_copy(st, 2);
		out->teams_json = text_copy(st, 3);
		out->role = text_copy(st, 4);
		out->created_ms = db_col_int64(st, 5);
		out->expires_ms = db_col_int64(st, 6);
		out->revoked_ms = db_col_int64(st, 7);
	}
	rc = store_read_end(s, c, st, src, err);
	if (rc == GW_OK && !found) {
		gw_seterr(err, "no token %s", id);
		rc = GW_ENOTFOUND;
	} else if (rc == GW_OK && (!out->owner || !out->teams_json || !out->role)) {
		rc = GW_ENOMEM;
	}
	if (rc)
		store_token_release(out);
	return rc;
}

enum gw_err store_token_list(struct store *s, json_t **out, char *err)
{
	struct store_conn *c;
	struct db_stmt *st = store_read_begin(s, "SELECT id, owner, teams, role, created_ms, expires_ms, revoked_ms"
					       " FROM tokens ORDER BY created_ms DESC, id", &c, err);
	int src;

	*out = json_array();
	if (!st)
		return GW_EIO;
	while ((src = db_step(st)) == DB_ROW) {
		json_t *teams = json_loads(db_col_text(st, 2), 0, NULL);

		json_array_append_new(*out, json_pack("{s:s, s:s, s:o, s:s, s:I, s:I, s:I}",
			"id", db_col_text(st, 0),
			"owner", db_col_text(st, 1),
			"teams", teams ? teams : json_array(),
			"role", db_col_text(st, 3),
			"createdMs", (json_int_t)db_col_int64(st, 4),
			"expiresMs", (json_int_t)db_col_int64(st, 5),
			"revokedMs", (json_int_t)db_col_int64(st, 6)));
	}
	return store_read_end(s, c, st, src, err);
}

enum gw_err store_audit_list(struct store *s, const struct store_audit_query *q, json_t **out,
			     int64_t *next_seq, char *err)
{
	struct store_conn *c;
	/* Each filter is off when its parameter is NULL (or 0). */
	struct db_stmt *st = store_read_begin(s,
		"SELECT seq, time_ms, token_id, team, action, target, outcome, status, remote"
		" FROM audit WHERE (CAST(?1 AS TEXT) IS NULL OR token_id = ?1)"
		" AND (CAST(?2 AS TEXT) IS NULL OR team = ?2)"
		" AND (CAST(?3 AS TEXT) IS NULL OR action = ?3) AND (CAST(?4 AS TEXT) IS NULL OR outcome = ?4)"
		" AND time_ms >= ?5 AND (?6 = 0 OR seq < ?6) ORDER BY seq DESC LIMIT ?7", &c, err);
	size_t n = 0;
	int src;

	*out = json_array();
	*next_seq = 0;
	if (!st)
		return GW_EIO;
	db_bind_text(st, 1, q->token_id);
	db_bind_text(st, 2, q->team);
	db_bind_text(st, 3, q->action);
	db_bind_text(st, 4, q->outcome);
	db_bind_int64(st, 5, q->since_ms);
	db_bind_int64(st, 6, q->before_seq);
	db_bind_int64(st, 7, (int64_t)q->limit + 1);
	while ((src = db_step(st)) == DB_ROW) {
		char at[GW_TIME_LEN];

		if (++n > q->limit) {
			*next_seq = db_col_int64(st, 0) + 1;
			continue;
		}
		gw_time_format(db_col_int64(st, 1), at);
		json_array_append_new(*out, json_pack("{s:I, s:s, s:s*, s:s*, s:s, s:s*, s:s, s:i, s:s*}",
			"seq", (json_int_t)db_col_int64(st, 0), "time", at,
			"tokenId", db_col_text(st, 2),
			"team", db_col_text(st, 3),
			"action", db_col_text(st, 4),
			"target", db_col_text(st, 5),
			"outcome", db_col_text(st, 6),
			"status", (int)db_col_int64(st, 7),
			"remote", db_col_text(st, 8)));
	}
	return store_read_end(s, c, st, src, err);
}
