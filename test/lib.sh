# test/lib.sh — shared helpers for camperso's integration tests, the demo
# and the benchmarks. Source it; do not run it.
#
# What it gives:
#   cluster_create NAME [CONF_FILE]   a throwaway PG15 cluster (postgres user,
#                                     127.0.0.1, free port, own socket dir);
#                                     CONF_FILE defaults to test/camperso.conf
#   cluster_start/stop/restart NAME [MODE]   pg_ctl around it
#   cluster_port NAME, cluster_log NAME, cluster_psql NAME [psql args]
#   kafka_start NAME [camperso-kafka args]   the embedded Kafka; its bootstrap
#                                     servers in $(kafka_bootstrap NAME)
#   kafka_ctl NAME COMMAND            a control command (down 1, up 1, ...)
#   kafka_count NAME TOPIC            messages currently held in a topic
#   wait_for SECONDS DESCRIPTION CMD...   poll CMD until it succeeds
#   assert_eq EXPECTED ACTUAL DESCRIPTION
#   fail MESSAGE, skip MESSAGE (exit 77)
# Everything started here is stopped by an EXIT trap, whatever happens.
#
# The harness (test/run.sh) exports CAMPERSO_ROOT, CAMPERSO_PGBIN (the
# private install's bin dir) and CAMPERSO_TEST_WORK (a scratch dir). Run by
# hand, the defaults below build the same from the checkout.

set -uo pipefail

