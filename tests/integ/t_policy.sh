#!/bin/bash
# SPDX-License-Identifier: MIT
# What paraflowd agrees to store: executables are refused by name and by
# content (and a client cannot lie its way past the content check), names
# are sanitized so nothing lands outside the session directory, and
# --forbidden-ext and --max-file-size do what they say. Then issue 11's
# table: hostile names (look-alikes, NTFS streams, device names) and
# contents (scripts libmagic knows, #! behind a BOM, WebAssembly), each
# refused with the rule it broke while another user uploads throughout;
# --allow-ext; and uploads staged under a looser policy dropped at start.
. "$(dirname "$0")/lib.sh"


# mkdata FILE BYTES: random bytes behind a fixed 8-byte prefix, so the file
# never starts like an executable by chance ("MZ" or "#!" would do).
mkdata() {
	{
		printf 'pf-data '
		head -c "$(($2 - 8))" /dev/urandom
	} >"$1"
}

# refused DESC CODE ARGS...: an upload that must exit 4 with CODE and
# leave nothing behind.
refused() {
	local desc=$1 code=$2 before out rc
	shift 2
	before=$(stored_count)
	out=$(upload --json "$@")
	rc=$?
	check_eq "$desc: exit 4" 4 "$rc"
	check_eq "$desc: $code" "$code" "$(json_field "$out" code)"
	check_eq "$desc: nothing stored" "$before" "$(stored_count)"
	check "$desc: staging empty" staging_empty
}

# accepted DESC FILE NAME [ARGS...]: an upload that must be stored, as
# exactly NAME and nothing else in its session directory.
accepted() {
	local desc=$1 file=$2 name=$3 out rc sid
	shift 3
	out=$(upload --json --file "$file" "$@")
	rc=$?
	check_eq "$desc: exit 0" 0 "$rc"
	sid=$(json_field "$out" session)
	check_eq "$desc: stored as ${name:0:40}" "$name" \
	    "$(find "$STORAGE/$sid" -mindepth 1 -maxdepth 1 \
	    ! -name .paraflow.json -printf '%f\n' 2>/dev/null)"
	check_eq "$desc: content identical" "$(sha "$file")" \
	    "$(sha "$(stored_file "$sid" "$name")" 2>/dev/null)"
}

mkdir "$T/in"
mkdata "$T/plain" 3000

# --- Executables by name -----------------------------------------------

start_server

for n in x.exe X.EXE run.sh a.Bat setup.msi s.ps1 lib.dll; do
	cp "$T/plain" "$T/in/$n"
	refused "name $n" forbidden_type --file "$T/in/$n"
done
for n in archive.exe.txt notes.txt; do
	cp "$T/plain" "$T/in/$n"
	accepted "name $n" "$T/in/$n" "$n"
done
# Windows drops trailing dots and spaces: "x.exe." is still x.exe.
refused "name 'x.exe.'" forbidden_type --file "$T/plain" --name x.exe.
refused "name 'x.exe '" forbidden_type --file "$T/plain" --name "x.exe "

# --- Executables by content, under innocent names ----------------------

cp /bin/true "$T/in/elf.bin"
printf '#!/bin/sh\necho hello\n' >"$T/in/script.txt"
{ printf 'MZ'; head -c 4000 /dev/urandom; } >"$T/in/pe.pdf"
{ printf '\xcf\xfa\xed\xfe'; head -c 4000 /dev/urandom; } >"$T/in/macho.bin"
{ printf '\xfe\xed\xfa\xce'; head -c 4000 /dev/urandom; } >"$T/in/macho32.bin"
{ printf '\xca\xfe\xba\xbe'; head -c 4000 /dev/urandom; } >"$T/in/fat.bin"
refused "ELF as data.bin" forbidden_type --file "$T/in/elf.bin" \
    --name data.bin
refused "#! script as data.txt" forbidden_type --file "$T/in/script.txt" \
    --name data.txt
refused "MZ as doc.pdf" forbidden_type --file "$T/in/pe.pdf" --name doc.pdf
refused "Mach-O 64 LE as data.bin" forbidden_type --file "$T/in/macho.bin" \
    --name data.bin
refused "Mach-O 32 BE as data.bin" forbidden_type \
    --file "$T/in/macho32.bin" --name data.bin
refused "Mach-O fat as data.bin" forbidden_type --file "$T/in/fat.bin" \
    --name data.bin
