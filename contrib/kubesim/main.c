/* kubesim: entry point. A simulated Kubernetes cluster behind a real
 * Kubernetes REST API, for the gateway's tests and demo. */
#include <getopt.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/quantity.h"
#include "contrib/kubesim/kubesim.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: kubesim --listen HOST:PORT --name NAME [--nodes N] [--node-cpu C]\n"
		"               [--node-memory M] [--node-pool SPEC]... [--priority-class NAME=VALUE]...\n"
		"               [--namespace NS]... [--operator] [--openapi SCHEMA-DIR]\n"
		"               [--tls-cert F --tls-key F] [--token T]\n"
		"               [--latency-ms N] [--error-rate F] [--throttle-qps Q]\n"
		"               [--drop-watch-after S] [--compact-every S] [--event-ttl S]\n");
}

static void add_namespace(struct ks_state *st, const char *name)
{
	const struct ks_resource *r = ks_resource_find("", "v1", "namespaces");

	if (!ks_get(st, r, NULL, name))
		ks_insert(st, r, json_pack("{s:{s:s, s:{s:s}}, s:{s:s}}", "metadata", "name", name,
					   "labels", "kubernetes.io/metadata.name", name,
					   "status", "phase", "Active"));
}

/* Node serial numbers give each node its own address, 10.0.0.0/16. */
static json_t *node_object(const char *name, int serial, const char *cpu, const char *mem, const char *gpus)
{
	char ip[32];
	json_t *node = json_pack("{s:{s:s, s:{s:s}}, s:{}, s:{s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s},"
				 " s:[{s:s, s:s}]}}",
				 "metadata", "name", name, "labels", "kubernetes.io/hostname", name, "spec",
				 "status", "capacity", "cpu", cpu, "memory", mem, "pods", "110",
				 "allocatable", "cpu", cpu, "memory", mem, "pods", "110",
				 "conditions", "type", "Ready", "status", "True");

	snprintf(ip, sizeof(ip), "10.0.%d.%d", serial / 250 % 256, serial % 250 + 2);
	json_object_set_new(json_object_get(node, "status"), "addresses",
			    json_pack("[{s:s, s:s}, {s:s, s:s}]", "type", "InternalIP", "address", ip,
				      "type", "Hostname", "address", name));
	json_object_set_new(json_object_get(node, "status"), "nodeInfo",
			    json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "machineID", "",
				      "systemUUID", "", "bootID", "", "kernelVersion", "6.1.0-kubesim",
				      "osImage", "kubesim", "containerRuntimeVersion", "kubesim://1.0",
				      "kubeletVersion", "v1.32.0-kubesim", "kubeProxyVersion", "",
				      "operatingSystem", "linux", "architecture", "amd64"));
	if (gpus) {
		json_t *status = json_object_get(node, "status");

		json_object_set_new(json_object_get(status, "capacity"), "nvidia.com/gpu", json_string(gpus));
		json_object_set_new(json_object_get(status, "allocatable"), "nvidia.com/gpu", json_string(gpus));
	}
	return node;
}

/* A --node-pool: "NAME,count=N,cpu=C,memory=M[,gpus=G][,label=K=V]...
 * [,taint=K=V:EFFECT]...", nodes NAME-0 … of the cluster's name. */
