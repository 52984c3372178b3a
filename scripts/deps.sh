#!/bin/sh
# SPDX-License-Identifier: MIT
# Installs the Debian 12 packages ParaFlow needs to build and test.
set -eu
PACKAGES="build-essential autoconf automake pkg-config libmicrohttpd-dev
libcurl4-openssl-dev libssl-dev libjansson-dev uuid-dev libcmocka-dev
libgsasl-dev libmagic-dev libicu-dev libexpat1-dev
netcat-openbsd curl procps clang libclang-rt-14-dev python3 iproute2
util-linux python3-jsonschema python3-yaml prometheus wrk"
# The power-loss test's FUSE filesystem (tests/integ/t_powerloss.sh).
PACKAGES="$PACKAGES fuse3 libfuse3-dev"
# Which files the client opens, and how often (tests/integ/t_folder.sh).
PACKAGES="$PACKAGES strace"
# Lint of the deployment files (tests/integ/t_deploy.sh).
PACKAGES="$PACKAGES shellcheck mandoc"
# The browser the dashboard test drives (tests/integ/t_dashboard.sh).
PACKAGES="$PACKAGES chromium"
# The image test (tests/integ/t_container.sh): Debian's podman on runc
# (crun fails on some kernels' cgroups), with netavark and iptables for
# published ports, podman-compose, and debootstrap for the base image.
PACKAGES="$PACKAGES podman runc netavark aardvark-dns iptables
podman-compose debootstrap"
# Test-only: the S3 tests' throwaway Ceph cluster with RadosGW
# (tests/s3/rgw.sh; no ceph-mgr, not needed) and awscli to check the
# bucket independently of ParaFlow.
PACKAGES="$PACKAGES ceph-mon ceph-osd radosgw ceph-common awscli"
# Test-only: the load balancer in front of several S3 nodes
# (tests/integ/t_s3_nodes.sh, docker/scale-out/).
PACKAGES="$PACKAGES haproxy"
# The OpenAPI linter (tests/node) runs on node; Debian's only when the
# machine has no node of its own.
command -v node >/dev/null 2>&1 || PACKAGES="$PACKAGES nodejs npm"
missing=
for p in $PACKAGES; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	SUDO=
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	export DEBIAN_FRONTEND=noninteractive
	$SUDO apt-get -o DPkg::Lock::Timeout=600 update -q
	# shellcheck disable=SC2086
	$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -q \
	    --no-install-recommends $missing
fi
# The test-only npm tools, as pinned in tests/node/package-lock.json (the
# tree itself is never committed), unless the tree there already matches
# it ("npm ls" says so).
nodedir=$(cd "$(dirname "$0")/.." && pwd)/tests/node
if command -v npm >/dev/null 2>&1 &&
    ! npm ls --prefix "$nodedir" >/dev/null 2>&1; then
	# Tried twice (a registry hiccup, or another npm sharing the cache,
	# leaves a corrupt tarball); not fatal: the tests that need these
	# tools fail or skip, saying why.
	npm ci --prefix "$nodedir" --no-audit --no-fund ||
	    npm ci --prefix "$nodedir" --no-audit --no-fund --prefer-online ||
	    echo "deps.sh: npm ci --prefix tests/node failed" >&2
fi
exit 0
