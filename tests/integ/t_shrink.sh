#!/bin/bash
# SPDX-License-Identifier: MIT
# A file cut short while it is uploaded. In plaintext the client hashes
# and sends each chunk from a mapping of the file (cli/chunkio.c), where
# pages past the new end raise SIGBUS (our hash) or fail the send with
# EFAULT (the kernel's copy); over TLS it reads the chunk into a buffer
# and the read comes up short. Either way the upload must end with the
# local-file error (exit 7), never be killed by a signal, and the server
# takes the next upload. tests/unit/test_chunkio.c cuts a file at a
# chosen point, so that the SIGBUS path runs every time.
. "$(dirname "$0")/lib.sh"

for mode in tls plain; do
	args=()
	[ "$mode" = plain ] && args=(--no-tls)
	start_server --no-http "${args[@]}"
	# 96 MiB at 2 MiB/s: still sending long after the first ACK.
	mkfile "$T/src" $((96 * 1024 * 1024))
	upload --file "$T/src" --name cut.bin --limit-rate 2M --threads 2 \
	    --no-resume -v >"$T/out" 2>"$T/err" &
	pid=$!
	check "$mode: a chunk is acknowledged" \
	    wait_for 60 grep -q 'chunk [0-9]* acknowledged' "$T/err"
	: >"$T/src"
	rc=0
	wait "$pid" || rc=$?
	check_eq "$mode: the upload ends as a local file error" 7 "$rc"
	check "$mode: the client says the file shrank" \
	    grep -q 'file shrank' "$T/err"
	check "$mode: and that it cannot read the file" \
	    grep -q 'cannot read the file' "$T/err"
	mkfile "$T/next" $((5 * 1024 * 1024))
	out=$(upload --file "$T/next" --name next.bin --json)
	check_eq "$mode: the next upload is stored intact" "$(sha "$T/next")" \
	    "$(sha "$(stored_file "$(json_field "$out" session)" next.bin)" \
	    2>/dev/null)"
	stop_server
done

done_testing