# The magic must be at the start: the same bytes later on are just data.
{ printf 'text first\n'; cat /bin/true; } >"$T/in/late-elf.bin"
accepted "ELF bytes after offset 0" "$T/in/late-elf.bin" late-elf.bin

# --- Hostile names -----------------------------------------------------
#
# Each is either refused (exit 4) or stored under exactly the name the
# sanitizer rules of src/engine/policy.h give, inside its session
# directory; afterwards nothing may have been written anywhere else.

long=$(printf 'a%.0s' {1..296}).txt
long_utf8=$(printf '\xc3\xa9%.0s' {1..148}).txt
touch "$T/marker"
sleep 0.1

accepted "../../etc/evil.txt" "$T/plain" evil.txt \
    --name ../../etc/evil.txt
accepted '..\..\boot.ini' "$T/plain" boot.ini --name '..\..\boot.ini'
accepted "/abs/path.txt" "$T/plain" path.txt --name /abs/path.txt
accepted ".hidden" "$T/plain" _hidden --name .hidden
accepted "newline in name" "$T/plain" a_b.txt --name $'a\nb.txt'
accepted "tab and DEL in name" "$T/plain" a_b_c.txt --name $'a\tb\x7fc.txt'
accepted "leading and trailing spaces" "$T/plain" spaced.txt \
    --name '  spaced.txt  '
accepted "300-byte name" "$T/plain" "$(printf 'a%.0s' {1..251}).txt" \
    --name "$long"
accepted "300-byte UTF-8 name, cut at a character" "$T/plain" \
    "$(printf '\xc3\xa9%.0s' {1..125}).txt" --name "$long_utf8"
refused "bidi override hiding .exe" forbidden_type --file "$T/plain" \
    --name $'evil\xe2\x80\xaetxt.exe'
refused "zero-width space before .exe" forbidden_type --file "$T/plain" \
    --name $'x\xe2\x80\x8b.exe'
refused "dir/" bad_name --file "$T/plain" --name dir/
refused ".." bad_name --file "$T/plain" --name ..
refused "..." bad_name --file "$T/plain" --name ...
refused "spaces only" bad_name --file "$T/plain" --name "   "

# The client's own resume state lives in $PARAFLOW_STATE_DIR, not here.
outside=$(find "$T" -newer "$T/marker" ! -path "$T" ! -path "$STORAGE" \
    ! -path "$STORAGE/*" ! -path "$T/server.log" \
    ! -path "$PARAFLOW_STATE_DIR" ! -path "$PARAFLOW_STATE_DIR/*" |
    head -n 5)
check_eq "hostile names: nothing written outside the storage" "" "$outside"
check_eq "hostile names: no symlink in the storage" "" \
    "$(find "$STORAGE" -type l)"
check_eq "hostile names: nothing deeper than <session>/<name>" "" \
    "$(find "$STORAGE" -mindepth 3)"
bad=$(find "$STORAGE" -mindepth 2 -type f ! -name .paraflow.json \
    ! -path "$STORAGE/.staging/*" |
    awk -F/ 'length($NF) > 255 || $NF ~ /^\./ || $NF ~ /[[:cntrl:]\\]/')
check_eq "hostile names: every stored name is safe" "" "$bad"

# Invalid UTF-8 cannot travel in JSON: the client must refuse it as a bad
# name (exit 4), not fail in some other way.
before=$(stored_count)
out=$(upload --json --file "$T/plain" --name $'\xff\xfe.txt')
rc=$?
code=$(json_field "$out" code)
check_eq "invalid UTF-8 name: exit 4" 4 "$rc"
check_eq "invalid UTF-8 name: code bad_name" bad_name "$code"
check_eq "invalid UTF-8 name: nothing stored" "$before" "$(stored_count)"
check "invalid UTF-8 name: staging empty" staging_empty

# --- What only a hand-made client can send -----------------------------

# The hand-made client speaks the plaintext protocol.
stop_server
start_server --no-tls
if command -v python3 >/dev/null 2>&1; then
	before=$(stored_count)
	pywire "$PORT" "$STORAGE" >"$T/wire.out" 2>"$T/wire.err" <<'EOF'
import os, sys
import pfwire as w

port = sys.argv[1]

def result(label, value):
    print("%s %s" % (label, value), flush=True)

def login():
    c = w.connect(port)
    w.hello(c)
    return c, w.scram_login(c, "paraflow", "secret123")

