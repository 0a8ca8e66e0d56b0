#!/usr/bin/env bash
# Figures and alerts follow a real Kafka feed: counters in camperso.metrics()
# match the table while messages flow and lag falls to 0; when the feed
# stops, the source's freshness breach and volume drop appear (and are
# raised by check_alerts); when it resumes they clear; a slow target makes
# consumer lag cross its threshold and the alert clears once drained.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../capture_lib.sh"

kafka_start k --brokers 1 --topic clicks:2
BS=$(kafka_bootstrap k)
cluster_create f
cluster_start f
q f "CREATE EXTENSION camperso"
# The test ticks the alert check itself (the launcher's job is off).
q f "UPDATE camperso.jobs SET enabled = false WHERE name = 'check_alerts'" >/dev/null
create_target f t

# Short windows so that the test runs in seconds: volume judged over 3 s
# windows against the 12 s before; the source is stale after 5 s.
q f "SELECT camperso.set_observe_setting('volume_window', '3 seconds'),
            camperso.set_observe_setting('volume_history', '12 seconds'),
            camperso.set_observe_setting('volume_fraction', '0.5'),
            camperso.set_observe_setting('volume_min_average', '20'),
            camperso.set_observe_setting('consumer_lag_threshold', '300')" >/dev/null
q f "SELECT camperso.create_source('c1', '$BS', 'clicks', 't', options => '{\"batch_size\": 500, \"batch_ms\": 50, $KAFKA_TEST_OPTS}')" >/dev/null
q f "SELECT camperso.set_freshness_sla('c1', '5 seconds', 'source')"
q f "SELECT camperso.start_source('c1')" >/dev/null

# The feed: a background loop producing 25 messages every 0.2 s (as fast
# as kcat starts on a loaded machine), counting what it produced.
PRODUCED_FILE=$CAMPERSO_TEST_WORK/produced
echo 0 >"$PRODUCED_FILE"
feed_pid=
feed_start() {
	rm -f "$CAMPERSO_TEST_WORK/stop"
	(
		n=$(cat "$PRODUCED_FILE")
		while [ ! -e "$CAMPERSO_TEST_WORK/stop" ]; do
			gen_messages $((n + 1)) $((n + 25)) | kafka_produce k clicks -K '\t' || exit 1
			n=$((n + 25))
			echo $n >"$PRODUCED_FILE"
			sleep 0.2
		done
	) &
	feed_pid=$!
}
# feed_stop: asks the loop to stop between two produces and waits for it,
# so that the produced count is exact.
feed_stop() {
	[ -z "$feed_pid" ] && return 0
	touch "$CAMPERSO_TEST_WORK/stop"
	wait "$feed_pid" 2>/dev/null
	feed_pid=
}
trap '_rc=$?; [ -n "$feed_pid" ] && kill "$feed_pid" 2>/dev/null; (exit $_rc); _lib_cleanup' EXIT

# tick: one step of the periodic job (the alert check), then a short nap.
tick() {
	q f "SELECT camperso.check_alerts()" >/dev/null || fail "check_alerts failed"
	sleep 0.25
}
active() { [ "$(q f "SELECT count(*) FROM camperso.alerts_active WHERE kind = '$1' AND subject = 'c1'")" = 1 ]; }
inactive() { [ "$(q f "SELECT count(*) FROM camperso.alerts_active WHERE kind = '$1' AND subject = 'c1'")" = 0 ]; }
# tick_until SECONDS DESC CMD...: ticks until CMD holds.
tick_until() {
	local limit=$1 desc=$2
	shift 2
	local deadline=$((SECONDS + limit))
	until "$@"; do
		[ $SECONDS -ge $deadline ] && fail "not within ${limit}s: $desc"
		tick
	done
}

