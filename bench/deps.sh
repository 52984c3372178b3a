#!/bin/bash
# SPDX-License-Identifier: MIT
# The Debian packages the benchmarks' peers need (not the tests': those
# are in scripts/deps.sh; CI does not run the benchmarks). bench/peers.sh
# runs this first; run it alone to install them ahead of a quiet run.
set -eu
. "$(dirname "$0")/lib.sh"
bench_need rsync openssh-server openssh-client netcat-openbsd curl \
    iproute2 bc wrk
# Any nginx with the dav module will do; nginx-light is the smallest.
command -v nginx >/dev/null || bench_need nginx-light