CAMPERSO_ROOT=${CAMPERSO_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
CAMPERSO_PGBIN=${CAMPERSO_PGBIN:-$CAMPERSO_ROOT/.tmp_install/usr/lib/postgresql/15/bin}
CAMPERSO_KAFKA=${CAMPERSO_KAFKA:-$CAMPERSO_ROOT/tools/camperso-kafka}
CAMPERSO_QUICK=${CAMPERSO_QUICK:-}
if [ -z "${CAMPERSO_TEST_WORK:-}" ]; then
	CAMPERSO_TEST_WORK=$(mktemp -d /tmp/camperso-work.XXXXXX)
	chmod 755 "$CAMPERSO_TEST_WORK"
	_LIB_OWNS_WORK=1
fi
export CAMPERSO_ROOT CAMPERSO_PGBIN CAMPERSO_KAFKA CAMPERSO_TEST_WORK CAMPERSO_QUICK
export PGHOST=127.0.0.1 PGUSER=postgres
export PATH="$CAMPERSO_PGBIN:$PATH"

_LIB_CLUSTERS=()
_LIB_KAFKAS=()

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

skip() {
	echo "SKIP: $*" >&2
	exit 77
}

note() {
	echo "# $*"
}

assert_eq() {
	if [ "$1" != "$2" ]; then
		fail "$3: expected [$1], got [$2]"
	fi
	echo "ok - $3"
}

# wait_for SECONDS DESCRIPTION CMD... : runs CMD every 0.2 s until it
# succeeds, failing the test after SECONDS. CMD's arguments are expanded
# once, by the caller: poll a changing value through a function
# (f() { [ "$(q ...)" = x ]; }; wait_for 10 "..." f), not test "$(q ...)".
wait_for() {
	local timeout=$1 desc=$2
	shift 2
	local deadline=$((SECONDS + timeout))
	while ! "$@" >/dev/null 2>&1; do
		if [ $SECONDS -ge $deadline ]; then
			fail "timed out after ${timeout}s waiting for: $desc"
		fi
		sleep 0.2
	done
}

free_port() {
	local port
	for _ in $(seq 1 200); do
		# below Linux's ephemeral range (32768-60999), where the embedded
		# Kafka's brokers and every client's outgoing sockets take ports
		port=$((20000 + RANDOM % 12000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	fail "no free port found"
}

as_postgres() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# An initdb'd template, copied for each cluster: initdb runs once per run.
_template_dir() {
	local tpl=$CAMPERSO_TEST_WORK/template
	if [ ! -f "$tpl/PG_VERSION" ]; then
		mkdir -p "$tpl"
		[ "$(id -u)" -eq 0 ] && chown postgres: "$tpl"
		chmod 700 "$tpl"
		as_postgres "$CAMPERSO_PGBIN/initdb" -D "$tpl" -A trust -U postgres \
			--no-sync -E UTF8 --locale=C >"$CAMPERSO_TEST_WORK/initdb.log" 2>&1 ||
			fail "initdb failed: $(cat "$CAMPERSO_TEST_WORK/initdb.log")"
	fi
	echo "$tpl"
}

cluster_dir() { echo "$CAMPERSO_TEST_WORK/cluster-$1"; }
cluster_port() { cat "$(cluster_dir "$1")/port"; }
cluster_log() { echo "$(cluster_dir "$1")/server.log"; }

cluster_create() {
	local name=$1 conf=${2:-$CAMPERSO_ROOT/test/camperso.conf}
	local dir
	dir=$(cluster_dir "$name")
	rm -rf "$dir"
	mkdir -p "$dir"
	cp -a "$(_template_dir)" "$dir/data"
	free_port >"$dir/port"
	{
		echo "port = $(cat "$dir/port")"
		echo "listen_addresses = '127.0.0.1'"
		echo "unix_socket_directories = '$dir/data'"
		echo "fsync = off"
		echo "logging_collector = off"
		echo "# test configuration from $conf"
		cat "$conf"
	} >>"$dir/data/postgresql.conf"
	[ "$(id -u)" -eq 0 ] && chown -R postgres: "$dir"
	_LIB_CLUSTERS+=("$name")
}

# A port found free can be taken by another test's server (or an ephemeral
# client port) before the postmaster binds it: then a new port is chosen
# and the start tried again, up to 5 times.
cluster_start() {
	local name=$1 dir tries logsize
	dir=$(cluster_dir "$name")
	for tries in 1 2 3 4 5; do
		logsize=$(stat -c %s "$dir/server.log" 2>/dev/null || echo 0)
		as_postgres "$CAMPERSO_PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
			-w -t 60 start >/dev/null && return 0
		tail -c +$((logsize + 1)) "$dir/server.log" | grep -q 'could not bind .*Address already in use' || break
		free_port >"$dir/port"
		echo "port = $(cat "$dir/port")" >>"$dir/data/postgresql.conf"
		note "cluster $name: port taken, trying port $(cat "$dir/port")"
	done
	fail "cluster $name did not start: $(tail -20 "$dir/server.log")"
}

cluster_stop() {
	local name=$1 mode=${2:-fast} dir
	dir=$(cluster_dir "$name")
	as_postgres "$CAMPERSO_PGBIN/pg_ctl" -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null 2>&1
}

cluster_restart() {
	cluster_stop "$1" "${2:-fast}"
	cluster_start "$1"
}

# cluster_psql NAME [psql args...] — quiet, unaligned, stops on error.
cluster_psql() {
	local name=$1
	shift
	psql -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(cluster_port "$name")" -U postgres "$@"
}

# kafka_start NAME [args for camperso-kafka...]
kafka_start() {
	local name=$1
	shift
	local dir=$CAMPERSO_TEST_WORK/kafka-$name
	rm -rf "$dir"
	mkdir -p "$dir"
	mkfifo "$dir/ctl"
	"$CAMPERSO_KAFKA" --bootstrap-file "$dir/bootstrap" "$@" <"$dir/ctl" >"$dir/out" 2>"$dir/err" &
	echo $! >"$dir/pid"
	# Hold the control fifo open; the tool exits when it closes.
	exec {_kfd}>"$dir/ctl"
	echo "$_kfd" >"$dir/fd"
	_LIB_KAFKAS+=("$name")
	wait_for 20 "embedded kafka $name to start" test -s "$dir/bootstrap"
}

kafka_bootstrap() { cat "$CAMPERSO_TEST_WORK/kafka-$1/bootstrap"; }

_kafka_answered() { [ "$(wc -l <"$1")" -gt "$2" ]; }

# kafka_ctl NAME COMMAND... — sends a control line and waits for its answer.
kafka_ctl() {
	local name=$1
	shift
	local dir=$CAMPERSO_TEST_WORK/kafka-$name
	local fd before
	fd=$(cat "$dir/fd")
	before=$(wc -l <"$dir/out")
	echo "$*" >&"$fd"
	# the line count is read on every poll (a $(...) argument would be
	# read once, before the answer, and the wait would never end)
	wait_for 10 "kafka control answer to '$*'" _kafka_answered "$dir/out" "$before"
	local answer
	answer=$(tail -1 "$dir/out")
	[ "$answer" = "OK" ] || fail "kafka control '$*' answered: $answer"
}

kafka_stop() {
	local name=$1
	local dir=$CAMPERSO_TEST_WORK/kafka-$name
	[ -f "$dir/pid" ] || return 0
	local pid
	pid=$(cat "$dir/pid")
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	rm -f "$dir/pid"
}

# kafka_count NAME TOPIC — messages currently held, summed over partitions
# (high watermark minus low watermark, read by kcat's metadata-free -Q is not
# available, so consume to the end and count).
kafka_count() {
	kcat -b "$(kafka_bootstrap "$1")" -C -t "$2" -e -q -f 'x\n' 2>/dev/null | wc -l
}

# kafka_produce NAME TOPIC [kcat args] — lines of stdin as messages.
kafka_produce() {
	local name=$1 topic=$2
	shift 2
	kcat -b "$(kafka_bootstrap "$name")" -P -t "$topic" "$@"
}

_lib_cleanup() {
	local rc=$?
	local n
	for n in "${_LIB_KAFKAS[@]}"; do kafka_stop "$n"; done
	for n in "${_LIB_CLUSTERS[@]}"; do
		if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ -f "$(cluster_log "$n")" ]; then
			echo "--- last lines of the server log of cluster $n:" >&2
			tail -30 "$(cluster_log "$n")" >&2
		fi
		cluster_stop "$n" immediate
	done
	if [ -n "${_LIB_OWNS_WORK:-}" ]; then
		rm -rf "$CAMPERSO_TEST_WORK"
	fi
	exit $rc
}
trap _lib_cleanup EXIT
