/* The dashboard: / and /ui/<file>, from the bytes embedded in the binary.
 * Open to all (the API calls it makes need the user's token); revalidated
 * by an ETag of the build, since a new binary may carry new files. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "gateway/api/assets.h"
#include "gateway/api/api.h"

static const char *content_type(const char *path)
{
	const char *dot = strrchr(path, '.');

	if (dot && !strcmp(dot, ".js"))
		return "text/javascript; charset=utf-8";
	if (dot && !strcmp(dot, ".css"))
		return "text/css; charset=utf-8";
	return "text/html; charset=utf-8";
}

enum MHD_Result api_ui(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	char path[160], etag[64];
	const char *match;
	struct MHD_Response *resp;

	snprintf(path, sizeof(path), "/ui/%s", id && *id ? id : "index.html");
	for (size_t i = 0; i < gateway_asset_count; i++) {
		if (strcmp(gateway_assets[i].path, path))
			continue;
		snprintf(etag, sizeof(etag), "\"%s-%zu\"", GW_GIT_COMMIT, gateway_assets[i].len);
		match = MHD_lookup_connection_value(rq->http.conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
		if (match && !strcmp(match, etag))
			return http_reply_not_modified(&rq->http, etag);
		resp = MHD_create_response_from_buffer(gateway_assets[i].len,
						       (void *)(uintptr_t)gateway_assets[i].data, MHD_RESPMEM_PERSISTENT);
		if (!resp)
			return MHD_NO;
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type(path));
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
		MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
		MHD_add_response_header(resp, "Content-Security-Policy",
					"default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:");
		return http_queue(&rq->http, 200, resp);
	}
	return http_reply_problem(&rq->http, 404, "not-found", "no such file", NULL);
}
