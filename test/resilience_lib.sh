# test/resilience_lib.sh — helpers of the fault-injection suite
# (test/integration/resilience_*.sh). Source it after test/lib.sh and
# test/capture_lib.sh.
#
# The suite checks delivery against the truth read back from Kafka itself:
#   kafka_truth KAFKA TOPIC CLUSTER TABLE   every message the topic holds,
#                                           as TABLE (p, o, len), in CLUSTER
#   check_delivery CLUSTER TARGET SOURCE TRUTH [MISSING]
#       every (partition, offset) of TRUTH is exactly once in TARGET or in
#       SOURCE's quarantine rows, with the same payload length; nothing is
#       there that Kafka does not hold; no partition has a gap; MISSING
#       (default 0) messages are absent on purpose (deduplicated).
#   hold_lock CLUSTER NAME TABLE MODE       a session named NAME holds MODE
#                                           on TABLE (until release_lock)
#   release_lock CLUSTER NAME               ends that session
#   cpu_ticks PID, rss_kb PID               from /proc/PID/stat and status
#   quick A B                                A in quick mode (CI), else B

quick() { if [ -n "$CAMPERSO_QUICK" ]; then echo "$1"; else echo "$2"; fi; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
CLK_TCK=$(getconf CLK_TCK)

# kafka_truth KAFKA TOPIC CLUSTER TABLE
kafka_truth() {
	local k=$1 topic=$2 c=$3 table=$4
	local file=$CAMPERSO_TEST_WORK/truth-$topic
	kcat -b "$(kafka_bootstrap "$k")" -C -t "$topic" -e -q -f '%p %o %S\n' >"$file" 2>/dev/null ||
		fail "kcat could not read topic $topic back"
	q "$c" "SET client_min_messages = warning; DROP TABLE IF EXISTS $table; CREATE TABLE $table (p int, o bigint, len int)"
	cluster_psql "$c" -d postgres -c "\\copy $table FROM '$file' WITH (DELIMITER ' ')" ||
		fail "could not load the truth of $topic"
	note "kafka holds $(wc -l <"$file") messages in topic $topic"
}

# check_delivery CLUSTER TARGET SOURCE TRUTH [MISSING]
check_delivery() {
	local c=$1 t=$2 src=$3 truth=$4 missing=${5:-0}
	local landed qd total
	q "$c" "SET client_min_messages = warning; DROP TABLE IF EXISTS _delivered;
	        CREATE TABLE _delivered AS
	          SELECT _partition AS p, _offset AS o, length(_raw) AS len, 'staging' AS place FROM $t
	          UNION ALL
	          SELECT partition, \"offset\", length(payload), 'quarantine' FROM camperso.quarantine WHERE source = '$src'"
	total=$(q "$c" "SELECT count(*) FROM $truth")
	landed=$(q "$c" "SELECT count(*) FROM $t")
	qd=$(q "$c" "SELECT count(*) FROM camperso.quarantine WHERE source = '$src'")
	note "produced $total = staging $landed + quarantine $qd + missing on purpose $missing"
	assert_eq "$total" "$((landed + qd + missing))" "produced = staging + quarantine${5:+ + deduplicated}"
	assert_eq 0 "$(q "$c" "SELECT count(*) FROM (SELECT p, o FROM _delivered GROUP BY 1, 2 HAVING count(*) > 1) x")" \
		"no (partition, offset) delivered twice"
	assert_eq 0 "$(q "$c" "SELECT count(*) FROM _delivered d WHERE NOT EXISTS
	                       (SELECT 1 FROM $truth k WHERE k.p = d.p AND k.o = d.o AND greatest(k.len, 0) = d.len)")" \
		"every delivered row is a message Kafka holds, with its exact payload length (a null one as empty)"
	assert_eq "$missing" "$(q "$c" "SELECT count(*) FROM $truth k WHERE NOT EXISTS
	                       (SELECT 1 FROM _delivered d WHERE d.p = k.p AND d.o = k.o)")" \
		"messages of Kafka missing from staging and quarantine"
	if [ "$missing" = 0 ]; then
		assert_eq 0 "$(q "$c" "SELECT count(*) FROM (SELECT p FROM _delivered GROUP BY p
		                       HAVING max(o) - min(o) + 1 <> count(*) OR min(o) <> 0) x")" \
			"no gap in any partition: max(offset) - min(offset) + 1 = count, from offset 0"
	fi
	q "$c" "DROP TABLE _delivered"
}

# hold_lock CLUSTER NAME TABLE MODE: returns once the lock is granted
hold_lock() {
	PGAPPNAME=$2 psql -X -q -h 127.0.0.1 -p "$(cluster_port "$1")" -U postgres -d postgres \
		-c "BEGIN" -c "LOCK TABLE $3 IN $4 MODE" -c "SELECT pg_sleep(600)" >/dev/null 2>&1 &
	wait_for 30 "$2 to hold its lock on $3" _lock_held "$@"
}
_lock_held() {
	[ "$(q "$1" "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity s USING (pid)
	             WHERE s.application_name = '$2' AND l.relation = '$3'::regclass AND l.granted")" = 1 ]
}
release_lock() {
	q "$1" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '$2'" >/dev/null
}

# source_state CLUSTER SOURCE: the state of the source's own stats row.
source_state() {
	q "$1" "SELECT state FROM camperso.stat_sources WHERE source = '$2' AND partition IS NULL"
}