def open_error(obj):
    c, _ = login()
    w.send_json(c, w.OPEN, obj)
    name = w.error_name(c)
    c.close()
    return name

# A harmless head in OPEN, then an ELF in chunk 0 (with a correct digest).
cs = 65536
harmless = b"just some text\n" * 20000
elf = b"\x7fELF" + os.urandom(cs - 4)
c, key = login()
opened = w.open_session(c, "lie.txt", harmless, chunk_size=cs)
sid = opened["session"]
d = w.connect(port)
w.join(d, key, sid)
w.send_chunk(d, 0, 0, elf)
result("lying_chunk", w.error_name(d))
d.close()
# Not one byte of it reached the staging file.
staged = []
for root, _, files in os.walk(os.path.join(sys.argv[2], ".staging")):
    for f in files:
        with open(os.path.join(root, f), "rb") as fp:
            staged.append(b"\x7fELF" in fp.read())
result("elf_staged", "%d files with ELF bytes" % sum(staged))
# The session is over: no more joins, and no commit.
d = w.connect(port)
try:
    w.join(d, key, sid)
    result("join_after", "JOINED")
except w.WireError as e:
    result("join_after", e.name)
d.close()
w.send_json(c, w.COMMIT, {"digest": "00" * 32})
result("commit_after", w.error_name(c))
c.close()

# Names no command line can carry.
data = b"pf-data " + os.urandom(100)
head = w.base64.b64encode(data).decode("ascii")
result("nul_name", open_error({"name": "a\u0000b.txt", "size": len(data),
                               "chunk_size": cs, "head": head}))
result("nul_exe", open_error({"name": "x.exe\u0000.txt", "size": len(data),
                              "chunk_size": cs, "head": head}))
# A head that says "executable" under a harmless name.
result("exe_head", open_error({"name": "fine.txt", "size": len(data),
                               "chunk_size": cs,
                               "head": w.base64.b64encode(
                                   b"\x7fELF" + data[4:]).decode("ascii")}))
EOF
	check_eq "pfwire policy script ran" 0 $?
	sed 's/^/# /' "$T/wire.err" "$T/wire.out"
	res() { sed -n "s/^$1 //p" "$T/wire.out"; }
	check_eq "lying head: chunk 0 refused with forbidden_type" \
	    forbidden_type "$(res lying_chunk)"
	check_eq "lying head: the session cannot be joined again" \
	    unknown_session "$(res join_after)"
	check_eq "lying head: no ELF byte reached staging" "0 files with ELF bytes" \
	    "$(res elf_staged)"
	check "lying head: no COMPLETE for a commit" \
	    [ "$(res commit_after)" != COMPLETE ]
	check_eq "NUL in a name: bad_name" bad_name "$(res nul_name)"
	check_eq "NUL hiding .exe: bad_name" bad_name "$(res nul_exe)"
	check_eq "ELF head under a harmless name: forbidden_type" \
	    forbidden_type "$(res exe_head)"
	check_eq "hand-made uploads: nothing stored" "$before" "$(stored_count)"
	# 30 s: the cleanup runs as the connections end, which a loaded
	# machine may be seconds late on.
	for ((i = 0; i < 300; i++)); do
		staging_empty && break
		sleep 0.1
	done
	check "hand-made uploads: staging cleaned" staging_empty
else
	ok "hand-made client cases # SKIP python3 not found"
fi

stop_server

# --- --forbidden-ext ---------------------------------------------------

start_server --forbidden-ext foo
cp "$T/plain" "$T/in/x.foo"
cp "$T/plain" "$T/in/Y.FOO"
refused "--forbidden-ext foo: x.foo" forbidden_type --file "$T/in/x.foo"
refused "--forbidden-ext foo: Y.FOO" forbidden_type --file "$T/in/Y.FOO"
accepted "--forbidden-ext foo: x.exe with plain content" "$T/in/x.exe" x.exe
refused "--forbidden-ext foo: ELF still refused by content" \
    forbidden_type --file "$T/in/elf.bin" --name data.bin
stop_server

start_server --forbidden-ext ""
accepted "--forbidden-ext '': run.sh with plain content" "$T/in/run.sh" \
    run.sh
refused "--forbidden-ext '': #! content still refused" forbidden_type \
    --file "$T/in/script.txt" --name data.sh
stop_server

# --- --max-file-size ---------------------------------------------------

