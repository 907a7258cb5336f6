/* The API layer's internals, shared by its handlers (api/, compat/, auth/):
 * the per-request state and the helpers that submit, load and cancel jobs.
 * Handlers take the HTTP layer's request and find theirs with
 * api_request(); the route table (routes.c) names them all. */
#ifndef GW_API_H
#define GW_API_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdbool.h>

#include "dispatch/dispatch.h"
#include "gateway/api/serve.h"
#include "gateway/api/submission.h"
#include "gateway/auth/auth.h"
#include "gateway/config/config.h"
#include "gateway/http/http.h"
#include "store/store.h"

/* One API request: the HTTP layer's (first, so that the layer allocates
 * the whole), then what the handlers keep. Owned by the MHD thread that
 * serves its connection, except while suspended on a store write, when
 * only the store's writer thread touches op (then resumes the connection). */
struct request {
	struct http_request http;
	const struct gateway_services *services;
	struct store *store;
	struct dispatch *dispatch; /* NULL without clusters */
	struct gateway_followers *followers;
	const struct gateway_config *cfg;

	/* An asynchronous store write and the step that answers it. */
	struct store_op op;
	enum MHD_Result (*resume)(struct request *rq);
	enum MHD_Result (*cancelled)(struct request *rq); /* a cancel's answer, in its facade's words */
	struct gateway_submission sub;
	char *idempotency_key;
	char job_id[STORE_ID_LEN];
	char pool_name[128]; /* a submission's pool, for the store */

	/* Who asks (with auth.mode none: an admin of every team), and what
	 * the audit trail keeps of the call. */
	struct auth_principal who;
	char audit_team[64];   /* the team the call acted for, when known */
	char audit_target[128]; /* what it acted on, when not the path's id */
};

static inline struct request *api_request(struct http_request *h)
{
	return (struct request *)h;
}

/* Whether the caller may see a job of that team (absent team: only
 * operators and admins). */
bool gateway_sees_team(const struct request *rq, const char *team);
/* Checks the caller for a route: false when it answered (401, 403, 429). */
bool gateway_authorize(struct request *rq, enum auth_role min_role, enum MHD_Result *reply);
/* Writes the call to the audit trail if it changed something or was
 * denied. */
void gateway_audit(struct request *rq);

/* The job as the API shows it, with one header pair (both may be NULL). */
enum MHD_Result gateway_reply_job(struct request *rq, unsigned status, const struct store_job *job,
				  const char *header, const char *value);
struct jobview_entry;
/* Queues a cached job's text, holding the entry (its reference is taken
 * over) until it is sent; header pairs may follow, NULL-terminated. */
enum MHD_Result gateway_reply_job_entry(struct request *rq, unsigned status, struct jobview_entry *e, ...);
/* Maps a store error to 404/409/503/500. */
enum MHD_Result gateway_reply_store_error(struct request *rq, enum gw_err rc, const char *detail);
/* Suspends the connection and queues rq->op; resume() answers once it has
 * committed. */
enum MHD_Result gateway_run_async(struct request *rq, enum MHD_Result (*resume)(struct request *rq));

/* Submits a body in the native shape (JSON text, borrowed until answered)
 * as POST /api/v1/jobs does: sheds load, validates, applies the caller's
 * identity, checks placement (or answers a dry run), then stores it and
 * answers with committed(). The facades translate their bodies into it. */
enum MHD_Result gateway_submit(struct request *rq, const char *body, size_t len, const char *idempotency_key,
			       bool dry_run, enum MHD_Result (*committed)(struct request *rq));

/* Cancels the job loaded in rq->op.job (gateway_load_job); committed()
 * answers once the store has it, with rq->job_id set. */
enum MHD_Result gateway_cancel(struct request *rq, enum MHD_Result (*committed)(struct request *rq));

/* With tokens below operator: the selector text (may be NULL) narrowed to
 * the caller's teams, in *out; *any is false when it has none. False with
 * err when the text does not parse. */
struct gw_selector;
bool gateway_visible_selector(struct request *rq, const char *text, struct gw_selector **out, bool *any,
			      char *err);

/* The same for a facade's translation of its body (st, doc and errors as
 * the compat_*_submission functions leave them; both taken over): a 422
 * for an invalid one, else doc is submitted (its text, keys sorted so that
 * a retried request hashes the same, becomes the request's body). */
enum MHD_Result gateway_submit_translated(struct request *rq, enum gateway_body_status st, json_t *doc,
					  json_t *errors, const char *detail, const char *idempotency_key,
					  enum MHD_Result (*committed)(struct request *rq));
/* In committed(): false, with the answer in *reply, when the store refused
 * the submission; else notes the new job for the audit trail. */
