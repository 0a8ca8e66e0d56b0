#!/usr/bin/env bash
# Model and persist under concurrency:
#  - load_model reads every committed staging row exactly once, whatever the
#    commit order: a row of a transaction still open during a load (and
#    stamped before the load's snapshot) is loaded by a later load;
#  - concurrent scd2_merge calls into one dimension serialise (no duplicate
#    versions), concurrent loads of one model too;
#  - concurrent ensure_partition calls for one missing day make it once.
source "$(dirname "$0")/../lib.sh"

cluster_create c
cluster_start c
# Not camperso.database: the launcher runs no jobs here, the test drives.
cluster_psql c -d postgres -c "CREATE DATABASE mc"
q() { cluster_psql c -d mc -c "SET TimeZone = 'UTC'" -c "$1"; }
q "CREATE EXTENSION camperso"
q "SELECT camperso.create_clickstream_model('cs', validate => false)" >/dev/null
# scan_slack 0: the arrival-time bound of the staging scan rests only on the
# oldest writing transaction, which is what is under test.
q "UPDATE camperso.models SET scan_slack = '0'"

# Background sessions fed through a fifo; "mark" lines tell when a statement
# has run.
sess_open() {
	local d=$CAMPERSO_TEST_WORK/sess-$1 fd
	mkdir -p "$d"
	mkfifo "$d/in"
	psql -X -q -A -t -v ON_ERROR_STOP=0 -h 127.0.0.1 -p "$(cluster_port c)" -U postgres -d mc \
		<"$d/in" >"$d/out" 2>&1 &
	exec {fd}>"$d/in"
	echo "$fd" >"$d/fd"
}
sess_send() {
	local d=$CAMPERSO_TEST_WORK/sess-$1
	printf '%s\n\\echo %s\n' "$2" "$3" >&"$(cat "$d/fd")"
}
sess_saw() { grep -qx "$2" "$CAMPERSO_TEST_WORK/sess-$1/out"; }
sess_wait() { wait_for 30 "session $1 to reach $2" sess_saw "$1" "$2"; }
ev() { # id user ts
	echo "INSERT INTO cs.events (event_id, user_id, event_type, page_url, ts) VALUES
		('00000000-0000-0000-0000-$(printf %012d "$1")', '$2', 'page_view', 'https://a.example/', '$3');"
}
facts() { q "SELECT count(*) FROM cs.fact_clicks"; }
# A session of this database waiting for a lock held by another.
lock_waiter() { [ "$(q "SELECT count(*) FROM pg_stat_activity WHERE datname = 'mc' AND wait_event_type = 'Lock'")" = 1 ]; }

# ---- exactly once across an open transaction --------------------------------
sess_open a
sess_send a "SET TimeZone = 'UTC'; BEGIN; $(ev 1 ua '2024-05-01 10:00')" a_inserted
sess_wait a a_inserted
# The next rows must be stamped later than a's.
past_a() { [ "$(q "SELECT now() > (SELECT xact_start + interval '50 ms' FROM pg_stat_activity WHERE datname = 'mc' AND backend_xid IS NOT NULL)")" = t ]; }
wait_for 10 "the clock to move past a's start" past_a
q "$(ev 2 ub '2024-05-01 10:05')"
q "SELECT camperso.load_model('cs')" >/dev/null
assert_eq 1 "$(facts)" "a load during an open transaction loads only what is committed"
assert_eq 1 "$(q "SELECT count(*) FROM cs.fact_clicks WHERE user_id = 'ub'")" "the committed row is the one loaded"
# The watermark stays below the open transaction's id.
assert_eq t "$(q "SELECT next_xid <= pg_snapshot_xmin(pg_current_snapshot()) FROM camperso.model_watermarks WHERE schema_name = 'cs' AND staging = 'events'")" \
	"the watermark does not pass an open writer"
sess_send a "COMMIT;" a_committed
sess_wait a a_committed
q "SELECT camperso.load_model('cs')" >/dev/null
assert_eq 2 "$(facts)" "the row committed after the load (and stamped before it) is loaded by the next load"
q "SELECT camperso.load_model('cs')" >/dev/null
assert_eq 2 "$(facts)" "a third load loads nothing again"

# Rows of a subtransaction (a savepoint) of a transaction still open are
# not mistaken for loaded ones once it commits.
sess_send a "BEGIN; SAVEPOINT s1; $(ev 20 uf '2024-05-01 10:06') RELEASE SAVEPOINT s1; SAVEPOINT s2; $(ev 21 uf '2024-05-01 10:07')" a_sub
sess_wait a a_sub
q "$(ev 22 ug '2024-05-01 10:08')"
q "SELECT camperso.load_model('cs')" >/dev/null
assert_eq 3 "$(facts)" "a load beside an open transaction with subtransactions loads the committed row"
assert_eq 1 "$(q "SELECT cardinality(loaded_above) FROM camperso.model_watermarks WHERE schema_name = 'cs' AND staging = 'events'")" 	"the transaction read above the open one's xmin is remembered"
sess_send a "COMMIT;" a_sub_committed
sess_wait a a_sub_committed
q "SELECT camperso.load_model('cs')" >/dev/null
assert_eq 5 "$(facts)" "the subtransactions' rows are loaded once the transaction commits"
q "SELECT camperso.load_model('cs')" >/dev/null
assert_eq 5 "$(facts)" "and only once"
assert_eq 0 "$(q "SELECT cardinality(loaded_above) FROM camperso.model_watermarks WHERE schema_name = 'cs' AND staging = 'events'")" 	"with no writer open, nothing needs remembering"

