# SPDX-License-Identifier: MIT
# Shared helpers for the tus tests (t_tus*.sh): the headers every tus
# request carries, and the creation and PATCH of an upload of alice's.
# Source it after lib_http.sh.
# shellcheck shell=bash
# shellcheck disable=SC2034 # the arrays are read by the tests

TUS=(-H 'Tus-Resumable: 1.0.0')
OCT=(-H 'Content-Type: application/offset+octet-stream')
ALICE=(-u alice:alice-pw)

# create SIZE NAME [CURL ARGS...]: POSTs a new upload of alice's; its
# path in LOC, id in ID.
create() {
	local size=$1 name=$2
	shift 2
	req "${ALICE[@]}" "${TUS[@]}" -X POST -H "Upload-Length: $size" \
	    -H "Upload-Metadata: filename $(printf %s "$name" | base64 -w0)" \
	    "$@" /api/v1/uploads
	LOC=$(hdr Location)
	ID=${LOC##*/}
}

# patch OFFSET FILE [CURL ARGS...]: PATCHes FILE's bytes to $LOC as alice.
patch() {
	local off=$1 f=$2
	shift 2
	req "${ALICE[@]}" "${TUS[@]}" "${OCT[@]}" -X PATCH \
	    -H "Upload-Offset: $off" --data-binary "@$f" "$@" "$LOC"
}
