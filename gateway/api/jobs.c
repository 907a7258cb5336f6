/* The /api/v1/jobs handlers: submit, read, list, cancel, events. */
#include <ctype.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "common/labels.h"
#include "common/redact.h"
#include "common/timeutil.h"
#include "gateway/api/api.h"
#include "gateway/api/jobview.h"
#include "pool/pool.h"
#include "router/router.h"

#define LIST_DEFAULT_LIMIT 50
#define LIST_MAX_LIMIT 1000
#define IDEMPOTENCY_KEY_MAX 255

/* The job as the API shows it, as an answer with header pairs. */
static enum MHD_Result reply_job(struct request *rq, unsigned status, const struct store_job *job,
				 const char *header, const char *value)
{
	size_t len;
	char *text = jobview_render(job, &len);

	if (!text)
		return http_reply_store_error(rq, GW_ENOMEM, "out of memory");
	return http_reply_json_text(rq, status, text, header, value, NULL);
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
	return http_reply_problem(rq, 404, "not-found", detail, NULL);
}

/* ---- submit ---- */

static bool content_type_is_json(const char *ct)
{
	size_t n = strlen("application/json");

	if (!ct || strncasecmp(ct, "application/json", n) != 0)
		return false;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

static bool idempotency_key_valid(const char *key)
{
	size_t n = strlen(key);

	if (n == 0 || n > IDEMPOTENCY_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (key[i] < 0x21 || key[i] > 0x7e)
			return false;
	return true;
}

bool gateway_submit_stored(struct request *rq, enum MHD_Result *reply)
{
	struct store_op *op = &rq->op;

	if (op->rc == GW_ECONFLICT)
		*reply = http_reply_problem(rq, 409, "idempotency-key-reused", op->err, NULL);
	else if (op->rc == GW_EBUSY)
		*reply = http_reply_problem_retry(rq, 429, "queue-full", op->err, "10");
	else if (op->rc)
		*reply = http_reply_store_error(rq, op->rc, op->err);
	if (op->rc)
		return false;
	snprintf(rq->audit_target, sizeof(rq->audit_target), "job %s", op->job.id);
	snprintf(rq->audit_team, sizeof(rq->audit_team), "%s", op->job.team ? op->job.team : "");
	return true;
}

static enum MHD_Result submit_committed(struct request *rq)
{
	enum MHD_Result reply;
	char location[64];

	if (!gateway_submit_stored(rq, &reply))
		return reply;
	snprintf(location, sizeof(location), "/api/v1/jobs/%s", rq->op.job.id);
	return reply_job(rq, rq->op.unchanged ? 200 : 201, &rq->op.job, MHD_HTTP_HEADER_LOCATION, location);
}

/* The submission's priority rank, or a 422 naming the priorities there are. */
static bool resolve_priority(struct request *rq, const struct router *r, const json_t *labels,
			     enum MHD_Result *reply)
{
	const char *value = json_string_value(json_object_get(labels, "priority"));
	int rank = router_priority_rank(r, value);
	char names[GW_ERRLEN] = "", msg[GW_ERRLEN + 32];

	if (rank >= 0) {
		rq->op.submit.priority = rank;
		return true;
	}
	for (size_t i = 0; i < r->npriorities; i++)
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s", i ? ", " : "",
			 r->priorities[i]);
	snprintf(msg, sizeof(msg), "must be one of %s", names);
	*reply = http_reply_problem(rq, 422, "validation-failed", "the submission has 1 invalid field",
				    json_pack("[{s:s, s:s}]", "field", "labels[priority]", "message", msg));
	return false;
}

/* What the scheduler needs of a placeable submission: its pool, demand,
 * time to live and the limits it is queued under. False, with a 422, for
 * a job bigger than its team or pool may ever run. */
static bool schedule_fields(struct request *rq, const struct router *r, const struct router_decision *dec,
			    const json_t *spec, enum MHD_Result *reply)
{
	struct store_submission *sub = &rq->op.submit;
	static const struct store_demand none;
	const json_t *ttl = json_object_get(spec, "timeToLiveSeconds");
	struct store_limits team, pool;
	char why[GW_ERRLEN], detail[GW_ERRLEN + 64];

	snprintf(rq->pool_name, sizeof(rq->pool_name), "%s", dec->pool->name);
	sub->pool = rq->pool_name;
	sub->demand = dispatch_demand(&dec->demand);
	sub->ttl_s = json_is_integer(ttl) ? (int)json_integer_value(ttl) : -1;
	dispatch_pool_limits(r, dec->pool->name, &sub->pool_limits);
	team = sub->team_limits;
	pool = sub->pool_limits;
	team.running = pool.running = 0; /* what it asks for, against an empty team and pool */
	if ((rq->sub.team && store_limits_exceeded(&team, "team", rq->sub.team, 0, &none, &sub->demand,
						   why, sizeof(why))) ||
	    store_limits_exceeded(&pool, "pool", dec->pool->name, 0, &none, &sub->demand, why, sizeof(why))) {
		snprintf(detail, sizeof(detail), "the job could never run: %s", why);
		*reply = http_reply_problem(rq, 422, "unplaceable", detail, NULL);
		return false;
	}
	return true;
}

/* Places the submission: without live state (is it placeable at all?) or,
 * for a dry run, as a dispatch would now, answering with the explanation.
 * False when it answered. */
static bool check_placement(struct request *rq, bool dry_run, enum MHD_Result *reply)
{
	struct router *r = router_holder_get(rq->services->policy);
	struct router_live live = pool_live(rq->services->pool);
	struct router_decision dec;
	json_t *labels = json_incref(rq->sub.labels);
	json_t *spec = json_incref(rq->sub.spec), *errors = NULL;
	char detail[GW_ERRLEN];
	enum router_result res = ROUTER_INVALID;
	bool go_on = false;

	rq->op.submit.ttl_s = -1;
	dispatch_team_limits(r, rq->sub.team, rq->cfg->scheduler_max_running_per_team,
			     rq->cfg->scheduler_max_queued_per_team, &rq->op.submit.team_limits, NULL);
	if (!resolve_priority(rq, r, labels, reply))
		goto done;
	if (r->nclusters == 0) { /* store-only: nothing to place on */
		if (dry_run)
			*reply = http_reply_json(rq, 200, json_pack("{s:b, s:s, s:s}", "dryRun", 1, "placeable",
								    "later", "reason", "no clusters are configured"), NULL);
		go_on = !dry_run;
		goto done;
	}
	/* A submission is checked against the clusters' nodes only: whether
	 * it could ever run, not whether there is room now. */
	if (!dry_run)
		live = (struct router_live){.capacity = live.capacity, .arg = live.arg};
	res = router_place(r, &live, NULL, labels, spec, "dry-run", &dec, &errors, detail);
	if (res == ROUTER_INVALID || res == ROUTER_TOO_BIG) {
		*reply = http_reply_problem(rq, 422, "unplaceable", detail, errors);
		errors = NULL;
	} else if (res == ROUTER_OK && !schedule_fields(rq, r, &dec, spec, reply)) {
		/* answered */
	} else if (!dry_run) {
		go_on = true;
	} else if (res == ROUTER_WAIT) {
		*reply = http_reply_json(rq, 200, json_pack("{s:b, s:s, s:s}", "dryRun", 1, "placeable",
							    "later", "reason", detail), NULL);
	} else {
		/* A stand-in job: what dispatch would build for this submission. */
		struct store_job job = {.name = rq->sub.name, .user = rq->sub.user, .run = 1,
					.labels_json = rq->sub.labels_json, .spec_json = rq->sub.spec_json};
		char err[GW_ERRLEN];
		json_t *manifests;

		json_t *placement;

		snprintf(job.id, sizeof(job.id), "j00000000000dryrun000");
		manifests = dispatch_manifests(&job, &dec, err);
		placement = dispatch_placement_json(&job, &dec);
		gw_redact_conf(json_object_get(placement, "conf"));
		gw_redact_document(manifests);
		*reply = http_reply_json(rq, 200, json_pack("{s:b, s:s, s:o, s:o}", "dryRun", 1,
							    "placeable", "now", "placement", placement,
							    "manifests", manifests ? manifests : json_array()),
					 NULL);
	}
	if (res == ROUTER_OK)
		router_decision_release(&dec);
done:
	json_decref(errors);
	json_decref(labels);
	json_decref(spec);
	router_unref(r);
	return go_on;
}

/* With tokens, the job's user is the token's owner and its team one of
 * the token's: the one named in the labels, or the token's only team. */
static bool apply_identity(struct request *rq, enum MHD_Result *reply)
{
	struct gateway_submission *sub = &rq->sub;
	json_t *labels;
	char detail[GW_ERRLEN];
	char *text;

	if (!rq->services->auth)
		return true;
	free(sub->user);
	sub->user = strdup(rq->who.owner);
	if (sub->team) {
		if (auth_sees_team(&rq->who, sub->team))
			return true;
		snprintf(detail, sizeof(detail), "token %s may not submit for team %s", rq->who.token_id, sub->team);
		rq->denied = true;
		*reply = http_reply_problem(rq, 403, "forbidden", detail, NULL);
		return false;
	}
	if (json_array_size(rq->who.teams) != 1) {
		if (rq->who.role >= AUTH_OPERATOR)
			return true;
		*reply = http_reply_problem(rq, 422, "validation-failed", "the submission has 1 invalid field",
					    json_pack("[{s:s, s:s}]", "field", "labels[team]", "message",
						      "is required: this token submits for several teams"));
		return false;
	}
	labels = sub->labels;
	json_object_set(labels, "team", json_array_get(rq->who.teams, 0));
	text = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
	free(sub->labels_json);
	sub->labels_json = text;
	sub->team = strdup(json_string_value(json_array_get(rq->who.teams, 0)));
	if (!sub->user || !sub->labels_json || !sub->team) {
		*reply = http_reply_store_error(rq, GW_ENOMEM, "out of memory");
		return false;
	}
	return true;
}

enum MHD_Result gateway_submit(struct request *rq, const char *body, size_t len, const char *idempotency_key,
			       bool dry_run, enum MHD_Result (*committed)(struct request *rq))
{
	enum MHD_Result reply;
	char detail[GW_ERRLEN];
	json_t *errors = NULL;
	struct store_submission *sub = &rq->op.submit;
	long queued;
	double commit_ms;

	if (idempotency_key && !idempotency_key_valid(idempotency_key)) {
		snprintf(detail, sizeof(detail), "Idempotency-Key must be 1 to %d visible ASCII characters",
			 IDEMPOTENCY_KEY_MAX);
		return http_reply_problem(rq, 400, "bad-idempotency-key", detail, NULL);
	}
	/* Shed early when the store or the dispatcher falls behind, rather
	 * than make every caller wait. */
	store_load(rq->store, &queued, &commit_ms);
	if (rq->cfg->scheduler_max_queue_depth && queued >= (long)rq->cfg->scheduler_max_queue_depth) {
		snprintf(detail, sizeof(detail), "%ld jobs are queued, the most the gateway takes; retry later",
			 queued);
		return http_reply_problem_retry(rq, 429, "overloaded", detail, "5");
	}
	if (rq->cfg->scheduler_max_commit_ms && commit_ms > rq->cfg->scheduler_max_commit_ms) {
		snprintf(detail, sizeof(detail), "the store commits in %.0f ms on average; retry later", commit_ms);
		return http_reply_problem_retry(rq, 429, "overloaded", detail, "5");
	}
	switch (gateway_submission_parse(body, len, &rq->sub, &errors, detail)) {
	case BODY_OK:
		break;
	case BODY_MALFORMED:
		return http_reply_problem(rq, 400, "malformed-body", detail, NULL);
	case BODY_INVALID:
		return http_reply_problem(rq, 422, "validation-failed", detail, errors);
	case BODY_NOMEM:
		return http_reply_store_error(rq, GW_ENOMEM, "out of memory");
	}
	if (!apply_identity(rq, &reply))
		return reply;
	/* Whatever the policy can never place is refused now, not later. */
	if (!check_placement(rq, dry_run, &reply))
		return reply;
	if (idempotency_key && !(rq->idempotency_key = strdup(idempotency_key)))
		return http_reply_store_error(rq, GW_ENOMEM, "out of memory");

	rq->op.kind = STORE_OP_SUBMIT;
	sub->name = rq->sub.name;
	sub->user = rq->sub.user;
	sub->labels_json = rq->sub.labels_json;
	sub->spec_json = rq->sub.spec_json;
	sub->spec_shown_json = rq->sub.spec_shown_json;
	sub->idempotency_key = rq->idempotency_key;
	sub->team = rq->sub.team;
	/* A retry is "the same request" when its body is byte-identical. */
	SHA256((const unsigned char *)body, len, sub->body_sha256);
	return http_run_async(rq, committed);
}

enum MHD_Result gateway_submit_translated(struct request *rq, enum gateway_body_status st, json_t *doc,
					  json_t *errors, const char *detail, const char *idempotency_key,
					  enum MHD_Result (*committed)(struct request *rq))
{
	char *text = st == BODY_OK ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	json_decref(doc);
	if (st == BODY_INVALID)
		return http_reply_problem(rq, 422, "validation-failed", detail, errors);
	/* The text must live until the answer: it becomes the request's body. */
	gw_buf_release(&rq->body);
	gw_buf_init(&rq->body, SIZE_MAX);
	if (!text || gw_buf_append(&rq->body, text, strlen(text))) {
		free(text);
		return http_reply_store_error(rq, GW_ENOMEM, "out of memory");
	}
	free(text);
	return gateway_submit(rq, rq->body.data, rq->body.len, idempotency_key, false, committed);
}

enum MHD_Result api_job_submit(struct request *rq, const char *id)
{
	const char *ct = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_TYPE);
	const char *key = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND,
						      "Idempotency-Key");
	const char *dry = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, "dryRun");
	char detail[GW_ERRLEN];

	(void)id;
	if (!content_type_is_json(ct)) {
		snprintf(detail, sizeof(detail),
			 "the body must be application/json, not %.100s", ct ? ct : "(none)");
		return http_reply_problem(rq, 415, "unsupported-media-type", detail, NULL);
	}
	return gateway_submit(rq, rq->body.data ? rq->body.data : "", rq->body.len, key,
			      dry && !strcmp(dry, "true"), submit_committed);
}