static int add_node_pool(struct ks_state *st, const char *spec, int *serial)
{
	const struct ks_resource *r = ks_resource_find("", "v1", "nodes");
	char buf[1024], *save = NULL, *item, *pool;
	const char *cpu = "16", *mem = "64Gi", *gpus = NULL;
	json_t *labels = json_object(), *taints = json_array();
	int count = 1;

	snprintf(buf, sizeof(buf), "%s", spec);
	pool = strtok_r(buf, ",", &save);
	while (pool && (item = strtok_r(NULL, ",", &save))) {
		char *eq = strchr(item, '=');

		if (!eq)
			goto bad;
		*eq++ = '\0';
		if (!strcmp(item, "count"))
			count = atoi(eq);
		else if (!strcmp(item, "cpu"))
			cpu = eq;
		else if (!strcmp(item, "memory"))
			mem = eq;
		else if (!strcmp(item, "gpus"))
			gpus = eq;
		else if (!strcmp(item, "label") && strchr(eq, '=')) {
			*strchr(eq, '=') = '\0';
			json_object_set_new(labels, eq, json_string(eq + strlen(eq) + 1));
		} else if (!strcmp(item, "taint") && strchr(eq, '=') && strchr(eq, ':')) {
			char *value = strchr(eq, '='), *effect = strchr(eq, ':');

			*value++ = '\0';
			*effect++ = '\0';
			json_array_append_new(taints, json_pack("{s:s, s:s, s:s}", "key", eq, "value", value,
								"effect", effect));
		} else {
			goto bad;
		}
	}
	if (!pool || count < 0 || count > 1000)
		goto bad;
	for (int i = 0; i < count; i++) {
		char name[160];
		json_t *node;

		snprintf(name, sizeof(name), "%s-%s-%d", st->opts->name, pool, i);
		node = node_object(name, (*serial)++, cpu, mem, gpus);
		json_object_update(json_object_get(json_object_get(node, "metadata"), "labels"), labels);
		if (json_array_size(taints))
			json_object_set(json_object_get(node, "spec"), "taints", taints);
		ks_insert(st, r, node);
	}
	json_decref(labels);
	json_decref(taints);
	return 0;
bad:
	fprintf(stderr, "kubesim: --node-pool: expected NAME,count=N,cpu=C,memory=M[,gpus=G][,label=K=V]"
		"[,taint=K=V:EFFECT], got %s\n", spec);
	json_decref(labels);
	json_decref(taints);
	return -1;
}

static int add_nodes(struct ks_state *st)
{
	const struct ks_resource *r = ks_resource_find("", "v1", "nodes");
	int serial = 0;

	if (st->opts->nnode_pools) {
		for (int i = 0; i < st->opts->nnode_pools; i++)
			if (add_node_pool(st, st->opts->node_pools[i], &serial))
				return -1;
		return 0;
	}
	for (int i = 0; i < st->opts->nodes; i++) {
		char name[96], cpu[32], mem[32];

		snprintf(name, sizeof(name), "%s-node-%d", st->opts->name, i);
		snprintf(cpu, sizeof(cpu), "%g", st->opts->node_cpu);
		snprintf(mem, sizeof(mem), "%.0f", st->opts->node_memory);
		ks_insert(st, r, node_object(name, i, cpu, mem, NULL));
	}
	return 0;
}

/* The API server's own classes, the gateway's default ones as
 * contrib/deploy/spark-cluster creates them, and those --priority-class
 * asks for. */
static int add_priority_classes(struct ks_state *st)
{
	const struct ks_resource *r = ks_resource_find("scheduling.k8s.io", "v1", "priorityclasses");
	static const char *const builtin[] = {"system-cluster-critical=2000000000", "system-node-critical=2000001000",
					      "sparkgw-driver=1000000", "sparkgw-executor=1000"};
	int nbuiltin = (int)(sizeof(builtin) / sizeof(builtin[0]));

	for (int i = 0; i < nbuiltin + st->opts->npriority_classes; i++) {
		const char *spec = i < nbuiltin ? builtin[i] : st->opts->priority_classes[i - nbuiltin];
		const char *eq = strchr(spec, '=');
		char name[256];

		if (!eq || eq == spec) {
			fprintf(stderr, "kubesim: --priority-class: expected NAME=VALUE, got %s\n", spec);
			return -1;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(eq - spec), spec);
		ks_insert(st, r, json_pack("{s:{s:s}, s:I, s:s}", "metadata", "name", name, "value",
					   (json_int_t)strtoll(eq + 1, NULL, 10), "preemptionPolicy",
					   "PreemptLowerPriority"));
	}
	return 0;
}

