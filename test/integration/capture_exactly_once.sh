#!/usr/bin/env bash
# Exactly-once from Kafka into PostgreSQL: a backlog lands with exact counts
# and per-partition order; the stats match the table (lag falls to 0);
# restarts of PostgreSQL, fast and immediate, in the middle of a stream lose
# and duplicate nothing; reset_offsets re-reads a partition; memory stays
# bounded.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../capture_lib.sh"

N1=20000
N2=20000
if [ -n "$CAMPERSO_QUICK" ]; then N1=5000; N2=8000; fi

kafka_start k --brokers 1 --topic clicks:4
BS=$(kafka_bootstrap k)
cluster_create a
cluster_start a
q a "CREATE EXTENSION camperso"
create_target a t

# ---- a backlog, counted before relying on it
gen_messages 1 $N1 | kafka_produce k clicks -z lz4 -K '\t' || fail "kcat -P failed"
assert_eq $N1 "$(kafka_count k clicks)" "the embedded kafka holds the whole backlog"

q a "SELECT camperso.create_source('c1', '$BS', 'clicks', 't', options => '{\"batch_size\": 1000, \"batch_ms\": 50, $KAFKA_TEST_OPTS}')"
q a "SELECT camperso.start_source('c1')"
wait_for 60 "the backlog to land" rows_eq a t $N1
check_exactly_once a t $N1
assert_eq 0 "$(q a "SELECT count(*) FROM camperso.quarantine")" "nothing quarantined"

# ---- the stats match the table
lag_zero() { [ "$(q a "SELECT count(*) FROM camperso.stat_sources WHERE source = 'c1' AND partition IS NOT NULL AND lag = 0")" = 4 ]; }
wait_for 10 "lag 0 on the 4 partitions" lag_zero
echo "ok - lag falls to 0 on every partition"
assert_eq 0 "$(q a "SELECT count(*) FROM camperso.stat_sources s
                     FULL JOIN (SELECT _partition, count(*) AS c, sum(length(_raw)) AS b, max(_offset) + 1 AS next
                                FROM t GROUP BY 1) x ON x._partition = s.partition
                     WHERE s.source = 'c1' AND s.partition IS NOT NULL
                       AND (s.messages IS DISTINCT FROM x.c OR s.bytes IS DISTINCT FROM x.b
                            OR s.committed_offset IS DISTINCT FROM x.next OR s.high_watermark IS DISTINCT FROM x.next)")" \
	"per partition: messages, bytes, committed offset and high watermark match the table"
assert_eq "running|0|t|t|t" "$(q a "SELECT max(state) FILTER (WHERE partition IS NULL), sum(errors),
                                     bool_and(batches > 0) FILTER (WHERE partition IS NOT NULL),
                                     bool_and(last_commit_at > now() - interval '1 minute') FILTER (WHERE partition IS NOT NULL),
                                     bool_and(state = 'assigned' AND pid IS NOT NULL) FILTER (WHERE partition IS NOT NULL)
                              FROM camperso.stat_sources WHERE source = 'c1'")" \
	"source running without errors; partitions assigned, batched, committed recently"
assert_eq 0 "$(q a "SELECT count(*) FROM camperso.source_offsets o
                     JOIN (SELECT _partition, max(_offset) + 1 AS next FROM t GROUP BY 1) x ON x._partition = o.partition
                     WHERE o.source = 'c1' AND o.next_offset <> x.next")" "stored offsets follow the landed rows"

pid=$(worker_pids a c1)
hwm=$(awk '/VmHWM/ {print $2}' /proc/"$pid"/status)
note "worker peak RSS after the backlog: ${hwm} kB"
[ "$hwm" -lt 131072 ] || fail "worker peak RSS ${hwm} kB is not below 128 MB"
echo "ok - worker memory stays bounded (VmHWM ${hwm} kB)"

# ---- restarts mid-stream: fast, then immediate (crash recovery)
(
	chunk=500
	for ((i = N1 + 1; i <= N1 + N2; i += chunk)); do
		gen_messages $i $((i + chunk - 1 > N1 + N2 ? N1 + N2 : i + chunk - 1)) |
			kafka_produce k clicks -z lz4 -K '\t' || exit 1
		sleep 0.15
	done
) &
producer=$!

wait_for 30 "the stream to start landing" rows_at_least a t $((N1 + 1000))
cluster_restart a fast
before=$(q a "SELECT count(*) FROM t")
note "restarted (fast) with $before rows landed"
wait_for 30 "landing to go on after the fast restart" rows_at_least a t $((before + 500))
cluster_stop a immediate
cluster_start a
before=$(q a "SELECT count(*) FROM t")
note "restarted after an immediate stop with $before rows landed"
wait "$producer" || fail "the producer failed"
assert_eq $((N1 + N2)) "$(kafka_count k clicks)" "the embedded kafka holds every message produced"
wait_for 60 "the rest of the stream to land" rows_at_least a t $((N1 + N2))
sleep 1 # a duplicate would show now
check_exactly_once a t $((N1 + N2))

# ---- reset_offsets re-reads a partition
p0=$(q a "SELECT count(*) FROM t WHERE _partition = 0")
assert_eq 1 "$(q a "SELECT camperso.reset_offsets('c1', 0, 'earliest')")" "reset_offsets sets one partition"
wait_for 30 "partition 0 to be read again" rows_eq a t $((N1 + N2 + p0))
assert_eq "$p0" "$(q a "SELECT count(*) FROM (SELECT _offset FROM t WHERE _partition = 0 GROUP BY 1 HAVING count(*) = 2) x")" \
	"every message of partition 0 landed a second time, and only those"
assert_eq 4 "$(q a "SELECT camperso.reset_offsets('c1', NULL, 'latest')")" "reset_offsets to latest sets all 4 partitions"
gen_messages 900001 900100 | kafka_produce k clicks -K '\t' || fail "kcat -P failed"
wait_for 30 "new messages after reset to latest" rows_eq a t $((N1 + N2 + p0 + 100))
sleep 0.5
assert_eq $((N1 + N2 + p0 + 100)) "$(q a "SELECT count(*) FROM t")" "after reset to latest only new messages land"
