/* The scheduler's decisions, apart from the loops that act on them: the
 * limits in force for a team and a pool, and the order in which queued jobs
 * go out.
 *
 * Order is weighted fair share between the teams of a pool, measured
 * dominant-resource style: a team's share is the largest fraction it uses
 * of any of the pool's bounded resources (cores when none is bounded),
 * divided by its configured weight. The team with the smallest share sends
 * its next job (its own jobs by priority with aging, then arrival), the
 * job's demand is added to what it uses, and so on (progressive filling).
 * A team whose next job would cross its limits waits with all its jobs
 * (no bypass by smaller ones, which would starve big jobs); a pool whose
 * limits the next job would cross stops for every team alike. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch/dispatch.h"
#include "dispatch/dispatch_int.h"

_Static_assert(ROUTER_MAX_PRIORITIES <= STORE_PRIORITY_LEVELS, "the store keeps every priority level");

void dispatch_team_limits(const struct router *r, const char *team, unsigned default_running,
			  unsigned default_queued, struct store_limits *out, double *share)
{
	const struct router_team *t = router_team_named(r, team);

	memset(out, 0, sizeof(*out));
	out->running = t && t->has_running ? t->limits.running : default_running;
	out->queued = t && t->has_queued ? t->limits.queued : default_queued;
	if (t) {
		out->cores_milli = llround(t->limits.cores * 1000);
		out->memory_mib = (t->limits.memory + (1 << 20) - 1) >> 20;
		out->gpus = t->limits.gpus;
	}
	if (share)
		*share = t ? t->share : 1;
}

void dispatch_pool_limits(const struct router *r, const char *pool, struct store_limits *out)
{
	const struct router_pool *p = router_pool_named(r, pool);

	memset(out, 0, sizeof(*out));
	if (!p)
		return;
	out->running = p->limits.running;
	out->queued = p->limits.queued;
	out->cores_milli = llround(p->limits.cores * 1000);
	out->memory_mib = (p->limits.memory + (1 << 20) - 1) >> 20;
	out->gpus = p->limits.gpus;
}

struct store_demand dispatch_demand(const struct router_demand *d)
{
	return (struct store_demand){.cores_milli = llround(d->cores * 1000),
				     .memory_mib = (d->memory + (1 << 20) - 1) >> 20,
				     .gpus = d->gpus};
}

/* One team in one pool, and one team or pool as a whole. */
struct group {
	const char *pool, *team;
	size_t *jobs; /* indexes into the queue, in the team's order */
	size_t njobs, next;
	double weight;
	struct store_demand used;
	struct tally *team_tally, *pool_tally;
	char *blocked; /* why its jobs wait, when they do */
};

struct tally {
	const char *name;
	unsigned running;
	struct store_demand used;
	struct store_limits limits;
	char why[GW_ERRLEN]; /* a pool's: set when it stopped */
};

static struct tally *tally_of(struct tally *t, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (!strcmp(t[i].name, name))
			return &t[i];
	memset(&t[*n], 0, sizeof(t[*n]));
	t[*n].name = name;
	return &t[(*n)++];
}

static void add_demand(struct store_demand *to, const struct store_demand *d)
{
	to->cores_milli += d->cores_milli;
	to->memory_mib += d->memory_mib;
	to->gpus += d->gpus;
}

/* The group's dominant share of its pool, over its weight. */
static double dominant_share(const struct group *g)
{
	const struct store_limits *cap = &g->pool_tally->limits;
	double share = 0;

	if (cap->cores_milli)
		share = fmax(share, (double)g->used.cores_milli / (double)cap->cores_milli);
	if (cap->memory_mib)
		share = fmax(share, (double)g->used.memory_mib / (double)cap->memory_mib);
	if (cap->gpus)
		share = fmax(share, (double)g->used.gpus / (double)cap->gpus);
	if (!cap->cores_milli && !cap->memory_mib && !cap->gpus)
		share = (double)g->used.cores_milli;
	return share / g->weight;
}

