# SPDX-License-Identifier: MIT
# The prologue of the benchmarks: the source and build directories (a
# build first if there is none), a scratch directory that goes at exit
# with every process started, and the clock. Source it; don't run it.
# shellcheck shell=bash

# top: the source tree; bin: the build directory (BIN, default build/).
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-$top/build}

[ -x "$bin/paraflowd" ] || "$top/scripts/build.sh" build >/dev/null

# bench_init NAME: makes the scratch directory $work (NAME.XXXXXX in
# BENCH_DIR, default TMPDIR or /tmp) and the list pids of processes to
# stop; both go at exit.
bench_init() {
	work=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/$1.XXXXXX")
	pids=()
	trap bench_cleanup EXIT
}

# bench_cleanup: stops every process in pids and removes $work.
bench_cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}

# now: the time in seconds, with nanoseconds.
now() {
	date +%s.%N
}

# machine: one line on the machine the numbers come from.
machine() {
	echo "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' \
	    /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
}

# bench_need PACKAGE...: installs the Debian packages a benchmark's peers
# need (as scripts/deps.sh does for the tests), once.
bench_need() {
	local p missing=
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
		    grep -q 'install ok installed' || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	local sudo=
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $sudo apt-get \
	    -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
	    $missing >/dev/null
}
