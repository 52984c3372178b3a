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

# bench_gateway [ARG...]: user bench (password bench-pw) and a paraflowd
# with ARG... on ephemeral ports, its gateway included, storage and state
# in $work; sets port (the native protocol's) and url (the gateway's).
# shellcheck disable=SC2034 # port and url are read by the benchmarks
bench_gateway() {
	printf 'bench-pw\n' | "$bin/paraflowd" --users "$work/users" \
	    --add-user bench 2>/dev/null
	export PARAFLOW_STATE_DIR="$work/state"
	"$bin/paraflowd" --port 0 --port-file "$work/port" --http-port 0 \
	    --http-port-file "$work/hport" --storage "$work/storage" \
	    --users "$work/users" --quiet "$@" 2>>"$work/server.log" &
	pids+=($!)
	for _ in $(seq 100); do
		[ -s "$work/port" ] && [ -s "$work/hport" ] && break
		sleep 0.05
	done
	port=$(cat "$work/port")
	url=https://127.0.0.1:$(cat "$work/hport")
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

# CPU time per side, from cgroups: cg_init [GROUP...] makes the groups
# (default two: srv and cli) under the cgroup v2 mount (else v1's
# cpuacct); cg_run GROUP CMD... runs
# CMD in GROUP, where every process it forks stays; cg_usec GROUP prints
# the microseconds of CPU the group has used so far. For a background
# job use cg_exec GROUP CMD... & instead: it moves the job's own process
# and execs CMD there, so $! is CMD's pid (to kill). This counts forked
# daemons' children (rsync, sshd) that /proc/PID/stat would miss. Without
# a writable cgroup mount cg stays empty and cg_usec prints 0.
cg_init() {
	local m
	cg=
	m=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
	[ -n "$m" ] || m=$(awk '$3 == "cgroup" && $4 ~ /cpuacct/ {
	    print $2; exit }' /proc/mounts)
	[ -n "$m" ] && mkdir "$m/pf-bench.$$" 2>/dev/null || return 0
	cg=$m/pf-bench.$$
	cg_groups=${*:-srv cli}
	for m in $cg_groups; do mkdir "$cg/$m"; done
}

cg_exec() {
	[ -z "$cg" ] || echo "$BASHPID" >"$cg/$1/cgroup.procs"
	shift
	exec "$@"
}

cg_run() {
	( cg_exec "$@" )
}

cg_usec() {
	if [ -z "$cg" ]; then
		echo 0
	elif [ -f "$cg/$1/cpu.stat" ]; then
		awk '$1 == "usage_usec" { print $2 }' "$cg/$1/cpu.stat"
	else
		echo $(($(cat "$cg/$1/cpuacct.usage") / 1000))
	fi
}

# cg_done: removes the groups, once their processes are gone.
cg_done() {
	[ -n "$cg" ] || return 0
	local g
	for g in $cg_groups; do rmdir "$cg/$g" 2>/dev/null || true; done
	rmdir "$cg" 2>/dev/null || true
}
