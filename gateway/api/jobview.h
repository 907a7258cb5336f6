/* Jobs as the API shows them, rendered to JSON text, and a cache of those
 * texts for hot reads (status polls, dashboards). The store reports every
 * job it writes (jobview_invalidate), so an entry is never older than the
 * last commit; a reader that raced a commit does not keep what it read. */
#ifndef GW_JOBVIEW_H
#define GW_JOBVIEW_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* The job as JSON text (malloc'd, len set): its fields, with the labels
 * and spec as stored; a spec that may hold a secret is redacted. */
char *jobview_render(const struct store_job *job, size_t *len);

/* The job's spec as the API shows it, secrets redacted: the stored
 * redacted text, or the spec itself when nothing in it is secret; a row
 * from before redacted specs were kept is redacted now, into *owned (the
 * caller frees it; NULL when nothing was made). */
const char *jobview_spec_shown(const struct store_job *job, char **owned);

struct jobview;

/* A rendered job, shared and read-only; hold it with a reference. */
struct jobview_entry {
	int64_t seq, rv;
	enum store_state state;
	char id[STORE_ID_LEN];
	char team[64];
	size_t len;
	const char *text; /* len bytes and a NUL, owned by the entry */
};

/* max_bytes bounds the texts kept; 0 keeps none. */
struct jobview *jobview_new(size_t max_bytes);
void jobview_free(struct jobview *v);

/* The entry of job id with a reference, or NULL. */
struct jobview_entry *jobview_get(struct jobview *v, const char *id);
/* Read before loading a job from the store; jobview_put keeps the job only
 * if no write was reported in between. */
uint64_t jobview_epoch(struct jobview *v);
/* The loaded job rendered into a new entry, with a reference; kept for
 * others too when the epoch still holds. NULL when out of memory. */
struct jobview_entry *jobview_put(struct jobview *v, uint64_t epoch, const struct store_job *job);
void jobview_release(struct jobview_entry *e);
/* The jobs of these store seqs changed; n == 0: any may have. */
void jobview_invalidate(void *v, const int64_t *seqs, size_t n);

#endif
