#!/usr/bin/env bash
# bench/ingest/run.sh — Kafka to PostgreSQL through camperso's source
# workers, against plain COPY. Not a test: it prints figures and, when
# $BENCH_RESULTS is set, appends "what|camperso|baseline|ratio|target" rows.
#
# 1. Throughput. 1,000,000 realistic events (scaled by BENCH_SCALE) from
#    tools/camperso-gen, keyed by user_id, are produced lz4-compressed into
#    enough partitions of the embedded Kafka that it keeps them all (counted
#    before use). In the same cluster and run, RUNS times each, alternating:
#    (a) plain COPY of the same JSON lines from a file into a one-column
#        jsonb table (the baseline), timed by psql;
#    (b) camperso consuming the topic (WORKERS workers) into a typed staging
#        table with _raw, _partition, _offset, _key, _received_at, offsets
#        and quarantine active. The source starts at the end of the topic
#        and the run waits until every worker owns its partitions, so no
#        consumer-group rebalance falls inside a timed run; each run then
#        rewinds the running source with reset_offsets(). A run is timed
#        from the first message a worker received (min _received_at) to the
#        commit of the last batch (track_commit_timestamp).
#    Medians of events/s and the ratio b/a (also the median of the per-run
#    ratios, each from two runs next to each other). The machine may be
#    shared, so each run also reports CPU time from /proc: of the COPY
#    backend, of the workers (librdkafka's threads included) and of the
#    embedded Kafka, per 1000 events, and how busy the whole machine was.
#    Peak RSS of the workers: VmHWM, which counts every shared buffer page
#    the worker touched, and the peak of their private memory (RssAnon +
#    RssFile, sampled). Both sides write WAL (wal_level minimal, no fsync:
#    as the tests' clusters, fsync = off).
# 2. Latency. A second topic gets a steady 10,000 events/s (camperso-gen
#    --rate, kcat lingering 20 ms) for LATENCY_SECONDS (batch_ms 50, fetch.wait.max.ms 10: the
#    embedded Kafka holds empty fetches for the whole wait); each row's produce time is its Kafka
#    message timestamp (read back with kcat, joined on partition and
#    offset), its committed time the commit timestamp of its transaction.
#    p50 and p99 of produce -> committed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/test/lib.sh"
source "$ROOT/test/capture_lib.sh"
source "$ROOT/bench/lib.sh"
set +u

RUNS=${RUNS:-3}
WORKERS=${WORKERS:-2}
N=$(bench_scaled 1000000 20000)
# lz4 keeps these events at ~1/4 of their size; the mock holds ~5 MiB per
# partition: aim at ~2 MiB per partition
P=$(awk -v n="$N" 'BEGIN { p = int(n * 480 / 4 / (2 * 1048576)) + 1; if (p < 4) p = 4; print p }')
RATE=10000
LATENCY_SECONDS=$(bench_scaled 30 10)
LP=$(awk -v n="$((RATE * LATENCY_SECONDS))" 'BEGIN { p = int(n * 480 / 4 / (2 * 1048576)) + 1; if (p < 4) p = 4; print p }')

[ -x "$ROOT/tools/camperso-gen" ] || make -s -C "$ROOT" tools/camperso-gen >/dev/null
[ -x "$CAMPERSO_KAFKA" ] || make -s -C "$ROOT" tools/camperso-kafka >/dev/null

W=$(bench_workdir ingest)

