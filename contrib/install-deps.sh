#!/bin/sh
# Installs the Debian packages that building, running and testing sparkgw
# need. Idempotent: packages already present are left alone, and apt-get runs
# only when something is missing, so `make run` stays fast after the first time.
set -eu

PACKAGES="build-essential pkg-config clang libmicrohttpd-dev libjansson-dev
libcurl4-openssl-dev libsqlite3-dev libssl-dev libyaml-dev libgnutls28-dev check curl
openssl valgrind python3-prometheus-client prometheus chromium wrk libpq-dev postgresql zsh"

# libmicrohttpd's TLS is GnuTLS: its headers let the gateway verify client
# certificates. valgrind runs the end-to-end suite once (make test-valgrind).
# The metrics test reads /metrics with the Prometheus client's own parser
# and lints it with promtool (package prometheus; its server is not started);
# the dashboard test drives Debian's Chromium with playwright-core (npm).
# `make bench` loads the gateway with wrk. The PostgreSQL store links
# libpq; its tests start their own server with postgresql's initdb. zsh
# loads the command line's zsh completion in a test.
# The tests also run node (objects against the schemas in tests/k8s) and
# kubectl, which the machine image provides; node comes from Debian if it is
# absent.
command -v node >/dev/null 2>&1 || PACKAGES="$PACKAGES nodejs"
command -v npm >/dev/null 2>&1 || PACKAGES="$PACKAGES npm"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	echo "install-deps: installing:$missing" >&2
	if [ "$(id -u)" -ne 0 ]; then
		SUDO=sudo
	else
		SUDO=
	fi
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get update -q
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -q --no-install-recommends $missing
fi

# The tests' npm packages, pinned by their lock files: playwright-core for
# the dashboard, a published Livy client for the Livy API, ajv for the
# Kubernetes schemas, the official Kubernetes JavaScript client and Redocly's
# CLI, which lints api/openapi.yaml.
cd "$(dirname "$0")/.."
for pkg in browser/playwright-core livy/livy-client k8s/ajv k8s/@kubernetes/client-node contract/@redocly/cli; do
	if [ ! -d "tests/${pkg%%/*}/node_modules/${pkg#*/}" ]; then
		echo "install-deps: npm ci in tests/${pkg%%/*}" >&2
		(cd "tests/${pkg%%/*}" && npm ci --no-audit --no-fund --loglevel=error)
	fi
done
