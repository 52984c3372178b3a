#!/bin/bash
# SPDX-License-Identifier: MIT
# Downloads from the HTTP gateway (GET and HEAD of
# /api/v1/sessions/{id}/file) against docs/api.md: the whole file and
# single ranges (A-B, A-, -N) byte-compared with the source's slices, 416
# with Content-Range bytes */SIZE past the end, several ranges answered
# whole, ETag "<digest>" equal to `paraflow digest`, If-None-Match (304)
# and If-Range, the headers of HEAD equal to those of GET, an empty file,
# parallel downloads, Content-Disposition for hostile names (a quote, a
# semicolon, a percent sign, non-ASCII, and newlines, which the server
# turns into '_'), download links (no login, that file only, expiry and
# MAC checked), and 404 once the session is deleted or its file is gone
# from storage.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/lib_http.sh"
need_api_tools

add_users alice bob
ALICE=(-u alice:alice-pw)
BOB=(-u bob:bob-pw)

# slice_sha FROM COUNT: sha256 of COUNT bytes of $T/src from offset FROM.
slice_sha() {
	tail -c +"$(($1 + 1))" "$T/src" | head -c "$2" | sha256sum |
	    cut -d' ' -f1
}
body_sha() {
	sha256sum "$T/b" | cut -d' ' -f1
}
body_size() {
	stat -c %s "$T/b"
}

# head_extra PATH [HEADER]: the bytes that follow the headers of a HEAD
# for PATH as alice, on a raw connection read to its end (curl -I would
# not read a body that should not be there).
head_extra() {
	PYTHONDONTWRITEBYTECODE=1 PYTHONPATH="$here" "$PY" - "${HTTP_URL##*:}" "$1" "${2:-}" <<'PY'
import base64, os, socket, ssl, sys
from gwconn import connect
port, path, extra = sys.argv[1:4]
s = connect(int(port), timeout=30)
auth = base64.b64encode(b"alice:alice-pw").decode()
req = "HEAD %s HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\n" \
    "Connection: close\r\n" % (path, auth)
if extra:
    req += extra + "\r\n"
s.sendall((req + "\r\n").encode())
got = b""
while True:
    try:
        b = s.recv(65536)
    except socket.timeout:
        break
    if not b:
        break
    got += b
print(len(got.split(b"\r\n\r\n", 1)[1]) if b"\r\n\r\n" in got else -1)
PY
}

start_gw --users "$U"
echo "# gateway at $HTTP_URL"

SIZE=$((10 * 1024 * 1024 + 123))
mkfile "$T/src" "$SIZE"
digest=$("$PARAFLOW" digest --chunk-size 1M "$T/src" | cut -d' ' -f1)
sid=$(json_field "$(upload_as alice --file "$T/src" --name data.bin \
    --chunk-size 1M --json)" session)
check "uploaded $SIZE bytes in 1 MiB chunks ($sid)" grep -Eq "$UUID_RE" \
    <<<"$sid"
F=/api/v1/sessions/$sid/file
req "${ALICE[@]}" "/api/v1/sessions/$sid"
check_eq "the session's digest is paraflow digest's" "$digest" \
    "$(jget digest)"

# --- The whole file ----------------------------------------------------------

req "${ALICE[@]}" "$F"
check_eq "GET file: 200" 200 "$CODE"
check_eq "GET file: the bytes sent" "$(sha "$T/src")" "$(body_sha)"
check_eq "GET file: Content-Length" "$SIZE" "$(hdr Content-Length)"
check_eq "GET file: Content-Type" application/octet-stream \
    "$(hdr Content-Type)"
check_eq "GET file: ETag is \"<digest>\"" "\"$digest\"" "$(hdr ETag)"
check_eq "GET file: Accept-Ranges" bytes "$(hdr Accept-Ranges)"
check "GET file: Last-Modified is an HTTP date ($(hdr Last-Modified))" \
    grep -Eq '^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT$' \
    <<<"$(hdr Last-Modified)"
