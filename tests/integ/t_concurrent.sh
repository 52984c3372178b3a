#!/bin/bash
# SPDX-License-Identifier: MIT
# Eight clients upload at once to one server, each over four streams:
# first eight different files of random sizes, then the same content under
# the same name eight times. Every upload must get its own session and
# arrive byte for byte, and nothing may be left in the staging area.
. "$(dirname "$0")/lib.sh"

N=8
MIB=$((1024 * 1024))

# shellcheck disable=SC2119 # no extra server options
start_server

# run_clients PREFIX SRC...: starts one upload per source at once, waits
# for all, and leaves each exit status in $T/PREFIX.rc.$i and its JSON
# result in $T/PREFIX.out.$i.
run_clients() {
	local prefix=$1 i pids=() rc
	shift
	for ((i = 0; i < N; i++)); do
		upload --file "$1" --name "$2" --threads 4 --json \
		    >"$T/$prefix.out.$i" 2>"$T/$prefix.err.$i" &
		pids+=("$!")
		shift 2
	done
	for ((i = 0; i < N; i++)); do
		rc=0
		wait "${pids[$i]}" || rc=$?
		echo "$rc" >"$T/$prefix.rc.$i"
	done
}

# check_clients PREFIX DESC: the TAP results common to both rounds; sets
# SIDS to the session ids, in client order.
check_clients() {
	local prefix=$1 desc=$2 i rc out bad=0
	SIDS=()
	for ((i = 0; i < N; i++)); do
		rc=$(cat "$T/$prefix.rc.$i")
		out=$(cat "$T/$prefix.out.$i")
		if [ "$rc" != 0 ]; then
			bad=$((bad + 1))
			echo "# client $i: exit $rc: $out"
			sed 's/^/#   /' "$T/$prefix.err.$i"
		fi
		SIDS+=("$(json_field "$out" session)")
	done
	check_eq "$desc: all $N clients exit 0" 0 "$bad"
	check_eq "$desc: $N distinct session ids" "$N" \
	    "$(printf '%s\n' "${SIDS[@]}" | grep -c . | tr -d ' ')"
	check_eq "$desc: no session id shared" "$N" \
	    "$(printf '%s\n' "${SIDS[@]}" | grep . | sort -u | wc -l |
	    tr -d ' ')"
}

# Round 1: eight different files, 16 to 40 MiB each.
args=()
for ((i = 0; i < N; i++)); do
	size=$((16 * MIB + (RANDOM * 32768 + RANDOM) % (24 * MIB + 1)))
	mkfile "$T/src.$i" "$size"
	echo "# client $i: $size bytes"
	args+=("$T/src.$i" "file-$i.bin")
done
run_clients diff "${args[@]}"
check_clients diff "different files"
same=0
for ((i = 0; i < N; i++)); do
	want=$(sha "$T/src.$i")
	got=$(sha "$(stored_file "${SIDS[$i]}" "file-$i.bin")" 2>/dev/null)
	if [ "$want" = "$got" ]; then
		same=$((same + 1))
	else
		echo "# client $i: stored file differs (session ${SIDS[$i]})"
	fi
done
check_eq "different files: all $N stored files identical" "$N" "$same"
check_eq "different files: $N uploads stored" "$N" "$(stored_count | tr -d ' ')"
check "different files: staging area empty" staging_empty
rm -f "$T"/src.*

# Round 2: the same content under the same name, eight times at once.
mkfile "$T/same" $((24 * MIB + 12345))
want=$(sha "$T/same")
args=()
for ((i = 0; i < N; i++)); do
	args+=("$T/same" same.bin)
done
run_clients same "${args[@]}"
check_clients same "same name and content"
same=0
for ((i = 0; i < N; i++)); do
	got=$(sha "$(stored_file "${SIDS[$i]}" same.bin)" 2>/dev/null)
	[ "$want" = "$got" ] && same=$((same + 1))
done
check_eq "same name and content: all $N stored files identical" "$N" \
    "$same"
check_eq "same name and content: $N more uploads stored" $((2 * N)) \
    "$(stored_count | tr -d ' ')"
check_eq "same name and content: one file per session directory" "$N" \
    "$(for s in "${SIDS[@]}"; do ls "$STORAGE/$s"; done | grep -c '^same\.bin$')"
check "same name and content: staging area empty" staging_empty

stop_server
done_testing
