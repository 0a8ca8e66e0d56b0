#!/usr/bin/env bash
# Alerts reach a listener: camperso.check_alerts() raises NOTIFY
# camperso_alerts with a JSON payload once when an alert starts, nothing
# while it lasts, and again only after it resolved and came back.
source "$(dirname "$0")/../lib.sh"

cluster_create al
cluster_start al
psql_al() { cluster_psql al -d postgres "$@"; }
psql_al -c "CREATE EXTENSION camperso"
# The test runs the checks itself first; the launcher's periodic check is
# tested at the end.
psql_al -c "UPDATE camperso.jobs SET enabled = false WHERE name = 'check_alerts'"

# A separate session listens, polling between short statements (psql prints
# notifications after each command); bounded to about a minute.
LISTENER_OUT=$CAMPERSO_TEST_WORK/listener.out
{
	echo "LISTEN camperso_alerts;"
	echo "SELECT 'listening';"
	for _ in $(seq 1 600); do echo "SELECT pg_sleep(0.1);"; done
} | psql -X -q -A -t -h 127.0.0.1 -p "$(cluster_port al)" -U postgres -d postgres >"$LISTENER_OUT" 2>&1 &
listener_pid=$!
trap '_rc=$?; kill $listener_pid 2>/dev/null; wait $listener_pid 2>/dev/null; (exit $_rc); _lib_cleanup' EXIT
wait_for 20 "listener session to start" grep -q listening "$LISTENER_OUT"

notifications() { grep -c '^Asynchronous notification "camperso_alerts"' "$LISTENER_OUT"; }
has_notifications() { [ "$(notifications)" -ge "$1" ]; }

# A job fails: one notification with the alert as JSON.
psql_al -c "SELECT camperso.run_end(camperso.run_begin('al.nightly'), 'failed', NULL, NULL, 'disk \"full\"')" >/dev/null
assert_eq "1|0|1" "$(psql_al -c "SELECT raised, resolved, active FROM camperso.check_alerts()")" "check raised the failed job"
wait_for 20 "first notification" has_notifications 1
payload=$(grep '^Asynchronous notification "camperso_alerts"' "$LISTENER_OUT" | head -1 |
	sed -E 's/^Asynchronous notification "camperso_alerts" with payload "(.*)" received from server process with PID [0-9]+\.$/\1/')
# The payload is JSON with the alert's fields (checked by the server).
check=$(psql_al -v payload="$payload" <<'SQL'
SELECT concat_ws(',', p ->> 'state', p ->> 'kind', p ->> 'subject', p ->> 'severity', p ->> 'database',
				 (p ->> 'since')::timestamptz IS NOT NULL, p #>> '{details,error}')
  FROM (SELECT :'payload'::jsonb AS p) x;
SQL
)
assert_eq 'firing,failed_job,al.nightly,critical,postgres,t,disk "full"' "$check" "notification payload"

# The alert lasts: further checks notify nothing.
for _ in 1 2 3; do
	assert_eq "0|0|1" "$(psql_al -c "SELECT raised, resolved, active FROM camperso.check_alerts()")" "check while the alert lasts"
done
psql_al -c "SELECT pg_sleep(0.5)" >/dev/null
assert_eq 1 "$(notifications)" "still one notification while the alert lasts"

# A check that rolls back notifies nothing and remembers nothing.
psql_al -c "SELECT camperso.run_end(camperso.run_begin('al.hourly'), 'failed')" >/dev/null
psql_al -c "BEGIN; SELECT camperso.check_alerts(); ROLLBACK;" >/dev/null
psql_al -c "SELECT pg_sleep(0.5)" >/dev/null
assert_eq 1 "$(notifications)" "no notification from a rolled-back check"
assert_eq 0 "$(psql_al -c "SELECT count(*) FROM camperso.alerts_active WHERE subject = 'al.hourly'")" "rolled-back check left no memory"

# Two checkers at once: the alert is raised by exactly one of them.
psql_al -c "SELECT raised FROM camperso.check_alerts()" >"$CAMPERSO_TEST_WORK/c1" &
c1=$!
psql_al -c "SELECT raised FROM camperso.check_alerts()" >"$CAMPERSO_TEST_WORK/c2" &
c2=$!
wait $c1 $c2
assert_eq 1 "$(($(cat "$CAMPERSO_TEST_WORK/c1") + $(cat "$CAMPERSO_TEST_WORK/c2")))" "concurrent checks raised al.hourly once"
wait_for 20 "notification for al.hourly" has_notifications 2

# Resolution clears; recurrence notifies again.
psql_al -c "SELECT camperso.run_end(camperso.run_begin('al.nightly'), 'success')" >/dev/null
assert_eq "0|1|1" "$(psql_al -c "SELECT raised, resolved, active FROM camperso.check_alerts()")" "resolved alert cleared"
psql_al -c "SELECT camperso.run_end(camperso.run_begin('al.nightly'), 'failed', NULL, NULL, 'again')" >/dev/null
assert_eq "1|0|2" "$(psql_al -c "SELECT raised, resolved, active FROM camperso.check_alerts()")" "recurring alert raised again"
wait_for 20 "notification for the recurrence" has_notifications 3
psql_al -c "SELECT pg_sleep(0.5)" >/dev/null
assert_eq 3 "$(notifications)" "exactly one notification per start"
assert_eq "2|1" "$(psql_al -c "SELECT count(*), count(resolved_at) FROM camperso.alert_history WHERE subject = 'al.nightly'")" \
	"history holds both occurrences, the first resolved"

# An oversized detail does not break NOTIFY (8000-byte limit).
psql_al -c "SELECT camperso.run_end(camperso.run_begin('al.big'), 'failed', NULL, NULL, repeat('x', 20000))" >/dev/null
psql_al -c "SELECT camperso.check_alerts()" >/dev/null
wait_for 20 "notification for al.big" has_notifications 4
grep '^Asynchronous notification' "$LISTENER_OUT" | grep -q '"subject": "al.big"' || fail "al.big notification missing its subject"
echo "ok - a long error is cut to fit the notification"

# The launcher runs the check by itself (job check_alerts): a new failure
# reaches the listener without anyone calling check_alerts().
psql_al -c "SELECT camperso.schedule_job('check_alerts', 'SELECT camperso.check_alerts()', '1 second')" >/dev/null
psql_al -c "SELECT camperso.run_end(camperso.run_begin('al.by_launcher'), 'failed', NULL, NULL, 'x')" >/dev/null
by_launcher() { grep '^Asynchronous notification' "$LISTENER_OUT" | grep -q '"subject": "al.by_launcher"'; }
wait_for 30 "the launcher's check to notify al.by_launcher" by_launcher
assert_eq 1 "$(psql_al -c "SELECT count(*) FROM camperso.alerts_active WHERE subject = 'al.by_launcher'")" "launcher's check remembered it"
