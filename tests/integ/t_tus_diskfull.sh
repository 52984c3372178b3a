#!/bin/bash
# SPDX-License-Identifier: MIT
# A tus upload whose disk fills up in the middle of a PATCH (storage on a
# 40 MiB tmpfs in a mount namespace of the test's own, as t_diskfull.sh):
# the PATCH answers 507 storage_full, HEAD's offset stays truthful (whole
# chunks, all of them durable: the stored file ends identical), and once
# space is freed the upload goes on from there and completes.
if [ -z "${PF_NS:-}" ] && command -v unshare >/dev/null 2>&1 &&
    unshare -m -n true 2>/dev/null; then
	PF_NS=1 exec unshare -m -n bash "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_http.sh"
. "$(dirname "$0")/lib_tus.sh"
need_api_tools

storage_on_tmpfs 40m
MIB=$((1024 * 1024))
CHUNK=$((4 * MIB))
add_users alice
# One user may fill the disk here: 24 MiB is over half of the 40 MiB.
start_gw --users "$U" --max-user-share 100

mkfile "$T/f" $((24 * MIB))
req "${ALICE[@]}" "${TUS[@]}" -X POST -H "Upload-Length: $((24 * MIB))" \
    -H "Upload-Metadata: filename $(printf f.bin | base64)" /api/v1/uploads
check_eq "a 24 MiB upload on 40 MiB: 201" 201 "$CODE"
LOC=$(hdr Location)
head -c $((8 * MIB)) "$T/f" >"$T/f1"
req "${ALICE[@]}" "${TUS[@]}" "${OCT[@]}" -X PATCH -H 'Upload-Offset: 0' \
    --data-binary @"$T/f1" "$LOC"
check_eq "its first 8 MiB: 204" "204 $((8 * MIB))" \
    "$CODE $(hdr Upload-Offset)"

# The staging data file was preallocated; the journal was not.
dd if=/dev/zero of="$STORAGE/filler" bs=64k 2>/dev/null
tail -c +$((8 * MIB + 1)) "$T/f" >"$T/f2"
req "${ALICE[@]}" "${TUS[@]}" "${OCT[@]}" -X PATCH \
    -H "Upload-Offset: $((8 * MIB))" --data-binary @"$T/f2" "$LOC"
check_eq "the rest on a full disk: 507 storage_full" "507 storage_full" \
    "$CODE $(jget error.code)"
# Never the length while the file is not stored: tus clients would take
# it as done. All of it may be durable (the journal's last page had
# room) and only the storing failed: HEAD tries it again, and fails.
req "${ALICE[@]}" "${TUS[@]}" -I "$LOC"
off=$(hdr Upload-Offset)
echo "# HEAD after the failed PATCH: $CODE, offset ${off:-none}"
short_whole() {
	[ "$CODE" = 200 ] && [ "$((off % CHUNK))" = 0 ] &&
	    [ "$off" -ge $((8 * MIB)) ] && [ "$off" -lt $((24 * MIB)) ]
}
full_unstored() {
	[ "$CODE" = 507 ]
}
check "... HEAD: whole durable chunks short of the length, or 507" \
    eval 'short_whole || full_unstored'

rm -f "$STORAGE/filler"
req "${ALICE[@]}" "${TUS[@]}" -I "$LOC"
off=$(hdr Upload-Offset)
check_eq "space freed: HEAD 200" 200 "$CODE"
if [ "$off" != $((24 * MIB)) ]; then
	tail -c +$((off + 1)) "$T/f" >"$T/f3"
	req "${ALICE[@]}" "${TUS[@]}" "${OCT[@]}" -X PATCH \
	    -H "Upload-Offset: $off" --data-binary @"$T/f3" "$LOC"
	off=$(hdr Upload-Offset)
fi
check_eq "... the upload completes" $((24 * MIB)) "$off"
name=$(curl -s "${ALICE[@]}" "$HTTP_URL/api/v1/sessions/${LOC##*/}" |
    json_get name)
check "... stored file identical" cmp -s "$T/f" \
    "$STORAGE/${LOC##*/}/$name"
check_eq "... complete in the session view" complete \
    "$(curl -s "${ALICE[@]}" "$HTTP_URL/api/v1/sessions/${LOC##*/}" |
    json_get state)"

done_testing
