/* Apache Livy's batch API (under compat.livy_prefix): POST /batches,
 * GET /batches, GET|DELETE /batches/{id}, GET /batches/{id}/state and
 * /log. A batch is an ordinary job; its Livy id is the job's seq, the
 * store's integer for it. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/labels.h"
#include "common/timeutil.h"
#include "gateway/compat/compat.h"
#include "gateway/api/api.h"

#define LIVY_DEFAULT_SIZE 100
#define LIVY_MAX_SIZE 1000
#define LIVY_MAX_LOG_LINES 100000

/* Livy's query integers; -1 when absent, -2 when not a number in range. */
static long query_long(struct request *rq, const char *name, long min, long max)
{
	const char *v = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, name);
	char *end;
	long n;

	if (!v)
		return -1;
	errno = 0;
	n = strtol(v, &end, 10);
	return !*v || *end || errno || n < min || n > max ? -2 : n;
}

static enum MHD_Result bad_query(struct request *rq, const char *name, long min, long max)
{
	char detail[128];

	snprintf(detail, sizeof(detail), "%s must be an integer from %ld to %ld", name, min, max);
	return http_reply_problem(&rq->http, 400, "bad-query", detail, NULL);
}

/* The job's timeline as log lines, the last `max` of them: what the gateway
 * did with the batch, as Livy's log shows what its launcher did. */
static json_t *event_lines(struct store *s, const char *job_id, size_t max)
{
	struct store_event *events = NULL;
	size_t n = 0;
	char err[GW_ERRLEN];
	json_t *lines = json_array();

	if (store_job_events(s, job_id, &events, &n, err) != GW_OK)
		return lines;
	for (size_t i = n > max ? n - max : 0; lines && i < n; i++) {
		char at[GW_TIME_LEN], line[1024];

		gw_time_format(events[i].time_ms, at);
		snprintf(line, sizeof(line), "%s %s %s%s%s", at, store_state_name(events[i].state), events[i].reason,
			 events[i].message ? ": " : "", events[i].message ? events[i].message : "");
		json_array_append_new(lines, json_string(line));
	}
	store_events_free(events, n);
	return lines;
}

/* Livy's Batch object. */
static json_t *batch_json(struct request *rq, const struct store_job *job)
{
	json_t *spec = json_loads(job->spec_json, 0, NULL);
	const char *proxy = json_string_value(json_object_get(spec, "proxyUser"));
	char log_url[96];
	json_t *batch;

	snprintf(log_url, sizeof(log_url), "/api/v1/jobs/%s/logs", job->id);
	batch = json_pack("{s:I, s:s, s:s, s:s?, s:s, s:s?, s:{s:s?, s:s?}, s:o}", "id", (json_int_t)job->seq,
			  "name", job->name, "owner", job->user, "proxyUser", proxy, "state",
			  compat_livy_state(job->state), "appId", job->driver_pod ? job->id : NULL, "appInfo",
			  "driverLogUrl", job->driver_pod ? log_url : NULL, "sparkUiUrl", job->spark_ui, "log",
			  event_lines(rq->store, job->id, 10));
	json_decref(spec);
	return batch;
}

static enum MHD_Result reply_batch(struct request *rq, unsigned status, const struct store_job *job)
{
	char location[160];
	json_t *batch = batch_json(rq, job);

	if (!batch)
		return gateway_reply_store_error(rq, GW_ENOMEM, "out of memory");
	snprintf(location, sizeof(location), "%s/batches/%lld", rq->cfg->livy_prefix, (long long)job->seq);
	return http_reply_json(&rq->http, status, batch, MHD_HTTP_HEADER_LOCATION, location, NULL);
}

static enum MHD_Result submitted(struct request *rq)
{
	enum MHD_Result reply;

	if (!gateway_submit_stored(rq, &reply))
		return reply;
	return reply_batch(rq, rq->op.unchanged ? 200 : 201, &rq->op.job);
}

