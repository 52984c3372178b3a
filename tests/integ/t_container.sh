#!/bin/bash
# SPDX-License-Identifier: MIT
# The image, for real: docker/Dockerfile built with podman, run as
# docs/deploy.md says (a users file made with the image, a named volume),
# and docker/compose.yaml brought up with podman-compose. Against each,
# the host's paraflow uploads a file, and the stored copy, the REST
# listing, "podman healthcheck run", PID 1's uid and a clean stop are
# checked; under compose also the environment, the read-only root, the
# dropped capabilities, and that the container stays up. The Dockerfile's
# base image is made once with debootstrap from this machine's Debian
# mirror and kept in podman's store for the next run.
#
# Needs root. Where podman cannot run containers the test skips, saying
# why; with PF_CONTAINER_REQUIRED=1 (CI) that is a failure instead.
# PF_DEBIAN_MIRROR=URL overrides the mirror found in apt's sources.
. "$(dirname "$0")/lib.sh"

srcdir=$(cd "$here/../.." && pwd)

# The caller's own PARAFLOW_* settings must not reach podman-compose.
for v in $(compgen -e); do
	case $v in
	PARAFLOW_STATE_DIR) ;;
	PARAFLOWD | PARAFLOW_*) unset "$v" ;;
	esac
done

# unavailable REASON: this machine cannot run the image. In CI a skip
# would hide a broken image, as it once did, so there it fails.
unavailable() {
	if [ "${PF_CONTAINER_REQUIRED:-}" = 1 ]; then
		not_ok "podman runs the image here (PF_CONTAINER_REQUIRED=1)"
		echo "#   $*"
		done_testing
	fi
	skip_all "$*"
}

# The image builds its own paraflowd without sanitizers: the sanitizer
# build would only repeat the plain build's run, at a minute's cost.
if grep -q '^SAN_CFLAGS = .*-fsanitize' "$top_builddir/Makefile" \
    2>/dev/null; then
	skip_all "sanitizer build (the image has no sanitizers; the plain" \
	    "build runs this test)"
fi

[ "$(id -u)" -eq 0 ] ||
    unavailable "needs root (rootful podman, debootstrap)"
for c in podman podman-compose python3; do
	command -v "$c" >/dev/null 2>&1 ||
	    unavailable "$c not found (scripts/deps.sh installs it)"
done

# lim HARD CAP: the smaller of a hard limit ("unlimited" or a number) and
# CAP.
lim() {
	if [ "$1" = unlimited ] || [ "$1" -gt "$2" ]; then
		echo "$2"
	else
		echo "$1"
	fi
}

# podman on runc: crun fails on some kernels' cgroup v1 setups. Its
# default ulimits for root (1048576 files) are more than some machines
# allow, so ask for no more than this shell may have.
nofile=$(lim "$(ulimit -Hn)" 20000)
nproc=$(lim "$(ulimit -Hu)" 4096)
{
	echo '[containers]'
	echo "default_ulimits = [\"nofile=$nofile:$nofile\"," \
	    "\"nproc=$nproc:$nproc\"]"
	if command -v runc >/dev/null 2>&1; then
		echo '[engine]'
		echo 'runtime = "runc"'
	fi
} >"$T/containers.conf"
export CONTAINERS_CONF=$T/containers.conf

# pm ARGS...: podman, but never for ever.
pm() {
	timeout 300 podman "$@"
}

pm info >"$T/info.log" 2>&1 ||
    unavailable "podman info fails: $(tail -n 1 "$T/info.log")"

# Everything this run makes is named after it ($run- or $run_, compose's
# names), so that cleanup finds it all, and a second run (or another
# tree's) never meets it.
run=pftest-$$-$RANDOM
IMG=localhost/paraflow-test:$run
CTR=$run-run
VOL=$run-data