bool gateway_submit_stored(struct request *rq, enum MHD_Result *reply);

/* A job id as the store makes them; anything else cannot exist. */
bool gateway_job_id_valid(const char *id);
enum MHD_Result gateway_reply_no_job(struct request *rq, const char *id);
/* rc of a read of rq->op.job: another team's job counts as none
 * (GW_ENOTFOUND, the call marked denied, the job released), so that its
 * existence does not leak; a job the caller sees is noted for the audit
 * trail. */
enum gw_err gateway_admit_job(struct request *rq, enum gw_err rc);
/* Reads job id into rq->op.job (released with the request); false when it
 * answered instead (404 or a store error) with *reply. */
bool gateway_load_job(struct request *rq, const char *id, enum MHD_Result *reply);

/* The driver's log of the job in rq->op.job (tail_lines < 0: all of it),
 * in *text (caller frees); false when it answered instead: no driver yet
 * (404), no log from its cluster (404, 409), the cluster unreachable (502). */
bool gateway_driver_log(struct request *rq, long tail_lines, char **text, enum MHD_Result *reply);

/* Log followers of a server (logs.c). */
struct gateway_followers;
struct gateway_followers *gateway_followers_new(void);
/* Asks every follower to end; their streams close within a second. */
void gateway_followers_stop(struct gateway_followers *f);
void gateway_followers_free(struct gateway_followers *f);

/* Handlers; id is the path segment for routes with one. */
enum MHD_Result api_job_submit(struct http_request *h, const char *id);
enum MHD_Result api_job_get(struct http_request *h, const char *id);
enum MHD_Result api_job_list(struct http_request *h, const char *id);
enum MHD_Result api_job_cancel(struct http_request *h, const char *id);
enum MHD_Result api_job_events(struct http_request *h, const char *id);
enum MHD_Result api_job_logs(struct http_request *h, const char *id);
enum MHD_Result api_job_conf(struct http_request *h, const char *id);
enum MHD_Result api_job_ui(struct http_request *h, const char *id);
/* The Spark UI's route, and the cookie that may carry a browser's token
 * for it (the dashboard sets it). */
#define UI_ROUTE "/api/v1/jobs/*/ui**"
#define UI_TOKEN_COOKIE "sparkgw_token"
enum MHD_Result api_pools(struct http_request *h, const char *id);
enum MHD_Result api_clusters(struct http_request *h, const char *id);
enum MHD_Result api_cluster_get(struct http_request *h, const char *id);
enum MHD_Result api_cluster_patch(struct http_request *h, const char *id);
enum MHD_Result api_cluster_cordon(struct http_request *h, const char *id);
enum MHD_Result api_cluster_drain(struct http_request *h, const char *id);
enum MHD_Result api_cluster_uncordon(struct http_request *h, const char *id);
enum MHD_Result api_reload(struct http_request *h, const char *id);
enum MHD_Result api_cluster_add(struct http_request *h, const char *id);
enum MHD_Result api_cluster_remove(struct http_request *h, const char *id);
enum MHD_Result api_queue(struct http_request *h, const char *id);
enum MHD_Result api_token_create(struct http_request *h, const char *id);
enum MHD_Result api_token_list(struct http_request *h, const char *id);
enum MHD_Result api_token_revoke(struct http_request *h, const char *id);
enum MHD_Result api_audit(struct http_request *h, const char *id);
enum MHD_Result api_metrics(struct http_request *h, const char *id);
enum MHD_Result api_usage(struct http_request *h, const char *id);
enum MHD_Result api_job_pods(struct http_request *h, const char *id);
enum MHD_Result api_ui(struct http_request *h, const char *id);
/* The Livy batch API (compat/livy.c) and the Batch Processing Gateway API
 * (compat/bpg.c). */
enum MHD_Result api_livy_submit(struct http_request *h, const char *id);
enum MHD_Result api_livy_list(struct http_request *h, const char *id);
enum MHD_Result api_livy_get(struct http_request *h, const char *id);
enum MHD_Result api_livy_state(struct http_request *h, const char *id);
enum MHD_Result api_livy_log(struct http_request *h, const char *id);
enum MHD_Result api_livy_delete(struct http_request *h, const char *id);
enum MHD_Result api_bpg_submit(struct http_request *h, const char *id);
enum MHD_Result api_bpg_status(struct http_request *h, const char *id);
enum MHD_Result api_bpg_driver(struct http_request *h, const char *id);
enum MHD_Result api_bpg_describe(struct http_request *h, const char *id);
enum MHD_Result api_bpg_log(struct http_request *h, const char *id);
enum MHD_Result api_bpg_delete(struct http_request *h, const char *id);

#endif
