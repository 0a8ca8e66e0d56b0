#!/usr/bin/env bash
# Supervision of the source workers: start, stop and drop take effect within
# a second; a stopped worker leaves its consumer group, so a restart consumes
# again within seconds; a worker that dies is restarted with a backoff; the
# `workers` option runs several; SIGHUP reloads; without the preload the
# worker-facing functions say so.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../capture_lib.sh"

kafka_start k --brokers 1 --topic clicks:4
BS=$(kafka_bootstrap k)
cluster_create a
cluster_start a
q a "CREATE EXTENSION camperso"
create_target a t
# librdkafka's group debug lines show the LeaveGroup exchange in the log
q a "ALTER SYSTEM SET log_min_messages = debug1"
q a "SELECT pg_reload_conf()" >/dev/null

gen_messages 1 1000 | kafka_produce k clicks -K '\t' || fail "kcat -P failed"
q a "SELECT camperso.create_source('c1', '$BS', 'clicks', 't',
       options => '{\"kafka.debug\": \"cgrp\", $KAFKA_TEST_OPTS}')" >/dev/null

has_worker() { [ -n "$(worker_pids a c1)" ]; }
no_worker() { [ -z "$(worker_pids a c1)" ]; }

# ---- start: a worker within a second, then the backlog lands
t0=$(now_ms)
q a "SELECT camperso.start_source('c1')" >/dev/null
wait_ms 1000 "a worker after start_source" has_worker >/dev/null
echo "ok - start_source: worker running after $(($(now_ms) - t0)) ms"
wait_for 30 "the backlog to land" rows_eq a t 1000
echo "ok - the backlog landed"

# ---- stop: the worker is gone within a second and has left the group
pid=$(worker_pids a c1)
q a "SELECT camperso.stop_source('c1')" >/dev/null
ms=$(wait_ms 1000 "the worker to stop after stop_source" no_worker)
echo "ok - stop_source: worker gone after ${ms} ms"
grep -q "\[$pid\].*LeaveGroup response received" "$(cluster_log a)" ||
	fail "the stopped worker $pid did not leave its consumer group"
echo "ok - the stopped worker left its consumer group (LeaveGroup answered)"
assert_eq "stopped" "$(q a "SELECT state FROM camperso.stat_sources WHERE source = 'c1' AND partition IS NULL")" \
	"stat_sources shows the source stopped"
assert_eq 0 "$(q a "SELECT count(*) FROM camperso.stat_sources WHERE source = 'c1' AND pid IS NOT NULL")" \
	"no partition of a stopped source shows a worker"

# ---- restart: consumes again within seconds, not a session timeout later
gen_messages 1001 1500 | kafka_produce k clicks -K '\t' || fail "kcat -P failed"
t0=$(now_ms)
q a "SELECT camperso.start_source('c1')" >/dev/null
wait_for 10 "a restarted source to consume" rows_eq a t 1500
echo "ok - restarted source consumed new messages after $(($(now_ms) - t0)) ms"

# ---- a worker that dies is restarted, with a backoff, and its error shown
pid=$(worker_pids a c1)
q a "SELECT pg_terminate_backend($pid)" >/dev/null
new_worker() { local p; p=$(worker_pids a c1); [ -n "$p" ] && [ "$p" != "$pid" ]; }
wait_for 10 "the launcher to restart the dead worker" new_worker
grep -q "camperso source \"c1\": worker 0 exited unexpectedly; restarting it in 1000 ms" "$(cluster_log a)" ||
	fail "no restart with backoff in the log"
echo "ok - a worker that died was restarted after a 1 s backoff"
gen_messages 1501 1600 | kafka_produce k clicks -K '\t' || fail "kcat -P failed"
wait_for 20 "the restarted worker to consume" rows_eq a t 1600
check_exactly_once a t 1600

# ---- SIGHUP: launcher and worker reload and keep running
pid=$(worker_pids a c1)
lpid=$(q a "SELECT camperso.launcher_pid()")
q a "ALTER SYSTEM SET camperso.batch_ms = '20ms'"
q a "SELECT pg_reload_conf()" >/dev/null
gen_messages 1601 1700 | kafka_produce k clicks -K '\t' || fail "kcat -P failed"
wait_for 20 "messages after a reload" rows_eq a t 1700
assert_eq "$pid $lpid" "$(worker_pids a c1) $(q a "SELECT camperso.launcher_pid()")" "worker and launcher survive SIGHUP"

# ---- several workers per source split its partitions
q a "SELECT camperso.stop_source('c1')" >/dev/null
wait_ms 1000 "the worker to stop" no_worker >/dev/null
q a "SELECT camperso.drop_source('c1')" >/dev/null
q a "SELECT camperso.create_source('c2', '$BS', 'clicks', 't2', options => '{\"workers\": 2, $KAFKA_TEST_OPTS}')" 2>/dev/null &&
	fail "create_source accepted a missing table"
create_target a t2
q a "SELECT camperso.create_source('c2', '$BS', 'clicks', 't2', options => '{\"workers\": 2, $KAFKA_TEST_OPTS}')" >/dev/null
q a "SELECT camperso.start_source('c2')" >/dev/null
two_workers() { [ "$(worker_pids a c2 | wc -w)" = 2 ]; }
wait_ms 1000 "two workers for workers = 2" two_workers >/dev/null
wait_for 30 "the topic to land through two workers" rows_eq a t2 1700
check_exactly_once a t2 1700
split() { [ "$(q a "SELECT count(DISTINCT pid) FROM camperso.stat_sources WHERE source = 'c2' AND partition IS NOT NULL AND state = 'assigned'")" = 2 ]; }
wait_for 15 "both workers to own partitions" split
echo "ok - the two workers of one source split its partitions"

# ---- drop: workers gone within a second, catalog and stats forgotten
q a "SELECT camperso.drop_source('c2')" >/dev/null
no_c2() { [ -z "$(worker_pids a c2)" ]; }
ms=$(wait_ms 1000 "the workers to stop after drop_source" no_c2)
echo "ok - drop_source: workers gone after ${ms} ms"
assert_eq "0|0|0" "$(q a "SELECT (SELECT count(*) FROM camperso.sources), (SELECT count(*) FROM camperso.source_offsets),
                             (SELECT count(*) FROM camperso.stat_sources)")" "no source, offsets or stats left"
assert_eq 1700 "$(q a "SELECT count(*) FROM t2")" "landed rows stay"

# ---- without the preload, worker-facing functions say so
cluster_create np "$CAMPERSO_ROOT/test/noload.conf"
cluster_start np
q np "CREATE EXTENSION camperso"
create_target np t
q np "SELECT camperso.create_source('c1', '$BS', 'clicks', 't')" >/dev/null || fail "create_source needs no preload"
for f in "camperso.start_source('c1')" "* FROM camperso.stat_sources" "camperso.stat_reset()"; do
	out=$(psql -X -A -t -h 127.0.0.1 -p "$(cluster_port np)" -U postgres -d postgres -v VERBOSITY=verbose -c "SELECT $f" 2>&1)
	grep -q "ERROR:  55000: .* requires camperso to be loaded via shared_preload_libraries" <<<"$out" ||
		fail "SELECT $f without preload answered: $out"
done
echo "ok - start_source, stat_sources and stat_reset raise 55000 naming shared_preload_libraries without the preload"