/* The flags into *opts; -1 to go on, else the exit code. */
static int parse_flags(int argc, char **argv, struct ks_options *o)
{
	static const struct option options[] = {
		{"listen", required_argument, NULL, 'l'},
		{"name", required_argument, NULL, 'n'},
		{"nodes", required_argument, NULL, 'N'},
		{"node-cpu", required_argument, NULL, 'c'},
		{"node-memory", required_argument, NULL, 'm'},
		{"namespace", required_argument, NULL, 's'},
		{"node-pool", required_argument, NULL, 'P'},
		{"priority-class", required_argument, NULL, 'p'},
		{"operator", no_argument, NULL, 'o'},
		{"openapi", required_argument, NULL, 'O'},
		{"tls-cert", required_argument, NULL, 'C'},
		{"tls-key", required_argument, NULL, 'K'},
		{"token", required_argument, NULL, 't'},
		{"latency-ms", required_argument, NULL, 'L'},
		{"error-rate", required_argument, NULL, 'e'},
		{"throttle-qps", required_argument, NULL, 'q'},
		{"drop-watch-after", required_argument, NULL, 'd'},
		{"compact-every", required_argument, NULL, 'x'},
		{"event-ttl", required_argument, NULL, 'E'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case 'l': o->listen = optarg; break;
		case 'n': o->name = optarg; break;
		case 'N': o->nodes = atoi(optarg); break;
		case 'c': o->node_cpu = strtod(optarg, NULL); break;
		case 'm':
			if (gw_quantity_parse(optarg, &o->node_memory)) {
				fprintf(stderr, "kubesim: --node-memory: not a quantity: %s\n", optarg);
				return 2;
			}
			break;
		case 's':
			if (o->nnamespaces < 32)
				o->namespaces[o->nnamespaces++] = optarg;
			break;
		case 'P':
			if (o->nnode_pools < 16)
				o->node_pools[o->nnode_pools++] = optarg;
			break;
		case 'p':
			if (o->npriority_classes < 16)
				o->priority_classes[o->npriority_classes++] = optarg;
			break;
		case 'o': o->operator_mode = true; break;
		case 'O': o->openapi_dir = optarg; break;
		case 'C': o->tls_cert = optarg; break;
		case 'K': o->tls_key = optarg; break;
		case 't': o->token = optarg; break;
		case 'L': o->latency_ms = atoi(optarg); break;
		case 'e': o->error_rate = strtod(optarg, NULL); break;
		case 'q': o->throttle_qps = strtod(optarg, NULL); break;
		case 'd': o->drop_watch_after_s = strtod(optarg, NULL); break;
		case 'x': o->compact_every_s = strtod(optarg, NULL); break;
		case 'E': o->event_ttl_s = strtod(optarg, NULL); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!o->listen || o->nodes < 0 || o->nodes > 256 || (!o->tls_cert != !o->tls_key)) {
		usage(stderr);
		return 2;
	}
	return -1;
}

int main(int argc, char **argv)
{
	/* Events live an hour, as the API server's --event-ttl says by default. */
	struct ks_options opts = {.name = "kubesim", .nodes = 4, .node_cpu = 16,
				  .node_memory = 64.0 * 1024 * 1024 * 1024, .event_ttl_s = 3600};
	struct ks_state st;
	struct MHD_Daemon *d;
	pthread_t sim;
	sigset_t stop;
	char err[GW_ERRLEN];
	int sig, code;

	if ((code = parse_flags(argc, argv, &opts)) >= 0)
		return code;
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (ks_state_init(&st, &opts)) {
		fprintf(stderr, "kubesim: out of memory\n");
		return 1;
	}
	add_namespace(&st, "default");
	add_namespace(&st, "kube-system");
	add_namespace(&st, "kube-public");
	for (int i = 0; i < opts.nnamespaces; i++)
		add_namespace(&st, opts.namespaces[i]);
	if (add_nodes(&st) || add_priority_classes(&st)) {
		ks_state_release(&st);
		return 2;
	}
	d = ks_api_start(&st, err);
	if (!d) {
		fprintf(stderr, "kubesim: %s\n", err);
		ks_state_release(&st);
		return 2;
	}
	pthread_create(&sim, NULL, ks_sim_main, &st);
	fprintf(stderr, "kubesim %s listening on %s\n", opts.name, opts.listen);
	while (sigwait(&stop, &sig) != 0)
		;
	pthread_mutex_lock(&st.lock);
	st.stopping = true;
	pthread_cond_broadcast(&st.changed);
	pthread_mutex_unlock(&st.lock);
	pthread_join(sim, NULL);
	MHD_stop_daemon(d);
	ks_state_release(&st);
	return 0;
}
