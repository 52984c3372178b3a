#!/bin/bash
# SPDX-License-Identifier: MIT
# The source tree's layout and style rules, checked (docs/layout.md): the
# layers point down only (cli -> proto -> common, engine -> proto ->
# common, httpd -> engine.h), no module of a directory depends on one that
# depends back on it, the client links no server code, and the house
# style's mechanical rules (SPDX line, 80 columns, no trailing blanks, no
# function over 100 lines outside main() and option parsing). LAYOUT_TOP
# names another source tree to check.
. "$(dirname "$0")/lib.sh"

top=$(cd "${LAYOUT_TOP:-$here/../..}" && pwd)
src=$top/src

# Functions allowed past 100 lines: main() and option parsing.
LONG_OK='^(main|parse_options|.*_options)$'

# report DESCRIPTION FILE: passes if FILE is empty, else shows it.
report() {
	if [ ! -s "$2" ]; then
		ok "$1"
	else
		not_ok "$1"
		head -n 30 "$2" | sed 's/^/#   /'
	fi
}

cfiles() {
	find "$src" "$top/tests/unit" "$top/tests/tools" "$top/tests/fuzz" \
	    -name '*.[ch]' | sort
}

# --- Style -----------------------------------------------------------

cfiles | while read -r f; do
	head -n 1 "$f" | grep -q 'SPDX-License-Identifier' ||
	    echo "${f#"$top"/}"
done >"$T/spdx"
report "every C file opens with an SPDX line" "$T/spdx"

cfiles | while read -r f; do
	expand -t 8 "$f" | awk -v f="${f#"$top"/}" \
	    'length($0) > 80 { print f ":" NR ": " length($0) " columns" }'
done >"$T/wide"
report "no line of C over 80 columns" "$T/wide"

cfiles | xargs grep -n '[[:blank:]]$' /dev/null | sed "s|^$top/||" \
    >"$T/blank"
report "no trailing blanks in C files" "$T/blank"

# A definition starts with its name at column 0 and "(", its body runs
# from a "{" to a "}" at column 0 (KNF).
cfiles | grep '\.c$' | while read -r f; do
	awk -v f="${f#"$top"/}" -v okre="$LONG_OK" '
	    /^[A-Za-z_][A-Za-z_0-9]*\(/ { name = $0; sub(/\(.*/, "", name) }
	    /^\{/ { start = NR }
	    /^\}/ {
		if (start && NR - start - 1 > 100 && name !~ okre)
			print f ": " name "() has " NR - start - 1 " lines"
		start = 0
	    }' "$f"
done >"$T/long"
report "no function over 100 lines outside main() and option parsing" \
    "$T/long"

# --- Layers ----------------------------------------------------------

# includes DIR: "file header" for every quoted include in src/DIR.
includes() {
	grep -o '^#include "[^"]*"' "$src/$1"/*.[ch] 2>/dev/null |
	    sed 's|^.*/\([^/:]*\):#include "\(.*\)"|\1 \2|'
}

# Headers of each directory, to tell which layer an include comes from.
headers_of() {
	(cd "$src/$1" 2>/dev/null && ls ./*.h 2>/dev/null | sed 's|^\./||')
}

# uses DIR LAYER: the includes of src/DIR that are headers of src/LAYER.
uses() {
	local h
	for h in $(headers_of "$2"); do
		includes "$1" | awk -v h="$h" '$2 == h'
	done
}

for d in cli engine httpd proto; do
	[ -d "$src/$d" ] || continue
	# Module graph: a.c or a.h including b.h makes a depend on b, where
	# b.h is of the same directory, names a module of its own (b.c) and
	# declares functions (a header of shared types only is no module's
	# interface).
	includes "$d" | while read -r file hdr; do
		from=${file%.*}
		to=${hdr%.h}
		[ -f "$src/$d/$to.c" ] || continue
		[ -f "$src/$d/$hdr" ] || continue
		grep -q '^[a-z_][a-z_0-9]*(' "$src/$d/$hdr" || continue
		[ "$from" = "$to" ] && continue
		echo "$from $to"
	done | sort -u >"$T/graph.$d"
	tsort "$T/graph.$d" >/dev/null 2>"$T/cycle.$d"
	report "no include cycle between the modules of src/$d" "$T/cycle.$d"
done

# Call graph from the objects: a.o needing a symbol b.o defines means a
# calls b. A cycle is a file calling back into a file that called it
# (callbacks through pointers are the way out, and nm does not see them).
for d in cli engine httpd proto common; do
	# Only the objects this Makefile builds: a stale one would lie.
	objs=$(grep -o "src/$d/[A-Za-z0-9_-]*"'\.$(OBJEXT)' \
	    "$top_builddir/Makefile" 2>/dev/null | sort -u |
	    sed 's|\$(OBJEXT)$|o|' | sed "s|^|$top_builddir/|")
	if [ -z "$objs" ] || ! command -v nm >/dev/null; then
		ok "no call cycle between the files of src/$d # SKIP not built"
		continue
	fi
	for o in $objs; do
		m=${o##*/}
		m=${m%.o}
		m=${m#*-}
		nm "$o" | awk -v m="$m" '$2 ~ /^[TDBR]$/ { print "def", m, $3 }
		    $1 == "U" { print "use", m, $2 }'
	done | awk '$1 == "def" { def[$3] = $2; next }
	    { use[++n] = $2 " " $3 }
	    END { for (i = 1; i <= n; i++) { split(use[i], u, " ")
		if ((u[2] in def) && def[u[2]] != u[1])
			print u[1], def[u[2]] } }' | sort -u >"$T/calls.$d"
	tsort "$T/calls.$d" >/dev/null 2>"$T/ccycle.$d"
	echo "# src/$d: $(wc -l <"$T/calls.$d") calls between files"
	report "no call cycle between the files of src/$d" "$T/ccycle.$d"
done

{ uses cli engine; uses cli httpd; } >"$T/cli"
report "src/cli includes nothing from src/engine or src/httpd" "$T/cli"

uses httpd engine | awk '$2 != "engine.h"' >"$T/httpd"
report "src/httpd includes only engine.h from src/engine" "$T/httpd"

{ uses proto engine; uses proto httpd; uses proto cli; } >"$T/proto"
report "src/proto includes nothing from the programs" "$T/proto"

{ uses common proto; uses common engine; uses common httpd;
    uses common cli; } >"$T/common"
report "src/common includes nothing from the layers above it" "$T/common"

grep -n '^AM_CPPFLAGS.*src/engine' "$top/Makefile.am" >"$T/cppflags"
report "no global -I src/engine in Makefile.am" "$T/cppflags"

if command -v nm >/dev/null && [ -x "$PARAFLOW" ]; then
	nm "$PARAFLOW" | grep -E ' [TtDdBbRr] (auth_server|auth_users|storage|engine|session|policy|stream|registry|finalize)_' \
	    >"$T/nm"
	report "paraflow links no server code (nm)" "$T/nm"
else
	ok "paraflow links no server code # SKIP no nm or no paraflow"
fi

done_testing
