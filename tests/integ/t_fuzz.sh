#!/bin/bash
# SPDX-License-Identifier: MIT
# Runs each libFuzzer target the fuzz build made (configure CC=clang
# --enable-fuzz --enable-asan --enable-ubsan; scripts/test.sh does) for
# FUZZ_SECONDS (default 30) from its own seed corpus, tests/fuzz/corpus/
# TARGET (hand-made seeds, and the regression inputs of bugs found); any
# crash, leak or sanitizer report fails the test. docs/fuzzing.md says
# how to run them longer.
. "$(dirname "$0")/lib.sh"

corpus=$(cd "$here/../fuzz/corpus" && pwd)
targets=$(ls "$top_builddir"/tests/fuzz/fuzz_* 2>/dev/null | grep -v '\.')
[ -n "$targets" ] ||
    skip_all "no fuzz targets here: built by configure CC=clang --enable-fuzz"

# The targets write staging areas and users files: on tmpfs, where a
# sync costs nothing, where there is one.
scratch=$T
if [ -w /dev/shm ] && scratch=$(mktemp -d /dev/shm/pf-fuzz.XXXXXX); then
	trap 'rm -rf "$scratch"; cleanup' EXIT
else
	scratch=$T
fi

for bin in $targets; do
	name=${bin##*/}
	if [ ! -d "$corpus/$name" ]; then
		not_ok "$name: no seed corpus in tests/fuzz/corpus/$name"
		continue
	fi
	# A scratch copy: libFuzzer adds what it finds to the corpus.
	mkdir -p "$T/$name" "$scratch/tmp-$name"
	cp "$corpus/$name"/* "$T/$name/"
	if TMPDIR="$scratch/tmp-$name" "$bin" \
	    -max_total_time="${FUZZ_SECONDS:-30}" -max_len=4096 -rss_limit_mb=1024 -print_final_stats=1 \
	    "$T/$name" >"$T/$name.log" 2>&1; then
		runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$T/$name.log")
		cov=$(sed -n 's/^#[0-9]*.*DONE *cov: \([0-9]*\).*/\1/p' \
		    "$T/$name.log")
		ok "$name: no crash in ${FUZZ_SECONDS:-30} s (${runs:-?} runs," \
		    "${cov:-?} edges covered)"
		# libFuzzer's last status line, for the record.
		grep -a 'DONE *cov' "$T/$name.log" | tail -n 1 | sed 's/^/# /'
	else
		tail -n 30 "$T/$name.log" | sed 's/^/# /'
		not_ok "$name: the fuzzer found a crash"
	fi
done
done_testing