static int by_rank(const void *a, const void *b)
{
	const struct store_queued *x = a, *y = b;

	/* Taken-over dispatches first: they hold their place already. */
	if ((x->state == STORE_DISPATCHING) != (y->state == STORE_DISPATCHING))
		return x->state == STORE_DISPATCHING ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank < y->rank ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The group of team in pool, added if new. */
static struct group *group_of(struct group *groups, size_t *ngroups, const struct router *r,
			      const struct dispatch_defaults *defaults, const char *team,
			      const char *pool, struct tally *teams, size_t *nteams,
			      struct tally *pools, size_t *npools)
{
	struct group *g;

	for (size_t k = 0; k < *ngroups; k++)
		if (!strcmp(groups[k].team, team) && !strcmp(groups[k].pool, pool))
			return &groups[k];
	g = &groups[(*ngroups)++];
	g->team = team;
	g->pool = pool;
	g->team_tally = tally_of(teams, nteams, team);
	g->pool_tally = tally_of(pools, npools, pool);
	dispatch_team_limits(r, team, defaults->max_running_per_team, 0, &g->team_tally->limits,
			     &g->weight);
	dispatch_pool_limits(r, pool, &g->pool_tally->limits);
	return g;
}

/* The group with jobs left whose dominant share is the smallest (ties: the
 * better-ranked next job); NULL when every group is done or blocked. */
static struct group *most_behind(struct group *groups, size_t ngroups, const struct store_queue *q)
{
	struct group *best = NULL;
	double best_share = 0;

	for (size_t k = 0; k < ngroups; k++) {
		struct group *g = &groups[k];
		double share;

		if (g->blocked || g->next == g->njobs || g->pool_tally->why[0])
			continue;
		share = dominant_share(g);
		if (!best || share < best_share ||
		    (share == best_share && by_rank(&q->jobs[g->jobs[g->next]], &q->jobs[best->jobs[best->next]]) < 0)) {
			best = g;
			best_share = share;
		}
	}
	return best;
}

/* The jobs not picked wait, each saying why, in rank order after the
 * picks[0..out). */
static void the_rest_wait(const struct group *groups, const size_t *job_group, const bool *picked, size_t n,
			  struct dispatch_pick *picks, size_t out)
{
	for (size_t j = 0; j < n; j++) {
		const struct group *g = &groups[job_group[j]];

		if (picked[j])
			continue;
		picks[out] = (struct dispatch_pick){.job = j};
		snprintf(picks[out].why, sizeof(picks[out].why), "%s", g->blocked ? g->blocked : g->pool_tally->why);
		out++;
	}
}

enum gw_err dispatch_order(const struct router *r, const struct dispatch_defaults *defaults,
			   struct store_queue *q, bool (*on_its_way)(void *arg, const char *id),
			   void *arg, struct dispatch_pick *picks)
{
	size_t n = q->njobs, cap = n + q->nusage + 1, ngroups = 0, nteams = 0, npools = 0, out = 0;
	struct group *groups = calloc(cap, sizeof(*groups));
	struct tally *teams = calloc(cap, sizeof(*teams)), *pools = calloc(cap, sizeof(*pools));
	size_t *slots = calloc(n + 1, sizeof(*slots)), *job_group = calloc(n + 1, sizeof(*job_group));
	bool *picked = calloc(n + 1, sizeof(*picked));
	enum gw_err rc = GW_ENOMEM;

	if (!groups || !teams || !pools || !slots || !job_group || !picked)
		goto out;
	if (n)
		qsort(q->jobs, n, sizeof(*q->jobs), by_rank);

	/* What every team and pool uses now, then the queue's groups, each
	 * with its jobs as a run of slots in rank order. */
	for (size_t i = 0; i < q->nusage; i++) {
		const struct store_usage *u = &q->usage[i];
		struct group *g = group_of(groups, &ngroups, r, defaults, u->team, u->pool, teams, &nteams,
					   pools, &npools);

		g->team_tally->running += u->running;
		g->pool_tally->running += u->running;
		add_demand(&g->team_tally->used, &u->used);
		add_demand(&g->pool_tally->used, &u->used);
		add_demand(&g->used, &u->used);
	}
	for (size_t j = 0; j < n; j++) {
		struct group *g = group_of(groups, &ngroups, r, defaults, q->jobs[j].team, q->jobs[j].pool,
					   teams, &nteams, pools, &npools);

		job_group[j] = (size_t)(g - groups);
		g->njobs++;
	}
	for (size_t k = 0, at = 0; k < ngroups; k++) {
		groups[k].jobs = slots + at;
		at += groups[k].njobs;
		groups[k].njobs = 0;
	}
	for (size_t j = 0; j < n; j++) {
		struct group *g = &groups[job_group[j]];

		/* Taken-over dispatches are claimed and counted already. */
		if (q->jobs[j].state == STORE_DISPATCHING) {
			picked[j] = true;
			picks[out++] = (struct dispatch_pick){.job = j, .ready = true};
		} else {
			g->jobs[g->njobs++] = j;
		}
	}

	for (;;) {
		struct group *best = most_behind(groups, ngroups, q);
		const struct store_queued *job;
		size_t j;

		if (!best)
			break;
		j = best->jobs[best->next];
		job = &q->jobs[j];
		/* A job already on its way is counted, wherever it stands. */
		if (!on_its_way || !on_its_way(arg, job->id)) {
			char why[GW_ERRLEN];

			if (*best->team &&
			    store_limits_exceeded(&best->team_tally->limits, "team", best->team,
						  best->team_tally->running, &best->team_tally->used,
						  &job->demand, why, sizeof(why))) {
				if (!(best->blocked = strdup(why)))
					goto out;
				continue;
			}
			if (*best->pool &&
			    store_limits_exceeded(&best->pool_tally->limits, "pool", best->pool,
						  best->pool_tally->running, &best->pool_tally->used,
						  &job->demand, best->pool_tally->why, sizeof(best->pool_tally->why)))
				continue;
		}
		picked[j] = true;
		picks[out++] = (struct dispatch_pick){.job = j, .ready = true};
		best->next++;
		best->team_tally->running++;
		best->pool_tally->running++;
		add_demand(&best->used, &job->demand);
		add_demand(&best->team_tally->used, &job->demand);
		add_demand(&best->pool_tally->used, &job->demand);
	}
	the_rest_wait(groups, job_group, picked, n, picks, out);
	rc = GW_OK;
out:
	for (size_t k = 0; groups && k < ngroups; k++)
		free(groups[k].blocked);
	free(groups);
	free(teams);
	free(pools);
	free(slots);
	free(job_group);
	free(picked);
	return rc;
}
