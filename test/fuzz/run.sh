#!/usr/bin/env bash
# test/fuzz/run.sh — builds camperso's libFuzzer targets and runs them.
#
#   bash test/fuzz/run.sh build            build every target
#   bash test/fuzz/run.sh replay           build, then run every file of the
#                                          committed corpus through its target
#   bash test/fuzz/run.sh fuzz [SECONDS]   build, replay, then fuzz each target
#                                          for SECONDS (default $FUZZ_SECONDS,
#                                          else 600), one after the other
#   bash test/fuzz/run.sh fuzz SECONDS TARGET...   only those targets
#
# `make fuzz` runs the third form. Targets (test/fuzz/fuzz_<name>.c):
#   decode     bytes -> the JSON decoder, checked against PostgreSQL's own
#              JSON parser, UTF-8 verifier and numeric limits
#   validate   bytes -> decode -> the rules engine over a fixed ruleset
#   mapping    a mapping path and a message -> path compile and lookup,
#              checked against a walk with PostgreSQL's JSON parser
#   regex      a pattern and values -> the regex rule's DFA fast path,
#              checked against the regex engine's verdicts
#
# Each target links the production translation units it fuzzes
# (src/capture/decode.c, src/core/message.c, src/validate/engine.c,
# src/validate/regex_dfa.c) with
# pg_shim.c, a stand-in for the backend functions they call, against the
# PostgreSQL 15 server headers; built with clang -fsanitize=fuzzer,address,
# undefined and -fno-sanitize-recover, so any crash, leak, sanitizer report,
# escaped ERROR or broken invariant stops the run with a non-zero exit and a
# reproducer in $FUZZ_OUT/artifacts/.
#
# Environment: FUZZ_SECONDS (per target), FUZZ_OUT (build and run
# directory, default test/fuzz/corpus-run), FUZZ_JOBS (parallel fuzzing
# processes per target, default 1), FUZZ_MAX_LEN (default 16384),
# FUZZ_MERGE=1 (after fuzzing, merge new coverage into the committed corpus,
# kept small: only inputs that add coverage).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${FUZZ_OUT:-$HERE/corpus-run}
TARGETS=(decode validate mapping regex)
CLANG=${CLANG:-$(command -v clang-14 || command -v clang || true)}
PG_CONFIG=${PG_CONFIG:-$(ls /usr/lib/postgresql/15/bin/pg_config 2>/dev/null || command -v pg_config)}

# Sources linked into each target, besides its own fuzz_<name>.c.
declare -A UNITS=(
	[decode]="src/capture/decode.c src/core/message.c"
	[validate]="src/capture/decode.c src/core/message.c src/validate/engine.c src/validate/regex_dfa.c"
	[mapping]="src/capture/decode.c src/core/message.c"
	[regex]="src/validate/regex_dfa.c"
)

die() {
	echo "fuzz: $*" >&2
	exit 1
}

# Waits for every background job; fails if any did.
wait_all() {
	local rc=0 pid
	for pid in $(jobs -p); do
		wait "$pid" || rc=1
	done
	return $rc
}

