#!/usr/bin/env bash
# tools/demo.sh — `make demo`: builds camperso, starts a throwaway PostgreSQL
# 15 with the preload and the embedded Kafka on 127.0.0.1, and leaves both
# running for exploration. `make demo-stop` (tools/demo.sh stop) ends them.
#
# Options (environment): DEMO_DIR (default /tmp/camperso-demo),
# DEMO_BROKERS=host:port to use a real Kafka instead of the embedded one.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO_DIR=${DEMO_DIR:-/tmp/camperso-demo}

demo_stop() {
	if [ -f "$DEMO_DIR/kafka.pid" ]; then
		kill -TERM "$(cat "$DEMO_DIR/kafka.pid")" 2>/dev/null || true
	fi
	if [ -f "$DEMO_DIR/cluster-demo/data/postmaster.pid" ]; then
		runuser -u postgres -- "$ROOT/.tmp_install/usr/lib/postgresql/15/bin/pg_ctl" \
			-D "$DEMO_DIR/cluster-demo/data" -m fast -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$DEMO_DIR"
}

if [ "${1:-}" = "stop" ]; then
	demo_stop
	echo "demo stopped"
	exit 0
fi

bash "$ROOT/tools/install-deps.sh"
bash "$ROOT/tools/private-install.sh"
demo_stop
mkdir -p "$DEMO_DIR"
chmod 755 "$DEMO_DIR"

export CAMPERSO_TEST_WORK=$DEMO_DIR
# shellcheck source=../test/lib.sh
source "$ROOT/test/lib.sh"
set -e

cluster_create demo
cluster_start demo
PORT=$(cluster_port demo)

if [ -n "${DEMO_BROKERS:-}" ]; then
	BROKERS=$DEMO_BROKERS
else
	# Detached: --no-stdin, so it outlives this script until demo-stop.
	"$CAMPERSO_KAFKA" --brokers 1 --topic clicks:12 --topic users:4 \
		--bootstrap-file "$DEMO_DIR/bootstrap" --no-stdin \
		>"$DEMO_DIR/kafka.out" 2>&1 </dev/null &
	echo $! >"$DEMO_DIR/kafka.pid"
	wait_for 20 "embedded kafka" test -s "$DEMO_DIR/bootstrap"
	BROKERS=$(cat "$DEMO_DIR/bootstrap")
fi

cluster_psql demo -d postgres -c "CREATE EXTENSION IF NOT EXISTS camperso"
LAUNCHER=$(cluster_psql demo -d postgres -c "SELECT camperso.launcher_pid()")

# Everything keeps running after this script: disarm lib.sh's cleanup.
trap - EXIT

cat <<REPORT

camperso demo
  PostgreSQL 15   127.0.0.1:$PORT (camperso $(cluster_psql demo -d postgres -c "SELECT camperso.version()"), launcher pid $LAUNCHER)
  Kafka           $BROKERS (topics clicks, users)

Pipeline stages built so far: the launcher and the embedded Kafka.
Capture, validation, the model and the report arrive with the next issues.

Explore:  psql -h 127.0.0.1 -p $PORT -U postgres postgres
Stop:     make demo-stop
REPORT
