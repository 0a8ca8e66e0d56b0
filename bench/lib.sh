# bench/lib.sh — helpers shared by benchmarks (source it after test/lib.sh).
#
#   bench_cluster NAME [CONF LINES...]   creates and starts a cluster with
#       the test configuration plus the settings a bulk benchmark wants
#       (big shared buffers and WAL, wal_level minimal: every side writes
#       WAL alike), then the extra lines given
#   bench_median "T1 T2 ..."            the median of the numbers
#   bench_scaled N [MIN]                N times BENCH_SCALE, at least MIN
#   bench_workdir NAME                  makes sure the private install is
#       there and prints a fresh scratch directory for the benchmark
#   bench_kafka_backlog KAFKA TOPIC FILE N   produces the key<TAB>value lines
#       of FILE lz4-compressed into TOPIC and fails unless the embedded Kafka
#       holds all N (it evicts beyond ~5 MiB per partition)

bench_cluster() {
	local name=$1 conf
	shift
	conf=$CAMPERSO_TEST_WORK/bench-$name.conf
	{
		cat "$CAMPERSO_ROOT/test/camperso.conf"
		printf '%s\n' "shared_buffers = 1GB" "max_wal_size = 8GB" "checkpoint_timeout = 30min" \
			"wal_level = minimal" "max_wal_senders = 0" "$@"
	} >"$conf"
	cluster_create "$name" "$conf"
	cluster_start "$name"
}

bench_median() { printf '%s\n' $1 | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

bench_kafka_backlog() {
	local kafka=$1 topic=$2 file=$3 n=$4 held
	kafka_produce "$kafka" "$topic" -z lz4 -K '\t' -X linger.ms=50 -X batch.num.messages=10000 <"$file" ||
		fail "kcat -P failed"
	held=$(kafka_count "$kafka" "$topic")
	[ "$held" = "$n" ] || fail "the embedded Kafka holds $held of $n messages of $topic: use more partitions"
	note "the embedded Kafka holds all $n messages of $topic"
}

bench_scaled() {
	awk -v n="$1" -v min="${2:-1}" -v s="${BENCH_SCALE:-1.0}" 'BEGIN { n = int(n * s); print (n < min ? min : n) }'
}

bench_workdir() {
	local w=$CAMPERSO_TEST_WORK/bench-$1
	[ -x "$CAMPERSO_PGBIN/postgres" ] || bash "$CAMPERSO_ROOT/tools/private-install.sh" >/dev/null
	mkdir -p "$w"
	chmod 755 "$w"
	echo "$w"
}