start_server --max-file-size 1M
mkdata "$T/2m" $((2 * 1024 * 1024))
mkdata "$T/1m" $((1024 * 1024))
mkdata "$T/1m1" $((1024 * 1024 + 1))
refused "--max-file-size 1M: 2 MiB" too_large --file "$T/2m"
refused "--max-file-size 1M: 1 MiB + 1" too_large --file "$T/1m1"
accepted "--max-file-size 1M: exactly 1 MiB" "$T/1m" 1m
stop_server

# --- Issue 11: a hostile table, with the rule each refusal names --------
#
# alice sends every hostile name and content with the real client while
# bob uploads ordinary files in a loop: the server must refuse each of
# alice's with forbidden_type and the rule, store and stage nothing of
# hers, and serve bob all along.

U=$T/users
for u in alice bob; do
	printf '%s-pw\n' "$u" | "$PARAFLOWD" --users "$U" --add-user "$u" \
	    2>/dev/null || { echo "# --add-user $u failed"; exit 1; }
done

# of_user USER: finished and staged uploads whose metadata names USER.
of_user() {
	grep -ls "\"user\": \"$1\"" "$STORAGE"/*/.paraflow.json \
	    "$STORAGE"/.staging/*/session.json 2>/dev/null | wc -l
}

# refused_why DESC WHY ARGS...: alice's upload must exit 4 with
# forbidden_type, the message WHY, and nothing of hers kept.
refused_why() {
	local desc=$1 why=$2 out rc before
	shift 2
	before=$(of_user alice)
	out=$(upload --json -u alice --secret alice-pw "$@")
	rc=$?
	check_eq "$desc: exit 4" 4 "$rc"
	# The client puts "upload refused: " before the server's message.
	check_eq "$desc: forbidden_type: $why" \
	    "forbidden_type: upload refused: $why" \
	    "$(printf '%s' "$out" | json_get error.code): $(printf '%s' \
	    "$out" | json_get error.message)"
	check_eq "$desc: nothing of alice stored or staged" "$before" \
	    "$(of_user alice)"
}

# accepted_as DESC FILE NAME [ARGS...]: alice's upload is stored as NAME,
# byte for byte.
accepted_as() {
	local desc=$1 file=$2 name=$3 out sid
	shift 3
	out=$(upload --json -u alice --secret alice-pw --file "$file" "$@")
	check_eq "$desc: exit 0" 0 $?
	sid=$(printf '%s' "$out" | json_get session)
	check_eq "$desc: stored as $name, content identical" "$(sha "$file")" \
	    "$(sha "$(stored_file "$sid" "$name")" 2>/dev/null)"
}

start_server --users "$U"

# bob's loop: one ordinary upload after another until told to stop.
mkdata "$T/bob.dat" 100000
: >"$T/bob.rcs"
(
	while [ ! -e "$T/bob.stop" ]; do
		upload -u bob --secret bob-pw --file "$T/bob.dat" \
		    --name bob.dat --timeout 60 >/dev/null 2>&1
		echo $? >>"$T/bob.rcs"
	done
) &
bob_loop=$!
PIDS+=("$bob_loop")

# Names, each with plain content: the default list, then look-alikes.
for e in py js pl php lnk pif reg msc vb ws command desktop deb jar wasm \
    rb so dylib ps1 hta scr; do
	refused_why "name x.$e" "extension .$e" --file "$T/plain" \
	    --name "x.$e"
done
refused_why "Cyrillic s in a.sh" \
    "extension .sh (after normalising 'a.<U+0455>h')" \
    --file "$T/plain" --name $'a.\xd1\x95h'
refused_why "fullwidth s in a.sh" \
    "extension .sh (after normalising 'a.<U+FF53>h')" \
    --file "$T/plain" --name $'a.\xef\xbd\x93h'
refused_why "ZWSP inside sh" \
    "extension .sh (after normalising 'a.s<U+200B>h')" \
    --file "$T/plain" --name $'a.s\xe2\x80\x8bh'
refused_why "soft hyphen inside exe" \
    "extension .exe (after normalising 'a.e<U+00AD>xe')" \
    --file "$T/plain" --name $'a.e\xc2\xadxe'
refused_why "Cyrillic E in A.EXE" \
    "extension .exe (after normalising 'A.<U+0415>XE')" \
    --file "$T/plain" --name $'A.\xd0\x95XE'
refused_why "fullwidth full stop before sh" \
    "extension .sh (after normalising 'a<U+FF0E>sh')" \
    --file "$T/plain" --name $'a\xef\xbc\x8esh'
