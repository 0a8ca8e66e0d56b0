#!/usr/bin/env bash
# `make demo` in small: tools/demo.sh with 20,000 events (5,000 in quick
# mode) in a private directory, with the private install the suite built.
# Its report must account for every event (produced = landed + quarantined
# + deduplicated, and landed = in the facts + quarantined by the load, each
# figure checked against the database it leaves running), show every
# section, keep the analyst out of the quarantine, and leave a cluster that
# answers on the printed psql line. A second run stops the first; demo-stop
# ends it; a directory that is not a demo's is never removed.
source "$(dirname "$0")/../lib.sh"

DEMO=$CAMPERSO_ROOT/tools/demo.sh
export DEMO_DIR=$CAMPERSO_TEST_WORK/demo-smoke DEMO_BUILD=0 DEMO_SEED=7
EVENTS=20000
[ -n "$CAMPERSO_QUICK" ] && EVENTS=5000

_smoke_cleanup() {
	local rc=$?
	bash "$DEMO" stop >/dev/null 2>&1
	(exit $rc)
	_lib_cleanup
}
trap _smoke_cleanup EXIT

LOG=$CAMPERSO_TEST_WORK/demo-smoke.log
DEMO_EVENTS=$EVENTS DEMO_RATE=10000 DEMO_USERS=2000 bash "$DEMO" >"$LOG" 2>&1 ||
	{ cat "$LOG"; fail "the demo failed"; }
cat "$LOG"

# ---- the report's figures add up
read -r produced landed quarantined dedup holds <<<"$(sed -n \
	's/^capture *| produced \([0-9]*\) = landed \([0-9]*\) + quarantined \([0-9]*\) + deduplicated \([0-9]*\): \(.*\)$/\1 \2 \3 \4 \5/p' "$LOG")"
assert_eq "$EVENTS" "$produced" "the report counts every event produced"
assert_eq "$produced" "$((landed + quarantined + dedup))" "produced = landed + quarantined + deduplicated"
assert_eq "holds" "$holds" "the report says the capture equation holds"
[ "$quarantined" -gt 0 ] && [ "$dedup" -gt 0 ] || fail "no quarantined or deduplicated events ($quarantined, $dedup)"
read -r landed2 facts qload holds2 <<<"$(sed -n \
	's/^model *| landed \([0-9]*\) = in fact_clicks \([0-9]*\) + quarantined by the load \([0-9]*\): \(.*\)$/\1 \2 \3 \4/p' "$LOG")"
assert_eq "$landed" "$landed2" "both equations count the same landed events"
assert_eq "$landed" "$((facts + qload))" "landed = in fact_clicks + quarantined by the load"
assert_eq "holds" "$holds2" "the report says the model equation holds"

# ---- every section of the report
for section in "Events: produced" "SCD2 history" "Top pages" "Traffic, sessions and bounce rate per app" "Sessions (fact_sessions" \
	"Freshness (camperso.stat_freshness)" "Alerts now" "Lineage (camperso.runs" "One click as an analyst sees it"; do
	grep -qF -- "---- $section" "$LOG" || fail "report section missing: $section"
done
echo "ok - every report section is there"
grep -q "^The same analyst reading camperso.quarantine: permission denied" "$LOG" ||
	fail "the analyst could read the quarantine"
echo "ok - the analyst is refused the quarantine"
grep -qE '^ +[0-9]+s produced +[0-9]+ \| landed +[0-9]+ \| quarantined +[0-9]+ \| deduplicated +[0-9]+ \| lag +[0-9]+ \| +[0-9]+ events/s' "$LOG" ||
	fail "no progress line"
grep -qE "^   consumed $EVENTS events in [0-9.]+ s: [0-9]+ events/s overall" "$LOG" || fail "no overall rate line"
echo "ok - progress lines and the overall rate"
# the SCD2 section shows a user with several versions, one current
versions=$(awk '/^---- SCD2 history/ { on = 1; next } /^---- / { on = 0 } on && /\| [tf] *$/' "$LOG" | wc -l)
current=$(awk '/^---- SCD2 history/ { on = 1; next } /^---- / { on = 0 } on && /\| t *$/' "$LOG" | wc -l)
[ "$versions" -ge 2 ] && [ "$current" -eq 1 ] || fail "SCD2 history: $versions versions, $current current"
echo "ok - SCD2 history of one user: $versions versions, 1 current"

# ---- the cluster stays up, on the printed line, with what the report said
port=$(sed -n 's/^Explore:  psql -h 127.0.0.1 -p \([0-9]*\) -U postgres postgres$/\1/p' "$LOG")
[ -n "$port" ] || fail "no psql line printed"
q() { psql -X -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "$1"; }
assert_eq "$landed" "$(q "SELECT count(*) FROM clickstream.events")" "staging holds the landed events"
assert_eq "$facts" "$(q "SELECT count(*) FROM clickstream.fact_clicks")" "fact_clicks holds what the report said"
assert_eq "$quarantined" "$(q "SELECT count(*) FROM camperso.quarantine WHERE source = 'clicks'")" \
	"the quarantine holds what the report said"
assert_eq "$dedup" "$(q "SELECT sum(deduplicated) FROM camperso.stat_sources WHERE source = 'clicks' AND partition IS NOT NULL")" \
	"stat_sources counts the deduplicated events"

# ---- a second run stops the first
DEMO_EVENTS=1000 DEMO_RATE=10000 DEMO_USERS=200 bash "$DEMO" >"$LOG.2" 2>&1 ||
	{ cat "$LOG.2"; fail "the second demo failed"; }
grep -q "^== stopping the previous demo" "$LOG.2" || fail "the second demo did not stop the first"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
	port2=$(sed -n 's/^Explore:  psql -h 127.0.0.1 -p \([0-9]*\) .*/\1/p' "$LOG.2")
	[ "$port2" = "$port" ] || fail "the first demo's server still listens on $port"
fi
grep -q "^capture *| produced 1000 = .*: holds$" "$LOG.2" || fail "the second demo's counts: $(grep '^capture' "$LOG.2")"
echo "ok - a second demo stops the first and runs"

# ---- demo-stop ends it; a foreign directory is left alone
port=$(sed -n 's/^Explore:  psql -h 127.0.0.1 -p \([0-9]*\) .*/\1/p' "$LOG.2")
assert_eq "demo stopped" "$(bash "$DEMO" stop)" "demo-stop"
[ ! -e "$DEMO_DIR" ] || fail "demo-stop left $DEMO_DIR"
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then fail "the server still listens after demo-stop"; fi
assert_eq "no demo running in $DEMO_DIR" "$(bash "$DEMO" stop)" "demo-stop with nothing running"
mkdir -p "$DEMO_DIR"
echo keep >"$DEMO_DIR/precious"
DEMO_EVENTS=10 bash "$DEMO" >"$LOG.3" 2>&1 && fail "the demo took over a directory that is not a demo's"
grep -q "is not a demo directory" "$LOG.3" || fail "refusal not explained: $(tail -3 "$LOG.3")"
[ -f "$DEMO_DIR/precious" ] || fail "the demo removed a file it did not make"
rm -rf "$DEMO_DIR"
echo "ok - a directory that is not a demo's is refused, not removed"