# A transaction that rolls back leaves nothing to load, and holds nothing up.
sess_send a "BEGIN; $(ev 3 uc '2024-05-01 10:10')" a_again
sess_wait a a_again
q "$(ev 4 ud '2024-05-01 10:15')"
sess_send a "ROLLBACK;" a_rolled_back
sess_wait a a_rolled_back
q "SELECT camperso.load_model('cs')" >/dev/null
assert_eq 6 "$(facts)" "a rolled-back row is never loaded"

# ---- loads of one model serialise --------------------------------------------
sess_open b
q "$(ev 5 ue '2024-05-01 10:20')"
sess_send a "BEGIN; SELECT camperso.load_model('cs') IS NOT NULL;" a_loaded
sess_wait a a_loaded
sess_send b "SELECT (camperso.load_model('cs')->>'facts_inserted');" b_loaded
wait_for 30 "the second load to wait for the first" lock_waiter
sess_saw b b_loaded && fail "a second load did not wait for the first"
echo "ok - a second load waits for the first"
sess_send a "COMMIT;" a_done
sess_wait b b_loaded
assert_eq 7 "$(facts)" "both loads together loaded the event once"

# ---- concurrent merges into one dimension -------------------------------------
q "CREATE TABLE dim_c (dim_c_sk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, k int, v text,
	valid_from timestamptz, valid_to timestamptz, is_current boolean)"
q "CREATE TABLE src_c AS SELECT g AS k, 'v' || g AS v, '2024-01-01'::timestamptz AS ts FROM generate_series(1, 500) g"
sess_send a "BEGIN; SELECT inserted FROM camperso.scd2_merge('dim_c', 'src_c', '{k}', '{v}', '{}', 'ts');" merge_a
sess_wait a merge_a
sess_send b "SELECT 'b:' || inserted || ':' || unchanged FROM camperso.scd2_merge('dim_c', 'src_c', '{k}', '{v}', '{}', 'ts');" merge_b
wait_for 30 "the second merge to wait for the first" lock_waiter
sess_saw b merge_b && fail "a second merge into the dimension did not wait for the first"
echo "ok - a second merge waits for the first"
sess_send a "COMMIT;" merge_a_done
sess_wait b merge_b
grep -qx "b:0:500" "$CAMPERSO_TEST_WORK/sess-b/out" || fail "the second merge should find everything unchanged: $(cat "$CAMPERSO_TEST_WORK/sess-b/out")"
echo "ok - the second merge sees the first one's versions"
assert_eq 500 "$(q "SELECT count(*) FROM dim_c")" "no duplicate versions"

# ---- concurrent makers of one partition ---------------------------------------
q "CREATE TABLE pc (ts timestamptz) PARTITION BY RANGE (ts)"
q "SELECT camperso.partition_table('pc', 'ts', '1 day', 0)" >/dev/null
sess_send a "BEGIN; SELECT 'a:' || camperso.ensure_partition('pc', '2023-01-05 10:00+00');" part_a
sess_wait a part_a
sess_send b "SELECT 'b:' || camperso.ensure_partition('pc', '2023-01-05 20:00+00');" part_b
wait_for 30 "the second maker to wait for the first" lock_waiter
sess_saw b part_b && fail "a second maker of the same partition did not wait"
# Readers and writers of the parent are not blocked meanwhile.
q "INSERT INTO pc SELECT now()"
assert_eq 1 "$(q "SELECT count(*) FROM pc")" "the parent stays readable and writable while a partition is made"
sess_send a "COMMIT;" part_a_done
sess_wait b part_b
grep -qx "b:pc_p20230105" "$CAMPERSO_TEST_WORK/sess-b/out" || fail "second maker: $(cat "$CAMPERSO_TEST_WORK/sess-b/out")"
assert_eq 1 "$(q "SELECT count(*) FROM camperso.partitions('pc') WHERE range_start = '2023-01-05'")" \
	"the partition is made once and found by the second caller"
grep -q ERROR "$CAMPERSO_TEST_WORK/sess-a/out" "$CAMPERSO_TEST_WORK/sess-b/out" &&
	fail "a session saw an error: $(cat "$CAMPERSO_TEST_WORK"/sess-*/out)"
echo "ok - no session saw an error"
