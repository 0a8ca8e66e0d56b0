#!/usr/bin/env bash
# tools/demo.sh — `make demo`: the whole CAMPERSO pipeline, end to end.
#
# Installs what is missing, builds camperso into a private PG15 tree, starts
# a throwaway PostgreSQL 15 (preloaded) and the embedded Kafka on 127.0.0.1,
# creates the clickstream model and the `clicks` and `users` sources, streams
# a synthetic clickstream (tools/camperso-gen, deterministic by seed) through
# the real Kafka protocol at a steady rate with a progress line, then prints
# a report read back through SQL. Both servers keep running for exploration;
# `make demo-stop` (tools/demo.sh stop) ends them.
#
# Options (environment):
#   DEMO_EVENTS   events to stream (default 500000)
#   DEMO_RATE     events per second (default 8000)
#   DEMO_USERS    user profile updates on the users topic (default 20000)
#   DEMO_SEED     generator seed (default 42)
#   DEMO_BROKERS  host:port,... of a real Kafka instead of the embedded one
#                 (topics clicks and users must exist there)
#   DEMO_DIR      where the servers keep their files (default /tmp/camperso-demo)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO_DIR=${DEMO_DIR:-/tmp/camperso-demo}
DEMO_EVENTS=${DEMO_EVENTS:-500000}
DEMO_RATE=${DEMO_RATE:-8000}
DEMO_USERS=${DEMO_USERS:-20000}
DEMO_SEED=${DEMO_SEED:-42}
PGBIN=$ROOT/.tmp_install/usr/lib/postgresql/15/bin

demo_stop() {
	if [ -f "$DEMO_DIR/kafka.pid" ]; then
		kill -TERM "$(cat "$DEMO_DIR/kafka.pid")" 2>/dev/null || true
	fi
	if [ -f "$DEMO_DIR/cluster-demo/data/postmaster.pid" ] && [ -x "$PGBIN/pg_ctl" ]; then
		runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DEMO_DIR/cluster-demo/data" \
			-m fast -w stop >/dev/null 2>&1 || true
	fi
	rm -rf "$DEMO_DIR"
}

if [ "${1:-}" = "stop" ]; then
	demo_stop
	echo "demo stopped"
	exit 0
fi

T0=$SECONDS
echo "== installing packages and building camperso"
bash "$ROOT/tools/install-deps.sh" | sed 's/^/   /'
bash "$ROOT/tools/private-install.sh" | sed 's/^/   /'
make -s -C "$ROOT" tools/camperso-gen >/dev/null
demo_stop
mkdir -p "$DEMO_DIR"
chmod 755 "$DEMO_DIR"

export CAMPERSO_TEST_WORK=$DEMO_DIR
# shellcheck source=../test/lib.sh
source "$ROOT/test/lib.sh"
set -e

echo "== starting PostgreSQL 15 and Kafka on 127.0.0.1"
cluster_create demo
cluster_start demo
PORT=$(cluster_port demo)
sql() { cluster_psql demo -d postgres "$@"; }

if [ -n "${DEMO_BROKERS:-}" ]; then
	BROKERS=$DEMO_BROKERS
	KAFKA_KIND="Kafka at $BROKERS"
else
	# Detached (--no-stdin) so it outlives this script until demo-stop.
	"$CAMPERSO_KAFKA" --brokers 1 --topic clicks:12 --topic users:4 \
		--bootstrap-file "$DEMO_DIR/bootstrap" --no-stdin \
		>"$DEMO_DIR/kafka.out" 2>&1 </dev/null &
	echo $! >"$DEMO_DIR/kafka.pid"
	wait_for 20 "embedded kafka" test -s "$DEMO_DIR/bootstrap"
	BROKERS=$(cat "$DEMO_DIR/bootstrap")
	KAFKA_KIND="embedded Kafka (librdkafka mock cluster) at $BROKERS"
fi

echo "== creating the clickstream model and the clicks and users sources"
sql -v brokers="$BROKERS" <<'SQL'
CREATE EXTENSION camperso;
SELECT camperso.create_clickstream_model('clickstream');
SELECT camperso.create_source('clicks', :'brokers', 'clicks', 'clickstream.events',
	ruleset => 'clickstream',
	options => '{"group_id": "camperso-demo", "start": "earliest", "batch_size": 5000, "batch_ms": 100,
	             "pii": {"user_id": "pseudonymize", "ip": "truncate"}}');
