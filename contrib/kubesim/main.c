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
		"               [--node-memory M] [--namespace NS]... [--operator]\n"
		"               [--tls-cert F --tls-key F] [--token T]\n"
		"               [--latency-ms N] [--error-rate F] [--throttle-qps Q]\n"
		"               [--drop-watch-after S] [--compact-every S]\n");
}

static void add_namespace(struct ks_state *st, const char *name)
{
	const struct ks_resource *r = ks_resource_find("", "v1", "namespaces");

	if (!ks_get(st, r, NULL, name))
		ks_insert(st, r, json_pack("{s:{s:s, s:{s:s}}, s:{s:s}}", "metadata", "name", name,
					   "labels", "kubernetes.io/metadata.name", name,
					   "status", "phase", "Active"));
}

static void add_nodes(struct ks_state *st)
{
	const struct ks_resource *r = ks_resource_find("", "v1", "nodes");

	for (int i = 0; i < st->opts->nodes; i++) {
		char name[96], cpu[32], mem[32];

		snprintf(name, sizeof(name), "%s-node-%d", st->opts->name, i);
		snprintf(cpu, sizeof(cpu), "%g", st->opts->node_cpu);
		snprintf(mem, sizeof(mem), "%.0f", st->opts->node_memory);
		ks_insert(st, r, json_pack("{s:{s:s, s:{s:s}}, s:{s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s},"
					   " s:[{s:s, s:s}]}}",
					   "metadata", "name", name, "labels", "kubernetes.io/hostname", name,
					   "status", "capacity", "cpu", cpu, "memory", mem, "pods", "110",
					   "allocatable", "cpu", cpu, "memory", mem, "pods", "110",
					   "conditions", "type", "Ready", "status", "True"));
	}
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{"listen", required_argument, NULL, 'l'},
		{"name", required_argument, NULL, 'n'},
		{"nodes", required_argument, NULL, 'N'},
		{"node-cpu", required_argument, NULL, 'c'},
		{"node-memory", required_argument, NULL, 'm'},
		{"namespace", required_argument, NULL, 's'},
		{"operator", no_argument, NULL, 'o'},
		{"tls-cert", required_argument, NULL, 'C'},
		{"tls-key", required_argument, NULL, 'K'},
		{"token", required_argument, NULL, 't'},
		{"latency-ms", required_argument, NULL, 'L'},
		{"error-rate", required_argument, NULL, 'e'},
		{"throttle-qps", required_argument, NULL, 'q'},
		{"drop-watch-after", required_argument, NULL, 'd'},
		{"compact-every", required_argument, NULL, 'x'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct ks_options opts = {.name = "kubesim", .nodes = 4, .node_cpu = 16,
				  .node_memory = 64.0 * 1024 * 1024 * 1024};
	struct ks_state st;
	struct MHD_Daemon *d;
	pthread_t sim;
	sigset_t stop;
	char err[GW_ERRLEN];
	int opt, sig;

	while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		switch (opt) {
		case 'l': opts.listen = optarg; break;
		case 'n': opts.name = optarg; break;
		case 'N': opts.nodes = atoi(optarg); break;
		case 'c': opts.node_cpu = strtod(optarg, NULL); break;
		case 'm':
			if (gw_quantity_parse(optarg, &opts.node_memory)) {
				fprintf(stderr, "kubesim: --node-memory: not a quantity: %s\n", optarg);
				return 2;
			}
			break;
		case 's':
			if (opts.nnamespaces < 32)
				opts.namespaces[opts.nnamespaces++] = optarg;
			break;
		case 'o': opts.operator_mode = true; break;
		case 'C': opts.tls_cert = optarg; break;
		case 'K': opts.tls_key = optarg; break;
		case 't': opts.token = optarg; break;
		case 'L': opts.latency_ms = atoi(optarg); break;
		case 'e': opts.error_rate = strtod(optarg, NULL); break;
		case 'q': opts.throttle_qps = strtod(optarg, NULL); break;
		case 'd': opts.drop_watch_after_s = strtod(optarg, NULL); break;
		case 'x': opts.compact_every_s = strtod(optarg, NULL); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!opts.listen || opts.nodes < 0 || opts.nodes > 256 || (!opts.tls_cert != !opts.tls_key)) {
		usage(stderr);
		return 2;
	}
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
	add_nodes(&st);
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