/* ---- read ---- */

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
		*reply = http_reply_store_error(rq, rc, err);
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
		rq->denied = true;
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
			*reply = http_reply_store_error(rq, GW_ENOMEM, "out of memory");
		return e;
	}
	if (!gateway_sees_team(rq, e->team)) {
		/* Another team's job: as if there were none. */
		jobview_release(e);
		rq->denied = true;
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

enum MHD_Result api_job_get(struct request *rq, const char *id)
{
	const char *match;
	char etag[48];
	enum MHD_Result reply;
	struct jobview_entry *e = job_view(rq, id, &reply);
	char why[GW_ERRLEN];
	bool waits;

	if (!e)
		return reply;
	/* A job that waits says why, as the queue does. */
	waits = !store_state_terminal(e->state) && rq->dispatch &&
		dispatch_wait_reason(rq->dispatch, e->id, why, sizeof(why));
	/* Every write to a job changes its rv: a poller that has it gets 304.
	 * The reason it waits changes without a write, so it is in the tag. */
	if (waits)
		snprintf(etag, sizeof(etag), "W/\"%lld-%08x\"", (long long)e->rv, text_hash(why));
	else
		snprintf(etag, sizeof(etag), "W/\"%lld\"", (long long)e->rv);
	match = MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (match && e->state != STORE_QUEUED && (!strcmp(match, etag) || !strcmp(match, etag + 2))) {
		jobview_release(e);
		return http_reply_not_modified(rq, etag);
	}
	if (waits) {
		json_t *reason = json_string(why);
		char *quoted = reason ? json_dumps(reason, JSON_ENCODE_ANY) : NULL;
		char *text = quoted ? malloc(e->len + strlen(quoted) + 16) : NULL;

		if (text)
			sprintf(text, "%.*s,\"waitReason\":%s}", (int)e->len - 1, e->text, quoted);
		json_decref(reason);
		free(quoted);
		jobview_release(e);
		if (!text)
			return http_reply_store_error(rq, GW_ENOMEM, "out of memory");
		return http_reply_json_text(rq, 200, text, MHD_HTTP_HEADER_ETAG, etag, NULL);
	}
	return http_reply_job_entry(rq, 200, e, MHD_HTTP_HEADER_ETAG, etag, NULL);
}

enum MHD_Result api_job_conf(struct request *rq, const char *id)
{
	enum MHD_Result reply;
	json_t *stored, *conf;

	if (!gateway_load_job(rq, id, &reply))
		return reply;
	stored = rq->op.job.placement_json ? json_loads(rq->op.job.placement_json, 0, NULL) : NULL;
	conf = json_incref(json_object_get(stored, "conf"));
	json_decref(stored);
	gw_redact_conf(conf);
	if (!conf)
		return http_reply_problem(rq, 404, "not-placed", "the job has not been placed yet", NULL);
	return http_reply_json(rq, 200, json_pack("{s:o}", "conf", conf), NULL);
}

enum MHD_Result api_job_events(struct request *rq, const char *id)
{
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
		return http_reply_store_error(rq, rc, err);
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
		return http_reply_store_error(rq, GW_ENOMEM, "out of memory");
	return http_reply_json(rq, 200, json_pack("{s:o}", "items", items), NULL);
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

enum MHD_Result api_job_list(struct request *rq, const char *id)
{
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
	MHD_get_connection_values(rq->conn, MHD_GET_ARGUMENT_KIND, collect_list_arg, &a);
	if (a.q.changes && a.q.before_seq)
		list_error(&a, "updatedSince", "pages by its own cursor: leave out continue");
	if (json_array_size(a.errors)) {
		gw_selector_free(a.selector);
		return http_reply_problem(rq, 400, "bad-query", "invalid query parameters",
					  a.errors);
	}
	json_decref(a.errors);
	if (rq->services->auth && rq->who.role < AUTH_OPERATOR) {
		bool any;

		gw_selector_free(a.selector);
		a.selector = NULL;
		if (!gateway_visible_selector(rq, a.selector_text, &a.selector, &any, err))
			return http_reply_problem(rq, 400, "bad-query", err, NULL);
		if (!any)
			return http_reply_json(rq, 200, json_pack("{s:[]}", "items"), NULL);
		a.q.selector = a.selector;
	}
	epoch = jobview_epoch(rq->services->jobs_view);
	rc = store_job_list(rq->store, &a.q, &jobs, &n, &next, err);
	gw_selector_free(a.selector);
	if (rc == GW_EINVAL)
		return http_reply_problem(rq, 400, "bad-query", err, NULL);
	if (rc)
		return http_reply_store_error(rq, rc, err);
	{
		/* The items' texts are the cached ones where current. */
		char tail[128] = "";
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
			oom = !e || (i && gw_buf_append(&out, ",", 1)) || gw_buf_append(&out, e->text, e->len);
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
			return http_reply_store_error(rq, GW_ENOMEM, "out of memory");
		}
		return http_reply_json_text(rq, 200, out.data, NULL);
	}
}

/* ---- cancel ---- */

static enum MHD_Result cancel_committed(struct request *rq)
{
	struct store_op *op = &rq->op;

	if (op->rc == GW_ENOTFOUND)
		return gateway_reply_no_job(rq, rq->job_id);
	if (op->rc)
		return http_reply_store_error(rq, op->rc, op->err);
	/* 202 while the cluster has yet to confirm; 200 once it is final. */
	return reply_job(rq, op->job.state == STORE_CANCELLED ? 200 : 202, &op->job, NULL, NULL);
}

enum MHD_Result api_job_cancel(struct request *rq, const char *id)
{
	enum MHD_Result reply;

	if (!gateway_load_job(rq, id, &reply))
		return reply;
	return gateway_cancel(rq, cancel_committed);
}

enum MHD_Result gateway_cancel(struct request *rq, enum MHD_Result (*committed)(struct request *rq))
{
	snprintf(rq->job_id, sizeof(rq->job_id), "%s", rq->op.job.id);
	store_job_release(&rq->op.job); /* the cancel reads it again, in its transaction */
	rq->op.kind = STORE_OP_CANCEL;
	rq->op.job_id = rq->job_id;
	rq->op.reason = "CancelledByUser";
	rq->op.message = "cancelled through the API";
	return http_run_async(rq, committed);
}

