#!/usr/bin/env bash
# The launcher is visible in pg_stat_activity and comes back after SIGTERM
# (postmaster restarts it) and after SIGKILL (crash restart of the cluster).
source "$(dirname "$0")/../lib.sh"

cluster_create l
cluster_start l

launcher_pid() {
	cluster_psql l -d postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'camperso launcher'"
}
has_new_launcher() {
	local p
	p=$(launcher_pid)
	[ -n "$p" ] && [ "$p" != "$1" ]
}

has_launcher() { [ -n "$(launcher_pid)" ]; }
wait_for 20 "launcher in pg_stat_activity" has_launcher
first=$(launcher_pid)
assert_eq postgres "$(cluster_psql l -d postgres -c "SELECT datname FROM pg_stat_activity WHERE pid = $first")" \
	"launcher is connected to camperso.database"

kill -TERM "$first"
wait_for 20 "launcher restarted after SIGTERM" has_new_launcher "$first"
second=$(launcher_pid)
echo "ok - launcher restarted after SIGTERM ($first -> $second)"

kill -KILL "$second"
wait_for 60 "launcher back after SIGKILL crash restart" has_new_launcher "$second"
echo "ok - launcher back after SIGKILL ($second -> $(launcher_pid))"

cluster_psql l -d postgres -c "CREATE EXTENSION camperso"
wait_for 20 "launcher_pid() reports the running launcher" \
	test "$(cluster_psql l -d postgres -c 'SELECT camperso.launcher_pid()')" = "$(launcher_pid)"
echo "ok - camperso.launcher_pid() matches pg_stat_activity"