# shellcheck disable=SC2016 # $DATA is the stream's name, not a variable
refused_why "NTFS stream a.exe::\$DATA" \
    "extension .exe (after normalising 'a.exe::\$DATA')" \
    --file "$T/plain" --name 'a.exe::$DATA'
refused_why "NTFS stream a.exe:stream" \
    "extension .exe (after normalising 'a.exe:stream')" \
    --file "$T/plain" --name 'a.exe:stream'
while IFS='|' read -r n dev; do
	refused_why "device name '$n'" \
	    "reserved Windows device name $dev (name '$n')" \
	    --file "$T/plain" --name "$n"
done <<'NAMES'
CON|con
con.txt|con
Nul.tar.gz|nul
COM1|com1
lpt9.doc|lpt9
aux .log|aux
CONOUT$|conout$
NAMES
# The name as sent ends in ".yyy...", but the cut to 255 bytes leaves
# ".exe" at the end of the stored name: that one is checked too.
refused_why "300-byte name whose cut ends in .exe" "extension .exe" \
    --file "$T/plain" --name "$(printf 'x%.0s' {1..250}).exe.$(printf \
    'y%.0s' {1..30})"
refused_why "device name COM1 with a superscript one" \
    "reserved Windows device name com1 (name 'COM<U+00B9>.txt')" \
    --file "$T/plain" --name $'COM\xc2\xb9.txt'

# Contents, each under an innocent name.
c=$T/content
mkdir "$c"
printf ' #!/bin/sh\necho hi\n' >"$c/space-sh"
printf '\xef\xbb\xbf#!/bin/sh\necho hi\n' >"$c/bom-sh"
{ printf '\0asm\1\0\0\0'; head -c 3000 /dev/urandom; } >"$c/wasm"
printf 'import os\nimport sys\n\ndef main():\n    print(1)\n' >"$c/py"
printf '#!/usr/bin/env python3\nprint(1)\n' >"$c/py-bang"
printf '<?php echo 1; ?>\n' >"$c/php"
printf '@echo off\r\necho hi\r\n' >"$c/bat"
printf 'Windows Registry Editor Version 5.00\r\n\r\n' >"$c/reg"
{
	printf 'L\0\0\0\1\24\2\0\0\0\0\0\300\0\0\0\0\0\0\106'
	head -c 3000 /dev/urandom
} >"$c/lnk"
{
	printf '!<arch>\ndebian-binary   1342177280  0     0     100644  4'
	printf '         `\n2.0\n'
} >"$c/deb"
{ printf '\xca\xfe\xba\xbe\0\0\0\x34'; head -c 3000 /dev/urandom; } \
    >"$c/class"
printf '#!/opt/odd/interpreter\nrun\n' >"$c/odd-bang"
# As the JDK's jar tool writes one: the first entry marked 0xCAFE.
python3 - "$c/jar" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], "w") as z:
    first = zipfile.ZipInfo("META-INF/")
    first.extra = b"\xfe\xca\x00\x00"
    z.writestr(first, "")
    z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\n")
PY
while read -r f why; do
	refused_why "content $f as notes.txt" "$why" --file "$c/$f" \
	    --name notes.txt
done <<'CONTENTS'
space-sh content: text/x-shellscript (libmagic)
bom-sh content: text/x-shellscript (libmagic)
wasm content: WebAssembly module (magic bytes)
py content: text/x-script.python (libmagic)
py-bang content: text/x-script.python (libmagic)
php content: text/x-php (libmagic)
bat content: text/x-msdos-batch (libmagic)
reg content: text/x-ms-regedit (libmagic)
lnk content: application/x-ms-shortcut (libmagic)
deb content: application/vnd.debian.binary-package (libmagic)
class content: Mach-O universal executable (magic bytes)
odd-bang content: #! script (text/plain)
jar content: application/java-archive (libmagic)
CONTENTS

# Ordinary files still go through.
printf 'just some text\n' >"$c/text.txt"
python3 - "$c/image.png" <<'PY'
import struct, sys, zlib
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + \
        struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
raw = b"".join(b"\0" + bytes([x * 8 for x in range(16)]) for _ in range(16))
with open(sys.argv[1], "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(
        ">IIBBBBB", 16, 16, 8, 0, 0, 0, 0)) + chunk(b"IDAT",
        zlib.compress(raw)) + chunk(b"IEND", b""))
PY
printf '%%PDF-1.4\n%%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj\n' \
    >"$c/doc.pdf"
