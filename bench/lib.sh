# bench/lib.sh — helpers shared by benchmarks (source it after test/lib.sh).
#
#   bench_cluster NAME [CONF LINES...]   creates and starts a cluster with
#       the test configuration plus the settings a bulk benchmark wants
#       (big shared buffers and WAL, wal_level minimal: every side writes
#       WAL alike), then the extra lines given
#   bench_median "T1 T2 ..."            the median of the numbers

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
