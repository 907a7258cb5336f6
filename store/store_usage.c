/* Pod usage: the intervals and requests of the pods of jobs, and their
 * sums over a time window, for cost attribution. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_int.h"

enum gw_err store_apply_usage_op(struct store_conn *c, struct store_op *op)
{
	const struct store_pod_usage *u = &op->usage;
	struct db_stmt *st;

	if (op->kind == STORE_OP_POD_USAGE) {
		if (!(st = store_conn_stmt(c, STMT_POD_USAGE_UPSERT, op->err)))
			return GW_EIO;
		db_bind_text(st, 1, u->uid);
		db_bind_text(st, 2, u->cluster);
		db_bind_text(st, 3, u->job_id);
		db_bind_text(st, 4, u->role);
		db_bind_int64(st, 5, u->held.cores_milli);
		db_bind_int64(st, 6, u->held.memory_mib);
		db_bind_int64(st, 7, u->held.gpus);
		db_bind_int64(st, 8, u->start_ms);
		db_bind_int64(st, 9, u->end_ms);
	} else {
		if (!(st = store_conn_stmt(c, STMT_POD_USAGE_CLOSE, op->err)))
			return GW_EIO;
		db_bind_text(st, 1, u->cluster);
		db_bind_int64(st, 2, u->end_ms);
		db_bind_text(st, 3, op->document);
	}
	return store_step_done(c, st, op->err);
}

enum gw_err store_usage_sum(struct store *s, const struct store_usage_query *q, json_t **out, char *err)
{
	struct store_conn *c;
	/* Each pod counts for the part of its interval inside the window:
	 * requests times overlap, in milli-units times milliseconds. */
	static const char lite[] =
		"SELECT coalesce(CASE ?6 WHEN 1 THEN l.value WHEN 2 THEN j.\"user\" WHEN 3 THEN j.id ELSE p.team END, ''),"
		" p.pool,"
		" total(p.cores_milli * p.ms) / 1e6, total(p.memory_mib * p.ms) / 1024e3,"
		" total(p.gpus * p.ms) / 1e3"
		" FROM (SELECT *, min(CASE WHEN end_ms = 0 THEN ?3 ELSE end_ms END, ?2)"
		"  - max(start_ms, ?1) AS ms FROM pod_usage"
		"  WHERE start_ms < ?2 AND (end_ms = 0 OR end_ms > ?1)) p"
		" LEFT JOIN job_labels l ON ?4 IS NOT NULL AND l.job_seq = p.job_seq AND l.key = ?4"
		" LEFT JOIN jobs j ON ?6 >= 2 AND j.seq = p.job_seq"
		" WHERE p.ms > 0 AND (?5 IS NULL OR p.team IN (SELECT value FROM json_each(?5)))"
		" GROUP BY 1, 2 ORDER BY 1, 2";
	static const char pg[] =
		"SELECT coalesce(CASE ?6::int WHEN 1 THEN l.value WHEN 2 THEN j.\"user\" WHEN 3 THEN j.id ELSE p.team END,"
		" ''), p.pool,"
		" coalesce(sum(p.cores_milli * p.ms), 0) / 1e6, coalesce(sum(p.memory_mib * p.ms), 0) / 1024e3,"
		" coalesce(sum(p.gpus * p.ms), 0) / 1e3"
		" FROM (SELECT *, least(CASE WHEN end_ms = 0 THEN ?3 ELSE end_ms END, ?2)"
		"  - greatest(start_ms, ?1) AS ms FROM pod_usage"
		"  WHERE start_ms < ?2 AND (end_ms = 0 OR end_ms > ?1)) p"
		" LEFT JOIN job_labels l ON ?4::text IS NOT NULL AND l.job_seq = p.job_seq AND l.key = ?4::text"
		" LEFT JOIN jobs j ON ?6::int >= 2 AND j.seq = p.job_seq"
		" WHERE p.ms > 0 AND (?5::json IS NULL OR p.team IN (SELECT json_array_elements_text(?5::json)))"
		" GROUP BY 1, 2 ORDER BY 1, 2";
	struct db_stmt *st = store_read_begin(s, store_driver(s) == DB_POSTGRES ? pg : lite, &c, err);
	char *teams;
	enum gw_err rc;
	int src;

	*out = json_array();
	if (!st)
		return GW_EIO;
	teams = q->teams ? json_dumps(q->teams, JSON_COMPACT) : NULL;
	db_bind_int64(st, 1, q->from_ms);
	db_bind_int64(st, 2, q->to_ms);
	db_bind_int64(st, 3, q->now_ms);
	if (q->group == STORE_USAGE_BY_LABEL)
		db_bind_text(st, 4, q->label);
	if (teams)
		db_bind_text(st, 5, teams);
	db_bind_int64(st, 6, q->group);
	while ((src = db_step(st)) == DB_ROW)
		json_array_append_new(*out, json_pack("{s:s, s:s, s:f, s:f, s:f}",
			"key", db_col_text(st, 0),
			"pool", db_col_text(st, 1),
			"coreSeconds", db_col_double(st, 2),
			"memoryGiBSeconds", db_col_double(st, 3),
			"gpuSeconds", db_col_double(st, 4)));
	rc = store_read_end(s, c, st, src, err);
	free(teams);
	return rc;
}

enum gw_err store_job_pods(struct store *s, const char *job_id, int64_t now_ms, json_t **out, char *err)
{
	static const char sql[] =
		"SELECT p.role, p.cluster, p.pool, p.cores_milli, p.memory_mib, p.gpus, p.start_ms, p.end_ms"
		" FROM pod_usage p JOIN jobs j ON j.seq = p.job_seq WHERE j.id = ?1 ORDER BY p.start_ms, p.role";
	struct store_conn *c;
	struct db_stmt *st = store_read_begin(s, sql, &c, err);
	int src;

	*out = json_array();
	if (!st)
		return GW_EIO;
	db_bind_text(st, 1, job_id);
	while ((src = db_step(st)) == DB_ROW) {
		int64_t start = db_col_int64(st, 6), end = db_col_int64(st, 7);
		double held_s = (double)((end ? end : now_ms) - start) / 1e3;

		json_array_append_new(*out, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f}",
			"role", db_col_text(st, 0), "cluster", db_col_text(st, 1), "pool", db_col_text(st, 2),
			"coresMilli", (json_int_t)db_col_int64(st, 3), "memoryMiB", (json_int_t)db_col_int64(st, 4),
			"gpus", (json_int_t)db_col_int64(st, 5), "startMs", (json_int_t)start, "endMs", (json_int_t)end,
			"coreSeconds", (double)db_col_int64(st, 3) / 1e3 * held_s,
			"memoryGiBSeconds", (double)db_col_int64(st, 4) / 1024 * held_s,
			"gpuSeconds", (double)db_col_int64(st, 5) * held_s));
	}
	return store_read_end(s, c, st, src, err);
}
