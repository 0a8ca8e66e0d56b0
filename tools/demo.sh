#!/usr/bin/env bash
# tools/demo.sh — `make demo`: the whole CAMPERSO pipeline, end to end.
#
# Installs what is missing, builds camperso into a private PG15 tree, starts
# a throwaway PostgreSQL 15 (preloaded) and the embedded Kafka on 127.0.0.1,
# creates the clickstream model and the `clicks` and `users` sources, streams
# a synthetic clickstream (tools/camperso-gen, deterministic by seed) through
# the real Kafka protocol at a steady rate with a progress line, then prints
# a report read back through SQL. Both servers keep running for exploration;
# `make demo-stop` (tools/demo.sh stop) ends them. A second `make demo`
# stops the previous one first.
#
# Options (environment):
#   DEMO_EVENTS   events to stream (default 500000)
#   DEMO_RATE     events per second (default 15000)
#   DEMO_USERS    user profile updates on the users topic (default 20000)
#   DEMO_SEED     generator seed (default 42)
#   DEMO_BROKERS  host:port,... of a real Kafka instead of the embedded one;
#                 topics clicks and users must exist there; the sources
#                 start at their current end, so older messages are skipped
#   DEMO_DIR      where the servers keep their files (default /tmp/camperso-demo)
#   DEMO_BUILD    0: skip the package check and the build, use the private
#                 install already there (the test suite runs it so)
#
# The wall clock goes to the build (~10 s from clean on 2 cores), producing
# (DEMO_EVENTS / DEMO_RATE) and the model load, which runs in the launcher
# every few seconds while the events land and once more at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEMO_DIR=${DEMO_DIR:-/tmp/camperso-demo}
DEMO_EVENTS=${DEMO_EVENTS:-500000}
DEMO_RATE=${DEMO_RATE:-15000}
DEMO_USERS=${DEMO_USERS:-20000}
DEMO_SEED=${DEMO_SEED:-42}
DEMO_BUILD=${DEMO_BUILD:-1}
PGBIN=${CAMPERSO_PGBIN:-$ROOT/.tmp_install/usr/lib/postgresql/15/bin}
MARKER=$DEMO_DIR/.camperso-demo
# Producer batching: a message set per partition every 50 ms instead of
# every few messages. The embedded Kafka scans its message sets on each
# fetch, so tiny batches cost it (and the machine) far more CPU.
KCAT_PRODUCE=(-P -z lz4 -K '\t' -X linger.ms=50)

for v in DEMO_EVENTS DEMO_RATE DEMO_USERS DEMO_SEED; do
	case ${!v} in
	'' | *[!0-9]*) echo "demo: $v must be a whole number, not '${!v}'" >&2; exit 2 ;;
	esac
done
if [ "$DEMO_EVENTS" -lt 1 ] || [ "$DEMO_RATE" -lt 1 ]; then
	echo "demo: DEMO_EVENTS and DEMO_RATE must be at least 1" >&2
	exit 2
fi

# stop_kafka: ends the demo's embedded Kafka (its pid, if still that program).
stop_kafka() {
	local pid
	[ -f "$DEMO_DIR/kafka.pid" ] || return 0
	pid=$(cat "$DEMO_DIR/kafka.pid")
	if grep -qa camperso-kafka "/proc/$pid/cmdline" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
	fi
}

# demo_stop: ends the servers of a demo in DEMO_DIR and removes it. Only a
# directory this script made (it holds the marker file) is ever removed.
demo_stop() {
	[ -e "$DEMO_DIR" ] || return 0
	if [ ! -f "$MARKER" ]; then
		echo "demo: $DEMO_DIR exists but is not a demo directory; not touching it (set DEMO_DIR)" >&2
		exit 1
	fi
	local pid
	stop_kafka
	if [ -f "$DEMO_DIR/cluster-demo/data/postmaster.pid" ]; then
		if [ -x "$PGBIN/pg_ctl" ]; then
			runuser -u postgres -- "$PGBIN/pg_ctl" -D "$DEMO_DIR/cluster-demo/data" \
				-m fast -w -t 60 stop >/dev/null 2>&1 || true
		else
			pid=$(head -1 "$DEMO_DIR/cluster-demo/data/postmaster.pid")
			kill -INT "$pid" 2>/dev/null || true
		fi
	fi
	rm -rf "$DEMO_DIR"
}

