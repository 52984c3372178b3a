#!/bin/bash
# SPDX-License-Identifier: MIT
# Runs each libFuzzer target the fuzz build made (configure CC=clang
# --enable-fuzz --enable-asan --enable-ubsan; scripts/test.sh does) for
# FUZZ_SECONDS (default 30) from its seed corpus in tests/fuzz/corpus;
# any crash, leak or sanitizer report fails the test.
. "$(dirname "$0")/lib.sh"

corpus=$(cd "$here/../fuzz/corpus" && pwd)
targets=$(ls "$top_builddir"/tests/fuzz/fuzz_* 2>/dev/null | grep -v '\.')
[ -n "$targets" ] ||
    skip_all "no fuzz targets here: built by configure CC=clang --enable-fuzz"

for bin in $targets; do
	name=${bin##*/}
	# A scratch copy: libFuzzer adds what it finds to the corpus.
	mkdir -p "$T/$name"
	cp "$corpus"/* "$T/$name/" 2>/dev/null
	if "$bin" -max_total_time="${FUZZ_SECONDS:-30}" -max_len=4096 \
	    -rss_limit_mb=1024 "$T/$name" >"$T/$name.log" 2>&1; then
		runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$T/$name.log")
		ok "$name: no crash in ${FUZZ_SECONDS:-30} s (${runs:-?} runs)"
	else
		tail -n 30 "$T/$name.log" | sed 's/^/# /'
		not_ok "$name: the fuzzer found a crash"
	fi
done
done_testing
