#!/usr/bin/env bash
# Without shared_preload_libraries the SQL-only parts work and the worker
# functions raise a clear error naming shared_preload_libraries.
source "$(dirname "$0")/../lib.sh"

cluster_create np "$CAMPERSO_ROOT/test/noload.conf"
cluster_start np

cluster_psql np -d postgres -c "CREATE EXTENSION camperso" || fail "CREATE EXTENSION failed without preload"
assert_eq 0.1.0 "$(cluster_psql np -d postgres -c 'SELECT camperso.version()')" "SQL functions work without preload"

out=$(psql -X -A -t -h 127.0.0.1 -p "$(cluster_port np)" -U postgres -d postgres \
	-v VERBOSITY=verbose -c "SELECT camperso.launcher_pid()" 2>&1)
grep -q "ERROR:  55000: camperso.launcher_pid() requires camperso to be loaded via shared_preload_libraries" <<<"$out" ||
	fail "unexpected answer without preload: $out"
grep -q "HINT:  Add camperso to shared_preload_libraries" <<<"$out" || fail "no hint: $out"
echo "ok - worker functions raise 55000 naming shared_preload_libraries"

assert_eq 0 "$(cluster_psql np -d postgres -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'camperso launcher'")" \
	"no launcher runs without preload"

cluster_psql np -d postgres -c "DROP EXTENSION camperso" || fail "DROP EXTENSION failed"
assert_eq 0 "$(cluster_psql np -d postgres -c "SELECT count(*) FROM pg_namespace WHERE nspname = 'camperso'")" "DROP EXTENSION removes the schema"
