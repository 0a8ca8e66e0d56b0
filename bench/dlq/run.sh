#!/usr/bin/env bash
# bench/dlq/run.sh — what a dead-letter topic costs the consume loop, and
# what an outage of it costs. Not a test: it prints figures and, when
# $BENCH_RESULTS is set, appends "what|camperso|baseline|ratio|target" rows.
#
# 200,000 small keyed messages (scaled by BENCH_SCALE), one in ten bad (half
# malformed JSON, half breaking a range rule), are produced lz4-compressed
# into 8 partitions of the embedded Kafka (counted before use). Three
# sources with the same ruleset read the topic into tables of their own:
#	nodlq	no dlq_topic (the baseline)
#	dlq		dlq_topic, brokers healthy: 20,000 copies per run
#	outage	dlq_topic while the brokers refuse every produce
#			(NOT_ENOUGH_REPLICAS, which librdkafka retries): copies wait in
#			the bounded local queue (what does not fit is refused at once)
#			and are delivered once the outage ends
# Each source starts at the end of the topic and the script waits until it
# owns all partitions, so no rebalance falls inside a run; a run then
# rewinds it with reset_offsets() and is timed until every message is landed
# or quarantined. Runs alternate nodlq, dlq, outage, RUNS times; between
# runs the copies of the last run are waited for (the outage is lifted
# first), so runs do not overlap. Medians, and ratios baseline / mode (1.0:
# no cost). Target: a DLQ, healthy or not, costs at most 10% (>= 0.9x).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/test/lib.sh"
source "$ROOT/test/capture_lib.sh"
source "$ROOT/bench/lib.sh"

RUNS=${RUNS:-3}
N=$(bench_scaled 200000 20000)
N=$((N - N % 10))
NBAD=$((N / 10))
P=8
MODES=(nodlq dlq outage)

[ -x "$CAMPERSO_KAFKA" ] || make -s -C "$ROOT" tools/camperso-kafka >/dev/null

W=$(bench_workdir dlq)
awk -v n="$N" 'BEGIN {
	for (i = 0; i < n; i++) {
		if (i % 20 == 5) printf "u%d\t{\"n\":%d,\"k\":\"u%d\",\"v\":\n", i % 997, i, i % 997
		else if (i % 20 == 15) printf "u%d\t{\"n\":-%d,\"k\":\"u%d\",\"v\":\"abcdefghij\"}\n", i % 997, i, i % 997
		else printf "u%d\t{\"n\":%d,\"k\":\"u%d\",\"v\":\"abcdefghij\"}\n", i % 997, i, i % 997
	}
}' >"$W/keyed.tsv"

kafka_start k --brokers 1 --topic "in:$P"
BS=$(kafka_bootstrap k)
note "producing $N messages ($NBAD bad) lz4-compressed into $P partitions"
bench_kafka_backlog k in "$W/keyed.tsv" "$N"

cluster_create b
cluster_start b
q b "CREATE EXTENSION camperso" >/dev/null
q b "SELECT camperso.add_rule('r', 'n', 'range', '{\"min\": 0}')" >/dev/null
for m in "${MODES[@]}"; do
	dlq=""
	[ "$m" != nodlq ] && dlq="\"dlq_topic\": \"dlq_$m\","
	q b "CREATE TABLE t_$m (n int NOT NULL, k text, v text, _partition int, _offset bigint)"
	q b "SELECT camperso.create_source('$m', '$BS', 'in', 't_$m', ruleset => 'r',
	     options => '{$dlq \"start\": \"latest\", $KAFKA_TEST_OPTS}'), camperso.start_source('$m')" >/dev/null
done
settled() {
	[ "$(q b "SELECT count(*) FROM camperso.stat_sources WHERE partition IS NOT NULL AND state = 'assigned'")" = $((P * ${#MODES[@]})) ]
}
wait_for 60 "every source to own its $P partitions" settled

# accounted SOURCE N: its dead letters delivered or failed reach N
accounted() {
	[ "$(q b "SELECT dlq_produced + dlq_failed FROM camperso.stat_sources WHERE source = '$1' AND partition IS NULL")" -ge "$2" ]
}
landed() {
	[ "$(q b "SELECT (SELECT count(*) FROM t_$1) + (SELECT count(*) FROM camperso.quarantine WHERE source = '$1')")" -ge "$N" ]
}

q b "CREATE TABLE bench_times (mode text, run int, ms float8, produced bigint, failed bigint)"
note "$N messages per run, $RUNS runs per mode"
for r in $(seq 1 "$RUNS"); do
	for m in "${MODES[@]}"; do
		q b "TRUNCATE t_$m" >/dev/null
		q b "DELETE FROM camperso.quarantine WHERE source = '$m'" >/dev/null
		before=$(q b "SELECT dlq_produced || ' ' || dlq_failed FROM camperso.stat_sources WHERE source = '$m' AND partition IS NULL")
		[ "$m" = outage ] && kafka_ctl k errors 0 19 5000
		t0=$(now_ms)
		q b "SELECT camperso.reset_offsets('$m')" >/dev/null
		wait_for 300 "source $m to land run $r" landed "$m"
		ms=$(($(now_ms) - t0))
		during=$(q b "SELECT dlq_produced FROM camperso.stat_sources WHERE source = '$m' AND partition IS NULL")
		[ "$m" = outage ] && kafka_ctl k clear 0
		[ "$m" != nodlq ] && wait_for 120 "the dead letters of $m run $r" accounted "$m" $((r * NBAD))
		after=$(q b "SELECT dlq_produced || ' ' || dlq_failed FROM camperso.stat_sources WHERE source = '$m' AND partition IS NULL")
		read -r p0 f0 <<<"$before"
		read -r p1 f1 <<<"$after"
		q b "INSERT INTO bench_times VALUES ('$m', $r, $ms, $((p1 - p0)), $((f1 - f0)))"
		printf '  run %d %-7s %6d ms  dead letters delivered %d (%d while landing), failed %d\n' \
			"$r" "$m" "$ms" $((p1 - p0)) $((during - p0)) $((f1 - f0))
	done
done
assert_eq "$((N - NBAD))|$NBAD" "$(q b "SELECT (SELECT count(*) FROM t_outage), (SELECT count(*) FROM camperso.quarantine WHERE source = 'outage')")" \
	"the last outage run landed and quarantined everything"

median() { q b "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::int FROM bench_times WHERE mode = '$1'"; }
base=$(median nodlq)
printf '%-40s %6s ms  %s messages/s\n' "no dead-letter topic (baseline)" "$base" "$((N * 1000 / base))"
row() {
	local m=$1 label=$2
	local t ratio
	t=$(median "$m")
	ratio=$(awk -v b="$base" -v c="$t" 'BEGIN { printf "%.2f", b / c }')
	printf '%-40s %6s ms  %s messages/s  ratio %sx  target >= 0.9x\n' "$label" "$t" "$((N * 1000 / t))" "$ratio"
	if [ -n "${BENCH_RESULTS:-}" ]; then
		echo "$label vs none (ms per $N messages, $NBAD quarantined)|$t|$base|${ratio}x|>= 0.9x" >>"$BENCH_RESULTS"
	fi
}
row dlq "dead-letter topic, healthy"
row outage "dead-letter topic, brokers refuse produce"
