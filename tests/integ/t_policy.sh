#!/bin/bash
# SPDX-License-Identifier: MIT
# What paraflowd agrees to store: executables are refused by name and by
# content (and a client cannot lie its way past the content check), names
# are sanitized so nothing lands outside the session directory, and
# --forbidden-ext and --max-file-size do what they say.
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
	for ((i = 0; i < 50; i++)); do
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

done_testing
