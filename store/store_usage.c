/* Pod usage: the intervals and requests of the pods of jobs, and their
 * sums over a time window, for cost attribution. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

enum gw_err store_apply_usage_op(struct store_conn *c, struct store_op *op)
{
	const struct store_pod_usage *u = &op->usage;
	sqlite3_stmt *st;

	if (op->kind == STORE_OP_POD_USAGE) {
		if (!(st = store_conn_stmt(c, STMT_POD_USAGE_UPSERT, op->err)))
			return GW_EIO;
		sqlite3_bind_text(st, 1, u->uid, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, u->cluster, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, u->job_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, u->role, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, u->held.cores_milli);
		sqlite3_bind_int64(st, 6, u->held.memory_mib);
		sqlite3_bind_int64(st, 7, u->held.gpus);
		sqlite3_bind_int64(st, 8, u->start_ms);
		sqlite3_bind_int64(st, 9, u->end_ms);
	} else {
		if (!(st = store_conn_stmt(c, STMT_POD_USAGE_CLOSE, op->err)))
			return GW_EIO;
		sqlite3_bind_text(st, 1, u->cluster, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, u->end_ms);
		sqlite3_bind_text(st, 3, op->document, -1, SQLITE_STATIC);
	}
	return store_step_done(c, st, op->err);
}

enum gw_err store_usage_sum(struct store *s, const struct store_usage_query *q, json_t **out, char *err)
{
	struct store_conn *c;
	/* Each pod counts for the part of its interval inside the window:
	 * requests times overlap, in milli-units times milliseconds. */
	sqlite3_stmt *st = store_read_begin(s,
		"SELECT coalesce(CASE WHEN ?4 IS NULL THEN p.team ELSE l.value END, ''), p.pool,"
		" total(p.cores_milli * p.ms) / 1e6, total(p.memory_mib * p.ms) / 1024e3,"
		" total(p.gpus * p.ms) / 1e3"
		" FROM (SELECT *, min(CASE WHEN end_ms = 0 THEN ?3 ELSE end_ms END, ?2)"
		"  - max(start_ms, ?1) AS ms FROM pod_usage"
		"  WHERE start_ms < ?2 AND (end_ms = 0 OR end_ms > ?1)) p"
		" LEFT JOIN job_labels l ON ?4 IS NOT NULL AND l.job_seq = p.job_seq AND l.key = ?4"
		" WHERE p.ms > 0 AND (?5 IS NULL OR p.team IN (SELECT value FROM json_each(?5)))"
		" GROUP BY 1, 2 ORDER BY 1, 2", &c, err);
	char *teams;
	enum gw_err rc;
	int src;

	*out = json_array();
	if (!st)
		return GW_EIO;
	teams = q->teams ? json_dumps(q->teams, JSON_COMPACT) : NULL;
	sqlite3_bind_int64(st, 1, q->from_ms);
	sqlite3_bind_int64(st, 2, q->to_ms);
	sqlite3_bind_int64(st, 3, q->now_ms);
	if (q->label)
		sqlite3_bind_text(st, 4, q->label, -1, SQLITE_STATIC);
	if (teams)
		sqlite3_bind_text(st, 5, teams, -1, SQLITE_STATIC);
	while ((src = sqlite3_step(st)) == SQLITE_ROW)
		json_array_append_new(*out, json_pack("{s:s, s:s, s:f, s:f, s:f}",
			"key", (const char *)sqlite3_column_text(st, 0),
			"pool", (const char *)sqlite3_column_text(st, 1),
			"coreSeconds", sqlite3_column_double(st, 2),
			"memoryGiBSeconds", sqlite3_column_double(st, 3),
			"gpuSeconds", sqlite3_column_double(st, 4)));
	rc = store_read_end(s, c, st, src, err);
	free(teams);
	return rc;
}
