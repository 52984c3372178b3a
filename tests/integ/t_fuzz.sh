#!/bin/bash
# SPDX-License-Identifier: MIT
# Builds the libFuzzer target with clang and runs it for FUZZ_SECONDS
# (default 30) from the seed corpus; any crash, leak or sanitizer report
# fails the test.
. "$(dirname "$0")/lib.sh"

command -v clang >/dev/null || skip_all "clang not installed"
srcdir=${srcdir:-.}
top=$(cd "$srcdir" && pwd)
src="$top/src"
bin="$T/fuzz_input"
if ! clang -g -O1 -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=undefined -std=gnu11 -pthread \
    -include "$top_builddir/config.h" -I"$top_builddir" \
    -I"$src/common" -I"$src/proto" -I"$src/engine" \
    "$top/tests/fuzz/fuzz_input.c" "$src/proto/proto.c" \
    "$src/proto/scram.c" "$src/engine/auth.c" "$src/engine/users.c" \
    "$src/engine/policy.c" "$src/common/buf.c" "$src/common/fsutil.c" \
    "$src/common/digest.c" "$src/common/clock.c" "$src/common/log.c" \
    "$src/common/status.c" \
    -lcrypto -o "$bin" 2>"$T/build.log"; then
	if grep -q 'fuzzer' "$T/build.log"; then
		skip_all "clang has no libFuzzer runtime (libclang-rt-14-dev)"
	fi
	sed 's/^/# /' "$T/build.log"
	not_ok "fuzz target builds"
	done_testing
fi
ok "fuzz target builds"
mkdir -p "$T/corpus"
cp "$top"/tests/fuzz/corpus/* "$T/corpus/" 2>/dev/null
if "$bin" -max_total_time="${FUZZ_SECONDS:-30}" -max_len=4096 \
    -rss_limit_mb=1024 "$T/corpus" >"$T/fuzz.log" 2>&1; then
	ok "no crash in ${FUZZ_SECONDS:-30} s of fuzzing ($(grep -c . "$T/fuzz.log") log lines)"
else
	tail -n 30 "$T/fuzz.log" | sed 's/^/# /'
	not_ok "fuzzer found a crash"
fi
done_testing
