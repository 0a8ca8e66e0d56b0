#!/usr/bin/env bash
# A backlog far above the prefetch caps is consumed at full speed. librdkafka
# stops fetching while its queue is above queued.min.messages and looks again
# only up to a second later; the worker wakes its fetchers when it has
# drained the queue with more known to be there (kafka.c). Here the caps are
# a hundred messages and the backlog sits in message sets of 50: without the
# wake every hundred or so messages would cost a second (over a minute for
# the backlog), with it the backlog lands in a few seconds. Exactly-once
# holds throughout.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../capture_lib.sh"

N=10000
LIMIT=20

kafka_start k --brokers 1 --topic clicks:2
BS=$(kafka_bootstrap k)
cluster_create a
cluster_start a
q a "CREATE EXTENSION camperso"
create_target a t

gen_messages 1 $N | kafka_produce k clicks -K '\t' -X batch.num.messages=50 -X linger.ms=5 ||
	fail "kcat -P failed"
assert_eq $N "$(kafka_count k clicks)" "the embedded kafka holds the whole backlog"

# Starts at the end, so that the group is settled before the backlog is read.
q a "SELECT camperso.create_source('c1', '$BS', 'clicks', 't', options => '{\"start\": \"latest\",
       \"batch_size\": 500, \"batch_ms\": 100, \"kafka.queued.min.messages\": 100,
       \"kafka.queued.max.messages.kbytes\": 64, $KAFKA_TEST_OPTS}')" >/dev/null
q a "SELECT camperso.start_source('c1')" >/dev/null
assigned() { [ "$(q a "SELECT count(*) FROM camperso.stat_sources WHERE source = 'c1' AND partition IS NOT NULL AND state = 'assigned'")" = 2 ]; }
wait_for 60 "the worker to own both partitions" assigned

t0=$SECONDS
q a "SELECT camperso.reset_offsets('c1')" >/dev/null
wait_for $LIMIT "the backlog of $N messages to land within $LIMIT s (a second per prefetch would take over a minute)" rows_eq a t $N
echo "ok - the backlog of $N messages landed in $((SECONDS - t0)) s with a prefetch of 100 messages"
check_exactly_once a t $N
assert_eq 0 "$(q a "SELECT count(*) FROM camperso.quarantine")" "nothing quarantined"