# ---- the feed flows for 18 s
feed_start
end=$((SECONDS + 18))
while [ $SECONDS -lt $end ]; do tick; done
assert_eq "f" "$(q f "SELECT breached FROM camperso.stat_freshness WHERE kind = 'source' AND name = 'c1'")" "fresh while flowing"
inactive volume_drop || fail "volume drop while the feed flows"
inactive freshness_breach || fail "freshness breach while the feed flows"
echo "ok - no alerts while the feed flows"
feed_stop
produced=$(cat "$PRODUCED_FILE")
lag_zero() { [ "$(q f "SELECT count(*) FROM camperso.stat_sources WHERE source = 'c1' AND partition IS NOT NULL AND lag = 0")" = 2 ]; }
wait_for 30 "every produced message to land" rows_eq f t $produced
wait_for 10 "lag 0 on both partitions" lag_zero
echo "ok - $produced messages landed, lag fell to 0"

# metric_sum FAMILY [LABEL]: the sum of the family's samples about c1.
metric_sum() {
	q f "SELECT coalesce(sum(substring(line FROM ' (\S+)\$')::numeric), 0)
	       FROM regexp_split_to_table(camperso.metrics(), E'\\n') line WHERE line LIKE '$1{%${2:-source}=\"c1\"%'"
}
assert_eq "$produced" "$(metric_sum camperso_source_messages_total)" "camperso_source_messages_total matches the table"
assert_eq 0 "$(metric_sum camperso_source_lag)" "camperso_source_lag is 0"
assert_eq "$(q f "SELECT max(_offset) + 1 FROM t GROUP BY _partition ORDER BY _partition" | paste -sd+ | bc)" \
	"$(metric_sum camperso_source_committed_offset)" "committed offsets match the offsets landed"
assert_eq 1 "$(metric_sum camperso_source_worker_running)" "the worker is running"

# ---- the feed has stopped
stopped_at=$SECONDS
tick_until 15 "the freshness breach of c1" active freshness_breach
tick_until 15 "the volume drop of c1" active volume_drop
echo "ok - freshness breach and volume drop raised $((SECONDS - stopped_at)) s after the feed stopped"
q f "SELECT kind, details FROM camperso.alerts WHERE subject = 'c1' ORDER BY kind" | sed 's/^/# /'
assert_eq "t" "$(q f "SELECT breached AND lag_seconds > 5 FROM camperso.stat_freshness WHERE kind = 'source' AND name = 'c1'")" \
	"stat_freshness shows the breach"
assert_eq 1 "$(metric_sum camperso_freshness_breached name)" "camperso_freshness_breached is 1"

# ---- the feed resumes: both clear
feed_start
tick_until 20 "the volume drop of c1 to clear" inactive volume_drop
tick_until 20 "the freshness breach of c1 to clear" inactive freshness_breach
feed_stop
echo "ok - alerts cleared once the feed resumed"
assert_eq "2|2" "$(q f "SELECT count(*), count(resolved_at) FROM camperso.alert_history
                         WHERE subject = 'c1' AND kind IN ('volume_drop', 'freshness_breach')")" \
	"both alerts recorded and resolved in the history"

# ---- consumer lag: a slow target falls behind a burst
wait_for 30 "the resumed feed to land" rows_eq f t "$(cat "$PRODUCED_FILE")"
q f "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS \$\$ BEGIN PERFORM pg_sleep(0.003); RETURN NEW; END \$\$"
q f "CREATE TRIGGER slow BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION slow()"
n=$(cat "$PRODUCED_FILE")
gen_messages $((n + 1)) $((n + 3000)) | kafka_produce k clicks -K '\t' || fail "kcat -P failed"
echo $((n + 3000)) >"$PRODUCED_FILE"
tick_until 30 "the consumer lag alert of c1" active consumer_lag
echo "ok - consumer lag over the threshold raised: $(q f "SELECT details ->> 'lag' FROM camperso.alerts WHERE kind = 'consumer_lag' AND subject = 'c1'") behind"
q f "DROP TRIGGER slow ON t"
wait_for 60 "the burst to land" rows_eq f t "$(cat "$PRODUCED_FILE")"
tick_until 20 "the consumer lag alert of c1 to clear" inactive consumer_lag
echo "ok - consumer lag alert cleared once drained"
assert_eq "$(cat "$PRODUCED_FILE")" "$(metric_sum camperso_source_messages_total)" "messages counted match the table at the end"