if [ "${1:-}" = "stop" ]; then
	if [ -f "$MARKER" ]; then
		demo_stop
		echo "demo stopped"
	else
		demo_stop
		echo "no demo running in $DEMO_DIR"
	fi
	exit 0
fi

T0=${EPOCHREALTIME/./}
elapsed() { echo $(((${EPOCHREALTIME/./} - T0) / 1000000)); }
phase_t=$T0
# tenths US: microseconds as seconds with one decimal
tenths() { echo "$(($1 / 1000000)).$(($1 / 100000 % 10))"; }
phase() {
	local now=${EPOCHREALTIME/./}
	echo "   ($(tenths $((now - phase_t))) s)"
	phase_t=$now
}

# Before the build: the build replaces the private install a running demo
# was started from.
if [ -f "$MARKER" ]; then
	echo "== stopping the previous demo in $DEMO_DIR"
	demo_stop
fi

if [ "$DEMO_BUILD" != 0 ]; then
	echo "== installing packages and building camperso"
	bash "$ROOT/tools/install-deps.sh" | sed 's/^/   /'
	bash "$ROOT/tools/private-install.sh" | sed 's/^/   /'
	phase
fi
[ -x "$PGBIN/postgres" ] && [ -x "$ROOT/tools/camperso-gen" ] && [ -x "$ROOT/tools/camperso-kafka" ] ||
	{ echo "demo: no private install or tools; run without DEMO_BUILD=0" >&2; exit 1; }
demo_stop
mkdir -p "$DEMO_DIR"
chmod 755 "$DEMO_DIR"
touch "$MARKER"

export CAMPERSO_TEST_WORK=$DEMO_DIR CAMPERSO_PGBIN=$PGBIN
# shellcheck source=../test/lib.sh
source "$ROOT/test/lib.sh"
set -e
# On failure lib.sh stops the cluster; the detached Kafka goes with it. The
# directory stays, with the logs, until the next demo or demo-stop.
_demo_failed() {
	local rc=$?
	stop_kafka
	(exit $rc)
	_lib_cleanup
}
trap _demo_failed EXIT

echo "== starting PostgreSQL 15 and Kafka on 127.0.0.1"
# The test configuration (preload, launcher naptime) plus room for the
# model load's sorts: at the default 4 MB a load of 100,000 events sorts on
# disk and takes ~30% longer.
{ cat "$ROOT/test/camperso.conf"; echo "work_mem = 64MB"; } >"$DEMO_DIR/demo.conf"
cluster_create demo "$DEMO_DIR/demo.conf"
cluster_start demo
PORT=$(cluster_port demo)
sql() { cluster_psql demo -d postgres "$@"; }

if [ -n "${DEMO_BROKERS:-}" ]; then
	BROKERS=$DEMO_BROKERS
	KAFKA_KIND="Kafka at $BROKERS"
	START_AT=latest
else
	# Detached (--no-stdin) so it outlives this script until demo-stop. The
	# mock keeps ~5 MiB per partition and evicts older messages: 32
	# partitions hold all 500,000 default events even if none were read,
	# so a stalled consumer is late, never short of messages.
	"$CAMPERSO_KAFKA" --brokers 1 --topic clicks:32 --topic users:4 \
		--bootstrap-file "$DEMO_DIR/bootstrap" --no-stdin \
		>"$DEMO_DIR/kafka.out" 2>&1 </dev/null &
	echo $! >"$DEMO_DIR/kafka.pid"
	wait_for 20 "embedded kafka" test -s "$DEMO_DIR/bootstrap"
	BROKERS=$(cat "$DEMO_DIR/bootstrap")
	KAFKA_KIND="embedded Kafka (librdkafka mock cluster) at $BROKERS"
	START_AT=earliest
fi
phase