check "GET file: Content-Disposition attachment ($(hdr \
    Content-Disposition))" grep -q '^attachment; *filename="data\.bin"' \
    <<<"$(hdr Content-Disposition)"
for h in Content-Length Content-Type ETag Accept-Ranges Last-Modified \
    Content-Disposition; do
	eval "get_$(tr - _ <<<"$h")=\$(hdr $h)"
done

req "${ALICE[@]}" -I "$F"
check_eq "HEAD file: 200" 200 "$CODE"
check_eq "HEAD file: no body" 0 "$(head_extra "$F")"
for h in Content-Length Content-Type ETag Accept-Ranges Last-Modified \
    Content-Disposition; do
	v=get_$(tr - _ <<<"$h")
	check_eq "HEAD file: $h as GET's" "${!v}" "$(hdr "$h")"
done

# --- Ranges --------------------------------------------------------------------

# range SPEC FROM COUNT: a 206 for Range: bytes=SPEC with those bytes.
range() {
	local last=$(($2 + $3 - 1))
	req "${ALICE[@]}" -H "Range: bytes=$1" "$F"
	check_eq "Range $1: 206" 206 "$CODE"
	check_eq "Range $1: Content-Range" "bytes $2-$last/$SIZE" \
	    "$(hdr Content-Range)"
	check_eq "Range $1: Content-Length" "$3" "$(hdr Content-Length)"
	check_eq "Range $1: the bytes at $2..$last" "$(slice_sha "$2" "$3")" \
	    "$(body_sha)"
}
range 0-99 0 100
range 100- 100 $((SIZE - 100))
range -100 $((SIZE - 100)) 100
range 4194300-4194400 4194300 101
range 5-5 5 1
range "$((SIZE - 1))-" $((SIZE - 1)) 1
range "0-$((SIZE + 999))" 0 "$SIZE"
range "-$((SIZE + 999))" 0 "$SIZE"
# Positions past what 64 bits hold are still positions (RFC 9110).
range "0-99999999999999999999999" 0 "$SIZE"
range "-99999999999999999999999" 0 "$SIZE"

# unsatisfiable SPEC: a 416 for Range: bytes=SPEC.
unsatisfiable() {
	req "${ALICE[@]}" -H "Range: bytes=$1" "$F"
	expect_error "Range $1 (size $SIZE)" 416 range_not_satisfiable
	check_eq "Range $1: Content-Range bytes */SIZE" "bytes */$SIZE" \
	    "$(hdr Content-Range)"
}
unsatisfiable "$SIZE-"
unsatisfiable "$SIZE-$((SIZE + 10))"
unsatisfiable "$((SIZE + 1000))-"
unsatisfiable 99999999999999999999999-
unsatisfiable 18446744073709551615-18446744073709551616
unsatisfiable -0

req "${ALICE[@]}" -H "Range: bytes=0-9,20-29" "$F"
check_eq "two ranges: 200, the whole file" "200 $(sha "$T/src")" \
    "$CODE $(body_sha)"
req "${ALICE[@]}" -I -H "Range: bytes=0-99" "$F"
check_eq "HEAD with Range 0-99: 206" 206 "$CODE"
check_eq "HEAD with Range 0-99: Content-Range" "bytes 0-99/$SIZE" \
    "$(hdr Content-Range)"
check_eq "HEAD with Range 0-99: no body" 0 \
    "$(head_extra "$F" 'Range: bytes=0-99')"
req "${ALICE[@]}" -I -H "Range: bytes=$SIZE-" "$F"
check_eq "HEAD with Range past the end: 416" 416 "$CODE"
check_eq "HEAD with Range past the end: Content-Range" "bytes */$SIZE" \
    "$(hdr Content-Range)"

# --- Conditional requests --------------------------------------------------------

req "${ALICE[@]}" -H "If-None-Match: \"$digest\"" "$F"
check_eq "If-None-Match with the ETag: 304" 304 "$CODE"
check_eq "304: no body" 0 "$(body_size)"
check_eq "304: the ETag" "\"$digest\"" "$(hdr ETag)"
cl=$(hdr Content-Length)
check "304: no Content-Length, or the 200's (RFC 9110 8.6; ${cl:-none})" \
    [ "${cl:-$SIZE}" = "$SIZE" ]
