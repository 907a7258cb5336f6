/* GET /api/v1/jobs/{id}/logs: the driver's log from its cluster, whole or
 * its tail, or followed (follow=true) while the driver runs.
 *
 * A follower must not hold an HTTP thread: a thread of its own reads the
 * cluster's stream into a buffer, and the connection is suspended whenever
 * that buffer is empty and resumed when text arrives. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "gateway/api/api.h"

#define FOLLOW_BUFFER (1u << 20)

struct log_follow {
	struct gateway_followers *owner;
	struct MHD_Connection *conn;
	struct dispatch *dispatch;
	struct store_job job;
	long tail_lines;
	pthread_t thread;
	bool thread_started;
	atomic_bool stop;

	pthread_mutex_t lock; /* guards the rest */
	pthread_cond_t drained;
	struct gw_buf buf;
	size_t off;
	bool done, suspended;
	struct log_follow *next; /* in owner->list, under owner->lock */
};

/* Every follower of a server, so that shutdown can end them. */
struct gateway_followers {
	pthread_mutex_t lock;
	struct log_follow *list;
	unsigned count;
};

struct gateway_followers *gateway_followers_new(void)
{
	struct gateway_followers *f = calloc(1, sizeof(*f));

	if (f)
		pthread_mutex_init(&f->lock, NULL);
	return f;
}

void gateway_followers_stop(struct gateway_followers *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	for (struct log_follow *lf = f->list; lf; lf = lf->next)
		atomic_store(&lf->stop, true);
	pthread_mutex_unlock(&f->lock);
}

void gateway_followers_free(struct gateway_followers *f)
{
	if (!f)
		return;
	pthread_mutex_destroy(&f->lock);
	free(f);
}

/* The cluster's stream, into the buffer; waits while the buffer is full. */
static bool follow_data(void *arg, const char *data, size_t len)
{
	struct log_follow *lf = arg;
	bool ok = true;

	pthread_mutex_lock(&lf->lock);
	while (lf->buf.len - lf->off + len > FOLLOW_BUFFER && !atomic_load(&lf->stop))
		pthread_cond_wait(&lf->drained, &lf->lock);
	if (lf->off == lf->buf.len)
		lf->buf.len = lf->off = 0;
	if (atomic_load(&lf->stop) || gw_buf_append(&lf->buf, data, len) != GW_OK)
		ok = false;
	if (lf->suspended) {
		lf->suspended = false;
		MHD_resume_connection(lf->conn);
	}
	pthread_mutex_unlock(&lf->lock);
	return ok;
}

static void *follow_main(void *arg)
{
	struct log_follow *lf = arg;
	char err[GW_ERRLEN];

	if (dispatch_driver_log_follow(lf->dispatch, &lf->job, lf->tail_lines, follow_data, lf,
				       &lf->stop, err) != GW_OK)
		gw_log(GW_LOG_INFO, "log follow of job %s ended: %s", lf->job.id, err);
	pthread_mutex_lock(&lf->lock);
	lf->done = true;
	if (lf->suspended) {
		lf->suspended = false;
		MHD_resume_connection(lf->conn);
	}
	pthread_mutex_unlock(&lf->lock);
	return NULL;
}

static ssize_t follow_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct log_follow *lf = cls;
	ssize_t n;

	(void)pos;
	pthread_mutex_lock(&lf->lock);
	if (lf->off < lf->buf.len) {
		size_t avail = lf->buf.len - lf->off;

		n = (ssize_t)(avail < max ? avail : max);
		memcpy(out, lf->buf.data + lf->off, (size_t)n);
		lf->off += (size_t)n;
		pthread_cond_signal(&lf->drained);
	} else if (lf->done) {
		n = MHD_CONTENT_READER_END_OF_STREAM;
	} else {
		/* Nothing yet: park the connection until follow_data wakes it. */
		lf->suspended = true;
		MHD_suspend_connection(lf->conn);
		n = 0;
	}
	pthread_mutex_unlock(&lf->lock);
	return n;
}

static void follow_free(void *cls)
{
	struct log_follow *lf = cls;
	struct gateway_followers *f = lf->owner;

	atomic_store(&lf->stop, true);
	pthread_mutex_lock(&lf->lock);
	pthread_cond_signal(&lf->drained);
	pthread_mutex_unlock(&lf->lock);
	if (lf->thread_started)
		pthread_join(lf->thread, NULL);
	pthread_mutex_lock(&f->lock);
	for (struct log_follow **p = &f->list; *p; p = &(*p)->next)
		if (*p == lf) {
			*p = lf->next;
			break;
		}
	f->count--;
	pthread_mutex_unlock(&f->lock);
	gw_buf_release(&lf->buf);
	store_job_release(&lf->job);
	pthread_cond_destroy(&lf->drained);
	pthread_mutex_destroy(&lf->lock);
	free(lf);
}

