#!/usr/bin/env bash
# Consumer-group mode across servers: two PostgreSQL clusters run the same
# source with the same group_id; they split the topic's partitions and
# together land every message exactly once, also while the group rebalances
# (a partition that moves starts at the offset committed to Kafka after the
# other server's commit).
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../capture_lib.sh"

N1=6000
N2=6000
kafka_start k --brokers 2 --topic g:4
BS=$(kafka_bootstrap k)
OPTS="{\"group_id\": \"shared\", \"batch_size\": 500, $KAFKA_TEST_OPTS}"
for c in a b; do
	cluster_create $c
	cluster_start $c
	q $c "CREATE EXTENSION camperso"
	create_target $c t
	q $c "SELECT camperso.create_source('g', '$BS', 'g', 't', options => '$OPTS')" >/dev/null
done

gen_messages 1 $N1 | kafka_produce k g -K '\t' || fail "kcat -P failed"

# a alone takes every partition and lands the backlog
q a "SELECT camperso.start_source('g')" >/dev/null
wait_for 30 "a to land the backlog" rows_eq a t $N1

# b joins: the group rebalances and each server owns two partitions
q b "SELECT camperso.start_source('g')" >/dev/null
owned() { [ "$(q "$1" "SELECT count(*) FROM camperso.stat_sources WHERE source = 'g' AND partition IS NOT NULL AND state = 'assigned'")" = "$2" ]; }
wait_for 30 "a to own two partitions" owned a 2
wait_for 30 "b to own two partitions" owned b 2
echo "ok - two servers in one group split the four partitions"

# a stream while they share the group
gen_messages $((N1 + 1)) $((N1 + N2)) | kafka_produce k g -K '\t' || fail "kcat -P failed"
total() { [ $(($(q a "SELECT count(*) FROM t") + $(q b "SELECT count(*) FROM t"))) -ge $((N1 + N2)) ]; }
wait_for 30 "both servers together to land every message" total
sleep 1 # a duplicate would show now
assert_eq $((N1 + N2)) $(($(q a "SELECT count(*) FROM t") + $(q b "SELECT count(*) FROM t"))) "together they landed $((N1 + N2)) rows"
[ "$(q b "SELECT count(*) FROM t")" -gt 0 ] || fail "b landed nothing"
echo "ok - both servers landed part of the stream"

# no message on both servers, none missing: compare (partition, offset) sets
q a "SELECT _partition || ':' || _offset FROM t" | sort >"$CAMPERSO_TEST_WORK/a.keys"
q b "SELECT _partition || ':' || _offset FROM t" | sort >"$CAMPERSO_TEST_WORK/b.keys"
assert_eq 0 "$(comm -12 "$CAMPERSO_TEST_WORK/a.keys" "$CAMPERSO_TEST_WORK/b.keys" | wc -l)" "no message landed on both servers"
assert_eq $((N1 + N2)) "$(sort -u "$CAMPERSO_TEST_WORK/a.keys" "$CAMPERSO_TEST_WORK/b.keys" | wc -l)" "every (partition, offset) landed once"
q a "SELECT n FROM t" >"$CAMPERSO_TEST_WORK/n"
q b "SELECT n FROM t" >>"$CAMPERSO_TEST_WORK/n"
assert_eq $((N1 + N2)) "$(sort -u "$CAMPERSO_TEST_WORK/n" | wc -l)" "every message landed once across the two servers"

# b stops: a takes its partitions back from Kafka's committed offsets
q b "SELECT camperso.stop_source('g')" >/dev/null
wait_for 30 "a to own all four partitions again" owned a 4
gen_messages $((N1 + N2 + 1)) $((N1 + N2 + 400)) | kafka_produce k g -K '\t' || fail "kcat -P failed"
all() { [ $(($(q a "SELECT count(*) FROM t") + $(q b "SELECT count(*) FROM t"))) -ge $((N1 + N2 + 400)) ]; }
wait_for 30 "a to land the messages after b left" all
sleep 1
assert_eq $((N1 + N2 + 400)) $(($(q a "SELECT count(*) FROM t") + $(q b "SELECT count(*) FROM t"))) \
	"after b left, a went on where b stopped: no loss, no duplicate"
