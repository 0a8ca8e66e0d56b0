#!/usr/bin/env bash
# Backpressure: PostgreSQL slower than Kafka. A session holds a SHARE lock
# on the staging table (inserts wait) while a backlog is produced; the
# worker's resident memory, sampled all along, stays bounded, the lag shows
# in camperso.stat_sources, the source shows what it waits for, and once
# the lock goes everything lands exactly once and the lag falls to 0.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../capture_lib.sh"
source "$(dirname "$0")/../resilience_lib.sh"

M=$(quick 100000 200000)
LOCKED=$(quick 10 20)
RSS_LIMIT_KB=$((192 * 1024))

kafka_start k --brokers 1 --topic bp:8
BS=$(kafka_bootstrap k)
cluster_create a
cluster_start a
q a "CREATE EXTENSION camperso"
create_target a t
q a "SELECT camperso.create_source('b', '$BS', 'bp', 't', options => '{\"batch_size\": 5000, $KAFKA_TEST_OPTS}')" >/dev/null
q a "SELECT camperso.start_source('b')" >/dev/null
gen_messages 1 100 | kafka_produce k bp -K '\t' || fail "kcat -P failed"
wait_for 60 "the first messages to land" rows_eq a t 100
pid=$(worker_pids a b)
rss0=$(rss_kb "$pid")

# ---- the lock, then the backlog
hold_lock a locker t SHARE
gen_messages 101 $((100 + M)) | kafka_produce k bp -z lz4 -K '\t' || fail "kcat -P failed"
N=$((100 + M))
assert_eq "$N" "$(kafka_count k bp)" "the embedded kafka holds the whole backlog"

waiting() { [ "$(q a "SELECT query FROM pg_stat_activity WHERE pid = $pid")" = "camperso: waiting for a lock on the target table" ]; }
wait_for 60 "the worker to wait for the lock" waiting
echo "ok - pg_stat_activity shows the worker waiting for a lock on the target table"
lag_shows() { [ "$(q a "SELECT coalesce(sum(lag), 0) FROM camperso.stat_sources WHERE source = 'b' AND partition IS NOT NULL")" -ge $((M - 5000)) ]; }
wait_for 30 "the lag to show the backlog" lag_shows
echo "ok - stat_sources shows the backlog as lag: $(q a "SELECT sum(lag) FROM camperso.stat_sources WHERE source = 'b'")"

peak=0
sample() {
	local r
	r=$(rss_kb "$pid")
	[ "$r" -gt "$peak" ] && peak=$r
	[ "$r" -lt "$RSS_LIMIT_KB" ] || fail "worker RSS $r kB is above $RSS_LIMIT_KB kB"
}
end=$((SECONDS + LOCKED))
while [ $SECONDS -lt $end ]; do
	sample
	sleep 0.5
done
note "worker RSS while blocked: from $rss0 kB, at most $peak kB"
assert_eq 100 "$(q a "SELECT count(*) FROM t")" "nothing landed while the lock was held"

# ---- the lock goes: the backlog drains, memory stays bounded
release_lock a locker
drained() { sample; rows_eq a t "$N"; }
wait_for 180 "the backlog to land" drained
hwm=$(awk '/VmHWM/ {print $2}' /proc/"$pid"/status)
note "worker RSS at most $peak kB sampled, VmHWM $hwm kB over the whole run"
[ "$hwm" -lt "$RSS_LIMIT_KB" ] || fail "worker peak RSS $hwm kB is above $RSS_LIMIT_KB kB"
echo "ok - worker memory stays bounded (VmHWM $hwm kB < $RSS_LIMIT_KB kB) with a backlog of $M"
lag_zero() { [ "$(q a "SELECT count(*) FROM camperso.stat_sources WHERE source = 'b' AND partition IS NOT NULL AND lag = 0")" = 8 ]; }
wait_for 30 "the lag to fall to 0" lag_zero
echo "ok - the lag falls to 0 once drained"
assert_eq "$pid" "$(worker_pids a b)" "the worker stayed up"
kafka_truth k bp a truth
check_delivery a t b truth