SELECT camperso.create_source('users', :'brokers', 'users', 'clickstream.user_updates',
	options => '{"group_id": "camperso-demo", "start": "earliest", "pii": {"user_id": "pseudonymize", "email": "pseudonymize"}}');
SELECT camperso.start_source('clicks');
SELECT camperso.start_source('users');
SQL

# Event times: the generator simulates sessions, whose simulated time runs
# faster than the wall clock. A dry run (about a second) measures the span of
# the stream; it starts that long ago, so it ends near now, as a live feed.
SESSIONS=2000
LAST=$("$ROOT/tools/camperso-gen" --events "$DEMO_EVENTS" --seed "$DEMO_SEED" --users 20000 \
	--sessions $SESSIONS --start-time 0 --invalid-rate 0 | tail -1 | grep -o '"ts":"[^"]*"' | cut -d'"' -f4)
SPAN=$(date -u -d "$LAST" +%s)
START=$(($(date +%s) - SPAN - 300))

echo "== streaming $DEMO_EVENTS events at $DEMO_RATE/s and $DEMO_USERS profile updates through Kafka"
"$ROOT/tools/camperso-gen" --users-topic --events "$DEMO_USERS" --seed "$DEMO_SEED" --users 20000 \
	--start-time $(($(date +%s) - 15 * 86400)) --late-rate 0.02 --key |
	kcat -b "$BROKERS" -P -t users -z lz4 -K '\t'

PRODUCED=$DEMO_DIR/produced
echo 0 >"$PRODUCED"
(
	"$ROOT/tools/camperso-gen" --events "$DEMO_EVENTS" --seed "$DEMO_SEED" --users 20000 \
		--sessions $SESSIONS --start-time "$START" --rate "$DEMO_RATE" \
		--invalid-rate 0.01 --duplicate-rate 0.005 --late-rate 0.01 --key |
		awk -v f="$PRODUCED" '{ print } NR % 2000 == 0 { fflush(); print NR > f; close(f) } END { print NR > f; close(f) }' |
		kcat -b "$BROKERS" -P -t clicks -z lz4 -K '\t'
) &
PRODUCER=$!

progress() {
	sql -c "SELECT coalesce(sum(messages - quarantined - deduplicated), 0) || ' ' ||
	               coalesce(sum(quarantined), 0) || ' ' || coalesce(sum(deduplicated), 0) || ' ' ||
	               coalesce(sum(lag), 0)
	          FROM camperso.stat_sources WHERE source = 'clicks' AND partition IS NOT NULL"
}

last_landed=0
last_t=$SECONDS
done_streaming=0
deadline=$((SECONDS + DEMO_EVENTS / DEMO_RATE + 120))
while :; do
	sleep 2
	kill -0 "$PRODUCER" 2>/dev/null || done_streaming=1
	read -r landed quarantined dedup lag <<<"$(progress)"
	produced=$(cat "$PRODUCED")
	now=$SECONDS
	rate=$(((landed + quarantined + dedup - last_landed) / (now > last_t ? now - last_t : 1)))
	last_landed=$((landed + quarantined + dedup))
	last_t=$now
	printf '   produced %7d | landed %7d | quarantined %5d | deduplicated %5d | lag %6d | %6d events/s\n' \
		"$produced" "$landed" "$quarantined" "$dedup" "$lag" "$rate"
	if [ $done_streaming -eq 1 ] && [ $((landed + quarantined + dedup)) -ge "$produced" ]; then
		break
	fi
	if [ $SECONDS -ge $deadline ]; then
		echo "   (stopped waiting: not everything was consumed in time; see camperso.stat_sources)"
		break
	fi
done
wait "$PRODUCER" || fail "the producer failed"

echo "== loading the model (the launcher also does this every few seconds)"
sql -c "SELECT camperso.load_model('clickstream')" >/dev/null

# Everything keeps running after this script: disarm lib.sh's cleanup.
trap - EXIT