echo "== creating the clickstream model and the clicks and users sources"
# A real broker's topics may hold older messages: the sources start at the
# end the brokers report now, so the counts below are this run's.
# Each source its own consumer group: members of one group subscribed to
# different topics rebalance each other whenever one joins or leaves.
sql -v brokers="$BROKERS" -v start_at="$START_AT" -v group="camperso-demo-$(date +%s)" >/dev/null <<'SQL'
CREATE EXTENSION camperso;
SELECT camperso.create_clickstream_model('clickstream');
SELECT camperso.create_source('clicks', :'brokers', 'clicks', 'clickstream.events',
	ruleset => 'clickstream',
	options => jsonb_build_object('group_id', :'group' || '-clicks', 'start', 'earliest', 'batch_size', 5000, 'batch_ms', 100,
	                              'pii', '{"user_id": "pseudonymize", "ip": "truncate"}'::jsonb));
SELECT camperso.create_source('users', :'brokers', 'users', 'clickstream.user_updates',
	options => jsonb_build_object('group_id', :'group' || '-users', 'start', 'earliest',
	                              'pii', '{"user_id": "pseudonymize", "email": "pseudonymize"}'::jsonb));
SELECT camperso.reset_offsets('clicks', NULL, 'latest'), camperso.reset_offsets('users', NULL, 'latest')
 WHERE :'start_at' = 'latest';
-- stat_freshness watches the facts too, not only the sources.
SELECT camperso.set_freshness_sla('clickstream.fact_clicks', '15 minutes', 'relation', 'event_ts');
SELECT camperso.set_freshness_sla('clickstream.fact_sessions', '15 minutes', 'relation', 'session_end');
SELECT camperso.start_source('clicks');
SELECT camperso.start_source('users');
SQL
phase

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
	kcat -b "$BROKERS" -t users "${KCAT_PRODUCE[@]}"

# "produced" counts what the generator handed to the Kafka producer; kcat
# exits non-zero when a message could not be delivered.
PRODUCED=$DEMO_DIR/produced
echo 0 >"$PRODUCED"
(
	"$ROOT/tools/camperso-gen" --events "$DEMO_EVENTS" --seed "$DEMO_SEED" --users 20000 \
		--sessions $SESSIONS --start-time "$START" --rate "$DEMO_RATE" \
		--invalid-rate 0.01 --duplicate-rate 0.005 --late-rate 0.01 --key |
		awk -v f="$PRODUCED" '{ print } NR % 1000 == 0 { fflush(); print NR > f; close(f) } END { print NR > f; close(f) }' |
		kcat -b "$BROKERS" -t clicks "${KCAT_PRODUCE[@]}"
) &
PRODUCER=$!

