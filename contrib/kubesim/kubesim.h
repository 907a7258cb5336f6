/* kubesim: a Kubernetes API server simulator. Internals shared by its
 * files: the object store with resourceVersions and an event log for
 * watches (state.c), the REST API (api.c) and the simulated scheduler,
 * kubelet, Spark driver and Spark operator (sim.c). Shares only common/
 * helpers with the gateway. */
#ifndef KUBESIM_H
#define KUBESIM_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"

struct ks_resource {
	const char *name;     /* plural, as in URLs: "pods" */
	const char *singular;
	const char *kind;     /* "Pod" */
	const char *group;    /* "" for core */
	const char *version;  /* "v1" */
	bool namespaced;
	const char *short_name; /* may be NULL */
	bool operator_only;   /* served only with --operator */
	bool status_sub;      /* has a /status subresource */
};

extern const struct ks_resource ks_resources[];
extern const size_t ks_nresources;

const struct ks_resource *ks_resource_find(const char *group, const char *version,
					   const char *name);
/* "v1" or "group/version". */
void ks_api_version(const struct ks_resource *r, char *out, size_t len);

struct ks_options {
	const char *listen;
	const char *name;
	int nodes;
	double node_cpu;        /* cores per node */
	double node_memory;     /* bytes per node */
	/* Node pools (--node-pool), in place of the plain nodes above:
	 * "NAME,count=N,cpu=C,memory=M[,gpus=G][,label=K=V]...[,taint=K=V:EFFECT]...". */
	const char *node_pools[16];
	int nnode_pools;
	const char *priority_classes[16]; /* "NAME=VALUE" */
	int npriority_classes;
	bool operator_mode;
	/* The vendored schemas (tests/k8s/schemas) /openapi/v2 and v3 are
	 * built from; without it they answer 404, as with the feature off. */
	const char *openapi_dir;
	const char *tls_cert, *tls_key;
	const char *token;
	int latency_ms;
	double error_rate;
	double throttle_qps;
	double drop_watch_after_s;
	double compact_every_s;
	double event_ttl_s;     /* Events are removed this long after they are made (--event-ttl) */
	const char *namespaces[32];
	int nnamespaces;
};

/* One recorded change, for watches. */
struct ks_event {
	int64_t rv;
	const char *type; /* "ADDED", "MODIFIED", "DELETED" (static strings) */
	const struct ks_resource *res;
	json_t *obj;      /* snapshot, owned */
};

/* The whole simulated cluster, guarded by lock. changed is broadcast on
 * every write, so watches and log followers wake. */
struct ks_state {
	pthread_mutex_t lock;
	pthread_cond_t changed;
	const struct ks_options *opts;
	json_t *objects;  /* "resource/namespace/name" -> object */
	json_t *pods;     /* the pods of objects, for the simulation's walks */
	json_t *apps;     /* the SparkApplications of objects, for the operator's */
	json_t *of_resource; /* resource name -> {key: object}: what a list or watch walks */
	/* Events by age, to expire them (the API server's event TTL): a ring
	 * of keys and when they lapse, oldest first. */
	struct ks_lapse {
		char *key;
		int64_t at_ms;
	} *lapses;
	size_t lapses_cap, lapses_start, lapses_len;
	/* What a tick looks at: the pods written since the last one, and the
	 * running drivers by the time their run ends (key -> ms). */
	json_t *pods_touched, *drivers_ending;
	/* The scheduler's view of the nodes (sched.c): read again after a
	 * node is written (nodes_listed false), and what the pods bound to
	 * each hold, while known (a binding, an end or a removal makes it
	 * unknown until it is summed again). */
	struct ks_node {
		char name[128];
		json_t *labels, *taints; /* references */
		bool unschedulable;
		double alloc[3], used[3]; /* cpu, memory bytes, nvidia.com/gpu */
		int pods, max_pods;
	} *nodes;
	int nnodes, nodes_cap;
	json_t *node_index; /* name -> index into nodes */
	bool nodes_listed, nodes_known;
	int64_t rv;       /* last resourceVersion handed out */
	struct ks_event *log; /* ring of the latest events */
	size_t log_cap, log_start, log_len;
	/* By resource name: the latest event's rv, and the latest one
	 * compacted away; a watch of that resource from before the latter gets
	 * 410, as from an API server's per-resource watch cache. */
	json_t *last_rv_of, *compacted_of;
	int64_t compacted_at_ms;
	/* The garbage collector's work, proportional to what changed: every
	 * owner uid's dependents (uid -> {key: true}), the dependents whose
	 * owner went or never was (to check), and the objects waiting in
	 * foreground deletion for their dependents to go. */
	json_t *dependents, *gc_check, *foreground;
	bool gc_due; /* gc_check or foreground has keys */
	uint64_t rng;
	bool stopping;
	char *tls_cert_pem, *tls_key_pem;
	/* Watches open now and the most open at once, by resource name:
	 * how many clients watch (served at /metrics). */
	json_t *watches_open, *watches_peak;
	struct ks_openapi *openapi;
	json_t *livy; /* shared server pod uid -> its Livy sessions (livy.c) */
	uint32_t pod_ips_given; /* pod IPs come from 10.244.0.0/16 in turn */
	/* throttle token bucket */
	double tokens;
	int64_t tokens_at_ms;
};