note "generating $N events"
"$ROOT/tools/camperso-gen" --events "$N" --seed 7 --invalid-rate 0 --apps 4 --key >"$W/keyed.tsv"
cut -f2- "$W/keyed.tsv" >"$W/lines.json"
chmod 644 "$W"/*

kafka_start k --brokers 1 --topic "clicks:$P" --topic "live:$LP"
BS=$(kafka_bootstrap k)
note "producing $N events lz4-compressed into $P partitions"
bench_kafka_backlog k clicks "$W/keyed.tsv" "$N"

conf=$W/bench.conf
cat "$ROOT/test/camperso.conf" >"$conf"
cat >>"$conf" <<CONF
shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 30min
wal_level = minimal
max_wal_senders = 0
track_commit_timestamp = on
log_min_messages = warning
CONF
cluster_create bench "$conf"
cluster_start bench
psql_b() { cluster_psql bench -d postgres "$@"; }

staging() {
	cat <<SQL
CREATE TABLE $1 (
	event_id	uuid NOT NULL,
	user_id		text NOT NULL,
	session_id	text,
	app_id		text,
	event_type	text,
	page_url	text,
	referrer	text,
	user_agent	text,
	ip			inet,
	country		text,
	ts			timestamptz NOT NULL,
	props		jsonb,
	_partition	int,
	_offset		bigint,
	_key		text,
	_received_at timestamptz,
	_raw		bytea
);
SQL
}
psql_b <<SQL
CREATE EXTENSION camperso;
$(staging events)
$(staging live_events)
CREATE TABLE baseline (doc jsonb);
SQL

# The source starts at the end of the topic, so that the consumer group can
# settle (every worker owning its partitions) before anything is consumed.
OPTS="{\"workers\": $WORKERS, \"start\": \"latest\", \"batch_size\": 10000, \"batch_ms\": 100, $KAFKA_TEST_OPTS}"
psql_b -c "SELECT camperso.create_source('bench', '$BS', 'clicks', 'events', options => '$OPTS')" \
	-c "SELECT camperso.start_source('bench')" >/dev/null
# settled SOURCE PARTITIONS: every partition assigned, to every worker
settled() {
	[ "$(psql_b -c "SELECT count(*) || ' ' || count(DISTINCT pid) FROM camperso.stat_sources
	                WHERE source = '$1' AND partition IS NOT NULL AND state = 'assigned'")" = "$2 $((WORKERS < $2 ? WORKERS : $2))" ]
}
wait_for 120 "every worker of the bench source to own its partitions" settled bench "$P"

median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
# CPU ticks (user + system, every thread) of processes; busy ticks of the machine
ticks() {
	local p t=0
	for p in "$@"; do
		t=$((t + $(awk '{ print $14 + $15 }' /proc/"$p"/stat 2>/dev/null || echo 0)))
	done
	echo "$t"
}
machine_busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat; }
HZ=$(getconf CLK_TCK)
per_kevent() { awk -v t="$1" -v hz="$HZ" -v n="$N" 'BEGIN { printf "%.1f", t / hz * 1000 / (n / 1000) }'; }
busy_pct() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, " "); split(b, y, " "); d = (y[1] - x[1]) + (y[2] - x[2]); printf "%d", (d > 0 ? 100 * (y[1] - x[1]) / d : 0) }'; }

# Samples the workers' private memory (RssAnon + RssFile: what is not the
# shared buffers they touched) every 0.2 s; the peak goes to $W/private.
sample_private() {
	local peak=0 p v
	while [ ! -f "$W/stop-sampler" ]; do
		for p in $(worker_pids bench bench 2>/dev/null); do
			v=$(awk '/^RssAnon|^RssFile/ { s += $2 } END { print s + 0 }' /proc/"$p"/status 2>/dev/null)
			[ -n "$v" ] && [ "$v" -gt "$peak" ] && peak=$v && echo "$peak" >"$W/private"
		done
		sleep 0.2
	done
}
rm -f "$W/stop-sampler"
echo 0 >"$W/private"
sample_private &
sampler=$!
kafka_pid=$(cat "$CAMPERSO_TEST_WORK/kafka-k/pid")
ours=()
base=()
ratios=()
for r in $(seq 1 "$RUNS"); do
	# (a) COPY into jsonb, in a session that reports its backend's CPU time
	psql_b -c "TRUNCATE baseline" -c "CHECKPOINT" >/dev/null
	m0=$(machine_busy)
	out=$(psql_b <<SQL
SELECT pg_backend_pid() AS pid \\gset
\\setenv BENCH_PID :pid
\\! awk '{ print "cpu", \$14 + \$15 }' /proc/\$BENCH_PID/stat
\\timing on
COPY baseline (doc) FROM '$W/lines.json' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02');
\\timing off
\\! awk '{ print "cpu", \$14 + \$15 }' /proc/\$BENCH_PID/stat
SQL
	)
	m1=$(machine_busy)
	ms=$(awk '/^Time: / { print $2 }' <<<"$out")
	copy_cpu=$(awk '/^cpu / { c[++n] = $2 } END { print c[2] - c[1] }' <<<"$out")
	[ -n "$ms" ] && [ -n "$copy_cpu" ] || fail "could not read the COPY timing: $out"
	[ "$(psql_b -c "SELECT count(*) FROM baseline")" = "$N" ] || fail "COPY did not load $N rows"
	base+=("$(awk -v n="$N" -v t="$ms" 'BEGIN { printf "%d", n / (t / 1000) }')")
	copy_busy=$(busy_pct "$m0" "$m1")

	# (b) camperso: the running source consumes the whole topic again
	psql_b -c "TRUNCATE events" -c "DELETE FROM camperso.quarantine" -c "CHECKPOINT" >/dev/null
	pids=$(worker_pids bench bench)
	w0=$(ticks $pids)
	k0=$(ticks "$kafka_pid")
	m0=$(machine_busy)
	psql_b -c "SELECT camperso.reset_offsets('bench')" >/dev/null
	wait_for 900 "camperso to land the $N events" rows_eq bench events "$N"
	w1=$(ticks $pids)
	k1=$(ticks "$kafka_pid")
	m1=$(machine_busy)
	[ "$(worker_pids bench bench)" = "$pids" ] || fail "run $r: the workers changed during the run"
	secs=$(psql_b -c "SELECT extract(epoch FROM max(pg_xact_commit_timestamp(xmin)) - min(_received_at)) FROM events")
	ours+=("$(awk -v n="$N" -v t="$secs" 'BEGIN { printf "%d", n / t }')")
	assert_eq "$N|$N|0" "$(psql_b -c "SELECT count(*), count(DISTINCT (_partition, _offset)), (SELECT count(*) FROM camperso.quarantine) FROM events")" \
		"run $r: every event landed once, none quarantined"
	ratios+=("$(awk -v a="${ours[-1]}" -v b="${base[-1]}" 'BEGIN { printf "%.2f", a / b }')")
	echo "run $r: camperso ${ours[-1]} events/s ($WORKERS workers), COPY jsonb ${base[-1]} events/s, ratio ${ratios[-1]}"
	echo "       CPU ms per 1000 events: COPY backend $(per_kevent "$copy_cpu"); workers $(per_kevent $((w1 - w0))), embedded Kafka $(per_kevent $((k1 - k0))); machine busy ${copy_busy}% / $(busy_pct "$m0" "$m1")%"
	echo "$copy_cpu $((w1 - w0)) $((k1 - k0))" >>"$W/cpu"
done

touch "$W/stop-sampler"
wait "$sampler"
private_mb=$(awk -v k="$(cat "$W/private")" 'BEGIN { printf "%.0f", k / 1024 }')
pids=$(worker_pids bench bench)
rss=0
for p in $pids; do
	h=$(awk '/VmHWM/ { print $2 }' /proc/"$p"/status)
	[ "$h" -gt "$rss" ] && rss=$h
done
rss_mb=$(awk -v k="$rss" 'BEGIN { printf "%.0f", k / 1024 }')

# ---- latency at a steady rate
psql_b -c "SELECT camperso.stop_source('bench')" >/dev/null
# The embedded Kafka holds an empty fetch for the whole fetch.wait.max.ms even
# when data arrives meanwhile (a real broker answers at once), so the live
# source waits at most 10 ms there; batches close after batch_ms = 50.
LOPTS="{\"workers\": $WORKERS, \"batch_ms\": 50, \"kafka.fetch.wait.max.ms\": 10, $KAFKA_TEST_OPTS}"
psql_b -c "SELECT camperso.create_source('live', '$BS', 'live', 'live_events', options => '$LOPTS')" \
	-c "SELECT camperso.start_source('live')" >/dev/null
wait_for 120 "every worker of the live source to own its partitions" settled live "$LP"
LN=$((RATE * LATENCY_SECONDS))
note "producing $LN events at $RATE events/s for $LATENCY_SECONDS s"
# The producer lingers 20 ms (librdkafka's default is 5): the embedded Kafka
# finds a fetch's message set by walking the partition's list of them
# ("FIXME: Maintain an index" in librdkafka's mock), and answers a fetch
# with one set per partition, so sets of two or three messages make every
# fetch slower as the log grows, until after ~15 s at 10,000 events/s no
# consumer keeps up (p99 of seconds, before any change to camperso too). A
# real broker has an offset index and fills a fetch with many sets. The
# linger counts in the latency: the produce time is set when kcat produces.
"$ROOT/tools/camperso-gen" --events "$LN" --seed 8 --invalid-rate 0 --apps 4 --key --rate "$RATE" |
	kafka_produce k live -z lz4 -K '\t' -X linger.ms=20 || fail "kcat -P failed"
wait_for 120 "the live events to land" rows_eq bench live_events "$LN"
kcat -b "$BS" -C -t live -e -q -f '%p,%o,%T\n' >"$W/live_ts.csv"
chmod 644 "$W/live_ts.csv"
lat=$(psql_b <<SQL
CREATE TEMP TABLE produced (p int, o bigint, ts_ms bigint);
COPY produced FROM '$W/live_ts.csv' WITH (FORMAT csv);
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)) || ' ' || round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)) || ' ' || count(*)
FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(e.xmin) - to_timestamp(p.ts_ms / 1000.0)) * 1000 AS ms
      FROM live_events e JOIN produced p ON p.p = e._partition AND p.o = e._offset) x;
SQL
)
read -r p50 p99 matched <<<"$lat"
[ "$matched" = "$LN" ] || fail "matched $matched of $LN live events to their produce time"

mo=$(median "${ours[@]}")
mb=$(median "${base[@]}")
ratio=$(awk -v a="$mo" -v b="$mb" 'BEGIN { printf "%.2f", a / b }')
mr=$(median "${ratios[@]}")
cpu_copy=$(per_kevent "$(median $(awk '{ print $1 }' "$W/cpu"))")
cpu_ours=$(per_kevent "$(median $(awk '{ print $2 }' "$W/cpu"))")
cpu_kafka=$(per_kevent "$(median $(awk '{ print $3 }' "$W/cpu"))")
echo
echo "ingest: $N events, $P partitions, $WORKERS workers, median of $RUNS runs:"
echo "  camperso Kafka -> typed staging (+_raw, offsets, quarantine): $mo events/s"
echo "  COPY of the same lines -> jsonb:                             $mb events/s"
echo "  ratio ${ratio}x, median of the per-run ratios ${mr}x (target >= 1.0x)"
echo "  CPU ms per 1000 events: COPY backend $cpu_copy; camperso workers $cpu_ours (+ embedded Kafka $cpu_kafka)"
echo "  worker peak RSS ${rss_mb} MB (VmHWM, counts the shared buffers it touched), peak private ${private_mb} MB (target < 128 MB)"
echo "  produce -> committed at $RATE events/s: p50 ${p50} ms, p99 ${p99} ms (target p99 < 300 ms)"
if [ -n "${BENCH_RESULTS:-}" ]; then
	{
		echo "ingest: Kafka -> typed staging via $WORKERS workers vs COPY into jsonb, $N events|$mo ev/s|$mb ev/s|${ratio}x|>= 1.0x"
		echo "ingest: CPU ms per 1000 events, workers (embedded Kafka besides) vs COPY backend|$cpu_ours ($cpu_kafka)|$cpu_copy|-|-"
		echo "ingest: worker peak RSS, VmHWM (private part)|${rss_mb} MB (${private_mb} MB)|-|-|< 128 MB"
		echo "ingest: produce -> committed p99 at $RATE ev/s (p50 ${p50} ms)|${p99} ms|-|-|< 300 ms"
	} >>"$BENCH_RESULTS"
fi