enum MHD_Result api_livy_submit(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	struct compat_settings cs = {rq->cfg->compat_spark_version, rq->cfg->compat_queues};
	const char *key = MHD_lookup_connection_value(rq->http.conn, MHD_HEADER_KIND, "Idempotency-Key");
	char detail[GW_ERRLEN];
	json_t *body, *native = NULL, *errors = NULL;
	enum gateway_body_status st;

	(void)id;
	rq->http.rename_fields = compat_livy_fields;
	body = gateway_json_parse(rq->http.body.data ? rq->http.body.data : "", rq->http.body.len, detail);
	if (!body)
		return http_reply_problem(&rq->http, 400, "malformed-body", detail, NULL);
	st = compat_livy_submission(body, &cs, &native, &errors, detail);
	json_decref(body);
	return gateway_submit_translated(rq, st, native, errors, detail, key, submitted);
}

/* The batch with Livy id `id` into rq->op.job; false when it answered. */
static bool load_batch(struct request *rq, const char *id, enum MHD_Result *reply)
{
	char *end, err[GW_ERRLEN], detail[160];
	long long seq;
	enum gw_err rc;

	errno = 0;
	seq = strtoll(id, &end, 10);
	rc = !*id || *end || errno || seq < 0 ? GW_ENOTFOUND
					       : gateway_admit_job(rq, store_job_get_seq(rq->store, seq, &rq->op.job, err));
	if (rc == GW_ENOTFOUND) {
		snprintf(detail, sizeof(detail), "Session '%.64s' not found.", id);
		*reply = http_reply_problem(&rq->http, 404, "not-found", detail, NULL);
	} else if (rc) {
		*reply = gateway_reply_store_error(rq, rc, err);
	}
	return rc == GW_OK;
}

/* The caller's batches submitted in the last compat.livy_list_seconds,
 * oldest first, paged by position as Livy pages its sessions. */
enum MHD_Result api_livy_list(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	struct store_list_query q = {.state = -1, .oldest_first = true};
	long from = query_long(rq, "from", 0, 100000000), size = query_long(rq, "size", 1, LIVY_MAX_SIZE);
	struct gw_selector *visible = NULL;
	struct store_job *jobs = NULL;
	int64_t total = 0, next;
	size_t n = 0;
	char err[GW_ERRLEN];
	enum gw_err rc;
	json_t *sessions;
	bool any = true;

	(void)id;
	if (from == -2)
		return bad_query(rq, "from", 0, 100000000);
	if (size == -2)
		return bad_query(rq, "size", 1, LIVY_MAX_SIZE);
	q.offset = from < 0 ? 0 : (size_t)from;
	q.limit = size < 0 ? LIVY_DEFAULT_SIZE : (size_t)size;
	q.created_after_ms = gw_now_ms() - (int64_t)rq->cfg->livy_list_s * 1000;
	if ((rc = store_first_seq_since(rq->store, q.created_after_ms, &q.from_seq, err)))
		return gateway_reply_store_error(rq, rc, err);
	if (rq->services->auth && rq->who.role < AUTH_OPERATOR) {
		if (!gateway_visible_selector(rq, NULL, &visible, &any, err))
			return http_reply_problem(&rq->http, 400, "bad-query", err, NULL);
		q.selector = visible;
	}
	any = any && q.from_seq != INT64_MAX; /* INT64_MAX: nothing that recent */
	rc = any ? store_job_count(rq->store, &q, &total, err) : GW_OK;
	if (any && rc == GW_OK)
		rc = store_job_list(rq->store, &q, &jobs, &n, &next, err);
	gw_selector_free(visible);
	if (rc)
		return gateway_reply_store_error(rq, rc, err);
	sessions = json_array();
	for (size_t i = 0; sessions && i < n; i++)
		if (json_array_append_new(sessions, batch_json(rq, &jobs[i]))) {
			json_decref(sessions);
			sessions = NULL;
		}
	store_jobs_free(jobs, n);
	if (!sessions)
		return gateway_reply_store_error(rq, GW_ENOMEM, "out of memory");
	return http_reply_json(&rq->http, 200, json_pack("{s:I, s:I, s:o}", "from", (json_int_t)q.offset, "total",
						  (json_int_t)total, "sessions", sessions),
			       NULL);
}

