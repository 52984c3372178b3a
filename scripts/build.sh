#!/bin/sh
# SPDX-License-Identifier: MIT
# Builds ParaFlow out of tree in DIR (default build/) with extra configure
# arguments: scripts/build.sh build-san --enable-asan --enable-ubsan
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-build}
[ $# -gt 0 ] && shift
cd "$top"
[ -x configure ] || autoreconf -fi
mkdir -p "$dir"
cd "$dir"
[ -f Makefile ] || "$top/configure" --enable-werror "$@"
make -j"$(nproc)"
