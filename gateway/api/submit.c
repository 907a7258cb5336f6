/* POST /api/v1/jobs and the submission path the facades share: load
 * shedding, validation, the caller's identity, placement (or a dry run's
 * answer), then the durable write, answered after its commit. */
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/redact.h"
#include "gateway/api/api.h"
#include "pool/pool.h"
#include "router/router.h"

#define IDEMPOTENCY_KEY_MAX 255

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
		*reply = http_reply_problem(&rq->http, 409, "idempotency-key-reused", op->err, NULL);
	else if (op->rc == GW_EBUSY)
		*reply = http_reply_problem_retry(&rq->http, 429, "queue-full", op->err, "10");
	else if (op->rc)
		*reply = gateway_reply_store_error(rq, op->rc, op->err);
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
	return gateway_reply_job(rq, rq->op.unchanged ? 200 : 201, &rq->op.job, MHD_HTTP_HEADER_LOCATION, location);
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
	*reply = http_reply_problem(&rq->http, 422, "validation-failed", "the submission has 1 invalid field",
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
		*reply = http_reply_problem(&rq->http, 422, "unplaceable", detail, NULL);
		return false;
	}
	return true;
}

/* For a dry run of a SQL job: what its statements do and where they run.
 * NULL for other types. */
static json_t *sql_execution(const json_t *spec, const struct router_decision *d)
{
	const char *sql = json_string_value(json_object_get(spec, "sql"));
	enum router_sql_kind kind;
	char reason[256];

	if (!router_is_sql(spec))
		return NULL;
	if (!sql)
		return json_pack("{s:s, s:s, s:s, s:s}", "statements", "unread", "reason",
				 "the statements are in mainApplicationFile, which the gateway does not read",
				 "execution", "dedicated", "executionReason", d->execution);
	kind = router_sql_classify(sql, strlen(sql), reason, sizeof(reason));
	return json_pack("{s:s, s:s, s:s, s:s}", "statements", kind == ROUTER_SQL_DDL ? "DDL" : "DML", "reason", reason,
			 "execution", d->shared ? "shared" : "dedicated", "executionReason", d->execution);
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
			*reply = http_reply_json(&rq->http, 200, json_pack("{s:b, s:s, s:s}", "dryRun", 1, "placeable",
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
		*reply = http_reply_problem(&rq->http, 422, "unplaceable", detail, errors);
		errors = NULL;
	} else if (res == ROUTER_OK && !schedule_fields(rq, r, &dec, spec, reply)) {
		/* answered */
	} else if (!dry_run) {
		go_on = true;
	} else if (res == ROUTER_WAIT) {
		*reply = http_reply_json(&rq->http, 200, json_pack("{s:b, s:s, s:s}", "dryRun", 1, "placeable",
							    "later", "reason", detail), NULL);
	} else {
		/* A stand-in job: what dispatch would build for this submission. */
		struct store_job job = {.name = rq->sub.name, .user = rq->sub.user, .run = 1,
					.labels_json = rq->sub.labels_json, .spec_json = rq->sub.spec_json};
		char err[GW_ERRLEN];
		json_t *manifests;

		json_t *placement, *sql;

		snprintf(job.id, sizeof(job.id), "j00000000000dryrun000");
		manifests = dispatch_manifests(&job, &dec, err);
		placement = dispatch_placement_json(&job, &dec, NULL);
		if ((sql = sql_execution(spec, &dec)))
			json_object_set_new(placement, "sql", sql);
		gw_redact_conf(json_object_get(placement, "conf"));
		gw_redact_document(manifests);
		*reply = http_reply_json(&rq->http, 200, json_pack("{s:b, s:s, s:o, s:o}", "dryRun", 1,
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
		rq->http.denied = true;
		*reply = http_reply_problem(&rq->http, 403, "forbidden", detail, NULL);
		return false;
	}
	if (json_array_size(rq->who.teams) != 1) {
		if (rq->who.role >= AUTH_OPERATOR)
			return true;
		*reply = http_reply_problem(&rq->http, 422, "validation-failed", "the submission has 1 invalid field",
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
		*reply = gateway_reply_store_error(rq, GW_ENOMEM, "out of memory");
		return false;
	}
	return true;
}

/* A submission that failed validation gets the policy's refusals in the
 * same answer, not in a second round; a field reported already is left. */
static void add_policy_refusals(struct request *rq, const char *body, size_t len, json_t *errors)
{
	json_t *doc = json_loadb(body, len, 0, NULL), *more = json_array(), *e;
	struct router *r = router_holder_get(rq->services->policy);
	size_t i, j;

	/* Store-only (no clusters), placement checks nothing either. */
	if (r->nclusters && json_is_object(doc) && json_is_object(json_object_get(doc, "spec")))
		router_refusals(r, json_object_get(doc, "labels"), json_object_get(doc, "spec"), more);
	json_array_foreach(more, i, e) {
		json_t *field = json_object_get(e, "field");
		bool known = false;
		json_t *have;

		json_array_foreach(errors, j, have)
			known = known || json_equal(json_object_get(have, "field"), field);
		if (!known)
			json_array_append(errors, e);
	}
	json_decref(more);
	json_decref(doc);
	router_unref(r);
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
		return http_reply_problem(&rq->http, 400, "bad-idempotency-key", detail, NULL);
	}
	/* Shed early when the store or the dispatcher falls behind, rather
	 * than make every caller wait. */
	store_load(rq->store, &queued, &commit_ms);
	if (rq->cfg->scheduler_max_queue_depth && queued >= (long)rq->cfg->scheduler_max_queue_depth) {
		snprintf(detail, sizeof(detail), "%ld jobs are queued, the most the gateway takes; retry later",
			 queued);
		return http_reply_problem_retry(&rq->http, 429, "overloaded", detail, "5");
	}
	if (rq->cfg->scheduler_max_commit_ms && commit_ms > rq->cfg->scheduler_max_commit_ms) {
		snprintf(detail, sizeof(detail), "the store commits in %.0f ms on average; retry later", commit_ms);
		return http_reply_problem_retry(&rq->http, 429, "overloaded", detail, "5");
	}
	switch (gateway_submission_parse(body, len, &rq->sub, &errors, detail)) {
	case BODY_OK:
		break;
	case BODY_MALFORMED:
		return http_reply_problem(&rq->http, 400, "malformed-body", detail, NULL);
	case BODY_INVALID:
		add_policy_refusals(rq, body, len, errors);
		snprintf(detail, sizeof(detail), "the submission has %zu invalid field%s", json_array_size(errors),
			 json_array_size(errors) == 1 ? "" : "s");
		return http_reply_problem(&rq->http, 422, "validation-failed", detail, errors);
	case BODY_NOMEM:
		return gateway_reply_store_error(rq, GW_ENOMEM, "out of memory");
	}
	if (!apply_identity(rq, &reply))
		return reply;
	/* Whatever the policy can never place is refused now, not later. */
	if (!check_placement(rq, dry_run, &reply))
		return reply;
	if (idempotency_key && !(rq->idempotency_key = strdup(idempotency_key)))
		return gateway_reply_store_error(rq, GW_ENOMEM, "out of memory");

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
	return gateway_run_async(rq, committed);
}

enum MHD_Result gateway_submit_translated(struct request *rq, enum gateway_body_status st, json_t *doc,
					  json_t *errors, const char *detail, const char *idempotency_key,
					  enum MHD_Result (*committed)(struct request *rq))
{
	char *text = st == BODY_OK ? json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

	json_decref(doc);
	if (st == BODY_INVALID)
		return http_reply_problem(&rq->http, 422, "validation-failed", detail, errors);
	/* The text must live until the answer: it becomes the request's body. */
	gw_buf_release(&rq->http.body);
	gw_buf_init(&rq->http.body, SIZE_MAX);
	if (!text || gw_buf_append(&rq->http.body, text, strlen(text))) {
		free(text);
		return gateway_reply_store_error(rq, GW_ENOMEM, "out of memory");
	}
	free(text);
	return gateway_submit(rq, rq->http.body.data, rq->http.body.len, idempotency_key, false, committed);
}

enum MHD_Result api_job_submit(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	const char *ct = MHD_lookup_connection_value(rq->http.conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_TYPE);
	const char *key = MHD_lookup_connection_value(rq->http.conn, MHD_HEADER_KIND,
						      "Idempotency-Key");
	const char *dry = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, "dryRun");
	char detail[GW_ERRLEN];

	(void)id;
	if (!content_type_is_json(ct)) {
		snprintf(detail, sizeof(detail),
			 "the body must be application/json, not %.100s", ct ? ct : "(none)");
		return http_reply_problem(&rq->http, 415, "unsupported-media-type", detail, NULL);
	}
	return gateway_submit(rq, rq->http.body.data ? rq->http.body.data : "", rq->http.body.len, key,
			      dry && !strcmp(dry, "true"), submit_committed);
}

/* ---- read ---- */
