/* Replies: the JSON, text and RFC 9457 problem responses every handler
 * sends, each stamped with the request's id. */
#include "gateway/http/http.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum MHD_Result http_queue(struct http_request *h, unsigned status, struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "X-Request-Id", h->request_id);
	h->status = status;
	ret = MHD_queue_response(h->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result http_queue_json(struct http_request *h, unsigned status, struct MHD_Response *resp, va_list ap)
{
	const char *name;

	if (!resp)
		return MHD_NO;
	while ((name = va_arg(ap, const char *)) != NULL) {
		const char *value = va_arg(ap, const char *);

		MHD_add_response_header(resp, name, value);
	}
	if (!MHD_get_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					"application/json");
	return http_queue(h, status, resp);
}

static struct MHD_Response *owned_text(char *text)
{
	struct MHD_Response *resp = text ? MHD_create_response_from_buffer(strlen(text), text,
									  MHD_RESPMEM_MUST_FREE) : NULL;

	if (!resp)
		free(text);
	return resp;
}

enum MHD_Result http_reply_json(struct http_request *h, unsigned status,
				json_t *body, ...)
{
	char *text = json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER);
	enum MHD_Result ret;
	va_list ap;

	json_decref(body);
	va_start(ap, body);
	ret = http_queue_json(h, status, owned_text(text), ap);
	va_end(ap);
	return ret;
}

enum MHD_Result http_reply_json_text(struct http_request *h, unsigned status, char *text, ...)
{
	enum MHD_Result ret;
	va_list ap;

	va_start(ap, text);
	ret = http_queue_json(h, status, owned_text(text), ap);
	va_end(ap);
	return ret;
}

enum MHD_Result http_reply_not_modified(struct http_request *h, const char *etag)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

	if (resp)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
	return http_queue(h, 304, resp);
}

enum MHD_Result http_reply_text(struct http_request *h, unsigned status, const char *text)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(
		strlen(text), (void *)(uintptr_t)text, MHD_RESPMEM_MUST_COPY);

	if (resp)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	return http_queue(h, status, resp);
}

static const char *problem_title(unsigned status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default: return "Internal Server Error";
	}
}

static enum MHD_Result reply_problem_with(struct http_request *h, unsigned status,
					  const char *slug, const char *detail,
					  json_t *errors, const char *hname,
					  const char *hvalue)
{
	char type[128];
	json_t *body;

	snprintf(type, sizeof(type), "urn:sparkgw:problem:%s", slug);
	body = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title",
			 problem_title(status), "status", (int)status, "detail",
			 detail ? detail : "");
	if (!body) {
		json_decref(errors);
		return MHD_NO;
	}
	if (errors && h->rename_fields)
		h->rename_fields(errors);
	if (errors)
		json_object_set_new(body, "errors", errors);
	if (h->problem_msg) /* where Livy's clients read the reason */
		json_object_set_new(body, "msg", json_string(detail ? detail : ""));
	return http_reply_json(h, status, body, MHD_HTTP_HEADER_CONTENT_TYPE,
			       "application/problem+json", hname, hvalue, NULL);
}

enum MHD_Result http_reply_problem_header(struct http_request *h, unsigned status, const char *slug,
					  const char *detail, const char *hname, const char *hvalue)
{
	return reply_problem_with(h, status, slug, detail, NULL, hname, hvalue);
}

enum MHD_Result http_reply_problem(struct http_request *h, unsigned status,
				   const char *slug, const char *detail,
				   json_t *errors)
{
	return reply_problem_with(h, status, slug, detail, errors, NULL, NULL);
}

enum MHD_Result http_reply_problem_retry(struct http_request *h, unsigned status, const char *slug,
					 const char *detail, const char *retry_after_s)
{
	return http_reply_problem_header(h, status, slug, detail, MHD_HTTP_HEADER_RETRY_AFTER, retry_after_s);
}