/* Takes over rq->op.job, the job being followed. */
static enum MHD_Result start_follow(struct request *rq, long tail_lines)
{
	struct gateway_followers *f = rq->followers;
	struct log_follow *lf;
	struct MHD_Response *resp;

	pthread_mutex_lock(&f->lock);
	if (f->count >= rq->cfg->http_max_log_followers) {
		pthread_mutex_unlock(&f->lock);
		return http_reply_problem(&rq->http, 503, "too-many-followers",
					  "too many log streams are open; retry later", NULL);
	}
	f->count++;
	pthread_mutex_unlock(&f->lock);
	lf = calloc(1, sizeof(*lf));
	if (!lf) {
		pthread_mutex_lock(&f->lock);
		f->count--;
		pthread_mutex_unlock(&f->lock);
		return gateway_reply_store_error(rq, GW_ENOMEM, "out of memory");
	}
	lf->owner = f;
	lf->conn = rq->http.conn;
	lf->dispatch = rq->dispatch;
	lf->job = rq->op.job;
	memset(&rq->op.job, 0, sizeof(rq->op.job));
	lf->tail_lines = tail_lines;
	atomic_init(&lf->stop, false);
	pthread_mutex_init(&lf->lock, NULL);
	pthread_cond_init(&lf->drained, NULL);
	gw_buf_init(&lf->buf, FOLLOW_BUFFER * 2);
	pthread_mutex_lock(&f->lock);
	lf->next = f->list;
	f->list = lf;
	pthread_mutex_unlock(&f->lock);
	lf->thread_started = pthread_create(&lf->thread, NULL, follow_main, lf) == 0;
	lf->done = !lf->thread_started;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, follow_read, lf,
						 follow_free);
	if (!resp) {
		follow_free(lf);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	return http_queue(&rq->http, 200, resp);
}

bool gateway_driver_log(struct request *rq, long tail_lines, char **text, enum MHD_Result *reply)
{
	char err[GW_ERRLEN];
	enum gw_err rc;

	*text = NULL;
	if (!rq->dispatch || !rq->op.job.driver_pod) {
		*reply = http_reply_problem(&rq->http, 404, "no-driver", "the job has no driver on a cluster yet", NULL);
		return false;
	}
	rc = dispatch_driver_log(rq->dispatch, &rq->op.job, tail_lines, text, err);
	if (rc == GW_ENOTFOUND || rc == GW_EINVAL)
		*reply = http_reply_problem(&rq->http, rc == GW_ENOTFOUND ? 404 : 409, "no-driver-log", err, NULL);
	else if (rc)
		*reply = http_reply_problem(&rq->http, 502, "cluster-unavailable", err, NULL);
	if (rc) {
		free(*text);
		*text = NULL;
	}
	return rc == GW_OK;
}

enum MHD_Result api_job_logs(struct http_request *h, const char *id)
{
	struct request *rq = api_request(h);
	const char *tail = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, "tailLines");
	const char *follow = MHD_lookup_connection_value(rq->http.conn, MHD_GET_ARGUMENT_KIND, "follow");
	char *text, *end;
	long tail_lines = -1;
	enum MHD_Result ret;

	if (tail) {
		errno = 0;
		tail_lines = strtol(tail, &end, 10);
		if (!*tail || *end || errno || tail_lines < 0 || tail_lines > 1000000)
			return http_reply_problem(&rq->http, 400, "bad-query",
						  "tailLines must be an integer from 0 to 1000000", NULL);
	}
	if (follow && strcmp(follow, "true") && strcmp(follow, "false"))
		return http_reply_problem(&rq->http, 400, "bad-query", "follow must be true or false", NULL);
	if (!gateway_load_job(rq, id, &ret))
		return ret;
	/* Asked first without following, so that a missing or unstarted driver
	 * gets a problem answer rather than an empty 200 stream. */
	if (!gateway_driver_log(rq, follow && !strcmp(follow, "true") ? 0 : tail_lines, &text, &ret))
		return ret;
	if (follow && !strcmp(follow, "true")) {
		free(text);
		return start_follow(rq, tail_lines);
	}
	ret = http_reply_text(&rq->http, 200, text);
	free(text);
	return ret;
}
