#!/usr/bin/env bash
# The unique rule's window survives restarts (keys are persisted in the
# transaction that landed them), sees keys committed by other sessions, and
# lets a key through again once it has left the window.
source "$(dirname "$0")/../lib.sh"

cluster_create d
cluster_start d
q() { cluster_psql d -d postgres -c "$1"; }
q "CREATE EXTENSION camperso" || fail "create extension"
cluster_psql d -d postgres <<'SQL' || fail "setup"
SELECT camperso.add_rule('ev', 'event_id', 'unique', '"1 hour"');
SELECT camperso.add_rule('short', 'event_id', 'unique', '"2 seconds"');
CREATE TABLE ev (event_id uuid, n int);
CREATE TRIGGER v BEFORE INSERT ON ev FOR EACH ROW EXECUTE FUNCTION camperso.validate_row('ev');
CREATE TABLE ev_short (event_id text, n int);
CREATE TRIGGER v BEFORE INSERT ON ev_short FOR EACH ROW EXECUTE FUNCTION camperso.validate_row('short');
SQL

# 1000 distinct events, each sent twice in the same COPY: half are replays.
seq 1 1000 | awk '{ printf "00000000-0000-4000-8000-%012d\t%d\n", $1, $1; printf "00000000-0000-4000-8000-%012d\t%d\n", $1, $1 }' |
	cluster_psql d -d postgres -c "COPY ev FROM STDIN" || fail "copy"
assert_eq 1000 "$(q "SELECT count(*) FROM ev")" "replays within one COPY are dropped"
assert_eq "2000|1000|0|1000" "$(q "SELECT received||'|'||landed||'|'||quarantined||'|'||deduplicated FROM camperso.stat_validation WHERE target = 'public.ev'")" \
	"and counted as deduplicated, never silently"

# Another session sees the keys committed by the first.
echo "00000000-0000-4000-8000-000000000007	7" | cluster_psql d -d postgres -c "COPY ev FROM STDIN"
assert_eq 1000 "$(q "SELECT count(*) FROM ev")" "a replay from another session is dropped"

# Crash the server (no clean shutdown) and send the same events again.
cluster_stop d immediate
cluster_start d
seq 1 1000 | awk '{ printf "00000000-0000-4000-8000-%012d\t%d\n", $1, $1 }' |
	cluster_psql d -d postgres -c "COPY ev FROM STDIN" || fail "copy after restart"
assert_eq 1000 "$(q "SELECT count(*) FROM ev")" "after a crash and restart, replays of the window are still dropped"
echo "00000000-0000-4000-8000-000000001001	1001" | cluster_psql d -d postgres -c "COPY ev FROM STDIN"
assert_eq 1001 "$(q "SELECT count(*) FROM ev")" "a new event still lands"
assert_eq "3002|1001|0|2001" "$(q "SELECT received||'|'||landed||'|'||quarantined||'|'||deduplicated FROM camperso.stat_validation WHERE target = 'public.ev'")" \
	"landed + quarantined + deduplicated = received across the restart"

# A rolled back transaction leaves no keys: the event lands next time.
q "BEGIN; INSERT INTO ev VALUES ('00000000-0000-4000-8000-000000002000', 1); ROLLBACK;"
q "INSERT INTO ev VALUES ('00000000-0000-4000-8000-000000002000', 1)"
assert_eq 1 "$(q "SELECT count(*) FROM ev WHERE event_id = '00000000-0000-4000-8000-000000002000'")" \
	"keys of a rolled back transaction are forgotten"

# Text keys, and the window: a key lands again once the window has passed.
q "INSERT INTO ev_short VALUES ('k1', 1), ('k1', 2)"
assert_eq 1 "$(q "SELECT count(*) FROM ev_short")" "text keys are deduplicated too"
try_again() {
	q "INSERT INTO ev_short VALUES ('k1', 3)" >/dev/null
	[ "$(q "SELECT count(*) FROM ev_short")" = 2 ]
}
wait_for 20 "k1 to land again after its 2 second window" try_again
echo "ok - a key lands again after the window"