enum MHD_Result api_livy_get(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	enum MHD_Result reply;

	if (!load_batch(rq, id, &reply))
		return reply;
	return reply_batch(rq, 200, &rq->op.job);
}

enum MHD_Result api_livy_state(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	enum MHD_Result reply;

	if (!load_batch(rq, id, &reply))
		return reply;
	return http_reply_json(&rq->http, 200, json_pack("{s:I, s:s}", "id", (json_int_t)rq->op.job.seq, "state",
						  compat_livy_state(rq->op.job.state)),
			       NULL);
}

/* The driver's log as lines when there is one to read, else the batch's
 * timeline. */
static json_t *log_lines(struct request *rq, const struct store_job *job)
{
	char *text = NULL, err[GW_ERRLEN], *line, *save = NULL;
	json_t *lines;

	if (!rq->dispatch || !job->driver_pod ||
	    dispatch_driver_log(rq->dispatch, job, -1, &text, err) != GW_OK) {
		free(text);
		return event_lines(rq->store, job->id, LIVY_MAX_LOG_LINES);
	}
	lines = json_array();
	for (line = strtok_r(text, "\n", &save); lines && line && json_array_size(lines) < LIVY_MAX_LOG_LINES;
	     line = strtok_r(NULL, "\n", &save))
		json_array_append_new(lines, json_string(line));
	free(text);
	return lines;
}

enum MHD_Result api_livy_log(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	long from = query_long(rq, "from", 0, LIVY_MAX_LOG_LINES), size = query_long(rq, "size", 0, LIVY_MAX_LOG_LINES);
	enum MHD_Result reply;
	json_t *lines, *page;
	size_t total, start, count;

	if (from == -2)
		return bad_query(rq, "from", 0, LIVY_MAX_LOG_LINES);
	if (size == -2)
		return bad_query(rq, "size", 0, LIVY_MAX_LOG_LINES);
	if (!load_batch(rq, id, &reply))
		return reply;
	if (!(lines = log_lines(rq, &rq->op.job)) || !(page = json_array())) {
		json_decref(lines);
		return gateway_reply_store_error(rq, GW_ENOMEM, "out of memory");
	}
	/* As Livy: 100 lines unless told, and the last ones unless from is. */
	total = json_array_size(lines);
	count = size < 0 ? LIVY_DEFAULT_SIZE : (size_t)size;
	start = from >= 0 ? (size_t)from : total > count ? total - count : 0;
	for (size_t i = start; i < total && i - start < count; i++)
		json_array_append(page, json_array_get(lines, i));
	json_decref(lines);
	return http_reply_json(&rq->http, 200, json_pack("{s:I, s:I, s:I, s:o}", "id", (json_int_t)rq->op.job.seq, "from",
						  (json_int_t)start, "total", (json_int_t)total, "log", page),
			       NULL);
}

/* Livy forgets a deleted batch; the gateway keeps the job (cancelled, or as
 * it ended) for its history and its team's usage. */
static enum MHD_Result deleted(struct request *rq)
{
	struct store_op *op = &rq->op;

	if (op->rc && op->rc != GW_ECONFLICT)
		return gateway_reply_store_error(rq, op->rc, op->err);
	return http_reply_json(&rq->http, 200, json_pack("{s:s}", "msg", "deleted"), NULL);
}

enum MHD_Result api_livy_delete(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	enum MHD_Result reply;

	if (!load_batch(rq, id, &reply))
		return reply;
	return gateway_cancel(rq, deleted);
}