req "${ALICE[@]}" -H "If-None-Match: \"0$digest\", \"$digest\"" "$F"
check_eq "If-None-Match with a list holding the ETag: 304" 304 "$CODE"
req "${ALICE[@]}" -H "If-None-Match: W/\"$digest\"" "$F"
check_eq "If-None-Match with the weak ETag: 304 (weak comparison)" 304 \
    "$CODE"
req "${ALICE[@]}" -H 'If-None-Match: *' "$F"
check_eq "If-None-Match: *: 304" 304 "$CODE"
# If-Match and If-Unmodified-Since: 412 unless the file is the one named
# (RFC 9110 13.1.1, 13.1.4); If-Range takes Last-Modified's date too.
req "${ALICE[@]}" "$F"
lm=$(hdr Last-Modified)
req "${ALICE[@]}" -H 'If-Match: "zzz"' "$F"
expect_error "If-Match with another tag" 412 precondition_failed
req "${ALICE[@]}" -H "If-Match: \"0$digest\", \"$digest\"" "$F"
check_eq "If-Match with a list holding the ETag: 200" 200 "$CODE"
req "${ALICE[@]}" -H 'If-Match: *' "$F"
check_eq "If-Match: *: 200" 200 "$CODE"
req "${ALICE[@]}" -H 'If-Unmodified-Since: Sat, 01 Jan 2000 00:00:00 GMT' "$F"
expect_error "If-Unmodified-Since before Last-Modified" 412 \
    precondition_failed
req "${ALICE[@]}" -H "If-Unmodified-Since: $lm" "$F"
check_eq "If-Unmodified-Since at Last-Modified: 200" 200 "$CODE"
req "${ALICE[@]}" -H 'If-Unmodified-Since: Saturday, 01-Jan-00 00:00:00 GMT' \
    "$F"
check_eq "If-Unmodified-Since in the RFC 850 form, before: 412" 412 "$CODE"
req "${ALICE[@]}" -H 'If-Unmodified-Since: not a date' "$F"
check_eq "If-Unmodified-Since that is no date: ignored, 200" 200 "$CODE"
req "${ALICE[@]}" -H "If-Match: W/\"$digest\"" "$F"
check_eq "If-Match with the weak tag: 412 (strong comparison)" 412 "$CODE"
req "${ALICE[@]}" -H "If-Range: $lm" -H 'Range: bytes=0-9' "$F"
check_eq "If-Range with Last-Modified's date: 206" 206 "$CODE"
req "${ALICE[@]}" -H 'If-Range: Sat, 01 Jan 2000 00:00:00 GMT' \
    -H 'Range: bytes=0-9' "$F"
check_eq "If-Range with another date: 200, the whole file" 200 "$CODE"
req "${ALICE[@]}" -H 'Range: BYTES=0-9' "$F"
check_eq "the range unit in capitals: 206 (RFC 9110 14.1)" 206 "$CODE"
req "${ALICE[@]}" -I -H "If-None-Match: \"$digest\"" "$F"
check_eq "HEAD with If-None-Match: 304" 304 "$CODE"
req "${ALICE[@]}" -H "If-None-Match: \"${digest//[0-9]/a}\"" "$F"
check_eq "If-None-Match with another ETag: 200, the file" \
    "200 $(sha "$T/src")" "$CODE $(body_sha)"
req "${ALICE[@]}" -H "If-None-Match: \"$digest\"" -H 'Range: bytes=0-9' "$F"
check_eq "If-None-Match with the ETag and a Range: 304" 304 "$CODE"
req "${ALICE[@]}" -H "If-Range: \"$digest\"" -H 'Range: bytes=0-99' "$F"
check_eq "If-Range with the ETag: 206" 206 "$CODE"
check_eq "If-Range with the ETag: the range" "$(slice_sha 0 100)" \
    "$(body_sha)"
