/* The /api/v1/jobs handlers but submit: read, list, cancel, events, conf;
 * and loading a job for the handlers that act on one. */
#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/redact.h"
#include "common/timeutil.h"
#include "gateway/api/api.h"
#include "gateway/api/jobview.h"

#define LIST_DEFAULT_LIMIT 50
#define LIST_MAX_LIMIT 1000

/* The job as the API shows it, as an answer with header pairs. */
enum MHD_Result gateway_reply_job(struct request *rq, unsigned status, const struct store_job *job,
				 const char *header, const char *value)
{
	size_t len;
	char *text = jobview_render(job, &len);

	if (!text)
		return gateway_reply_store_error(rq, GW_ENOMEM, "out of memory");
	return http_reply_json_text(&rq->http, status, text, header, value, NULL);
}

/* A job id as the store makes them; anything else cannot exist. */
bool gateway_job_id_valid(const char *id)
{
	size_t n = strlen(id);

	if (n != 21 || id[0] != 'j')
		return false;
	for (size_t i = 1; i < n; i++)
		if (!isdigit((unsigned char)id[i]) && !islower((unsigned char)id[i]))
			return false;
	return true;
}

enum MHD_Result gateway_reply_no_job(struct request *rq, const char *id)
{
	char detail[160];

	snprintf(detail, sizeof(detail), "job %.64s not found", id);
	return http_reply_problem(&rq->http, 404, "not-found", detail, NULL);
}

/* ---- submit ---- */

bool gateway_load_job(struct request *rq, const char *id, enum MHD_Result *reply)
{
	char err[GW_ERRLEN];
	enum gw_err rc;

	if (!gateway_job_id_valid(id)) {
		*reply = gateway_reply_no_job(rq, id);
		return false;
	}
	rc = gateway_admit_job(rq, store_job_get(rq->store, id, &rq->op.job, err));
	if (rc == GW_ENOTFOUND)
		*reply = gateway_reply_no_job(rq, id);
	else if (rc)
		*reply = gateway_reply_store_error(rq, rc, err);
	return rc == GW_OK;
}

enum gw_err gateway_admit_job(struct request *rq, enum gw_err rc)
{
	if (rc)
		return rc;
	if (!gateway_sees_team(rq, rq->op.job.team)) {
		/* Another team's job: as if there were none, so its existence
		 * does not leak. */
		store_job_release(&rq->op.job);
		rq->http.denied = true;
		return GW_ENOTFOUND;
	}
	snprintf(rq->audit_target, sizeof(rq->audit_target), "job %s", rq->op.job.id);
	snprintf(rq->audit_team, sizeof(rq->audit_team), "%s", rq->op.job.team ? rq->op.job.team : "");
	return GW_OK;
}

/* The job's rendered text: from the cache, else loaded and rendered (and
 * kept). NULL when it answered (not found, another team's, an error). */
static struct jobview_entry *job_view(struct request *rq, const char *id, enum MHD_Result *reply)
{
	struct jobview *view = rq->services->jobs_view;
	struct jobview_entry *e = gateway_job_id_valid(id) ? jobview_get(view, id) : NULL;

	if (!e) {
		uint64_t epoch = jobview_epoch(view);

		if (!gateway_load_job(rq, id, reply))
			return NULL;
		e = jobview_put(view, epoch, &rq->op.job);
		store_job_release(&rq->op.job);
		if (!e)
			*reply = gateway_reply_store_error(rq, GW_ENOMEM, "out of memory");
		return e;
	}
	if (!gateway_sees_team(rq, e->team)) {
		/* Another team's job: as if there were none. */
		jobview_release(e);
		rq->http.denied = true;
		*reply = gateway_reply_no_job(rq, id);
		return NULL;
	}
	snprintf(rq->audit_target, sizeof(rq->audit_target), "job %s", id);
	snprintf(rq->audit_team, sizeof(rq->audit_team), "%s", e->team);
	return e;
}

/* FNV-1a, 32 bits: tells one wait reason from another in an ETag. */
static uint32_t text_hash(const char *text)
{
	uint32_t h = 2166136261u;

	for (; *text; text++)
		h = (h ^ (unsigned char)*text) * 16777619u;
	return h;
}

/* Why a job not yet ended waits, when the dispatcher knows (as the queue says). */
static bool job_waits(struct request *rq, const struct jobview_entry *e, char *why, size_t len)
{
	return !store_state_terminal(e->state) && rq->dispatch && dispatch_wait_reason(rq->dispatch, e->id, why, len);
}

/* Appends e's cached text to out, with why (when it waits, else NULL) as
 * its last member; false when out is full or memory ran out. */
