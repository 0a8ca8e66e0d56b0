# test/capture_lib.sh — helpers shared by the capture integration tests
# (test/integration/capture_*.sh). Source it after test/lib.sh.

# q NAME SQL... : runs SQL in database postgres of cluster NAME.
q() {
	local name=$1
	shift
	cluster_psql "$name" -d postgres -c "$*"
}

# now_ms: wall clock in milliseconds.
now_ms() { date +%s%3N; }

# rows_at_least NAME TABLE N : true once TABLE holds at least N rows.
rows_at_least() {
	local n
	n=$(q "$1" "SELECT count(*) FROM $2") || return 1
	[ "$n" -ge "$3" ]
}

# rows_eq NAME TABLE N : true once TABLE holds exactly N rows.
rows_eq() {
	[ "$(q "$1" "SELECT count(*) FROM $2" 2>/dev/null)" = "$3" ]
}

# worker_pids NAME SOURCE : pids of the running workers of SOURCE.
worker_pids() {
	q "$1" "SELECT string_agg(pid::text, ' ' ORDER BY pid) FROM pg_stat_activity
	        WHERE backend_type = 'camperso source worker' AND application_name = '$2'"
}

# wait_ms MS DESC CMD... : polls CMD every 20 ms; prints the milliseconds it
# took; fails after MS.
wait_ms() {
	local limit=$1 desc=$2
	shift 2
	local t0 t
	t0=$(now_ms)
	while ! "$@" >/dev/null 2>&1; do
		t=$(now_ms)
		[ $((t - t0)) -gt "$limit" ] && fail "not within ${limit} ms: $desc"
		sleep 0.02
	done
	echo $(($(now_ms) - t0))
}

# gen_messages FIRST LAST : keyed test messages "key<TAB>json", one per line;
# 97 keys; seq counts each key's messages so per-key order can be checked.
gen_messages() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		for (i = a; i <= b; i++) {
			k = i % 97
			printf "u%d\t{\"n\":%d,\"k\":\"u%d\",\"seq\":%d,\"pad\":\"%s\"}\n", k, i, k, int(i / 97), "abcdefghijklmnopqrstuvwxyz0123456789"
		}
	}'
}

# create_target NAME TABLE : the test target with every metadata column.
create_target() {
	q "$1" "CREATE TABLE $2 (id bigint GENERATED ALWAYS AS IDENTITY, n int NOT NULL, k text, seq int,
	        _partition int, _offset bigint, _key text, _received_at timestamptz, _raw bytea)"
}

# check_exactly_once NAME TABLE N : N rows, no (partition, offset) twice,
# every n once, per-partition and per-key order kept.
check_exactly_once() {
	local name=$1 t=$2 n=$3
	assert_eq "$n" "$(q "$name" "SELECT count(*) FROM $t")" "$t holds $n rows"
	assert_eq "$n" "$(q "$name" "SELECT count(DISTINCT (_partition, _offset)) FROM $t")" "no (partition, offset) landed twice in $t"
	assert_eq "$n" "$(q "$name" "SELECT count(DISTINCT n) FROM $t")" "every message landed once in $t"
	assert_eq 0 "$(q "$name" "SELECT count(*) FROM (SELECT _offset < lag(_offset) OVER w AS back FROM $t
	                           WINDOW w AS (PARTITION BY _partition ORDER BY id)) x WHERE back")" \
		"offsets grow with landing order in every partition of $t"
	assert_eq 0 "$(q "$name" "SELECT count(*) FROM (SELECT seq < lag(seq) OVER w AS back FROM $t
	                           WINDOW w AS (PARTITION BY k ORDER BY id)) x WHERE back")" \
		"each key's messages landed in production order in $t"
}

# librdkafka's mock cluster rebalances a group only when a timer of
# session.timeout.ms - 1 s fires, so with the default 45 s every rebalance
# takes 44 s there (a real broker rebalances as soon as members rejoin).
# Test sources use a short session so rebalances take ~2 s.
KAFKA_TEST_OPTS='"kafka.session.timeout.ms": 3000, "kafka.heartbeat.interval.ms": 300'