req "${ALICE[@]}" -H "If-Range: \"${digest//[0-9]/a}\"" \
    -H 'Range: bytes=0-99' "$F"
check_eq "If-Range with another ETag: 200, the whole file" \
    "200 $(sha "$T/src")" "$CODE $(body_sha)"

# --- Several downloads at once -----------------------------------------------------

for i in 1 2 3 4 5 6; do
	curl -sS --max-time 60 "${ALICE[@]}" -o "$T/par$i" \
	    "$HTTP_URL$F" &
	PIDS+=($!)
done
wait "${PIDS[@]:${#PIDS[@]}-6}"
n=0
for i in 1 2 3 4 5 6; do
	cmp -s "$T/src" "$T/par$i" && n=$((n + 1))
done
check_eq "six parallel downloads: all whole" 6 "$n"
rm -f "$T"/par?

# --- An empty file -------------------------------------------------------------

: >"$T/empty"
esid=$(json_field "$(upload_as alice --file "$T/empty" --name empty.txt \
    --json)" session)
req "${ALICE[@]}" "/api/v1/sessions/$esid/file"
check_eq "empty file: 200" 200 "$CODE"
check_eq "empty file: Content-Length 0" 0 "$(hdr Content-Length)"
check_eq "empty file: no body" 0 "$(body_size)"
check_eq "empty file: ETag" "\"$("$PARAFLOW" digest "$T/empty" |
    cut -d' ' -f1)\"" "$(hdr ETag)"
req "${ALICE[@]}" -H 'Range: bytes=0-' "/api/v1/sessions/$esid/file"
expect_error "empty file, Range 0-" 416 range_not_satisfiable
check_eq "empty file, Range 0-: Content-Range" "bytes */0" \
    "$(hdr Content-Range)"
req "${ALICE[@]}" -H 'Range: bytes=-5' "/api/v1/sessions/$esid/file"
check_eq "empty file, Range -5 (satisfiable, no byte): 200, empty" "200 0" \
    "$CODE $(body_size)"

# --- Content-Disposition of hostile names ----------------------------------------

# disposition_ok NAME: the last Content-Disposition is printable ASCII,
# "attachment; filename="..."; filename*=UTF-8''...", its quoted string
# well-formed, and filename* decodes to NAME exactly (RFC 6266, 8187).
# shellcheck disable=SC2317 # called through check
disposition_ok() {
	tr -d '\r' <"$T/h" | grep -i '^Content-Disposition:' |
	    "$PY" -c '
import re, sys, urllib.parse
want = sys.argv[1]
lines = sys.stdin.buffer.read().split(b"\n")
lines = [l for l in lines if l]
if len(lines) != 1:
    sys.exit("%d Content-Disposition headers" % len(lines))
raw = lines[0].split(b":", 1)[1].strip()
if any(b < 0x20 or b > 0x7e for b in raw):
    sys.exit("not printable ASCII: %r" % raw)
v = raw.decode("ascii")
m = re.fullmatch(r"attachment; *filename=\"((?:[^\"\\\\]|\\\\.)*)\"; *"
                 r"filename\*=UTF-8\x27\x27([A-Za-z0-9!#$&+.^_`|~%-]+)", v)
if not m:
    sys.exit("not attachment; filename=\"...\"; filename*=UTF-8\x27\x27...: "
             + v)
ext = m.group(2)
if re.search(r"%(?![0-9A-Fa-f]{2})", ext):
    sys.exit("a stray %% in filename*: " + ext)
got = urllib.parse.unquote(ext, encoding="utf-8", errors="strict")
if got != want:
    sys.exit("filename* is %r, not %r" % (got, want))
' "$1" 2>&1 | sed 's/^/#   /'
	return "${PIPESTATUS[2]}"
}