static bool append_job(struct gw_buf *out, const struct jobview_entry *e, const char *why)
{
	json_t *reason;
	char *quoted;
	bool ok;

	if (!why)
		return gw_buf_append(out, e->text, e->len) == GW_OK;
	reason = json_string(why);
	quoted = reason ? json_dumps(reason, JSON_ENCODE_ANY) : NULL;
	ok = quoted && gw_buf_append(out, e->text, e->len - 1) == GW_OK &&
	     gw_buf_append(out, ",\"waitReason\":", 14) == GW_OK && gw_buf_append(out, quoted, strlen(quoted)) == GW_OK &&
	     gw_buf_append(out, "}", 1) == GW_OK;
	json_decref(reason);
	free(quoted);
	return ok;
}

enum MHD_Result api_job_get(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	const char *match;
	char etag[48];
	enum MHD_Result reply;
	struct jobview_entry *e = job_view(rq, id, &reply);
	char why[GW_ERRLEN];
	bool waits;

	if (!e)
		return reply;
	/* A job that waits says why, as the queue does. */
	waits = job_waits(rq, e, why, sizeof(why));
	/* Every write to a job changes its rv: a poller that has it gets 304.
	 * The reason it waits changes without a write, so it is in the tag. */
	if (waits)
		snprintf(etag, sizeof(etag), "W/\"%lld-%08x\"", (long long)e->rv, text_hash(why));
	else
		snprintf(etag, sizeof(etag), "W/\"%lld\"", (long long)e->rv);
	match = MHD_lookup_connection_value(rq->http.conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (match && e->state != STORE_QUEUED && (!strcmp(match, etag) || !strcmp(match, etag + 2))) {
		jobview_release(e);
		return http_reply_not_modified(&rq->http, etag);
	}
	if (waits) {
		struct gw_buf text;
		bool ok;

		gw_buf_init(&text, SIZE_MAX);
		ok = append_job(&text, e, why);
		jobview_release(e);
		if (!ok) {
			gw_buf_release(&text);
			return gateway_reply_store_error(rq, GW_ENOMEM, "out of memory");
		}
		return http_reply_json_text(&rq->http, 200, text.data, MHD_HTTP_HEADER_ETAG, etag, NULL);
	}
	return gateway_reply_job_entry(rq, 200, e, MHD_HTTP_HEADER_ETAG, etag, NULL);
}

enum MHD_Result api_job_conf(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	enum MHD_Result reply;
	json_t *stored, *conf;

	if (!gateway_load_job(rq, id, &reply))
		return reply;
	stored = rq->op.job.placement_json ? json_loads(rq->op.job.placement_json, 0, NULL) : NULL;
	conf = json_incref(json_object_get(stored, "conf"));
	json_decref(stored);
	gw_redact_conf(conf);
	if (!conf)
		return http_reply_problem(&rq->http, 404, "not-placed", "the job has not been placed yet", NULL);
	return http_reply_json(&rq->http, 200, json_pack("{s:o}", "conf", conf), NULL);
}

enum MHD_Result api_job_events(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	enum MHD_Result reply;
	struct store_event *events;
	size_t n;
	char err[GW_ERRLEN];
	enum gw_err rc;
	json_t *items;

	if (!gateway_load_job(rq, id, &reply))
		return reply;
	rc = store_job_events(rq->store, id, &events, &n, err);
	if (rc == GW_ENOTFOUND)
		return gateway_reply_no_job(rq, id);
	if (rc)
		return gateway_reply_store_error(rq, rc, err);
	items = json_array();
	for (size_t i = 0; items && i < n; i++) {
		char at[GW_TIME_LEN];
		json_t *e;

		gw_time_format(events[i].time_ms, at);
		e = json_pack("{s:s, s:s, s:s*, s:s, s:s*}", "time", at, "state",
			      store_state_name(events[i].state), "previousState",
			      events[i].previous >= 0
				      ? store_state_name((enum store_state)events[i].previous)
				      : NULL,
			      "reason", events[i].reason, "message", events[i].message);
		if (!e || json_array_append_new(items, e)) {
			json_decref(items);
			items = NULL;
		}
	}
	store_events_free(events, n);
	if (!items)
		return gateway_reply_store_error(rq, GW_ENOMEM, "out of memory");
	return http_reply_json(&rq->http, 200, json_pack("{s:o}", "items", items), NULL);
}

/* ---- list ---- */

struct list_args {
	struct store_list_query q;
	struct gw_selector *selector;
	const char *selector_text;
	json_t *errors;
};

static void list_error(struct list_args *a, const char *param, const char *msg)
{
	json_array_append_new(a->errors, json_pack("{s:s, s:s}", "field", param,
						   "message", msg));
}

/* The continue token is opaque to clients: base64url of "v1:<seq>". */
static void encode_continue(int64_t seq, char *out, size_t outlen)
{
	char plain[32];
	unsigned char b64[64];
	int n;

	snprintf(plain, sizeof(plain), "v1:%lld", (long long)seq);
	n = EVP_EncodeBlock(b64, (const unsigned char *)plain, (int)strlen(plain));
	while (n > 0 && b64[n - 1] == '=')
		n--;
	for (int i = 0; i < n; i++)
		b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	snprintf(out, outlen, "%.*s", n, (const char *)b64);
}

static bool decode_continue(const char *token, int64_t *seq)
{
	unsigned char b64[64], plain[64];
	size_t n = strlen(token);
	long long v;
	char *end;
	int len;

	if (n == 0 || n > 40)
		return false;
	for (size_t i = 0; i < n; i++)
		b64[i] = token[i] == '-' ? '+' : token[i] == '_' ? '/' : (unsigned char)token[i];
	while (n % 4)
		b64[n++] = '=';
	b64[n] = '\0';
	len = EVP_DecodeBlock(plain, b64, (int)n);
	if (len < 4)
		return false;
	plain[len] = '\0';
	if (strncmp((const char *)plain, "v1:", 3) != 0)
		return false;
	errno = 0;
	v = strtoll((const char *)plain + 3, &end, 10);
	/* DecodeBlock turns the padding into NUL bytes, which end the number. */
	if (errno || v <= 0 || *end)
		return false;
	*seq = v;
	return true;
}

static enum MHD_Result collect_list_arg(void *cls, enum MHD_ValueKind kind,
					const char *key, const char *value)
{
	struct list_args *a = cls;
	char why[GW_ERRLEN];

	(void)kind;
	if (!value)
		value = "";
	if (strcmp(key, "state") == 0) {
		a->q.state = store_state_parse(value);
		if (a->q.state < 0)
			list_error(a, key, "must be a job state such as QUEUED or RUNNING");
	} else if (strcmp(key, "labelSelector") == 0) {
		gw_selector_free(a->selector);
		a->selector = NULL;
		if (gw_selector_parse(value, &a->selector, why) != GW_OK)
			list_error(a, key, why);
		a->q.selector = a->selector;
		a->selector_text = value;
	} else if (strcmp(key, "user") == 0) {
		a->q.user = value;
	} else if (strcmp(key, "createdAfter") == 0 || strcmp(key, "createdBefore") == 0) {
		int64_t ms;

		if (gw_time_parse(value, &ms) || ms <= 0)
			list_error(a, key, "must be an RFC 3339 time such as 2026-01-02T15:04:05Z");
		else if (key[7] == 'A')
			a->q.created_after_ms = ms;
		else
			a->q.created_before_ms = ms;
	} else if (strcmp(key, "limit") == 0) {
		char *end;
		long v;

		errno = 0;
		v = strtol(value, &end, 10);
		if (!*value || *end || errno || v < 1 || v > LIST_MAX_LIMIT) {
			snprintf(why, sizeof(why), "must be an integer from 1 to %d", LIST_MAX_LIMIT);
			list_error(a, key, why);
		} else {
			a->q.limit = (size_t)v;
		}
	} else if (strcmp(key, "continue") == 0) {
		if (!decode_continue(value, &a->q.before_seq))
			list_error(a, key, "is not a continue token from a previous page");
	} else if (strcmp(key, "updatedSince") == 0) {
		char *end;
		long long v;

		errno = 0;
		v = strtoll(value, &end, 10);
		if (!*value || *end || errno || v < 0)
			list_error(a, key, "must be a cursor from a previous answer (an integer, 0 for everything)");
		a->q.changes = true;
		a->q.after_rv = v;
	} else {
		list_error(a, key, "unknown query parameter");
	}
	return MHD_YES;
}

bool gateway_visible_selector(struct request *rq, const char *text, struct gw_selector **out, bool *any,
			      char *err)
{
	/* Only the token's teams: one more requirement on the selector (team
	 * names are label values, so the text parses). */
	char all[2048];
	size_t i;
	json_t *t;

	*out = NULL;
	*any = json_array_size(rq->who.teams) > 0;
	if (!*any)
		return true;
	snprintf(all, sizeof(all), "%s%steam in (", text ? text : "", text && *text ? "," : "");
	json_array_foreach(rq->who.teams, i, t)
		snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s%s", i ? "," : "", json_string_value(t));
	snprintf(all + strlen(all), sizeof(all) - strlen(all), ")");
	return gw_selector_parse(all, out, err) == GW_OK;
}

enum MHD_Result api_job_list(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	struct list_args a = {.q = {.state = -1, .limit = LIST_DEFAULT_LIMIT}};
	struct store_job *jobs = NULL;
	size_t n = 0;
	int64_t next = 0;
	char err[GW_ERRLEN];
	enum gw_err rc;
	uint64_t epoch;

	(void)id;
	a.errors = json_array();
	if (!a.errors)
		return MHD_NO;
	MHD_get_connection_values(rq->http.conn, MHD_GET_ARGUMENT_KIND, collect_list_arg, &a);
	if (a.q.changes && a.q.before_seq)
		list_error(&a, "updatedSince", "pages by its own cursor: leave out continue");
	if (json_array_size(a.errors)) {
		gw_selector_free(a.selector);
		return http_reply_problem(&rq->http, 400, "bad-query", "invalid query parameters",
					  a.errors);
	}
	json_decref(a.errors);
	if (rq->services->auth && rq->who.role < AUTH_OPERATOR) {
		bool any;

		gw_selector_free(a.selector);
		a.selector = NULL;
		if (!gateway_visible_selector(rq, a.selector_text, &a.selector, &any, err))
			return http_reply_problem(&rq->http, 400, "bad-query", err, NULL);
		if (!any)
			return http_reply_json(&rq->http, 200, json_pack("{s:[]}", "items"), NULL);
		a.q.selector = a.selector;
	}
	epoch = jobview_epoch(rq->services->jobs_view);
	rc = store_job_list(rq->store, &a.q, &jobs, &n, &next, err);
	gw_selector_free(a.selector);
	if (rc == GW_EINVAL)
		return http_reply_problem(&rq->http, 400, "bad-query", err, NULL);
	if (rc)
		return gateway_reply_store_error(rq, rc, err);
	{
		/* The items' texts are the cached ones where current. */
		char tail[128] = "", why[GW_ERRLEN];
		struct gw_buf out;
		bool oom;

		gw_buf_init(&out, SIZE_MAX);
		oom = gw_buf_append(&out, "{\"items\":[", 10) != GW_OK;

		for (size_t i = 0; !oom && i < n; i++) {
			struct jobview_entry *e = jobview_get(rq->services->jobs_view, jobs[i].id);

			if (e && (e->rv != jobs[i].rv || e->seq != jobs[i].seq)) {
				jobview_release(e);
				e = NULL;
			}
			if (!e)
				e = jobview_put(rq->services->jobs_view, epoch, &jobs[i]);
			oom = !e || (i && gw_buf_append(&out, ",", 1)) ||
			      !append_job(&out, e, job_waits(rq, e, why, sizeof(why)) ? why : NULL);
			jobview_release(e);
		}
		if (a.q.changes) /* the next poll's cursor: the last change read, else the same */
			snprintf(tail, sizeof(tail), ",\"cursor\":\"%lld\"",
				 (long long)(n ? jobs[n - 1].rv : a.q.after_rv));
		else if (next) {
			char token[64];

			encode_continue(next, token, sizeof(token));
			snprintf(tail, sizeof(tail), ",\"continue\":\"%s\"", token);
		}
		store_jobs_free(jobs, n);
		oom = oom || gw_buf_append(&out, "]", 1) || gw_buf_append(&out, tail, strlen(tail)) ||
		      gw_buf_append(&out, "}", 1);
		if (oom) {
			gw_buf_release(&out);
			return gateway_reply_store_error(rq, GW_ENOMEM, "out of memory");
		}
		return http_reply_json_text(&rq->http, 200, out.data, NULL);
	}
}

/* ---- cancel ---- */

static enum MHD_Result cancel_committed(struct request *rq)
{
	struct store_op *op = &rq->op;

	if (op->rc == GW_ENOTFOUND)
		return gateway_reply_no_job(rq, rq->job_id);
	if (op->rc)
		return gateway_reply_store_error(rq, op->rc, op->err);
	/* 202 while the cluster has yet to confirm; 200 once it is final. */
	return gateway_reply_job(rq, op->job.state == STORE_CANCELLED ? 200 : 202, &op->job, NULL, NULL);
}

enum MHD_Result api_job_cancel(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	enum MHD_Result reply;

	if (!gateway_load_job(rq, id, &reply))
		return reply;
	return gateway_cancel(rq, cancel_committed);
}

/* A queued job ends here, not in a control loop: count it as they do. */
static enum MHD_Result cancel_done(struct request *rq)
{
	if (!rq->op.rc && !rq->op.unchanged && rq->op.job.state == STORE_CANCELLED)
		dispatch_count_finished(rq->dispatch, STORE_CANCELLED, rq->op.reason);
	return rq->cancelled(rq);
}

enum MHD_Result gateway_cancel(struct request *rq, enum MHD_Result (*committed)(struct request *rq))
{
	snprintf(rq->job_id, sizeof(rq->job_id), "%s", rq->op.job.id);
	store_job_release(&rq->op.job); /* the cancel reads it again, in its transaction */
	rq->op.kind = STORE_OP_CANCEL;
	rq->op.job_id = rq->job_id;
	rq->op.reason = "CancelledByUser";
	rq->op.message = "cancelled through the API";
	rq->cancelled = committed;
	return gateway_run_async(rq, cancel_done);
}

