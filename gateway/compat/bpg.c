/* Batch Processing Gateway's API (/skatev2): submit, status, driver,
 * describe, log and delete. A submission is an ordinary job; its
 * submissionId is the job's id, which is also its Spark application id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/timeutil.h"
#include "common/yamljson.h"
#include "gateway/compat/compat.h"
#include "gateway/api/api.h"
#include "gateway/api/jobview.h"

/* BPG takes JSON or YAML, by Content-Type or, without one, by a look. */
static bool body_is_yaml(const char *ct, const char *body, size_t len)
{
	if (ct && (!strncasecmp(ct, "text/yaml", 9) || !strncasecmp(ct, "application/yaml", 16) ||
		   !strncasecmp(ct, "application/x-yaml", 18) || !strncasecmp(ct, "text/x-yaml", 11)))
		return true;
	if (ct && strncasecmp(ct, "*/*", 3) && strncasecmp(ct, "text/plain", 10))
		return false;
	while (len && (*body == ' ' || *body == '\t' || *body == '\r' || *body == '\n'))
		body++, len--;
	return len && *body != '{';
}

static enum MHD_Result submitted(struct request *rq)
{
	enum MHD_Result reply;

	if (!gateway_submit_stored(rq, &reply))
		return reply;
	return http_reply_json(&rq->http, 200, json_pack("{s:s}", "submissionId", rq->op.job.id), NULL);
}