# One progress line every 2 s. landed/quarantined/deduplicated/lag are
# the workers' counters (camperso.stat_sources); events/s is what the
# workers consumed (landed + quarantined + deduplicated) per second over the
# last interval; "in facts" is what the model load has put into
# fact_clicks so far (rows_out of its runs' fact_clicks output).
progress() {
	sql -F ' ' -c "
	SELECT coalesce(sum(messages - quarantined - deduplicated), 0), coalesce(sum(quarantined), 0),
	       coalesce(sum(deduplicated), 0), coalesce(sum(lag), 0),
	       (SELECT coalesce(sum((r.details #>> '{output_rows,clickstream.fact_clicks}')::bigint), 0)
	          FROM camperso.runs r WHERE r.job = 'load_model:clickstream' AND r.status = 'success')
	  FROM camperso.stat_sources WHERE source = 'clicks' AND partition IS NOT NULL"
}

STREAM_T0=${EPOCHREALTIME/./}
produced=0
last_consumed=0
last_t=$STREAM_T0
next_t=$STREAM_T0
done_streaming=0
deadline=$((SECONDS + DEMO_EVENTS / DEMO_RATE + 120))
while :; do
	next_t=$((next_t + 2000000))
	now=${EPOCHREALTIME/./}
	[ "$now" -lt "$next_t" ] && sleep "$(tenths $((next_t - now)))"
	kill -0 "$PRODUCER" 2>/dev/null || done_streaming=1
	# awk rewrites the file in place: a read may catch it empty
	p=$(cat "$PRODUCED")
	[ -n "$p" ] && [ "$p" -gt "$produced" ] && produced=$p
	read -r landed quarantined dedup lag infacts <<<"$(progress)"
	now=${EPOCHREALTIME/./}
	consumed=$((landed + quarantined + dedup))
	rate=$(((consumed - last_consumed) * 1000000 / (now - last_t)))
	last_consumed=$consumed
	last_t=$now
	printf '   %4ds produced %7d | landed %7d | quarantined %5d | deduplicated %5d | lag %6d | %6d events/s | in facts %7d\n' \
		$(((next_t - STREAM_T0) / 1000000)) "$produced" "$landed" "$quarantined" "$dedup" "$lag" "$rate" "$infacts"
	if [ $done_streaming -eq 1 ] && [ "$consumed" -ge "$produced" ]; then
		break
	fi
	if [ $SECONDS -ge $deadline ]; then
		echo "   (stopped waiting: not everything was consumed in time; see camperso.stat_sources)"
		break
	fi
done
wait "$PRODUCER" || fail "the producer failed"
STREAM_US=$((${EPOCHREALTIME/./} - STREAM_T0))
echo "   consumed $consumed events in $(tenths $STREAM_US) s: $((consumed * 1000000 / STREAM_US)) events/s overall"
phase_t=${EPOCHREALTIME/./}

# The launcher's job loads every 5 s (back to back while it is behind);
# the demo waits for it to have read every landed event rather than
# calling load_model itself, which would queue behind the running load and
# make the job's next run time out on the model's lock. Each load commits
# whole, so "in facts" moves in steps.
echo "== waiting for the model load to catch up (the launcher loads every 5 s while events land)"
model_read() {
	sql -c "SELECT coalesce(sum((details ->> 'events_read')::bigint), 0) FROM camperso.runs
	         WHERE job = 'load_model:clickstream' AND status = 'success'"
}
load_deadline=$((SECONDS + 300))
n=0
while [ "$(model_read)" -lt "$landed" ]; do
	if [ $SECONDS -ge $load_deadline ]; then
		echo "   (stopped waiting for the model load; see camperso.runs)"
		break
	fi
	sleep 1
	n=$((n + 1))
	if [ $((n % 5)) -eq 0 ]; then
		read -r _ _ _ _ infacts <<<"$(progress)"
		echo "   $(tenths $((${EPOCHREALTIME/./} - phase_t))) s: in facts $infacts of $landed landed"
	fi
done
phase

# Everything keeps running after this script: disarm lib.sh's cleanup.
trap - EXIT

report() {
	echo
	echo "---- $1"
	shift
	psql -X -q -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -P pager=off -P footer=off "$@"
}

echo
echo "camperso demo report ($(elapsed) s since start)"
report "Events: produced, landed, quarantined, deduplicated (capture); loaded into the facts (model)" \
	-c '\x on' -c "
	WITH c AS (
		SELECT $(cat "$PRODUCED")::bigint AS produced,
		       (SELECT count(*) FROM clickstream.events) AS landed,
		       (SELECT count(*) FROM camperso.quarantine WHERE source = 'clicks') AS quarantined,
		       (SELECT sum(deduplicated) FROM camperso.stat_sources
		         WHERE source = 'clicks' AND partition IS NOT NULL) AS deduplicated,
		       (SELECT count(*) FROM clickstream.fact_clicks) AS in_facts,
		       (SELECT count(*) FROM camperso.quarantine
		         WHERE source IS NULL AND target = 'clickstream.events') AS quarantined_by_load)
	SELECT format('produced %s = landed %s + quarantined %s + deduplicated %s: %s',
	              produced, landed, quarantined, deduplicated,
	              CASE WHEN produced = landed + quarantined + deduplicated THEN 'holds' ELSE 'DOES NOT HOLD' END) AS capture,
	       format('landed %s = in fact_clicks %s + quarantined by the load %s: %s',
	              landed, in_facts, quarantined_by_load,
	              CASE WHEN landed = in_facts + quarantined_by_load THEN 'holds' ELSE 'DOES NOT HOLD' END) AS model
	  FROM c" -c '\x off' \
	-c "SELECT coalesce(source, 'load of ' || target) AS stage, rule, field, count(*) AS messages, min(reason) AS example_reason
	      FROM camperso.quarantine WHERE source = 'clicks' OR target = 'clickstream.events'
	     GROUP BY 1, 2, 3 ORDER BY 1, 4 DESC"
report "SCD2 history of the user with the most profile versions (dim_user)" -c "
	SELECT dim_user_sk, left(user_id, 16) || '…' AS user_id_pseudonym, country, plan,
	       left(email, 16) || '…' AS email_pseudonym, valid_from, valid_to, is_current
	  FROM clickstream.dim_user
	 WHERE user_id = (SELECT user_id FROM clickstream.dim_user WHERE dim_user_sk > 0
	                  GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1)
	 ORDER BY valid_from"
report "Top pages (live hourly rollup; unique users from HyperLogLog sketches)" -c "
	SELECT page_url, sum(events) AS events, sum(page_views) AS page_views, max(unique_users) AS peak_hourly_users
	  FROM clickstream.page_traffic_hour GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5"
report "Traffic, sessions and bounce rate per app (hourly rollup)" -c "
	SELECT app_id, sum(events) AS events, sum(sessions) AS sessions,
	       round(100.0 * sum(bounces) / nullif(sum(sessions), 0), 1) AS bounce_pct
	  FROM clickstream.app_traffic_hour GROUP BY 1 ORDER BY 1"
report "Sessions (fact_sessions: 30 minutes of inactivity ends a session)" -c "
	SELECT count(*) AS sessions, round(avg(duration_seconds)) AS avg_seconds,
	       round(avg(page_count), 1) AS avg_pages, round(100.0 * avg(is_bounce::int), 1) AS bounce_pct
	  FROM clickstream.fact_sessions"
report "Freshness (camperso.stat_freshness)" -c "
	SELECT kind, name, newest_event_at, last_load_at, lag_seconds, sla, breached
	  FROM camperso.stat_freshness ORDER BY kind, name"
report "Alerts now (camperso.alerts; schema_drift: each new message shape, here the invalid ones)" -c "
	SELECT kind, subject, severity, count(*) AS alerts, min(since) AS since
	  FROM camperso.alerts GROUP BY 1, 2, 3 ORDER BY 1, 2"
report "Lineage (camperso.runs, as OpenLineage events through camperso.openlineage_events())" -c "
	SELECT job, count(*) AS runs, count(*) FILTER (WHERE status = 'success') AS succeeded,
	       sum(rows_in) AS rows_in, sum(rows_out) AS rows_out,
	       round(avg(extract(epoch FROM ended_at - started_at))::numeric, 2) AS avg_seconds
	  FROM camperso.runs GROUP BY 1 ORDER BY 1" -c "
	SELECT ev ->> 'eventType' AS event_type, count(*) AS openlineage_events
	  FROM camperso.openlineage_events() ev GROUP BY 1 ORDER BY 1"

sql >/dev/null <<'SQL'
DO $$ BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'demo_analyst') THEN
		CREATE ROLE demo_analyst LOGIN IN ROLE camperso_analyst;
	END IF;
END $$;
SELECT camperso.grant_app('demo_analyst', 'web-shop');
SQL
report "One click as an analyst sees it (role demo_analyst, granted app web-shop: pseudonymised ids, ip cut to /24 at ingest)" \
	-c "SET ROLE demo_analyst" -c '\x on' -c "
	SELECT event_id, event_ts, app_id, event_type, user_id, page_url, browser, os, device_class,
	       user_country_at_event, user_plan_at_event
	  FROM clickstream.clicks_wide ORDER BY event_ts DESC, event_id LIMIT 1" -c "
	SELECT string_agg(DISTINCT app_id, ', ') AS apps_visible, count(*) AS clicks_visible FROM clickstream.clicks_wide"
denied=$({ psql -X -A -t -h 127.0.0.1 -p "$PORT" -U postgres -d postgres -c "SET ROLE demo_analyst" \
	-c "SELECT count(*) FROM camperso.quarantine" 2>&1 || true; } | grep -o 'permission denied.*' || echo "ALLOWED (unexpected)")
echo "The same analyst reading camperso.quarantine: $denied"

cat <<EOF

PostgreSQL 15   127.0.0.1:$PORT (camperso $(sql -c "SELECT camperso.version()"))
Kafka           $KAFKA_KIND
Wall clock      $(elapsed) s

Explore:  psql -h 127.0.0.1 -p $PORT -U postgres postgres
Stop:     make demo-stop
EOF
