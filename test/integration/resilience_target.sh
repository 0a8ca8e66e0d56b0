#!/usr/bin/env bash
# Errors that are not the messages' fault stop the source instead of
# quarantining every message: a column the source maps dropped, a trigger
# on the target broken by a dropped table, the target's tablespace full
# (a tiny tmpfs; skipped where mounting is not allowed). Each time the
# source stops advancing: state backoff with the error in stat_sources,
# nothing landed, nothing quarantined, stored offsets unchanged. Fixed,
# and restarted (stop/start of the source, a fast and an immediate restart
# of PostgreSQL), it goes on from the stored offsets: every message lands
# exactly once. A stored offset past the end of a partition's log (as
# after the topic was recreated) pauses that partition with the error
# until reset_offsets() says where to go on; the other partitions go on.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../capture_lib.sh"
source "$(dirname "$0")/../resilience_lib.sh"

kafka_start k --brokers 1 --topic clicks:2
BS=$(kafka_bootstrap k)
cluster_create a
cluster_start a
q a "CREATE EXTENSION camperso"
q a "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY, n int NOT NULL, k text, seq int, kk text,
     _partition int, _offset bigint, _key text, _received_at timestamptz, _raw bytea)"
q a "SELECT camperso.create_source('c', '$BS', 'clicks', 't',
     options => '{\"mapping\": {\"kk\": \"$.k\"}, \"batch_size\": 500, $KAFKA_TEST_OPTS}')" >/dev/null
q a "SELECT camperso.start_source('c')" >/dev/null

produced=0
produce() {
	gen_messages $((produced + 1)) $((produced + $1)) | kafka_produce k clicks -K '\t' || fail "kcat -P failed"
	produced=$((produced + $1))
}
stored() { q a "SELECT coalesce(sum(next_offset), 0) FROM camperso.source_offsets WHERE source = 'c'"; }
stopped_with() { # the source's row shows backoff and an error matching $1
	q a "SELECT state || '|' || last_error FROM camperso.stat_sources WHERE source = 'c' AND partition IS NULL" |
		grep -q "^backoff|.*$1"
}
# broken PATTERN WHAT: the source stopped with the error, nothing moved
broken() {
	local landed=$1 pattern=$2 what=$3
	produce 500
	wait_for 60 "$what to stop the source" stopped_with "$pattern"
	sleep 2 # several retries
	assert_eq "$landed|0|$landed" "$(q a "SELECT (SELECT count(*) FROM t), (SELECT count(*) FROM camperso.quarantine), $(stored)")" \
		"$what: nothing landed, nothing quarantined, stored offsets unchanged"
	echo "ok - $what: state backoff with error: $(q a "SELECT last_error FROM camperso.stat_sources WHERE source = 'c' AND partition IS NULL")"
}
resumed() {
	wait_for 90 "$1: every message to land once fixed" rows_eq a t "$produced"
	running() { [ "$(source_state a c)" = running ]; }
	wait_for 30 "$1: the source to run again" running
	assert_eq 0 "$(q a "SELECT count(*) FROM camperso.quarantine")" "$1: nothing was quarantined"
	assert_eq "$produced" "$(stored)" "$1: stored offsets at the end"
}

produce 1000
wait_for 60 "the first messages to land" rows_eq a t 1000

# ---- a mapped column dropped; fixed, then the source stopped and started
q a "ALTER TABLE t DROP COLUMN kk"
broken 1000 'names column "kk"' "a dropped mapped column"
q a "ALTER TABLE t ADD COLUMN kk text"
q a "SELECT camperso.stop_source('c')" >/dev/null
q a "SELECT camperso.start_source('c')" >/dev/null
resumed "a dropped mapped column"
assert_eq 0 "$(q a "SELECT count(*) FROM t WHERE n > 1000 AND kk IS DISTINCT FROM k")" "the re-added column is filled again"

# ---- a trigger broken by a dropped table; fixed, then a fast restart
q a "CREATE TABLE audit_log (n int)"
q a "CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS \$\$BEGIN INSERT INTO audit_log VALUES (NEW.n); RETURN NULL; END\$\$"
q a "CREATE TRIGGER audit AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION audit()"
q a "DROP TABLE audit_log"
broken "$produced" 'relation "audit_log" does not exist' "a broken trigger"
q a "CREATE TABLE audit_log (n int)"
cluster_restart a fast
resumed "a broken trigger"
assert_eq "500|500" "$(q a "SELECT count(*) || '|' || count(DISTINCT n) FROM audit_log")" "the trigger saw each of the retried messages once"
q a "DROP TRIGGER audit ON t"

# ---- the tablespace full; space freed, then an immediate restart
MNT=$CAMPERSO_TEST_WORK/small
mkdir -p "$MNT"
if mount -t tmpfs -o size=3m tmpfs "$MNT" 2>/dev/null; then
	trap '_res_rc=$?; umount -l "$MNT" 2>/dev/null; (exit $_res_rc); _lib_cleanup' EXIT
	chown postgres: "$MNT"
	q a "CREATE TABLESPACE small LOCATION '$MNT'"
	q a "ALTER TABLE t SET TABLESPACE small"
	q a "CREATE TABLE filler (x text) TABLESPACE small"
	# fill it up: until the insert fails for want of space
	for _ in $(seq 1 200); do
		q a "INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 500)" 2>/dev/null || break
	done
	note "the tablespace is full: $(df -k "$MNT" | awk 'NR == 2 {print $4}') kB left"
	broken "$produced" 'No space left on device' "a full tablespace"
	q a "DROP TABLE filler"
	cluster_stop a immediate
	cluster_start a
	resumed "a full tablespace"
else
	note "mounting a tmpfs is not allowed here: the full-tablespace case is not run"
fi

# ---- stored offset past the end of the log (as after the topic was
# recreated or truncated): the partition pauses with the error, the other
# goes on; reset_offsets says where to go on and nothing is lost
p0=$(q a "SELECT next_offset FROM camperso.source_offsets WHERE source = 'c' AND partition = 0")
q a "SELECT camperso.reset_offsets('c', 0, '$((p0 + 100000))')" >/dev/null
before1=$(q a "SELECT count(*) FROM t WHERE _partition = 1")
produce 500
past_end() {
	q a "SELECT last_error FROM camperso.stat_sources WHERE source = 'c' AND partition = 0" |
		grep -q "partition 0 ends at offset .*, before its stored offset $((p0 + 100000))"
}
wait_for 60 "stat_sources to show that partition 0 ends before its stored offset" past_end
echo "ok - a stored offset past the end of the log shows: $(q a "SELECT last_error FROM camperso.stat_sources WHERE source = 'c' AND partition = 0")"
p1_landed() { [ "$(q a "SELECT count(*) FROM t WHERE _partition = 1")" -gt "$before1" ]; }
wait_for 60 "partition 1 to go on" p1_landed
sleep 2
assert_eq "$p0" "$(q a "SELECT count(*) FROM t WHERE _partition = 0")" "nothing of the paused partition landed"
q a "SELECT camperso.reset_offsets('c', 0, '$p0')" >/dev/null
resumed "a stored offset past the end"

check_exactly_once a t "$produced"
kafka_truth k clicks a truth
check_delivery a t c truth
