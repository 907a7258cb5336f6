/* GET /api/v1/jobs/{id}/ui/...: the job's Spark UI in a browser. While
 * the driver runs, its UI comes through the cluster's API server service
 * proxy, with the access the job's logs have; the API server's rewritten
 * links and redirects are turned back to the gateway's path. A finished
 * job's UI is the Spark History Server's, when one is configured. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "gateway/api/api.h"
#include "k8sclient/k8s.h"

#define UI_PAGE_MAX (64u << 20)

struct query {
	struct gw_buf *out;
	bool started; /* its "?" is written */
	bool failed;
};

static bool append_escaped(struct gw_buf *b, const char *text)
{
	char *e = curl_easy_escape(NULL, text, 0);
	bool ok = e && gw_buf_append(b, e, strlen(e)) == GW_OK;

	curl_free(e);
	return ok;
}

static enum MHD_Result add_argument(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct query *q = cls;

	(void)kind;
	if (gw_buf_append(q->out, q->started ? "&" : "?", 1) != GW_OK ||
	    !append_escaped(q->out, key) ||
	    (value && (gw_buf_append(q->out, "=", 1) != GW_OK || !append_escaped(q->out, value))))
		q->failed = true;
	q->started = true;
	return MHD_YES;
}

/* text with every from replaced by to: a new buffer. */
static bool replace_all(const char *text, size_t len, const char *from, const char *to, struct gw_buf *out)
{
	size_t from_len = strlen(from), at = 0;

	while (at < len) {
		const char *hit = from_len ? memmem(text + at, len - at, from, from_len) : NULL;
		size_t upto = hit ? (size_t)(hit - text) : len;

		if (gw_buf_append(out, text + at, upto - at) != GW_OK ||
		    (hit && gw_buf_append(out, to, strlen(to)) != GW_OK))
			return false;
		at = hit ? upto + from_len : len;
	}
	return true;
}

/* The API server's proxy path, in links and redirects, becomes the
 * gateway's: first where it stands before the gateway's own path (which
 * the UI was told is its root), then alone. */
static bool unproxy(const char *text, size_t len, const char *prefix, const char *ui_root, struct gw_buf *out)
{
	char doubled[1400];
	struct gw_buf once;
	bool ok;

	snprintf(doubled, sizeof(doubled), "%s%s", prefix, ui_root);
	gw_buf_init(&once, UI_PAGE_MAX);
	ok = replace_all(text, len, doubled, ui_root, &once) &&
	     replace_all(once.data ? once.data : "", once.len, prefix, ui_root, out);
	gw_buf_release(&once);
	return ok;
}

static enum MHD_Result redirect(struct request *rq, const char *location)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
	return http_queue(&rq->http, 302, resp);
}

static enum MHD_Result finished_ui(struct request *rq, const char *rest)
{
	char *location = NULL;
	enum MHD_Result ret;

	if (!rq->cfg->spark_history_server)
		return http_reply_problem(&rq->http, 404, "ui-ended",
					  "the job's Spark UI ended with its driver, and no Spark History Server is "
					  "configured (spark.history_server)", NULL);
	if (!rq->op.job.spark_app_id)
		return http_reply_problem(&rq->http, 404, "ui-ended",
					  "the job ended before its driver reported a Spark application id, so the "
					  "Spark History Server has no application of it", NULL);
	if (asprintf(&location, "%s/history/%s/%s", rq->cfg->spark_history_server, rq->op.job.spark_app_id,
		     rest) < 0)
		return MHD_NO;
	ret = redirect(rq, location);
	free(location);
	return ret;
}

static enum MHD_Result relay(struct request *rq, struct k8s_response *r, const char *prefix, const char *ui_root)
{
	struct MHD_Response *resp;
	struct gw_buf body;

	gw_buf_init(&body, UI_PAGE_MAX);
	if (!strncmp(r->content_type, "text/html", 9) ? !unproxy(r->text, r->text_len, prefix, ui_root, &body)
						    : gw_buf_append(&body, r->text, r->text_len) != GW_OK) {
		gw_buf_release(&body);
		return http_reply_problem(&rq->http, 502, "ui-too-large", "the Spark UI's page is too large", NULL);
	}
	resp = MHD_create_response_from_buffer(body.len, body.data, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		gw_buf_release(&body);
		return MHD_NO;
	}
	if (*r->content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
	if (*r->location) {
		struct gw_buf where;

		gw_buf_init(&where, sizeof(r->location) * 2);
		if (unproxy(r->location, strlen(r->location), prefix, ui_root, &where) && where.data)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, where.data);
		gw_buf_release(&where);
	}
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	return http_queue(&rq->http, (unsigned)r->status, resp);
}

enum MHD_Result api_job_ui(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	char ui_root[STORE_ID_LEN + 32], prefix[600], err[GW_ERRLEN];
	const char *rest = rq->http.path + strlen("/api/v1/jobs/") + strlen(id) + strlen("/ui");
	struct k8s_response r;
	struct gw_buf path;
	struct query q = {.out = &path};
	enum MHD_Result ret;
	enum gw_err rc;

	snprintf(ui_root, sizeof(ui_root), "/api/v1/jobs/%s/ui", id);
	if (strlen(rq->http.path) >= sizeof(rq->http.path) - 1)
		return http_reply_problem(&rq->http, 414, "uri-too-long", "the Spark UI path is too long", NULL);
	if (!gateway_load_job(rq, id, &ret))
		return ret;
	/* The UI's own links are relative to its root, with a slash. */
	if (!*rest) {
		char location[sizeof(ui_root) + 1];

		snprintf(location, sizeof(location), "%s/", ui_root);
		return redirect(rq, location);
	}
	rest++;
	if (store_state_terminal(rq->op.job.state))
		return finished_ui(rq, rest);
	if (!rq->dispatch || !rq->op.job.driver_pod)
		return http_reply_problem(&rq->http, 409, "no-driver", "the job has no running driver yet", NULL);
	gw_buf_init(&path, 8192);
	if (gw_buf_append(&path, rest, strlen(rest)) != GW_OK)
		q.failed = true;
	MHD_get_connection_values(rq->http.conn, MHD_GET_ARGUMENT_KIND, add_argument, &q);
	if (q.failed) {
		gw_buf_release(&path);
		return http_reply_problem(&rq->http, 414, "uri-too-long", "the Spark UI path is too long", NULL);
	}
	rc = dispatch_driver_ui(rq->dispatch, &rq->op.job, path.data ? path.data : "", ui_root, &r, prefix,
				sizeof(prefix), err);
	gw_buf_release(&path);
	if (rc == GW_ENOTFOUND)
		return http_reply_problem(&rq->http, 409, "no-driver", err, NULL);
	if (rc)
		return http_reply_problem(&rq->http, 502, "cluster-unavailable", err, NULL);
	/* The API server's own refusals (no endpoints yet, forbidden) are its
	 * Status; the UI's answers are the UI's. */
	if (r.status >= 500 && !strcmp(json_string_value(json_object_get(r.body, "kind")) ?
					       json_string_value(json_object_get(r.body, "kind")) : "", "Status"))
		ret = http_reply_problem(&rq->http, 502, "ui-unavailable",
					 json_string_value(json_object_get(r.body, "message")) ?
						 json_string_value(json_object_get(r.body, "message")) :
						 "the cluster could not reach the Spark UI",
					 NULL);
	else
		ret = relay(rq, &r, prefix, ui_root);
	k8s_response_release(&r);
	return ret;
}
