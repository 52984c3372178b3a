#!/bin/bash
# SPDX-License-Identifier: MIT
# Uploads files around the chunk boundaries with 1 and 8 streams; each
# stored file must equal its source byte for byte, and the receipt must
# equal the one "paraflow digest" computes locally.
. "$(dirname "$0")/lib.sh"

start_server

M=$((4 * 1024 * 1024))
for size in 0 1 $((M - 1)) $M $((M + 1)) $((64 * 1024 * 1024)); do
	mkfile "$T/src" "$size"
	want=$(sha "$T/src")
	receipt=$("$PARAFLOW" digest "$T/src" | cut -d' ' -f1)
	for threads in 1 8; do
		out=$(upload --file "$T/src" --name "f-$size-$threads.bin" \
		    --threads "$threads" --json)
		rc=$?
		check_eq "size $size, $threads threads: exit 0" 0 "$rc"
		sid=$(json_field "$out" session)
		got=$(sha "$(stored_file "$sid" "f-$size-$threads.bin")" \
		    2>/dev/null)
		check_eq "size $size, $threads threads: stored file identical" \
		    "$want" "$got"
		check_eq "size $size, $threads threads: receipt matches digest" \
		    "$receipt" "$(json_field "$out" digest)"
	done
done

# A non-default chunk size: 64 KiB chunks, 3 MiB + 5 bytes, 4 streams.
mkfile "$T/src" $((3 * 1024 * 1024 + 5))
out=$(upload --file "$T/src" --name small-chunks.bin --chunk-size 64K \
    --threads 4 --json)
sid=$(json_field "$out" session)
check_eq "64 KiB chunks: stored file identical" "$(sha "$T/src")" \
    "$(sha "$(stored_file "$sid" small-chunks.bin)" 2>/dev/null)"
check_eq "64 KiB chunks: 49 chunks" 49 "$(json_field "$out" chunks)"
check_eq "64 KiB chunks: receipt matches digest" \
    "$("$PARAFLOW" digest --chunk-size 64K "$T/src" | cut -d' ' -f1)" \
    "$(json_field "$out" digest)"

# Two uploads of the same name never collide.
mkfile "$T/a" 1000
mkfile "$T/b" 2000
s1=$(json_field "$(upload --file "$T/a" --name same.bin --json)" session)
s2=$(json_field "$(upload --file "$T/b" --name same.bin --json)" session)
check "same name twice: two sessions" [ "$s1" != "$s2" ]
check_eq "same name twice: first kept" "$(sha "$T/a")" \
    "$(sha "$(stored_file "$s1" same.bin)")"
check_eq "same name twice: second kept" "$(sha "$T/b")" \
    "$(sha "$(stored_file "$s2" same.bin)")"

check "session ids are UUIDv4" bash -c "[[ $s1 =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]]"
check "staging area is empty after the uploads" staging_empty
mode=$(stat -c %a "$(stored_file "$s1" same.bin)")
check_eq "stored files are 0600" 600 "$mode"
check_eq "session directories are 0700" 700 "$(stat -c %a "$STORAGE/$s1")"
check "metadata keeps the receipt" grep -q '"digest"' \
    "$STORAGE/$s1/.paraflow.json"

stop_server
done_testing
