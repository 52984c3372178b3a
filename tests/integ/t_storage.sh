#!/bin/bash
# SPDX-License-Identifier: MIT
# A server that runs out of room: with a file size limit (RLIMIT_FSIZE) the
# upload is refused with storage_full, nothing is stored, the staging area
# is cleaned and the server goes on serving uploads that fit.
. "$(dirname "$0")/lib.sh"

# ulimit -f counts 1024-byte blocks; the limit is inherited by paraflowd.
(ulimit -f 10240 && exec "$PARAFLOWD" --port 0 --bind 127.0.0.1 --no-http \
    --storage "$STORAGE" --port-file "$T/port" 2>>"$T/server.log") &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
wait_file "$T/port" 60 || { echo "# paraflowd did not start"; exit 1; }
PORT=$(cat "$T/port")

mkfile "$T/big" $((20 * 1024 * 1024))
out=$(upload --file "$T/big" --json)
rc=$?
check_eq "over the size limit: exit 8" 8 "$rc"
check_eq "over the size limit: storage_full" storage_full \
    "$(json_field "$out" code)"
check_eq "over the size limit: nothing stored" 0 "$(stored_count)"
check "over the size limit: staging empty" staging_empty
check "server survived SIGXFSZ" kill -0 "$SERVER_PID"

mkfile "$T/small" $((1024 * 1024))
out=$(upload --file "$T/small" --json)
check_eq "a file that fits still uploads" 0 $?
sid=$(json_field "$out" session)
check_eq "and arrives identical" "$(sha "$T/small")" \
    "$(sha "$(stored_file "$sid" small)" 2>/dev/null)"

stop_server
done_testing
