#!/usr/bin/env bash
# Job retries. A model load and partition maintenance that cannot get a
# lock (a session holds ACCESS EXCLUSIVE on the fact table, or on the
# managed table) fail after camperso.job_lock_timeout instead of waiting
# out the job's timeout inside the launcher: each try is a failed run in
# camperso.runs with the lock-timeout error, the next try waits longer
# (backoff), and the launcher meanwhile goes on supervising (a source
# started during the lock gets its worker). Once the lock is gone both
# succeed, and nothing is loaded twice.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../capture_lib.sh"
source "$(dirname "$0")/../resilience_lib.sh"

cluster_create a
cluster_start a
q a "ALTER SYSTEM SET camperso.job_lock_timeout = '1s'"
q a "SELECT pg_reload_conf()" >/dev/null
q a "CREATE EXTENSION camperso"
q a "SELECT camperso.create_clickstream_model('cs', load_every => '1 second', validate => false)" >/dev/null
stage() {
	q a "INSERT INTO cs.events (event_id, user_id, session_id, event_type, page_url, ts)
	     SELECT gen_random_uuid(), 'u' || g, 's' || g, 'page_view', 'https://a.example/' || g, now() - interval '1 minute'
	     FROM generate_series(1, $1) g"
}
facts_are() { [ "$(q a "SELECT count(*) FROM cs.fact_clicks")" = "$1" ]; }
stage 50
wait_for 60 "the first load" facts_are 50

job_failures() { q a "SELECT failures FROM camperso.jobs WHERE name = '$1'"; }
failed_at_least() { [ "$(job_failures "$1")" -ge "$2" ]; }

# ---- a load that cannot lock the fact table
hold_lock a locker cs.fact_clicks 'ACCESS EXCLUSIVE'
stage 20
wait_for 60 "the load to fail on the lock" failed_at_least load_model:cs 1
f1=$(q a "SELECT extract(epoch FROM next_run_at - last_finished_at)::int FROM camperso.jobs WHERE name = 'load_model:cs'")
wait_for 60 "the load to fail a second time" failed_at_least load_model:cs 2
f2=$(q a "SELECT extract(epoch FROM next_run_at - last_finished_at)::int FROM camperso.jobs WHERE name = 'load_model:cs'")
note "backoff after the first failure ${f1}s, after the second ${f2}s"
[ "$f2" -gt "$f1" ] || fail "the backoff does not grow: ${f1}s then ${f2}s"
echo "ok - the failing load is retried with a growing backoff"
assert_eq t "$(q a "SELECT count(*) >= 2 FROM camperso.runs WHERE job = 'load_model:cs' AND status = 'failed'
                   AND error LIKE '%lock timeout%'")" "each failed try is a failed run with the lock-timeout error"
assert_eq t "$(q a "SELECT last_error LIKE '%lock timeout%' FROM camperso.jobs WHERE name = 'load_model:cs'")" \
	"the job shows the lock-timeout error"

# the launcher still supervises: a source started now gets its worker
q a "CREATE TABLE probe_t (n int)"
q a "SELECT camperso.create_source('probe', '127.0.0.1:1', 'nothing', 'probe_t')" >/dev/null
q a "SELECT camperso.start_source('probe')" >/dev/null
has_worker() { [ -n "$(worker_pids a probe)" ]; }
wait_for 30 "the launcher to start a worker while the load job keeps failing" has_worker
echo "ok - the launcher goes on supervising while a job cannot get its lock"
q a "SELECT camperso.drop_source('probe')" >/dev/null

release_lock a locker
wait_for 90 "the load to succeed once the lock is gone" facts_are 70
recovered() { [ "$(job_failures load_model:cs)" = 0 ] && [ "$(q a "SELECT last_status FROM camperso.jobs WHERE name = 'load_model:cs'")" = success ]; }
wait_for 30 "the load job to show success" recovered
sleep 2 # a second load of the same rows would show now
assert_eq "70|70" "$(q a "SELECT count(*) || '|' || count(DISTINCT event_id) FROM cs.fact_clicks")" "nothing was loaded twice"
assert_eq 70 "$(q a "SELECT sum(rows_out) FROM camperso.runs WHERE job = 'load_model:cs' AND status = 'success'")" \
	"the successful runs account for every fact once"

# ---- maintenance that cannot lock its managed table
q a "CREATE TABLE pm (ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts)"
q a "SELECT camperso.partition_table('pm', 'ts', '1 day', 3)" >/dev/null
nparts() { q a "SELECT count(*) FROM pg_inherits WHERE inhparent = 'pm'::regclass"; }
full=$(nparts)
last=$(q a "SELECT c.oid::regclass FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = 'pm'::regclass ORDER BY c.relname DESC LIMIT 1")
q a "DROP TABLE $last"
hold_lock a mlocker pm 'ACCESS EXCLUSIVE'
q a "UPDATE camperso.jobs SET next_run_at = now(), failures = 0 WHERE name = 'maintenance'"
wait_for 60 "maintenance to fail on the lock" failed_at_least maintenance 1
assert_eq t "$(q a "SELECT count(*) >= 1 FROM camperso.runs WHERE job = 'maintenance' AND status = 'failed' AND error LIKE '%lock timeout%'")" \
	"the failed maintenance is a failed run with the lock-timeout error"
assert_eq "$((full - 1))" "$(nparts)" "the partition is still missing while the lock is held"
release_lock a mlocker
# the retry comes after the backoff; make it due now rather than wait an hour's multiple
q a "UPDATE camperso.jobs SET next_run_at = now() WHERE name = 'maintenance'"
maint_ok() { [ "$(job_failures maintenance)" = 0 ] && [ "$(nparts)" = "$full" ]; }
wait_for 60 "maintenance to succeed once the lock is gone" maint_ok
echo "ok - maintenance succeeds once the lock is gone and makes the missing partition"
