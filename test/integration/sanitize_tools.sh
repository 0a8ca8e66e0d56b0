#!/usr/bin/env bash
# The project's C tools built with AddressSanitizer and UBSan
# (-fno-sanitize-recover) and run through what the tests, the demo and the
# benchmarks ask of them: camperso-gen writes the same bytes as the normal
# build for every kind of output (10,000 events; bad, duplicate and late
# lines; profile updates; keys) and its clean events parse as JSON objects;
# camperso-kafka starts a cluster kcat can list, takes and serves messages,
# answers every control command and quits cleanly. Any sanitizer report
# (leaks included) fails the test. The decode and validation code is
# covered the same way by fuzz_smoke.
source "$(dirname "$0")/../lib.sh"

CC_SAN=$(command -v clang || command -v clang-14 || true)
[ -n "$CC_SAN" ] || skip "clang is not installed (tools/install-deps.sh installs it)"
GEN=$CAMPERSO_ROOT/tools/camperso-gen
[ -x "$GEN" ] || fail "tools/camperso-gen is not built"

W=$CAMPERSO_TEST_WORK/sanitize
mkdir -p "$W"
SAN="-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"
# shellcheck disable=SC2086
"$CC_SAN" $SAN -Wall -Wextra -o "$W/camperso-gen" "$CAMPERSO_ROOT/tools/gen.c" ||
	fail "sanitized build of tools/gen.c"
# shellcheck disable=SC2086,SC2046
"$CC_SAN" $SAN -Wall -Wextra -o "$W/camperso-kafka" "$CAMPERSO_ROOT/tools/kafka_mock.c" \
	$(pkg-config --cflags --libs rdkafka) -lpthread || fail "sanitized build of tools/kafka_mock.c"
echo "ok - tools built with ASan and UBSan"

# Reports go to files, so a report from any process is seen.
export ASAN_OPTIONS="detect_leaks=1:log_path=$W/asan"
export UBSAN_OPTIONS="print_stacktrace=1:log_path=$W/ubsan"
no_reports() {
	local f
	for f in "$W"/asan.* "$W"/ubsan.*; do
		[ -e "$f" ] || continue
		cat "$f" >&2
		fail "sanitizer report from $1 in $(basename "$f")"
	done
}

# ---- the generator: same bytes as the normal build, whatever the options
n=0
while IFS= read -r opts; do
	# shellcheck disable=SC2086
	"$W/camperso-gen" $opts >"$W/san.out" 2>"$W/san.err" || fail "sanitized camperso-gen $opts: exit $?"
	# shellcheck disable=SC2086
	"$GEN" $opts >"$W/ref.out" 2>"$W/ref.err"
	cmp -s "$W/san.out" "$W/ref.out" || fail "camperso-gen $opts: output differs under the sanitizers"
	cmp -s "$W/san.err" "$W/ref.err" || fail "camperso-gen $opts: stderr differs under the sanitizers"
	no_reports "camperso-gen $opts"
	n=$((n + 1))
done <<'OPTS'
--events 10000
--events 10000 --seed 9 --invalid-rate 0.2 --duplicate-rate 0.05 --late-rate 0.1 --stats
--events 3000 --seed 3 --apps 50 --users 5 --sessions 3 --invalid-rate 1
--events 2000 --users-topic --late-rate 0.3 --key
--events 500 --users 1 --sessions 1 --start-time 1714521600
--help
OPTS
echo "ok - camperso-gen: $n option sets, same output as the normal build"

"$W/camperso-gen" --events 5 --bogus >/dev/null 2>&1
[ $? -ne 0 ] || fail "camperso-gen took an unknown option"
"$W/camperso-gen" --events -3 >/dev/null 2>&1
no_reports "camperso-gen with bad options"

"$W/camperso-gen" --events 10000 --seed 4 --invalid-rate 0 >"$W/clean.jsonl"
assert_eq 10000 "$(wc -l <"$W/clean.jsonl")" "10,000 events written"
bad=$(perl -MJSON::PP -ne '
	my $d = eval { JSON::PP->new->decode($_) };
	$n++ unless ref($d) eq "HASH" && defined $d->{event_id} && defined $d->{ts};
	END { print $n + 0 }' "$W/clean.jsonl")
assert_eq 0 "$bad" "every clean event is a JSON object with event_id and ts"
no_reports "camperso-gen"

# ---- the embedded Kafka
CAMPERSO_KAFKA=$W/camperso-kafka
kafka_start k --brokers 3 --topic clicks:4
BOOT=$(kafka_bootstrap k)
meta=$(kcat -b "$BOOT" -L -t clicks 2>&1) || fail "kcat -L: $meta"
echo "$meta" | grep -q " 3 brokers:" || fail "kcat -L does not list 3 brokers: $meta"
echo "$meta" | grep -q 'topic "clicks" with 4 partitions' || fail "kcat -L does not list clicks: $meta"
echo "ok - kcat -L lists the sanitized mock cluster"

"$W/camperso-gen" --events 2000 --seed 6 --key | kafka_produce k clicks -K $'\t'
assert_eq 2000 "$(kafka_count k clicks)" "2000 messages produced and consumed back"
for cmd in "topic extra 2" "rtt 1 20" "rtt 1 0" "down 2" "up 2" "errors 0 6 2"; do
	kafka_ctl k "$cmd"
done
echo "ok - control commands answered"

pid=$(cat "$CAMPERSO_TEST_WORK/kafka-k/pid")
kafka_ctl k quit
deadline=$((SECONDS + 30))
while kill -0 "$pid" 2>/dev/null; do
	[ $SECONDS -lt $deadline ] || fail "the mock did not quit"
	sleep 0.2
done
wait "$pid"
rc=$?
rm -f "$CAMPERSO_TEST_WORK/kafka-k/pid"
cat "$CAMPERSO_TEST_WORK/kafka-k/err"
assert_eq 0 "$rc" "the sanitized mock exits 0 on quit"
no_reports "camperso-kafka"
echo "ok - sanitized tools"
