/* Live state of the clusters: rotation (active, cordoned, draining), the
 * weight an operator set, health from /readyz probes and the outcome of
 * real calls, and what runs in each namespace as the watchers see it. The
 * router consults it through pool_live(). Thread-safe. */
#ifndef GW_POOL_H
#define GW_POOL_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "router/router.h"

enum pool_rotation { POOL_ACTIVE, POOL_CORDONED, POOL_DRAINING };

struct pool;

struct pool_options {
	unsigned unhealthy_after;  /* failed probes in a row; default 3 */
	unsigned healthy_after;    /* good probes in a row to return; default 2 */
};

struct pool *pool_new(const struct pool_options *opts);
void pool_free(struct pool *p);

/* The adapter the router places with. */
struct router_live pool_live(struct pool *p);

/* Rotation and weight, as the admin API sets them (0: the configured one). */
void pool_set_rotation(struct pool *p, const char *cluster, enum pool_rotation r);
void pool_set_weight(struct pool *p, const char *cluster, unsigned weight);
enum pool_rotation pool_rotation_of(struct pool *p, const char *cluster);
const char *pool_rotation_name(enum pool_rotation r);
/* -1 when name is not a rotation state. */
int pool_rotation_parse(const char *name);

/* A /readyz probe or a real call: ok or not. */
void pool_report(struct pool *p, const char *cluster, bool ok, const char *detail);
bool pool_healthy(struct pool *p, const char *cluster);

/* What the watchers see: a pod (by uid) of job job_id that is active in a
 * namespace, with its requests and the node it is bound to (NULL: none
 * yet); active=false when it ended or went away. */
void pool_pod(struct pool *p, const char *cluster, const char *uid, const char *job_id,
	      const char *ns, const char *node, bool active, double cores, int64_t memory, int gpus);
/* The cluster's nodes as its API server lists them (a NodeList's items;
 * NULL: not known, e.g. the list is not allowed): node roles hold what
 * their Ready, schedulable nodes can. */
void pool_set_nodes(struct pool *p, const char *cluster, const json_t *items);
/* Reserves a dispatched job's demand in namespace ns and node role role of
 * cluster: it counts there, less what the job's pods already hold, until
 * pool_release (the job left the cluster) or ttl_ms, so that neither the
 * moment before the cluster reports its pods nor the executors' start
 * after the driver lets a burst overfill the namespace or the nodes. The
 * check for room and the reservation are one step under the pool's lock,
 * so that concurrent dispatches cannot all take the same room; false when
 * the namespace or the role's nodes have none left (force: reserve anyway,
 * for a job pinned there). */
bool pool_reserve(struct pool *p, const char *cluster, const char *job_id, const struct router_namespace *ns,
		  const struct router_node_role *role, const struct router_demand *demand, bool force,
		  int64_t ttl_ms);
void pool_release(struct pool *p, const char *job_id);
/* Forgets a cluster's pods before a re-list adds them again. */
void pool_forget_pods(struct pool *p, const char *cluster);

/* What runs in each namespace of a cluster as this process's watcher saw
 * it: {ns: [pods, cores, memory bytes, gpus, {job id: [pods, cores,
 * memory, gpus]}]} (caller owns), for the replicas that do not watch the
 * cluster. */
json_t *pool_usage(struct pool *p, const char *cluster);
/* Such a view, from the replica that watches the cluster, in place of
 * what this process saw (it does not watch it). */
void pool_set_usage(struct pool *p, const char *cluster, const json_t *usage);

/* {cluster: {rotation, weight, healthy, lastError, namespaces: {ns: {pods,
 * cores, memoryBytes, gpus}}, nodes: {count, cores, memoryBytes, gpus} or
 * null}} for the admin API. */
json_t *pool_snapshot(struct pool *p);

#endif
