/* What handlers share about a request beyond the HTTP layer's replies:
 * answers that know the store and the job view, and store writes that
 * suspend the connection until they have committed. */
#include "gateway/api/api.h"

#include <stdarg.h>
#include <stdint.h>

#include "common/log.h"
#include "gateway/api/jobview.h"

static void release_entry(void *entry)
{
	jobview_release(entry);
}

enum MHD_Result gateway_reply_job_entry(struct request *rq, unsigned status, struct jobview_entry *e, ...)
{
	/* Sent from the entry itself, which the response holds until sent. */
	struct MHD_Response *resp = MHD_create_response_from_buffer_with_free_callback_cls(
		e->len, (void *)(uintptr_t)e->text, release_entry, e);
	enum MHD_Result ret;
	va_list ap;

	if (!resp)
		jobview_release(e);
	va_start(ap, e);
	ret = http_queue_json(&rq->http, status, resp, ap);
	va_end(ap);
	return ret;
}

enum MHD_Result gateway_reply_store_error(struct request *rq, enum gw_err rc, const char *detail)
{
	switch (rc) {
	case GW_ENOTFOUND:
		return http_reply_problem(&rq->http, 404, "not-found", detail, NULL);
	case GW_ECONFLICT:
	case GW_ESTATE:
		return http_reply_problem(&rq->http, 409, "conflict", detail, NULL);
	case GW_EFULL:
	case GW_EIO:
	case GW_EBUSY:
	case GW_ECLOSED:
		gw_log_ids(GW_LOG_WARN, rq->http.request_id, NULL, "store unavailable: %s", detail);
		/* The write did not happen: the client may retry safely. */
		return http_reply_problem_retry(&rq->http, 503, "store-unavailable",
						rc == GW_EFULL
							? "the job store's disk is full: nothing was written; retry later"
							: "the job store cannot accept writes right now; nothing was written;"
							  " retry later",
						"1");
	default:
		gw_log_ids(GW_LOG_ERROR, rq->http.request_id, NULL, "internal error: %s: %s", gw_strerror(rc),
			   detail);
		return http_reply_problem(&rq->http, 500, "internal", "internal error", NULL);
	}
}

/* Writer thread: the op has committed (or failed); wake the connection. */
static void async_done(struct store_op *op, void *arg)
{
	struct request *rq = arg;

	(void)op;
	http_resume(&rq->http);
}

static enum MHD_Result resume_async(struct http_request *h)
{
	struct request *rq = api_request(h);

	return rq->resume(rq);
}

enum MHD_Result gateway_run_async(struct request *rq, enum MHD_Result (*resume)(struct request *rq))
{
	rq->resume = resume;
	rq->op.done = async_done;
	rq->op.arg = rq;
	/* Suspend first: the writer may finish before this function returns. */
	http_suspend(&rq->http, resume_async);
	if (store_enqueue(rq->store, &rq->op) != GW_OK) {
		rq->op.rc = GW_ECLOSED;
		gw_seterr(rq->op.err, "the gateway is shutting down");
		http_resume(&rq->http);
	}
	return MHD_YES;
}