# podman_cleanup: removes this run's containers (compose's too: they are
# named after the project), pods, volumes, networks and image, even after
# a failure. The base image stays, for the next run.
# shellcheck disable=SC2317 # called by the EXIT trap
podman_cleanup() {
	local kind ids
	for kind in container pod volume network; do
		case $kind in
		container) ids=$(pm ps -a -q --filter "name=^${run}[-_]") ;;
		*) ids=$(pm "$kind" ls -q --filter "name=^${run}[-_]") ;;
		esac 2>/dev/null
		# shellcheck disable=SC2086 # one word per object
		case $kind in
		container) [ -z "$ids" ] || pm rm -f -t 0 $ids ;;
		*) [ -z "$ids" ] || pm "$kind" rm -f $ids ;;
		esac >/dev/null 2>&1
	done
	pm rmi -f "$IMG" >/dev/null 2>&1
}
trap 'podman_cleanup; cleanup' EXIT
# A test stopped by make or by hand cleans up too.
trap 'exit 143' TERM
trap 'exit 130' INT

# show FILE: the end of FILE as TAP comments.
show() {
	tail -n "${2:-30}" "$1" | sed 's/^/#   /'
}

# --- The base image ----------------------------------------------------

# The Dockerfile's FROM, as podman names it, and the Debian suite to make
# it from.
from=$(sed -n 's/^FROM[[:space:]]\{1,\}\([^[:space:]]*\).*/\1/p' \
    "$srcdir/docker/Dockerfile" | sort -u)
case $from in
debian:12 | debian:12-slim | debian:bookworm | debian:bookworm-slim)
	suite=bookworm ;;
*) unavailable "no recipe here to make the base image '$from'" ;;
esac
base=docker.io/library/$from

# debian_mirror SUITE...: the first mirror of the Debian archive apt uses
# here for one of the SUITEs, from one-line .list files or deb822
# .sources files.
debian_mirror() {
	local want=" $* " f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
	    /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		case $f in
		*.sources)
			awk -v want="$want" '
			function flush(  n, i, s, u) {
				n = split(suites, s, " ")
				if (types ~ /(^| )deb( |$)/ &&
				    enabled !~ /^(no|false)$/)
					for (i = 1; i <= n; i++)
						if (index(want, " " s[i] " ")) {
							split(uris, u, " ")
							print u[1]
							break
						}
				types = uris = suites = enabled = ""
			}
			function value() {
				return substr($0, index($0, ":") + 1)
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			tolower($1) == "types:" { types = value() }
			tolower($1) == "uris:" { uris = value() }
			tolower($1) == "suites:" { suites = value() }
			tolower($1) == "enabled:" { enabled = tolower($2) }
			END { flush() }' "$f"
			;;
		*)
			# "deb [options] URI SUITE COMPONENT..."
			sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" |
			    awk -v want="$want" '$1 == "deb" &&
			    index(want, " " $3 " ") { print $2 }'
			;;
		esac
	done | head -n 1
}

# The host's own codename also names a suite its Debian mirror has.
codename=
if [ -r /etc/os-release ] && grep -q '^ID=debian$' /etc/os-release; then
	codename=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release)
fi

# Made once for every tree on this machine: wait while another run makes
# it. The lock is on fd 9, which no long-lived process inherits: nothing
# started below the lock outlives it.
exec 9>"${TMPDIR:-/tmp}/paraflow-test-base-image.lock"
flock -w 900 9 || unavailable "waited 15 min for another run's base image"
if pm image exists "$base"; then
	ok "base image $base is in podman's store (reused)"
else
	mirror=${PF_DEBIAN_MIRROR:-$(debian_mirror "$suite" \
	    ${codename:+"$codename"})}
	[ -n "$mirror" ] || unavailable "no Debian mirror for $suite in" \
	    "/etc/apt/sources.list* (set PF_DEBIAN_MIRROR)"
	command -v debootstrap >/dev/null 2>&1 ||
	    unavailable "debootstrap not found (scripts/deps.sh installs it)"
	echo "# making $base: debootstrap $suite from $mirror"
	t0=$SECONDS
	# A mount namespace of its own: the /proc and /sys debootstrap mounts
	# in the new root go with it, even if it fails halfway.
	if unshare -m debootstrap --variant=minbase "$suite" "$T/rootfs" \
	    "$mirror" >"$T/debootstrap.log" 2>&1 &&
	    tar -C "$T/rootfs" -c . 2>>"$T/debootstrap.log" |
	    pm import --change 'CMD ["bash"]' - "$base" \
	    >>"$T/debootstrap.log" 2>&1; then
		ok "base image $base made by debootstrap ($((SECONDS - t0)) s)"
	else
		not_ok "base image $base made with debootstrap from $mirror"
		show "$T/debootstrap.log"
		done_testing
	fi
	rm -rf "$T/rootfs"