tar czf "$c/archive.tar.gz" -C "$c" text.txt doc.pdf
accepted_as "text" "$c/text.txt" text.txt
accepted_as "PNG" "$c/image.png" image.png
accepted_as "PDF" "$c/doc.pdf" doc.pdf
accepted_as ".tar.gz" "$c/archive.tar.gz" archive.tar.gz
accepted_as "café.txt" "$c/text.txt" 'café.txt' --name 'café.txt'
accepted_as "console.log (not CON)" "$c/text.txt" console.log \
    --name console.log
accepted_as "a.txt:x.exe (the stream is the .txt file's)" "$c/text.txt" \
    'a.txt:x.exe' --name 'a.txt:x.exe'

touch "$T/bob.stop"
wait "$bob_loop"
bob_n=$(wc -l <"$T/bob.rcs")
bob_bad=$(grep -cv '^0$' "$T/bob.rcs")
echo "# bob: $bob_n uploads during alice's table, $bob_bad failed"
check "bob uploaded all along" [ "$bob_n" -ge 1 ]
check_eq "bob: every upload stored" 0 "$bob_bad"
stop_server

# --- --allow-ext -------------------------------------------------------

start_server --users "$U" --allow-ext py
accepted_as "--allow-ext py: tool.py of Python" "$c/py-bang" tool.py \
    --name tool.py
accepted_as "--allow-ext py: Python under notes.txt" "$c/py" notes.txt \
    --name notes.txt
refused_why "--allow-ext py: run.sh still refused" "extension .sh" \
    --file "$T/plain" --name run.sh
refused_why "--allow-ext py: shell content still refused" \
    "content: text/x-shellscript (libmagic)" --file "$c/bom-sh" \
    --name notes.txt
stop_server

# --- Sessions recovered after a restart meet the policy in force -------
#
# Three uploads left half done under a looser policy: a name the default
# list refuses, Python content (let in by --allow-ext py), and a plain
# one. Restarted with the defaults, paraflowd must drop the first two
# (staging removed, a log line each) and keep the third.

start_server --no-tls --forbidden-ext foo --allow-ext py
pywire "$PORT" >"$T/stage.out" 2>"$T/stage.err" <<'PY'
import os, sys
import pfwire as w

port = sys.argv[1]
cs = 65536
py = b"import os\nimport sys\n\ndef main():\n    print(1)\n"
for name, data in (("tool.py", b"pf-data " + os.urandom(2 * cs)),
                   ("notes.txt", py + b"#" * (2 * cs)),
                   ("keep.txt", b"pf-data " + os.urandom(2 * cs))):
    c = w.connect(port)
    w.hello(c)
    key = w.scram_login(c, "paraflow", "secret123")
    sid = w.open_session(c, name, data, chunk_size=cs)["session"]
    d = w.connect(port)
    w.join(d, key, sid)
    w.send_chunk(d, 0, 0, data[:cs])
    w.expect(d, w.ACK)
    d.close()
    c.close()
    print(name, sid, flush=True)
PY
check_eq "three uploads staged half done" 0 $?
sed 's/^/# /' "$T/stage.err"
stop_server
sid_of() { sed -n "s/^$1 //p" "$T/stage.out"; }
py_sid=$(sid_of tool.py)
content_sid=$(sid_of notes.txt)
keep_sid=$(sid_of keep.txt)
check_eq "three staging areas before the restart" 3 \
    "$(find "$STORAGE/.staging" -mindepth 1 -maxdepth 1 -type d | wc -l)"
start_server --no-tls
check "restart: tool.py dropped, its staging removed" \
    test -n "$py_sid" -a ! -e "$STORAGE/.staging/$py_sid"
check "restart: the Python content dropped, its staging removed" \
    test -n "$content_sid" -a ! -e "$STORAGE/.staging/$content_sid"
check "restart: keep.txt kept" test -n "$keep_sid" -a \
    -d "$STORAGE/.staging/$keep_sid"
check "restart: the log says why tool.py went" grep -qF \
    "session $py_sid: refused by the file-type policy: extension .py;" \
    "$T/server.log"
check "restart: the log says why the Python content went" grep -qF \
    "session $content_sid: refused by the file-type policy: content: \
text/x-script.python (libmagic);" "$T/server.log"
check "restart: keep.txt recovered" grep -qF \
    "session $keep_sid recovered" "$T/server.log"
stop_server

done_testing
