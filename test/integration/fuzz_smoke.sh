#!/usr/bin/env bash
# The fuzz targets (test/fuzz/) built with AddressSanitizer and UBSan
# (-fno-sanitize-recover): every file of the committed corpus replayed
# through its target (the regressions of past findings included), then a
# short fuzzing session per target (60 s in all, 20 s with CAMPERSO_QUICK).
# Fails on any crash, leak, sanitizer report, escaped ERROR or broken
# invariant; `make fuzz` is the long run.
source "$(dirname "$0")/../lib.sh"

command -v clang >/dev/null 2>&1 || command -v clang-14 >/dev/null 2>&1 ||
	skip "clang is not installed (tools/install-deps.sh installs it)"
ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
	skip "libFuzzer's runtime is not installed (libclang-rt-14-dev)"

RUN=$CAMPERSO_ROOT/test/fuzz/run.sh
export FUZZ_OUT=$CAMPERSO_TEST_WORK/fuzz
TARGETS=(decode validate mapping regex)
PER_TARGET=15
[ -n "$CAMPERSO_QUICK" ] && PER_TARGET=5

bash "$RUN" fuzz "$PER_TARGET" >"$CAMPERSO_TEST_WORK/fuzz.log" 2>&1
rc=$?
cat "$CAMPERSO_TEST_WORK/fuzz.log"
[ $rc -eq 0 ] || fail "fuzzing failed (exit $rc); reproducers: $(ls "$FUZZ_OUT/artifacts" 2>/dev/null)"

for t in "${TARGETS[@]}"; do
	n=$(find "$CAMPERSO_ROOT/test/fuzz/corpus/$t" -type f | wc -l)
	[ "$n" -ge 12 ] || fail "corpus of $t has only $n files"
	grep -q "^fuzz: replay $t: $n corpus files ok" "$CAMPERSO_TEST_WORK/fuzz.log" ||
		fail "replay of $t did not run its $n corpus files"
	grep -aq "Executed .* in" "$FUZZ_OUT/replay-$t.log" || fail "replay of $t executed nothing"
	# the session ran to its time limit and executed inputs in earnest
	log=$FUZZ_OUT/fuzz-$t.log
	grep -aqE '^Done [0-9]+ runs' "$log" || fail "fuzzing $t did not finish: $(tail -3 "$log")"
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	[ "${runs:-0}" -ge 2000 ] || fail "fuzzing $t executed only ${runs:-0} inputs"
	cov=$(grep -aoE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
	[ "${cov:-0}" -ge 100 ] || fail "fuzzing $t covered only ${cov:-0} edges"
	echo "ok - $t: $n corpus files replayed, $runs inputs fuzzed, cov $cov"
	! grep -aqE 'runtime error|AddressSanitizer|LeakSanitizer' "$log" "$FUZZ_OUT/replay-$t.log" ||
		fail "sanitizer report in the logs of $t"
done
echo "ok - fuzz smoke"