# hostile DESC NAME STORED: an upload named NAME, stored as STORED; its
# download's Content-Disposition names STORED safely.
hostile() {
	local s
	s=$(json_field "$(upload_as alice --file "$T/a" --name "$2" --json)" \
	    session)
	req "${ALICE[@]}" "/api/v1/sessions/$s"
	check_eq "$1: stored name" "$3" "$(jget name)"
	req "${ALICE[@]}" "/api/v1/sessions/$s/file"
	check_eq "$1: download 200" 200 "$CODE"
	check "$1: Content-Disposition safely encoded" disposition_ok "$3"
	check "$1: no header split off" [ -z "$(hdr Set-Cookie)" ]
	req "${ALICE[@]}" -I "/api/v1/sessions/$s/file"
	check "$1: HEAD's Content-Disposition too" disposition_ok "$3"
}
mkfile "$T/a" 1000
hostile "plain name" data.txt data.txt
hostile "a quote, a semicolon, a percent sign" 'q"uo;te%20x.txt' \
    'q"uo;te%20x.txt'
hostile "non-ASCII" 'résumé 日本語.txt' 'résumé 日本語.txt'
hostile "an emoji and a quote" 'x"😀".txt' 'x"😀".txt'
hostile "a newline" $'line\nbreak.txt' 'line_break.txt'
hostile "CR LF and a header" $'evil\r\nSet-Cookie: a=b.txt' \
    'evil__Set-Cookie: a=b.txt'
hostile "a backslash before a quote (the directory is dropped)" \
    'dir\"x.txt' '"x.txt'

# --- Download links ----------------------------------------------------------

req "${ALICE[@]}" -X POST "/api/v1/sessions/$sid/link"
expect_status "POST link" 200 DownloadLink
link=$(jget url)
req "$link"
check_eq "the link, without a login: 200" 200 "$CODE"
check_eq "the link: the whole file" "$(sha "$T/src")" "$(body_sha)"
check_eq "the link: ETag as with a login" "\"$digest\"" "$(hdr ETag)"
req -r 100-199 "$link"
check_eq "the link with a Range: 206" 206 "$CODE"
check_eq "the link with a Range: those bytes" "$(slice_sha 100 100)" \
    "$(body_sha)"
req "${link%?????}0000"
expect_error "a link with another MAC" 403 link_expired
req "${link%%.*}.$(printf '%064d' 0)"
expect_error "a link with a zero MAC" 403 link_expired
req "/api/v1/sessions/$sid/file?token=1.${link##*.}"
expect_error "a link past its expiry" 403 link_expired
req "${link%/file*}/chunks?token=${link##*token=}"
expect_error "a token opens only the file, not the chunk map" 401 \
    unauthorized
req "${link%/file*}?token=${link##*token=}"
expect_error "... nor the session" 401 unauthorized
req "${ALICE[@]}" "/api/v1/sessions/$sid/link"
expect_error "GET link" 405 method_not_allowed
check_eq "GET link: Allow" POST "$(hdr Allow)"
req "${BOB[@]}" -X POST "/api/v1/sessions/$sid/link"
expect_error "bob asks for a link to alice's file" 404 not_found
req -X POST "/api/v1/sessions/$sid/link"
expect_error "a link without a login" 401 unauthorized

# --- Deleted: 404 ----------------------------------------------------------------

req "${ALICE[@]}" -X DELETE "/api/v1/sessions/$sid"
check_eq "DELETE the downloaded session" 200 "$CODE"
req "${ALICE[@]}" "$F"
expect_error "GET file after DELETE" 404 not_found
req "${ALICE[@]}" -I "$F"
check_eq "HEAD file after DELETE: 404" 404 "$CODE"
check_eq "the file is gone from storage" 0 \
    "$(find "$STORAGE/$sid" 2>/dev/null | wc -l)"
req "$link"
expect_error "the link after DELETE" 404 not_found

# A complete session whose file left storage behind the server's back is
# not there (404), not "not complete" (409).
mkfile "$T/gone" 1000
gsid=$(json_field "$(upload_as alice --file "$T/gone" --name gone.bin \
    --json)" session)
rm -f "$(stored_file "$gsid" gone.bin)"
req "${ALICE[@]}" "/api/v1/sessions/$gsid/file"
expect_error "GET file removed from storage under the server" 404 not_found

stop_server
done_testing