fi
exec 9>&-

if ! pm run --rm --network none "$base" true >"$T/probe.log" 2>&1; then
	unavailable "podman cannot run a container here: $(tail -n 1 \
	    "$T/probe.log")"
fi

# --- The image ---------------------------------------------------------

# --format docker: podman's default, OCI, has no HEALTHCHECK and drops it.
# No intermediate images (--layers=false), so that nothing stays behind;
# nice, so that the build disturbs the tests that run beside it less.
t0=$SECONDS
if nice -n 10 timeout 1200 podman build --format docker --layers=false \
    -f "$srcdir/docker/Dockerfile" -t "$IMG" "$srcdir" \
    >"$T/build.log" 2>&1; then
	ok "podman build --format docker ($((SECONDS - t0)) s)"
else
	not_ok "podman build --format docker -f docker/Dockerfile"
	show "$T/build.log" 40
	done_testing
fi
hc=$(pm image inspect -f '{{.Config.Healthcheck}}' "$IMG")
case $hc in
*/healthz*) ok "the image keeps its HEALTHCHECK" ;;
*) not_ok "the image keeps its HEALTHCHECK (got '$hc')" ;;
esac
check_eq "the image runs as 10001:10001" 10001:10001 \
    "$(pm image inspect -f '{{.Config.User}}' "$IMG")"

# The users file, as docs/deploy.md makes it: with the image, the
# password on standard input, then given to the image's user.
mkdir -m 0700 "$T/secrets"
rc=0
for u in alice bob; do
	printf 'pw-%s\n' "$u" | pm run --rm -i --network none \
	    --user "$(id -u):$(id -g)" -v "$T/secrets:/secrets" "$IMG" \
	    paraflowd --users /secrets/paraflow_users --add-user "$u" \
	    >>"$T/users.log" 2>&1 || rc=$?
done
check_eq "paraflowd --add-user from the image makes the users file" 0 "$rc"
[ "$rc" = 0 ] || show "$T/users.log"
USERS=$T/secrets/paraflow_users
chown 10001:10001 "$USERS"

# --- Checks on a running container ------------------------------------

# host_port CTR PORT: the host port podman published CTR's PORT on.
host_port() {
	local p
	p=$(pm port "$1" "$2/tcp" | head -n 1)
	echo "${p##*:}"
}

# healthy CTR: the image's health check passes now.
# shellcheck disable=SC2317 # called through wait_for
healthy() {
	pm healthcheck run "$1" >/dev/null 2>&1
}

# listed SID: the session list on stdin has SID, complete.
# shellcheck disable=SC2317 # called through check
listed() {
	python3 -c 'import json, sys
s = json.load(sys.stdin)["sessions"]
sys.exit(not any(x["id"] == sys.argv[1] and x["state"] == "complete"
                 for x in s))' "$1"
}

# status_field PID FIELD: a line of /proc/PID/status, without its name.
status_field() {
	awk -v f="$2:" '$1 == f { $1 = ""; sub(/^ /, ""); print }' \
	    "/proc/$1/status"
}

