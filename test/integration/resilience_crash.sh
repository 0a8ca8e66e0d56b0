#!/usr/bin/env bash
# Crash safety. A producer streams keyed messages into 4 partitions (some
# of them bad: wrong type, CHECK violation, UNIQUE violation, which takes
# the land path's careful message-by-message retry) while the test
# repeatedly, preferably while a batch is being landed:
#   - kills the source worker with SIGKILL (the postmaster restarts the cluster),
#   - stops PostgreSQL in immediate mode and starts it again,
#   - kills the launcher with SIGKILL,
#   - terminates the worker with SIGTERM (the launcher restarts it).
# At the end staging + quarantine hold exactly what Kafka holds: every
# (partition, offset) once, no gap, payload lengths equal, the expected
# number quarantined, stored offsets at each partition's end.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../capture_lib.sh"
source "$(dirname "$0")/../resilience_lib.sh"

ITERATIONS=$(quick 8 16)

kafka_start k --brokers 1 --topic clicks:4
BS=$(kafka_bootstrap k)
cluster_create a
cluster_start a
q a "CREATE EXTENSION camperso"
q a "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY, n int NOT NULL, k text,
     seq int CHECK (seq >= 0), u int UNIQUE,
     _partition int, _offset bigint, _key text, _received_at timestamptz, _raw bytea)"
q a "SELECT camperso.create_source('c', '$BS', 'clicks', 't',
     options => '{\"batch_size\": 500, \"batch_ms\": 20, $KAFKA_TEST_OPTS}')" >/dev/null
q a "SELECT camperso.start_source('c')" >/dev/null

# messages FIRST LAST: n % 50 = 25 has a wrong type, n % 50 = 10 breaks the
# CHECK, n % 100 = 0 repeats the unique u of message n - 1.
messages() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		for (i = a; i <= b; i++) {
			k = i % 97; u = i; seq = int(i / 97); n = i
			if (i % 50 == 25) n = "\"bad" i "\""
			if (i % 50 == 10) seq = -1
			if (i % 100 == 0) u = i - 1
			printf "u%d\t{\"n\":%s,\"k\":\"u%d\",\"seq\":%d,\"u\":%d,\"pad\":\"0123456789abcdef\"}\n", k, n, k, seq, u
		}
	}'
}

STOP=$CAMPERSO_TEST_WORK/stop-producer
COUNT=$CAMPERSO_TEST_WORK/produced
(
	i=1 chunk=300
	while [ ! -e "$STOP" ]; do
		messages $i $((i + chunk - 1)) | kafka_produce k clicks -z lz4 -K '\t' || exit 1
		i=$((i + chunk))
		echo $((i - 1)) >"$COUNT"
		sleep 0.25
	done
) &
producer=$!

landed() { q a "SELECT (SELECT count(*) FROM t) + (SELECT count(*) FROM camperso.quarantine)" 2>/dev/null || echo 0; }
grown() { [ "$(landed)" -ge "$1" ]; }
worker() { worker_pids a c 2>/dev/null; }
launcher() { q a "SELECT pid FROM pg_stat_activity WHERE backend_type = 'camperso launcher'" 2>/dev/null; }
# in_batch: true while the worker is inside a batch transaction
in_batch() {
	[ "$(q a "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'camperso source worker'
	          AND state = 'active' AND query = 'camperso: landing a batch'" 2>/dev/null)" = 1 ]
}
# catch_batch: waits (up to ~5 s) for a moment inside a batch; true if caught
catch_batch() {
	local tries
	for tries in $(seq 1 100); do
		in_batch && return 0
		sleep 0.05
	done
	return 1
}

wait_for 60 "the stream to start landing" grown 1000
midbatch=0
declare -A done_kind
for it in $(seq 1 "$ITERATIONS"); do
	before=$(landed)
	kind=$(((it - 1) % 4))
	sleep "0.$((RANDOM % 9 + 1))"
	if catch_batch; then midbatch=$((midbatch + 1)); fi
	case $kind in
	0)
		pid=$(worker)
		[ -n "$pid" ] || fail "iteration $it: no worker to kill"
		kill -KILL "$pid"
		what="SIGKILL of worker $pid"
		;;
	1)
		cluster_stop a immediate
		cluster_start a
		what="immediate stop and start of PostgreSQL"
		;;
	2)
		pid=$(launcher)
		[ -n "$pid" ] || fail "iteration $it: no launcher to kill"
		kill -KILL "$pid"
		what="SIGKILL of launcher $pid"
		;;
	3)
		pid=$(worker)
		[ -n "$pid" ] || fail "iteration $it: no worker to terminate"
		kill -TERM "$pid"
		what="SIGTERM of worker $pid"
		;;
	esac
	done_kind[$kind]=$((${done_kind[$kind]:-0} + 1))
	note "iteration $it: $what with $before rows delivered"
	# crash restarts take a few seconds; the group rebalances after the session timeout
	wait_for 120 "delivery to go on after iteration $it ($what)" grown $((before + 600))
done
touch "$STOP"
wait "$producer" || fail "the producer failed"
N=$(cat "$COUNT")
note "$ITERATIONS faults injected ($midbatch caught inside a batch); $N messages produced"
[ "$midbatch" -ge $((ITERATIONS / 2)) ] || fail "only $midbatch of $ITERATIONS faults hit a batch in flight"
echo "ok - $midbatch of $ITERATIONS faults struck while a batch was in flight"

assert_eq "$N" "$(kafka_count k clicks)" "the embedded kafka holds every message produced"
wait_for 120 "every message to be delivered" grown "$N"
sleep 1 # a duplicate would show now
kafka_truth k clicks a truth
check_delivery a t c truth
bad=$(awk -v n="$N" 'BEGIN { for (i = 1; i <= n; i++) if (i % 50 == 25 || i % 50 == 10 || i % 100 == 0) c++; print c + 0 }')
assert_eq "$bad" "$(q a "SELECT count(*) FROM camperso.quarantine WHERE source = 'c'")" "exactly the bad messages are quarantined"
assert_eq "$bad|0" "$(q a "SELECT count(*) FILTER (WHERE rule IN ('wrong_type', 'check_violation', 'unique_violation')),
                               count(*) FILTER (WHERE reason IS NULL OR reason = '')
                        FROM camperso.quarantine WHERE source = 'c'")" "each with its rule and a reason"
assert_eq "$((N - bad))" "$(q a "SELECT count(DISTINCT n) FROM t")" "every good message landed once"
assert_eq 0 "$(q a "SELECT count(*) FROM (SELECT seq < lag(seq) OVER w AS back FROM t
                   WINDOW w AS (PARTITION BY k ORDER BY id)) x WHERE back")" "each key's messages landed in production order"
assert_eq 0 "$(q a "SELECT count(*) FROM camperso.source_offsets o
                   JOIN (SELECT p, max(o) + 1 AS next FROM truth GROUP BY p) x ON x.p = o.partition
                   WHERE o.source = 'c' AND o.next_offset <> x.next")" "stored offsets are at every partition's end"
for kind in 0 1 2 3; do
	[ "${done_kind[$kind]:-0}" -ge 1 ] || fail "fault kind $kind was never injected"
done
echo "ok - worker SIGKILL ${done_kind[0]}x, immediate restart ${done_kind[1]}x, launcher SIGKILL ${done_kind[2]}x, worker SIGTERM ${done_kind[3]}x"
