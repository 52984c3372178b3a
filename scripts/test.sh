#!/bin/bash
# SPDX-License-Identifier: MIT
# Installs what is needed, builds ParaFlow twice (plain, and with ASan and
# UBSan) and runs every test in both, runs the libFuzzer targets from a
# third build (clang), then make distcheck. Ends with the
# line "N passed, N failed" counted from the tests' own results.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
"$top/scripts/deps.sh" || exit 1
autoreconf -fi || exit 1

extra_pass=0
extra_fail=0
run_suite() {
	local dir=$1
	shift
	rm -rf "${dir:?}"
	if ! "$top/scripts/build.sh" "$dir" "$@"; then
		echo "build in $dir failed"
		extra_fail=$((extra_fail + 1))
		return
	fi
	make -C "$dir" -j2 check || {
		echo "--- failed tests in $dir:"
		# A test program that did not build fails no test: count it.
		if ! grep -q ':test-result: \(FAIL\|ERROR\|XPASS\)' \
		    $(find "$dir/tests" -name '*.trs') /dev/null 2>/dev/null
		then
			echo "make check in $dir failed outside any test"
			extra_fail=$((extra_fail + 1))
		fi
		grep -l ':test-result: \(FAIL\|ERROR\|XPASS\)' \
		    $(find "$dir/tests" -name '*.trs') 2>/dev/null |
		while read -r trs; do
			echo "=== ${trs%.trs}.log"
			tail -n 60 "${trs%.trs}.log"
		done
	}
}

run_suite build
run_suite build-san --enable-asan --enable-ubsan
# The libFuzzer targets, under ASan and UBSan (tests/integ/t_fuzz.sh).
run_suite build-fuzz CC=clang --enable-fuzz --enable-asan --enable-ubsan

if make -C build -j2 distcheck >build/distcheck.log 2>&1; then
	echo "PASS: make distcheck"
	extra_pass=$((extra_pass + 1))
else
	echo "FAIL: make distcheck"
	tail -n 40 build/distcheck.log
	extra_fail=$((extra_fail + 1))
fi

trs_files=$(find build build-san build-fuzz -path '*/tests/*' -name '*.trs' \
    2>/dev/null)
# Last, where a short tail of this output shows it: each failed test (the
# distcheck copies too) with its first failed checks.
for trs in $(grep -l ':test-result: \(FAIL\|ERROR\|XPASS\)' $trs_files \
    2>/dev/null); do
	echo "failed: ${trs%.trs}"
	grep -E '^(not ok|Bail out)' "${trs%.trs}.log" | head -n 4
done | head -n 40
results=$(printf '%s\n' $trs_files | xargs -r grep -h '^:test-result:' \
    2>/dev/null)
count() { printf '%s\n' "$results" | grep -c "^:test-result: $1\$"; }
passed=$(( $(count PASS) + $(count XFAIL) + extra_pass ))
failed=$(( $(count FAIL) + $(count ERROR) + $(count XPASS) + extra_fail ))
skipped=$(count SKIP)
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