build() {
	[ -n "$CLANG" ] || die "clang not found (bash tools/install-deps.sh installs it)"
	local inc lib san
	inc=$("$PG_CONFIG" --includedir-server)
	lib=$("$PG_CONFIG" --pkglibdir)
	[ -f "$lib/libpgcommon_shlib.a" ] || lib=$("$PG_CONFIG" --libdir)
	mkdir -p "$OUT/bin" "$OUT/obj"
	san="-fsanitize=address,undefined -fno-sanitize-recover=all"
	local cflags="-g -O1 -fno-omit-frame-pointer -Wall -Werror -Wno-unused-parameter
		-Wno-missing-field-initializers -Wno-sign-compare -Wno-ignored-attributes
		-DUSE_ASSERT_CHECKING -I$ROOT/src -I$HERE -I$inc"
	# The shim and the POSIX regex bridge: sanitized, but not coverage
	# instrumented, so libFuzzer's coverage figures are about camperso's code.
	# shellcheck disable=SC2086
	"$CLANG" $cflags $san -c "$HERE/pg_shim.c" -o "$OUT/obj/pg_shim.o"
	# shellcheck disable=SC2086
	"$CLANG" -g -O1 -Wall -Werror $san -c "$HERE/regex_posix.c" -o "$OUT/obj/regex_posix.o"
	# Each production unit is compiled once, instrumented for coverage.
	local t u objs
	declare -A done_units=()
	for t in "${TARGETS[@]}"; do
		for u in ${UNITS[$t]}; do
			[ -n "${done_units[$u]:-}" ] && continue
			# shellcheck disable=SC2086
			"$CLANG" $cflags -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
				-c "$ROOT/$u" -o "$OUT/obj/$(echo "$u" | tr / _).o" &
			done_units[$u]=1
		done
	done
	wait_all || die "compiling the production units failed"
	for t in "${TARGETS[@]}"; do
		objs=()
		for u in ${UNITS[$t]}; do
			objs+=("$OUT/obj/$(echo "$u" | tr / _).o")
		done
		# shellcheck disable=SC2086
		"$CLANG" $cflags -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
			-o "$OUT/bin/fuzz_$t" "$HERE/fuzz_$t.c" "${objs[@]}" \
			"$OUT/obj/pg_shim.o" "$OUT/obj/regex_posix.o" \
			"$lib/libpgcommon_shlib.a" "$lib/libpgport_shlib.a" -lm &
	done
	wait_all || die "building the targets failed"
	echo "fuzz: built ${TARGETS[*]} in $OUT/bin"
}

# Options every libFuzzer run gets.
fuzz_opts() {
	echo "-dict=$HERE/json.dict -max_len=${FUZZ_MAX_LEN:-16384} -timeout=10 -rss_limit_mb=2048 -print_final_stats=1"
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

replay() {
	local t files rc=0
	for t in "${TARGETS[@]}"; do
		mapfile -t files < <(find "$HERE/corpus/$t" -type f | sort)
		[ ${#files[@]} -gt 0 ] || die "no corpus for $t in $HERE/corpus/$t"
		if "$OUT/bin/fuzz_$t" -runs=1 "${files[@]}" >"$OUT/replay-$t.log" 2>&1; then
			echo "fuzz: replay $t: ${#files[@]} corpus files ok"
		else
			echo "fuzz: replay $t FAILED; log $OUT/replay-$t.log:" >&2
			tail -40 "$OUT/replay-$t.log" >&2
			rc=1
		fi
	done
	return $rc
}

fuzz_one() {
	local t=$1 secs=$2 jobs=${FUZZ_JOBS:-1}
	local work=$OUT/work/$t log=$OUT/fuzz-$t.log
	mkdir -p "$work" "$OUT/artifacts"
	local args
	# shellcheck disable=SC2207
	args=($(fuzz_opts) -max_total_time="$secs" -artifact_prefix="$OUT/artifacts/$t-")
	[ "$jobs" -gt 1 ] && args+=(-fork="$jobs")
	echo "fuzz: $t for ${secs}s (log $log)"
	if ! "$OUT/bin/fuzz_$t" "${args[@]}" "$work" "$HERE/corpus/$t" >"$log" 2>&1; then
		echo "fuzz: $t FOUND A PROBLEM; reproducer in $OUT/artifacts/; log tail:" >&2
		tail -60 "$log" >&2
		return 1
	fi
	# the final figures: executions, coverage (cov: edges, ft: features)
	local last
	last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
	echo "fuzz: $t done: $last"
	grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" | sed 's/^/    /' || true
	if [ "${FUZZ_MERGE:-}" = 1 ]; then
		"$OUT/bin/fuzz_$t" -merge=1 "$(fuzz_opts)" "$HERE/corpus/$t" "$work" >>"$log" 2>&1
		echo "fuzz: merged new coverage of $t into test/fuzz/corpus/$t"
	fi
}

cmd=${1:-fuzz}
shift || true
case $cmd in
build)
	build
	;;
replay)
	build
	replay
	;;
fuzz)
	secs=${1:-${FUZZ_SECONDS:-600}}
	shift || true
	[ $# -gt 0 ] && TARGETS=("$@")
	build
	replay
	rc=0
	for t in "${TARGETS[@]}"; do
		fuzz_one "$t" "$secs" || rc=1
	done
	exit $rc
	;;
*)
	die "unknown command $cmd (build, replay or fuzz)"
	;;
esac
