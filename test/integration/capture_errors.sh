#!/usr/bin/env bash
# Errors that are not a message's fault: with INSERT revoked from the
# source's owner the batch rolls back and is retried with a backoff (errors
# shown in stat_sources, no core spun, nothing quarantined); granted back,
# everything lands once. The offset fence: when another writer moved a
# partition's stored offset (a zombie of a rebalance), the worker's batch
# is rolled back and it goes on from the stored offset, landing nothing
# twice. A dropped target is an error too, never a crash.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../capture_lib.sh"

kafka_start k --brokers 1 --topic clicks:2
BS=$(kafka_bootstrap k)
cluster_create a
cluster_start a
q a "CREATE EXTENSION camperso"
create_target a t
q a "CREATE ROLE src_owner IN ROLE camperso_admin; GRANT INSERT ON t TO src_owner"
q a "SET ROLE src_owner; SELECT camperso.create_source('c1', '$BS', 'clicks', 't', options => '{$KAFKA_TEST_OPTS}')" >/dev/null
assert_eq src_owner "$(q a "SELECT owner FROM camperso.sources")" "the source is owned by its creator"
q a "SELECT camperso.start_source('c1')" >/dev/null

gen_messages 1 2000 | kafka_produce k clicks -K '\t' || fail "kcat -P failed"
wait_for 30 "the backlog to land" rows_eq a t 2000

# ---- permission revoked: rolled back, retried with backoff, shown
q a "REVOKE INSERT ON t FROM src_owner"
gen_messages 2001 2500 | kafka_produce k clicks -K '\t' || fail "kcat -P failed"
failing() { [ "$(q a "SELECT errors FROM camperso.stat_sources WHERE source = 'c1' AND partition IS NULL")" -ge 3 ]; }
wait_for 20 "the failing batch to be retried" failing
pid=$(worker_pids a c1)
ticks() { awk '{print $14 + $15}' /proc/"$1"/stat; }
t0=$(ticks "$pid")
sleep 3
used=$(($(ticks "$pid") - t0))
note "CPU of the failing worker over 3 s: ${used} ticks"
[ "$used" -lt 60 ] || fail "the worker spins while failing: ${used} ticks of CPU in 3 s"
echo "ok - a failing worker backs off instead of spinning"
assert_eq "2000|0" "$(q a "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM camperso.quarantine)")" \
	"nothing landed, nothing quarantined while the permission is missing"
q a "SELECT state, last_error FROM camperso.stat_sources WHERE source = 'c1' AND partition IS NULL" | grep -q "^backoff|.*permission denied" ||
	fail "stat_sources does not show the backoff and the error: $(q a "SELECT * FROM camperso.stat_sources WHERE partition IS NULL")"
echo "ok - stat_sources shows state backoff and the permission error"
assert_eq 0 "$(q a "SELECT count(*) FROM camperso.stat_sources WHERE source = 'c1' AND partition IS NOT NULL AND errors = 0 AND lag > 0")" \
	"partitions with a backlog show errors too"
q a "GRANT INSERT ON t TO src_owner"
wait_for 45 "the retried batch to land once the grant is back" rows_eq a t 2500
check_exactly_once a t 2500
recovered() { [ "$(q a "SELECT state FROM camperso.stat_sources WHERE source = 'c1' AND partition IS NULL")" = running ]; }
wait_for 10 "the source to be running again" recovered
echo "ok - the source runs again after the grant"

# ---- the offset fence: a stored offset moved behind the worker's back
stored=$(q a "SELECT next_offset FROM camperso.source_offsets WHERE source = 'c1' AND partition = 0")
q a "UPDATE camperso.source_offsets SET next_offset = next_offset + 50 WHERE source = 'c1' AND partition = 0"
seq 1 200 | awk '{ printf "{\"n\":%d,\"k\":\"fence\",\"seq\":%d}\n", 800000 + $1, $1 }' |
	kafka_produce k clicks -p 0 || fail "kcat -P failed"
wait_for 30 "partition 0 to go on from the moved offset" rows_eq a t 2650
sleep 1
assert_eq 2650 "$(q a "SELECT count(*) FROM t")" "150 of the 200 new messages landed: the 50 claimed by the other writer did not"
assert_eq "$((stored + 50))|$((stored + 199))" "$(q a "SELECT min(_offset), max(_offset) FROM t WHERE k = 'fence'")" \
	"the batch resumed exactly at the moved offset"
grep -q 'batch rolled back by the offset fence' "$(cluster_log a)" || fail "no fence in the log"
echo "ok - the fenced batch was rolled back and nothing landed twice"

# ---- the broker goes down and comes back: the worker waits, then goes on
kafka_ctl k down 1
sleep 2
kafka_ctl k up 1
seq 1 100 | awk '{ printf "{\"n\":%d,\"k\":\"after-down\",\"seq\":%d}\n", 900000 + $1, $1 }' |
	kafka_produce k clicks || fail "kcat -P failed after the broker came back"
wait_for 60 "messages produced after the broker came back" rows_eq a t 2750
sleep 0.5
assert_eq 2750 "$(q a "SELECT count(*) FROM t")" "after a broker outage every message landed once"
assert_eq "$pid" "$(worker_pids a c1)" "the worker rode out the broker outage"

# ---- target dropped: errors and backoff, never a crash
q a "DROP TABLE t"
gen_messages 3001 3010 | kafka_produce k clicks -K '\t' || fail "kcat -P failed"
gone() { q a "SELECT last_error FROM camperso.stat_sources WHERE source = 'c1' AND partition IS NULL" | grep -q "does not exist"; }
wait_for 20 "the missing target to show in stat_sources" gone
echo "ok - a dropped target shows as an error"
assert_eq "$pid" "$(worker_pids a c1)" "the worker survived its errors"
q a "SELECT camperso.drop_source('c1')" >/dev/null
q a "DROP ROLE src_owner" 2>/dev/null || true
