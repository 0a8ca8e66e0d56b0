#!/usr/bin/env bash
# Broker faults, through the embedded Kafka's fault injection and by
# freezing its process: the broker down (all connections refused) and back,
# a slow broker (every response delayed), error responses injected into
# fetch, offset commit, offset fetch, heartbeat and metadata requests, and
# the whole Kafka process stopped (SIGSTOP: connections open, nothing
# answers) and continued. Through every outage the worker stays the same
# process, shows its state and the last error in camperso.stat_sources,
# uses less than a fifth of one core (its CPU time over the outage, from
# /proc/<pid>/stat), and resumes without loss: at the end staging holds
# exactly what Kafka holds.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../capture_lib.sh"
source "$(dirname "$0")/../resilience_lib.sh"

OUTAGE=$(quick 12 25)

kafka_start k --brokers 1 --topic clicks:2
BS=$(kafka_bootstrap k)
KPID=$(cat "$CAMPERSO_TEST_WORK/kafka-k/pid")
cluster_create a
cluster_start a
q a "CREATE EXTENSION camperso"
create_target a t
q a "SELECT camperso.create_source('c', '$BS', 'clicks', 't', options => '{\"batch_size\": 500, $KAFKA_TEST_OPTS}')" >/dev/null
q a "SELECT camperso.start_source('c')" >/dev/null

produced=0
produce() { # produce COUNT: the next COUNT messages, keyed over both partitions
	gen_messages $((produced + 1)) $((produced + $1)) | kafka_produce k clicks -K '\t' "${@:2}" ||
		fail "kcat -P failed"
	produced=$((produced + $1))
}
landed_all() { rows_eq a t "$produced"; }
errors_now() { q a "SELECT errors FROM camperso.stat_sources WHERE source = 'c' AND partition IS NULL"; }

produce 2000
wait_for 60 "the first messages to land" landed_all
pid=$(worker_pids a c)

# outage MIN_ERRORS DESCRIPTION: measures the worker's CPU over OUTAGE
# seconds and checks that the stats report the outage
measure_outage() {
	local desc=$1 t0 s0 used secs
	t0=$(cpu_ticks "$pid")
	s0=$(date +%s%N)
	sleep "$OUTAGE"
	used=$(($(cpu_ticks "$pid") - t0))
	secs=$((($(date +%s%N) - s0) / 1000000))
	note "$desc: the worker used $used ticks of CPU in $secs ms (CLK_TCK $CLK_TCK)"
	[ $((used * 1000 * 100)) -lt $((secs * CLK_TCK * 20)) ] ||
		fail "$desc: the worker spins: $used ticks in $secs ms is above 20% of a core"
	echo "ok - $desc: below 20% of one core"
}

# ---- 1. the broker goes down right after a burst, for OUTAGE seconds
e0=$(errors_now)
produce 3000
kafka_ctl k down 1
shows_down() {
	q a "SELECT state || '|' || last_error FROM camperso.stat_sources WHERE source = 'c' AND partition IS NULL" |
		grep -q '^disconnected|.*\(brokers are down\|Connection refused\|Disconnected\)'
}
wait_for 60 "stat_sources to show the broker outage" shows_down
echo "ok - stat_sources shows state disconnected and the broker error: $(q a "SELECT last_error FROM camperso.stat_sources WHERE source = 'c' AND partition IS NULL")"
measure_outage "broker down"
[ "$(errors_now)" -gt "$e0" ] || fail "the outage was not counted in errors"
kafka_ctl k up 1
produce 1000
wait_for 120 "everything produced around the outage to land" landed_all
running() { [ "$(source_state a c)" = running ]; }
wait_for 60 "the source to show running again" running
echo "ok - after the broker came back everything landed and the source runs"
assert_eq "$pid" "$(worker_pids a c)" "the worker rode out the outage"

# ---- 2. a slow broker: every response 1.5 s late
kafka_ctl k rtt 1 1500
produce 1500
wait_for 120 "messages to land through a slow broker" landed_all
kafka_ctl k rtt 1 0
echo "ok - a slow broker delays, loses nothing"

# ---- 3. error responses: fetch, offset commit, offset fetch, heartbeat, metadata
kafka_ctl k errors 1 6 30  # Fetch: NOT_LEADER_OR_FOLLOWER
kafka_ctl k errors 8 7 10  # OffsetCommit: REQUEST_TIMED_OUT
kafka_ctl k errors 12 27 3 # Heartbeat: REBALANCE_IN_PROGRESS (the group rebalances)
kafka_ctl k errors 9 15 3  # OffsetFetch: COORDINATOR_NOT_AVAILABLE
kafka_ctl k errors 3 5 3   # Metadata: LEADER_NOT_AVAILABLE
produce 2000
wait_for 120 "messages to land through injected errors" landed_all
echo "ok - injected broker errors lose nothing"
assert_eq "$pid" "$(worker_pids a c)" "the worker rode out the injected errors"

# ---- 4. the Kafka process stopped (SIGSTOP) for OUTAGE seconds, then continued
produce 2000
kill -STOP "$KPID"
measure_outage "Kafka process stopped"
kill -CONT "$KPID"
produce 1000
wait_for 120 "messages around the stopped Kafka to land" landed_all
wait_for 60 "the source to show running again" running
assert_eq "$pid" "$(worker_pids a c)" "the worker rode out the stopped Kafka"

# ---- the truth
sleep 1
assert_eq "$produced" "$(kafka_count k clicks)" "the embedded kafka holds every message produced"
kafka_truth k clicks a truth
check_delivery a t c truth
check_exactly_once a t "$produced"
