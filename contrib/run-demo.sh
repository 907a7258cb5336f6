#!/bin/sh
# `make run`: three simulated clusters (kubesim; sim-c runs the Spark
# operator) and the gateway configured for them, in the foreground. The
# clusters have node pools for the policy's node roles (sim-b's GPU nodes
# tainted), the PriorityClasses contrib/deploy/spark-cluster creates and
# those the demo's critical pool names.
# Ctrl-C stops everything. The clusters listen on SPARKGW_PORT+1..+3.
set -eu

BUILD=${BUILD:-build}
PORT=${SPARKGW_PORT:-8080}
DATA=${SPARKGW_DATA:-./var}
mkdir -p "$DATA"
DATA=$(cd "$DATA" && pwd)

pids=""
cleanup() {
	if [ -n "$pids" ]; then
		# shellcheck disable=SC2086
		kill $pids 2>/dev/null || true
	fi
	wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

kubeconfig="$DATA/kubeconfig"
{
	echo "apiVersion: v1"
	echo "kind: Config"
	echo "current-context: sim-a"
	echo "clusters:"
	for i in 1 2 3; do
		name=sim-$(echo abc | cut -c$i)
		echo "- name: $name"
		echo "  cluster:"
		echo "    server: http://127.0.0.1:$((PORT + i))"
	done
	echo "contexts:"
	for i in 1 2 3; do
		name=sim-$(echo abc | cut -c$i)
		echo "- name: $name"
		echo "  context: {cluster: $name, user: demo, namespace: spark-jobs}"
	done
	echo "users:"
	echo "- name: demo"
	echo "  user: {}"
} > "$kubeconfig"

for i in 1 2 3; do
	name=sim-$(echo abc | cut -c$i)
	# The node pools behind each cluster's node roles in demo-policy.yaml.
	case $name in
	sim-a) nodes="--node-pool cpu,count=4,cpu=16,memory=64Gi,label=node-role=cpu
		--node-pool mem,count=2,cpu=16,memory=256Gi,label=node-role=memory" ;;
	sim-b) nodes="--node-pool cpu,count=4,cpu=16,memory=64Gi,label=node-role=cpu
		--node-pool gpu,count=2,cpu=32,memory=128Gi,gpus=8,label=node-role=gpu,taint=nvidia.com/gpu=present:NoSchedule" ;;
	*) nodes="--operator --nodes 4" ;;
	esac
	# shellcheck disable=SC2086
	"$BUILD/kubesim" --listen "127.0.0.1:$((PORT + i))" --name "$name" \
		--namespace spark-jobs --namespace spark-search-1 --namespace spark-search-2 \
		--priority-class critical-driver=1001000 --priority-class critical-executor=2000 \
		--openapi tests/k8s/schemas $nodes &
	pids="$pids $!"
done

config="$DATA/sparkgw.yaml"
{
	cat contrib/demo.yaml
	sed "s|@KUBECONFIG@|$kubeconfig|g" contrib/demo-policy.yaml
} > "$config"

echo "sparkgw: clusters sim-a, sim-b (driver pods) and sim-c (Spark operator);" \
	"kubectl --kubeconfig $kubeconfig --context sim-a get pods -A" >&2
"$BUILD/sparkgw" --config "$config" --listen "127.0.0.1:$PORT" --data "$DATA" &
gateway=$!
pids="$pids $gateway"
wait "$gateway"