enum MHD_Result api_bpg_submit(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	struct compat_settings cs = {rq->cfg->compat_spark_version, rq->cfg->compat_queues};
	const char *ct = MHD_lookup_connection_value(rq->http.conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	const char *key = MHD_lookup_connection_value(rq->http.conn, MHD_HEADER_KIND, "Idempotency-Key");
	const char *data = rq->http.body.data ? rq->http.body.data : "";
	char detail[GW_ERRLEN];
	json_t *body = NULL, *native = NULL, *errors = NULL;
	enum gateway_body_status st;

	(void)id;
	rq->http.rename_fields = compat_bpg_fields;
	if (body_is_yaml(ct, data, rq->http.body.len)) {
		if (gw_yaml_load_string(data, rq->http.body.len, &body, NULL, detail) != GW_OK)
			return http_reply_problem(&rq->http, 400, "malformed-body", detail, NULL);
		if (!json_is_object(body)) {
			json_decref(body);
			return http_reply_problem(&rq->http, 400, "malformed-body", "the submission must be a mapping", NULL);
		}
	} else if (!(body = gateway_json_parse(data, rq->http.body.len, detail))) {
		return http_reply_problem(&rq->http, 400, "malformed-body", detail, NULL);
	}
	st = compat_bpg_submission(body, &cs, &native, &errors, detail);
	json_decref(body);
	return gateway_submit_translated(rq, st, native, errors, detail, key, submitted);
}

/* When the job's driver started running: its first RUNNING event. */
static int64_t running_since(struct request *rq, const char *job_id)
{
	struct store_event *events = NULL;
	size_t n = 0;
	int64_t at = 0;
	char err[GW_ERRLEN];

	if (store_job_events(rq->store, job_id, &events, &n, err) != GW_OK)
		return 0;
	for (size_t i = 0; i < n && !at; i++)
		if (events[i].state == STORE_RUNNING)
			at = events[i].time_ms;
	store_events_free(events, n);
	return at;
}

enum MHD_Result api_bpg_status(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	enum MHD_Result reply;
	const struct store_job *job;
	bool ended;
	int64_t end_ms;
	json_t *status;

	if (!gateway_load_job(rq, id, &reply))
		return reply;
	job = &rq->op.job;
	ended = store_state_terminal(job->state);
	end_ms = ended ? job->updated_ms : gw_now_ms();
	status = json_pack("{s:I, s:i, s:I, s:s}", "creationTime", (json_int_t)job->created_ms, "executionAttempts",
			   job->run, "duration", (json_int_t)(end_ms - job->created_ms), "applicationState",
			   compat_bpg_state(job->state));
	if (!status)
		return gateway_reply_store_error(rq, GW_ENOMEM, "out of memory");
	if (job->driver_pod) /* spark.app.id is the job's id */
		json_object_set_new(status, "sparkApplicationId", json_string(job->id));
	if (ended)
		json_object_set_new(status, "terminationTime", json_integer(job->updated_ms));
	if (job->state == STORE_FAILED || job->state == STORE_REJECTED || job->state == STORE_CANCELLED) {
		char message[1024];

		/* FAILED stands for a cancel too: the message says which. */
		snprintf(message, sizeof(message), "%s%s%s%s", job->state == STORE_CANCELLED ? "cancelled: " : "",
			 job->reason ? job->reason : "", job->message ? ": " : "", job->message ? job->message : "");
		json_object_set_new(status, "applicationErrorMessage", json_string(message));
	}
	if (job->spark_ui && job->state == STORE_RUNNING)
		json_object_set_new(status, "sparkUIUrl", json_string(job->spark_ui));
	return http_reply_json(&rq->http, 200, status, NULL);
}

enum MHD_Result api_bpg_driver(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	enum MHD_Result reply;
	int64_t started;
	json_t *driver;

	if (!gateway_load_job(rq, id, &reply))
		return reply;
	/* As BPG: an empty object until the driver has started. */
	started = rq->op.job.driver_pod ? running_since(rq, rq->op.job.id) : 0;
	driver = started ? json_pack("{s:s, s:I}", "podName", rq->op.job.driver_pod, "startTime", (json_int_t)started)
			 : json_object();
	return http_reply_json(&rq->http, 200, driver, NULL);
}

/* The spec (secrets redacted) as YAML, then the job's timeline. */
enum MHD_Result api_bpg_describe(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	enum MHD_Result reply;
	const struct store_job *job;
	struct store_event *events = NULL;
	size_t n = 0;
	char err[GW_ERRLEN], *yaml = NULL, *redacted;
	struct gw_buf out;
	json_t *spec;
	bool oom;

	if (!gateway_load_job(rq, id, &reply))
		return reply;
	job = &rq->op.job;
	spec = json_loads(jobview_spec_shown(job, &redacted), 0, NULL);
	free(redacted);
	if (!spec || gw_yaml_dump(spec, &yaml, err) != GW_OK ||
	    store_job_events(rq->store, job->id, &events, &n, err) != GW_OK) {
		json_decref(spec);
		free(yaml);
		return gateway_reply_store_error(rq, GW_EIO, "cannot read the job");
	}
	json_decref(spec);
	gw_buf_init(&out, SIZE_MAX);
	oom = gw_buf_append(&out, "--- Spark Spec ---\n", 19) || gw_buf_append(&out, yaml, strlen(yaml)) ||
	      gw_buf_append(&out, "--- Spark Application Events ---\n", 33);
	free(yaml);
	for (size_t i = 0; !oom && i < n; i++) {
		char at[GW_TIME_LEN], line[1024];
		int len;

		gw_time_format(events[i].time_ms, at);
		len = snprintf(line, sizeof(line), "%s %s %s\n", at, events[i].reason,
			       events[i].message ? events[i].message : store_state_name(events[i].state));
		oom = gw_buf_append(&out, line, len < (int)sizeof(line) ? (size_t)len : sizeof(line) - 1);
	}
	store_events_free(events, n);
	if (oom) {
		gw_buf_release(&out);
		return gateway_reply_store_error(rq, GW_ENOMEM, "out of memory");
	}
	reply = http_reply_text(&rq->http, 200, out.data);
	gw_buf_release(&out);
	return reply;
}

/* GET /skatev2/log?subId=ID (or appId=ID, the same here): the driver's log. */
enum MHD_Result api_bpg_log(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	const char *sub = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, "subId");
	const char *app = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, "appId");
	const char *exec = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, "execId");
	char *text;
	enum MHD_Result reply;

	(void)id;
	if ((sub && *sub) == (app && *app))
		return http_reply_problem(&rq->http, 400, "bad-query", "give subId or appId, one of them", NULL);
	if (exec && *exec)
		return http_reply_problem(&rq->http, 400, "bad-query",
					  "executor logs are not served; execId is not supported", NULL);
	if (!gateway_load_job(rq, sub && *sub ? sub : app, &reply) || !gateway_driver_log(rq, -1, &text, &reply))
		return reply;
	reply = http_reply_text(&rq->http, 200, text);
	free(text);
	return reply;
}

static enum MHD_Result deleted(struct request *rq)
{
	struct store_op *op = &rq->op;

	/* A job that had ended already is as good as deleted. */
	if (op->rc && op->rc != GW_ECONFLICT)
		return gateway_reply_store_error(rq, op->rc, op->err);
	return http_reply_json(&rq->http, 200, json_object(), NULL);
}

enum MHD_Result api_bpg_delete(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	enum MHD_Result reply;

	if (!gateway_load_job(rq, id, &reply))
		return reply;
	return gateway_cancel(rq, deleted);
}