# serves CTR VOLUME WHAT: CTR passes its health check, runs paraflowd as
# PID 1 under uid 10001, and stores an upload of the host's paraflow in
# VOLUME, which bob (in PARAFLOW_ADMINS) then sees over REST. Sets CPID
# (PID 1's pid on the host). False, after its log, if CTR never gets
# healthy.
serves() {
	local ctr=$1 vol=$2 what=$3 port hport out sid mp f rc=0
	if wait_for 30 healthy "$ctr"; then
		ok "$what: podman healthcheck run passes"
	else
		not_ok "$what: podman healthcheck run passes"
		pm ps -a --filter "name=$ctr" | sed 's/^/#   /'
		pm logs "$ctr" >"$T/logs" 2>&1
		show "$T/logs" 10
		return 1
	fi
	check_eq "$what: podman inspect says healthy" healthy \
	    "$(pm inspect -f '{{.State.Health.Status}}' "$ctr")"
	CPID=$(pm inspect -f '{{.State.Pid}}' "$ctr")
	check_eq "$what: PID 1 is paraflowd" "1 /usr/sbin/paraflowd" \
	    "$(status_field "$CPID" NSpid | awk '{ print $NF }') $(readlink \
	    "/proc/$CPID/exe")"
	check_eq "$what: PID 1 runs as uid 10001" "10001 10001 10001 10001" \
	    "$(status_field "$CPID" Uid | tr -s '\t ' ' ')"

	port=$(host_port "$ctr" 7878)
	hport=$(host_port "$ctr" 8080)
	f=$T/$what.dat
	mkfile "$f" 10000000
	out=$(PARAFLOW_SECRET=pw-alice timeout 60 "$PARAFLOW" upload \
	    --port "$port" --quiet --json --user alice --file "$f" \
	    2>"$T/client.err") || rc=$?
	check_eq "$what: paraflow upload from the host (port $port)" 0 "$rc"
	[ "$rc" = 0 ] || show "$T/client.err"
	sid=$(json_field "$out" session)
	mp=$(pm volume inspect -f '{{.Mountpoint}}' "$vol")
	check "$what: the upload is stored byte for byte in volume $vol" \
	    cmp -s "$f" "$mp/$sid/${f##*/}"
	check_eq "$what: the stored file belongs to uid 10001" 10001 \
	    "$(stat -c %u "$mp/$sid/${f##*/}" 2>&1)"
	# The gateway is HTTPS with the container's self-signed key (-k:
	# this checks PARAFLOW_ADMINS, the TLS tests are t_http*.sh).
	check "$what: bob (PARAFLOW_ADMINS) sees it complete over REST" \
	    listed "$sid" < <(curl -fsSk --max-time 60 -u bob:pw-bob \
	    "https://127.0.0.1:$hport/api/v1/sessions")
	return 0
}

# stops_cleanly CTR WHAT COMMAND...: COMMAND stops CTR, whose paraflowd
# exits 0 on SIGTERM well before podman would kill it.
stops_cleanly() {
	local ctr=$1 what=$2 t0 ms
	shift 2
	t0=${EPOCHREALTIME//[.,]/}
	"$@" >"$T/stop.log" 2>&1 || show "$T/stop.log"
	ms=$(( (${EPOCHREALTIME//[.,]/} - t0) / 1000 ))
	check_eq "$what: stopped, exit status 0 ($ms ms)" "exited 0" \
	    "$(pm inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$ctr")"
	check "$what: paraflowd stopped on SIGTERM" \
	    grep -q 'Terminated received, stopping' \
	    < <(pm logs "$ctr" 2>&1)
	# podman's own stop and clean-up take seconds on a loaded machine:
	# 15 s, well short of the 20 s after which podman would SIGKILL it
	# (and the exit status 0 above says it did not).
	check "$what: stopped well before podman's 20 s" \
	    test "$ms" -lt 15000
}

# --- As docs/deploy.md runs it, without compose --------------------------

rc=0
pm volume create "$VOL" >"$T/run.log" 2>&1 &&
    pm run -d --name "$CTR" -p 127.0.0.1::7878 -p 127.0.0.1::8080 \
    -v "$VOL:/var/lib/paraflow" \
    -v "$USERS:/run/secrets/paraflow_users:ro" \
    -e PARAFLOW_ADMINS=bob --stop-timeout 20 "$IMG" >>"$T/run.log" 2>&1 ||
    rc=$?
check_eq "podman run -d the image with a users file and a volume" 0 "$rc"
if [ "$rc" != 0 ]; then
	show "$T/run.log"
elif serves "$CTR" "$VOL" run; then
	stops_cleanly "$CTR" run pm stop -t 20 "$CTR"
fi

# --- docker/compose.yaml under podman-compose ---------------------------

# The file as it is, but for the image just built, the source tree as the
# build context, and its ports published on ephemeral ports of loopback.
python3 - "$srcdir/docker/compose.yaml" "$IMG" "$srcdir" \
    >"$T/compose.yaml" <<'EOF'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
s = c["services"]["paraflowd"]
s["image"] = sys.argv[2]
s["build"]["context"] = sys.argv[3]
s["ports"] = ["127.0.0.1::" + p.rsplit(":", 1)[1] for p in s["ports"]]
yaml.safe_dump(c, sys.stdout)
EOF

# pc ARGS...: podman-compose on that file, as project $run, with bob as
# admin and PARAFLOW_MAX_FILE_SIZE unset (which once reached the
# container as the text "${PARAFLOW_MAX_FILE_SIZE:-}").
pc() {
	timeout 300 env PARAFLOW_ADMINS=bob PARAFLOW_USERS_HOST_FILE="$USERS" \
	    podman-compose -p "$run" -f "$T/compose.yaml" "$@"
}

cctr=${run}_paraflowd_1
rc=0
pc up -d >"$T/compose.log" 2>&1 || rc=$?
if [ "$rc" = 0 ] && pm container exists "$cctr"; then
	ok "podman-compose up -d"
else
	not_ok "podman-compose up -d (exit $rc)"
	show "$T/compose.log"
	done_testing
fi
env=$(pm inspect -f '{{range .Config.Env}}{{println .}}{{end}}' "$cctr")
# shellcheck disable=SC2016 # a literal "${"
check_eq "compose: no variable reaches the container unexpanded" "" \
    "$(printf '%s\n' "$env" | grep -F '${')"
check_eq "compose: PARAFLOW_ADMINS comes from the environment" \
    PARAFLOW_ADMINS=bob "$(printf '%s\n' "$env" | grep '^PARAFLOW_ADMINS=')"
check_eq "compose: PARAFLOW_MAX_FILE_SIZE unset stays unset" "" \
    "$(printf '%s\n' "$env" | grep '^PARAFLOW_MAX_FILE_SIZE=')"
check_eq "compose: PARAFLOW_MIN_FREE_SPACE has its default" \
    PARAFLOW_MIN_FREE_SPACE=1G \
    "$(printf '%s\n' "$env" | grep '^PARAFLOW_MIN_FREE_SPACE=')"
if serves "$cctr" "${run}_paraflow-data" compose; then
	# restart: unless-stopped would hide an entrypoint that keeps failing.
	check_eq "compose: running, never restarted" "running 0" \
	    "$(pm inspect -f '{{.State.Status}} {{.RestartCount}}' "$cctr")"

	# read_only, cap_drop and security_opt, seen from the host. Even
	# root in the container cannot write to its root file system.
	rc=0
	out=$(pm exec --user 0 "$cctr" touch /etc/pf-probe 2>&1) || rc=$?
	case "$rc $out" in
	0*) not_ok "compose: the root file system is read-only (root wrote)" ;;
	*Read-only*) ok "compose: the root file system is read-only" ;;
	*)
		not_ok "compose: the root file system is read-only"
		echo "#   exit $rc: $out"
		;;
	esac
	for f in CapInh CapPrm CapEff CapBnd CapAmb; do
		check_eq "compose: PID 1 has no capabilities ($f)" \
		    0000000000000000 "$(status_field "$CPID" "$f")"
	done
	check_eq "compose: PID 1 has no_new_privs" 1 \
	    "$(status_field "$CPID" NoNewPrivs)"

	# podman-compose ignores stop_grace_period, and "down" stops with 1 s
	# unless told: docs/deploy.md says "-t 20".
	stops_cleanly "$cctr" compose pc stop -t 20
fi
rc=0
pc down -v -t 20 >"$T/down.log" 2>&1 || rc=$?
check_eq "podman-compose down -v" 0 "$rc"
check "compose: down removed its container and volume" test -z \
    "$(pm ps -a -q --filter "name=$cctr")$(pm volume ls -q \
    --filter "name=${run}_")"

done_testing