int ks_state_init(struct ks_state *st, const struct ks_options *opts);
void ks_state_release(struct ks_state *st);

/* All below: caller holds st->lock. */
void ks_key(const struct ks_resource *r, const char *ns, const char *name,
	    char *out, size_t len);
json_t *ks_get(struct ks_state *st, const struct ks_resource *r, const char *ns,
	       const char *name);
/* Stores obj (stolen) as new, stamping uid, creationTimestamp and rv. */
void ks_insert(struct ks_state *st, const struct ks_resource *r, json_t *obj);
/* Replaces the stored object (stolen) and bumps its rv: MODIFIED. */
void ks_update(struct ks_state *st, const struct ks_resource *r, json_t *obj);
/* Removes it for good: DELETED. */
void ks_remove(struct ks_state *st, const struct ks_resource *r, const char *ns,
	       const char *name);
/* Starts deletion the way the API server does: finalizers and graceful pod
 * termination delay removal; dependents are handled per propagation
 * ("Background", "Foreground", "Orphan"). */
void ks_delete(struct ks_state *st, const struct ks_resource *r, json_t *obj,
	       const char *propagation);
/* Garbage collection pass: removes dependents of vanished owners and
 * finishes foreground deletions. */
void ks_collect_garbage(struct ks_state *st);
/* Removes the Events whose TTL has run out. */
void ks_expire_events(struct ks_state *st, int64_t now_ms);
/* Records a core/v1 Event about obj. */
void ks_record_event(struct ks_state *st, json_t *obj, const char *type,
		     const char *reason, const char *message);

uint64_t ks_random(struct ks_state *st);
void ks_new_uid(struct ks_state *st, char out[37]);
void ks_now_rfc3339(char out[32]);
const char *ks_ns(const json_t *obj);
const char *ks_name(const json_t *obj);

/* sim.c */
void *ks_sim_main(void *arg);
/* Spark properties of a driver pod, from its ConfigMap (driver-pod mode)
 * or its SparkApplication (operator mode); new object, or NULL. */
json_t *ks_spark_conf(struct ks_state *st, const json_t *pod);
/* Pod resource requests, cores and bytes. */
void ks_pod_requests(const json_t *pod, double *cpu, double *mem);

/* sched.c */
/* Binds an unbound Pending pod to a node that fits it, or preempts for
 * it, or says why it cannot be placed (PodScheduled=False). */
void ks_schedule(struct ks_state *st, json_t *pod);
/* Priority admission: sets spec.priority from the pod's PriorityClass (0
 * without one); -1 when the class does not exist. Caller holds the lock. */
int ks_admit_priority(struct ks_state *st, json_t *pod);
/* spec.priority, as admission set it from the pod's PriorityClass. */
int ks_pod_priority(const json_t *pod);
void ks_nodes_release(struct ks_state *st);

/* openapi.c: the documents are built on first use; thread-safe, and
 * not under st->lock. */
struct ks_openapi;
struct ks_openapi *ks_openapi_new(const struct ks_options *opts);
void ks_openapi_free(struct ks_openapi *oa);
/* which: "v3" (the root), "v2", or a group-version path ("api/v1",
 * "apis/apps/v1"); NULL when there is none or the schemas did not load. */
const char *ks_openapi_document(struct ks_openapi *oa, const char *which);
/* 1 and the field's path ("spec.foo") when obj has a field its kind's
 * schema does not know, 0 when not, -1 when there are no schemas. */
int ks_openapi_unknown_field(struct ks_openapi *oa, const struct ks_resource *r, json_t *obj,
			     char *path, size_t len);
/* target (stolen) with a strategic merge patch applied, guided by the
 * kind's schema (patch strategies and merge keys); without schemas lists
 * are replaced. */
json_t *ks_openapi_strategic_merge(struct ks_openapi *oa, const struct ks_resource *r, json_t *target,
				   json_t *patch);

/* table.c: items as the Table kubectl asks for (as=Table); columns
 * only when with_columns (a watch sends them once), rows carrying the
 * whole object or its metadata (includeObject). */
json_t *ks_table(const struct ks_resource *r, json_t *items, const char *rv, bool with_columns,
		 bool whole_objects);

/* proxy.c: GET through a Service's proxy (service is "NAME[:PORT]", path
 * what follows /proxy/); 0 with the answer in out (body is the caller's to
 * free), -1 with a Status code and message when the proxy refuses. Takes
 * st->lock. */
struct ks_proxied {
	unsigned code;
	const char *content_type;
	char *body;
	size_t len;
	char location[1024];
	char message[256];
};
int ks_service_proxy(struct ks_state *st, const char *ns, const char *service, const char *path,
		     const char *ui_root, const char *method, const char *body, size_t len, struct ks_proxied *out);

/* livy.c: a shared server pod's Livy REST API at path (after the proxy's
 * prefix); caller holds st->lock. */
void ks_livy(struct ks_state *st, const json_t *pod, const char *method, const char *path, const char *body,
	     size_t len, struct ks_proxied *out);

/* api.c */
struct MHD_Daemon;
struct MHD_Daemon *ks_api_start(struct ks_state *st, char *err);

#endif