report() {
	echo
	echo "---- $1"
	shift
	psql -X -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -P pager=off -P footer=off "$@"
}

echo
echo "camperso demo report ($(( SECONDS - T0 ))s since start)"
report "Events: produced, landed, quarantined by reason, deduplicated" -c "
	SELECT $(cat "$PRODUCED") AS produced,
	       (SELECT count(*) FROM clickstream.events) AS landed,
	       (SELECT count(*) FROM camperso.quarantine WHERE source = 'clicks') AS quarantined,
	       (SELECT sum(deduplicated) FROM camperso.stat_sources WHERE source = 'clicks' AND partition IS NOT NULL) AS deduplicated" \
	-c "SELECT rule, field, count(*) AS messages, min(reason) AS example_reason
	      FROM camperso.quarantine WHERE source = 'clicks' GROUP BY 1, 2 ORDER BY 3 DESC"
report "SCD2 history of the user with the most profile versions (dim_user)" -c "
	SELECT dim_user_sk, user_id, country, plan, left(email, 16) || '…' AS email_pseudonym, valid_from, valid_to, is_current
	  FROM clickstream.dim_user
	 WHERE user_id = (SELECT user_id FROM clickstream.dim_user WHERE dim_user_sk > 0
	                  GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1)
	 ORDER BY valid_from"
report "Top pages over the stream (live hourly rollup, unique users from HyperLogLog sketches)" -c "
	SELECT page_url, sum(events) AS events, sum(page_views) AS page_views, max(unique_users) AS peak_hourly_users
	  FROM clickstream.page_traffic_hour GROUP BY 1 ORDER BY 2 DESC LIMIT 5"
report "Traffic, sessions and bounce rate per app (rollups)" -c "
	SELECT app_id, sum(events) AS events, sum(sessions) AS sessions,
	       round(100.0 * sum(bounces) / nullif(sum(sessions), 0), 1) AS bounce_pct
	  FROM clickstream.app_traffic_hour GROUP BY 1 ORDER BY 1"
report "Sessions (fact_sessions: 30 minutes of inactivity ends a session)" -c "
	SELECT count(*) AS sessions, round(avg(duration_seconds)) AS avg_seconds,
	       round(avg(page_count), 1) AS avg_pages, round(100.0 * avg(is_bounce::int), 1) AS bounce_pct
	  FROM clickstream.fact_sessions"
report "Freshness" -c "SELECT * FROM camperso.stat_freshness"
report "Alerts now" -c "SELECT kind, subject, severity, since FROM camperso.alerts ORDER BY since"
report "Lineage: the latest runs" -c "
	SELECT job, status, rows_in, rows_out, round(extract(epoch FROM ended_at - started_at)::numeric, 3) AS seconds
	  FROM camperso.runs ORDER BY started_at DESC LIMIT 6"

sql <<'SQL'
DO $$ BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo_analyst') THEN
		CREATE ROLE demo_analyst LOGIN IN ROLE camperso_analyst;
	END IF;
END $$;
SELECT camperso.grant_app('demo_analyst', 'web-shop');
SQL
report "One click as an analyst sees it (role demo_analyst: pseudonymised ids, ip cut to /24 at ingest, rows of app web-shop only)" \
	-c "SET ROLE demo_analyst" -x -c "SELECT event_id, event_ts, app_id, event_type, user_id, page_url, browser, os, device_class,
	                                          user_country_at_event, user_plan_at_event FROM clickstream.clicks_wide LIMIT 1" \
	-x -c "SELECT string_agg(DISTINCT app_id, ', ') AS apps_visible, count(*) AS clicks_visible FROM clickstream.clicks_wide"
denied=$({ psql -X -A -t -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "SET ROLE demo_analyst" \
	-c "SELECT count(*) FROM camperso.quarantine" 2>&1 || true; } | grep -o 'permission denied.*' || echo "ALLOWED (unexpected)")
echo "The same analyst reading camperso.quarantine: $denied"


cat <<EOF

PostgreSQL 15   127.0.0.1:$PORT (camperso $(sql -c "SELECT camperso.version()"))
Kafka           $KAFKA_KIND

Explore:  psql -h 127.0.0.1 -p $PORT -U postgres postgres
Stop:     make demo-stop
EOF
