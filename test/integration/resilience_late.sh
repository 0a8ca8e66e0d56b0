#!/usr/bin/env bash
# Late and early data, through Kafka into the clickstream model. Two
# layers guard event time:
#   capture (the clickstream ruleset the source applies): an event older
#     than the ruleset's lateness (7 days) is quarantined with rule max_age
#     and a reason starting "too_late:", one more than 5 minutes in the
#     future with rule not_future; both never reach staging;
#   load (load_model): an event that passed capture but is older than the
#     model's lateness (1 day) behind the latest event time loaded is
#     quarantined as late_event, one beyond future_tolerance as
#     future_event; both stay in staging and never reach a fact partition.
# Events inside the windows (slightly early, hours late) are loaded, and a
# duplicate event_id is deduplicated: produced = staging + capture
# quarantine + deduplicated, facts = staging - load quarantine, and no fact
# partition is made for a day that only rejected events had.
source "$(dirname "$0")/../lib.sh"
source "$(dirname "$0")/../capture_lib.sh"
source "$(dirname "$0")/../resilience_lib.sh"

kafka_start k --brokers 1 --topic clicks:2
BS=$(kafka_bootstrap k)
cluster_create a
cluster_start a
q a "CREATE EXTENSION camperso"
q a "SELECT camperso.create_clickstream_model('cs', lateness => '1 day', load_every => '1 second')" >/dev/null
q a "SELECT camperso.create_source('clicks', '$BS', 'clicks', 'cs.events', ruleset => 'clickstream',
     options => '{$KAFKA_TEST_OPTS}')" >/dev/null
q a "SELECT camperso.start_source('clicks')" >/dev/null

# events COUNT TS_EXPR [EVENT_ID_EXPR]: keyed clickstream events made in SQL
events() {
	q a "SELECT 'u' || g || E'\\t' || json_build_object('event_id', ${3:-gen_random_uuid()}, 'user_id', 'u' || g,
	            'session_id', 's' || g, 'event_type', 'page_view', 'page_url', 'https://a.example/p' || g,
	            'ts', to_char(($2) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), 'props', '{}'::json)
	     FROM generate_series(1, $1) g" | kafka_produce k clicks -K '\t' || fail "kcat -P failed"
}
facts() { q a "SELECT count(*) FROM cs.fact_clicks"; }
facts_are() { [ "$(facts)" = "$1" ]; }

# ---- on time, and slightly early (within the 5 minutes capture allows, and future_tolerance)
ON_TIME=300 EARLY=20
events $ON_TIME "now() - interval '1 minute'"
events $EARLY "now() + interval '2 minutes'"
wait_for 90 "the on-time events to be loaded" facts_are $((ON_TIME + EARLY))
echo "ok - on-time and slightly early events are loaded"

# ---- then the late, the very late, the far future, and duplicates
LATE_OK=40 LATE_MODEL=30 TOO_OLD=25 FUTURE=15 DUPS=10
events $LATE_OK "now() - interval '6 hours'"
events $LATE_MODEL "now() - interval '3 days'"
events $TOO_OLD "now() - interval '30 days'"
events $FUTURE "now() + interval '2 days'"
dup_id="'7a3e2a7c-0000-4000-8000-000000000001'::uuid"
events $((DUPS + 1)) "now() - interval '1 minute'" "$dup_id"
PRODUCED=$((ON_TIME + EARLY + LATE_OK + LATE_MODEL + TOO_OLD + FUTURE + DUPS + 1))
captured() {
	[ "$(q a "SELECT (SELECT count(*) FROM cs.events) + (SELECT count(*) FROM camperso.quarantine WHERE source = 'clicks')
	                 + (SELECT coalesce(sum(deduplicated), 0) FROM camperso.stat_sources WHERE source = 'clicks' AND partition IS NOT NULL)")" \
		-ge "$PRODUCED" ]
}
wait_for 90 "every event to be landed, quarantined or deduplicated" captured
STAGED=$((ON_TIME + EARLY + LATE_OK + LATE_MODEL + 1))
wait_for 90 "the load to take the late events" facts_are $((ON_TIME + EARLY + LATE_OK + 1))
sleep 2 # a later load would show now

assert_eq "$STAGED" "$(q a "SELECT count(*) FROM cs.events")" "staging holds the events that passed capture"
assert_eq "$TOO_OLD|$TOO_OLD" "$(q a "SELECT count(*), count(*) FILTER (WHERE reason LIKE 'too\_late: %')
                                     FROM camperso.quarantine WHERE source = 'clicks' AND rule = 'max_age'")" \
	"events older than the capture lateness are quarantined as max_age with reason too_late"
assert_eq "$FUTURE" "$(q a "SELECT count(*) FROM camperso.quarantine WHERE source = 'clicks' AND rule = 'not_future'")" \
	"events far in the future are quarantined as not_future"
assert_eq "$((TOO_OLD + FUTURE))" "$(q a "SELECT count(*) FROM camperso.quarantine WHERE source = 'clicks'")" \
	"nothing else is quarantined at capture"
assert_eq "$DUPS" "$(q a "SELECT sum(deduplicated) FROM camperso.stat_sources WHERE source = 'clicks' AND partition IS NOT NULL")" \
	"the duplicates are deduplicated"
assert_eq "$PRODUCED" "$((STAGED + TOO_OLD + FUTURE + DUPS))" "produced = staging + quarantine + deduplicated"
assert_eq "$LATE_MODEL" "$(q a "SELECT count(*) FROM camperso.quarantine WHERE target = 'cs.events' AND rule = 'late_event' AND source IS DISTINCT FROM 'clicks'")" \
	"events beyond the model's lateness are quarantined by the load as late_event"
assert_eq 0 "$(q a "SELECT count(*) FROM cs.fact_clicks WHERE event_ts < now() - interval '1 day' OR event_ts > now() + interval '1 hour'")" \
	"no fact outside the windows"
assert_eq 1 "$(q a "SELECT count(*) FROM cs.fact_clicks WHERE event_id = $dup_id")" "the duplicated event is loaded once"
assert_eq "$((ON_TIME + EARLY + LATE_OK + 1))" "$(q a "SELECT count(DISTINCT event_id) FROM cs.fact_clicks")" "no event is loaded twice"
# no fact partition holds, or was made for, the days of the rejected events
parts_for() {
	q a "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
	     WHERE i.inhparent = 'cs.fact_clicks'::regclass
	       AND pg_get_expr(c.relpartbound, c.oid) LIKE 'FOR VALUES FROM (''' || to_char(now() - interval '$1', 'YYYY-MM-DD') || '%'"
}
assert_eq "1|0|0" "$(parts_for '0 days')|$(parts_for '3 days')|$(parts_for '30 days')" \
	"today has a fact partition; none was made for the days of rejected late events"
assert_eq "success" "$(q a "SELECT last_status FROM camperso.jobs WHERE name = 'load_model:cs'")" "the loads succeed"
