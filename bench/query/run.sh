#!/usr/bin/env bash
# bench/query/run.sh — a dashboard query on the live rollups against the
# same answer computed from the facts, in one run.
#
# A clickstream model (camperso.create_clickstream_model) gets 10,000,000
# fact rows (scaled by BENCH_SCALE) over the 30 days before now: written
# straight into fact_clicks with SQL, one INSERT per day, in the facts'
# shape (2,000 pages with a Zipf-like skew, 100,000 users of whom a few are
# very active, 4 apps, the event type mix of camperso-gen), with
# session_replication_role = replica so that neither the per-row foreign
# key checks nor the rollup triggers run; the rollups are then built by
# camperso.rebuild_rollups(), which computes what the triggers maintain.
# The dashboard tile: events and unique users per app and page (with its
# URL), the grain the rollups are keyed on:
#   last60  the trailing 60 minutes  rollup_page_minute, hll_union_agg of
#           the minutes of each app and page
#   hour    the last complete UTC clock hour  rollup_page_hour, its rows as
#           they are (one bucket: no union), unique users from the stored
#           estimate (unique_users, generated from the sketch)
#   day     the last whole UTC day   rollup_page_day, its rows as they are
# and the same from fact_clicks (count(*), count(DISTINCT user_id)), and
# the answer itself read back from a table holding just its rows (floor:
# what delivering that many rows to a client costs, whatever computes
# them; the facts' time over it bounds the ratio any rollup can reach),
# each RUNS times, interleaved, in one warmed session, timed by psql with
# the rows sent to the client. The answers are compared: events exactly, unique
# users as the sketch's estimate against the exact count (error reported).
# Prints the medians and ratios and appends "what|camperso|baseline|ratio|
# target" rows to $BENCH_RESULTS when set. Targets: the rollup query under
# 20 ms (median) and at least 50x faster than from the facts.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/test/lib.sh"
source "$ROOT/bench/lib.sh"
set +u

RUNS=${RUNS:-7}
N=$(bench_scaled 10000000 30000)
PER_DAY=$((N / 30))

W=$(bench_workdir query)
# work_mem stays at its default: the hll extension declares no state size for
# hll_union_agg, whose state is ~136 kB a group, so with a large work_mem the
# planner hashes 2,000 such states and spills them to disk
bench_cluster bench_query "maintenance_work_mem = 512MB"
psql_b() { cluster_psql bench_query -d postgres "$@"; }

t0=$SECONDS
psql_b >/dev/null <<SQL
CREATE EXTENSION camperso;
SELECT camperso.create_clickstream_model('cs', validate => false);
-- no loads: the facts are written here
UPDATE camperso.jobs SET enabled = false WHERE name = 'load_model:cs';
CREATE TABLE bench_anchor AS SELECT date_trunc('minute', now()) AS t;
SELECT camperso._premake_partitions('cs.fact_clicks', 32, (SELECT t FROM bench_anchor) - interval '31 days');
INSERT INTO cs.dim_page (page_url, host, path)
SELECT 'https://shop.example.com/' || (ARRAY['p', 'help', 'blog', 'search'])[1 + i % 4] || '/' || i,
	   'shop.example.com', '/' || (ARRAY['p', 'help', 'blog', 'search'])[1 + i % 4] || '/' || i
  FROM generate_series(1, 2000) i;
SQL
for d in $(seq 0 29); do
	psql_b >/dev/null <<SQL
SET session_replication_role = replica;
SELECT setseed(0.$((d + 10)));
INSERT INTO cs.fact_clicks (event_id, event_ts, date_key, user_sk, page_sk, device_sk, user_id, session_id,
							app_id, event_type, referrer, country, props)
SELECT gen_random_uuid(), ts,
	   to_char(ts AT TIME ZONE 'UTC', 'YYYYMMDD')::integer,
	   -1, p, -1, 'u' || u, 's' || u || '-' || (extract(epoch FROM ts)::bigint / 1800),
	   (ARRAY['web', 'ios-app', 'android-app', 'partner'])[1 + u % 4],
	   CASE WHEN r < 0.45 THEN 'page_view' WHEN r < 0.65 THEN 'click' WHEN r < 0.80 THEN 'scroll'
			WHEN r < 0.90 THEN 'search' WHEN r < 0.97 THEN 'add_to_cart' WHEN r < 0.99 THEN 'purchase'
			ELSE 'login' END,
	   CASE WHEN r < 0.3 THEN 'https://www.google.com/' END, 'NL', jsonb_build_object('load_ms', (r * 2000)::int)
  FROM (SELECT (SELECT t FROM bench_anchor) - interval '30 days' + interval '1 day' * ($d + random()) AS ts,
			   floor(100000 * random() ^ 2)::integer AS u, 1 + floor(2000 * random() ^ 3)::integer AS p,
			   random() AS r
		  FROM generate_series(1, $PER_DAY)) g
 ORDER BY ts;
SQL
done
t_facts=$((SECONDS - t0))
psql_b -c "SELECT camperso.rebuild_rollups('cs')" -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null
t_rollups=$((SECONDS - t0 - t_facts))
sizes=$(psql_b -c "SELECT (SELECT count(*) FROM cs.fact_clicks) || ' facts, rollup_page_minute ' ||
							(SELECT count(*) FROM cs.rollup_page_minute) || ', rollup_page_hour ' ||
							(SELECT count(*) FROM cs.rollup_page_hour) || ', rollup_page_day ' ||
							(SELECT count(*) FROM cs.rollup_page_day) || ' rows'")
note "$sizes; facts written in ${t_facts}s, rollups rebuilt in ${t_rollups}s"

# The windows: the last 60 minutes before the anchor, the last complete
# UTC clock hour and the last whole UTC day before it.
read -r HLO HHI CLO CHI DLO DHI < <(psql_b -F ' ' -c "SELECT extract(epoch FROM t - interval '60 minutes'), extract(epoch FROM t),
		extract(epoch FROM date_trunc('hour', t, 'UTC') - interval '1 hour'), extract(epoch FROM date_trunc('hour', t, 'UTC')),
		extract(epoch FROM date_trunc('day', t, 'UTC') - interval '1 day'), extract(epoch FROM date_trunc('day', t, 'UTC'))
	FROM bench_anchor")
# The tile is per app and page: the rollups are keyed on (bucket, app_id,
# page_sk), dashboards are per app (row-level security is by app_id), and
# a page is seen in several apps (here in all four), so a per-page total
# across apps would union four sketches a page for nothing a dashboard shows.
# A window of several buckets unions their sketches (hll_union_agg); a
# window that is one bucket of a grain reads its rows as they are.
rollup_union_query() {
	echo "SELECT p.page_url, x.app_id, x.events, x.users FROM (
	SELECT r.app_id, r.page_sk, sum(r.events) AS events, round(hll_cardinality(hll_union_agg(r.users)))::bigint AS users
	  FROM cs.$1 r WHERE r.bucket >= to_timestamp($2) AND r.bucket < to_timestamp($3) GROUP BY r.app_id, r.page_sk) x
	JOIN cs.dim_page p ON p.dim_page_sk = x.page_sk"
}
rollup_bucket_query() {
	echo "SELECT p.page_url, r.app_id, r.events, r.unique_users AS users
	  FROM cs.$1 r JOIN cs.dim_page p ON p.dim_page_sk = r.page_sk WHERE r.bucket = to_timestamp($2)"
}
facts_query() {
	echo "SELECT p.page_url, x.app_id, x.events, x.users FROM (
	SELECT f.app_id, f.page_sk, count(*) AS events, count(DISTINCT f.user_id) AS users
	  FROM cs.fact_clicks f WHERE f.event_ts >= to_timestamp($1) AND f.event_ts < to_timestamp($2) GROUP BY f.app_id, f.page_sk) x
	JOIN cs.dim_page p ON p.dim_page_sk = x.page_sk"
}
declare -A Q=(
	[last60_rollup]=$(rollup_union_query rollup_page_minute "$HLO" "$HHI")
	[last60_facts]=$(facts_query "$HLO" "$HHI")
	[hour_rollup]=$(rollup_bucket_query rollup_page_hour "$CLO")
	[hour_facts]=$(facts_query "$CLO" "$CHI")
	[day_rollup]=$(rollup_bucket_query rollup_page_day "$DLO")
	[day_facts]=$(facts_query "$DLO" "$DHI")
)
WINDOWS=(last60 hour day)
declare -A GRAIN=([last60]=minute [hour]=hour [day]=day) LO=([last60]=$HLO [hour]=$CLO [day]=$DLO) HI=([last60]=$HHI [hour]=$CHI [day]=$DHI)
declare -A LABEL=([last60]="last 60 minutes (trailing, from minutes)" [hour]="last clock hour (from hours)" [day]="one day (from days)")
for w in "${WINDOWS[@]}"; do
	Q[${w}_floor]="SELECT page_url, app_id, events, users FROM ans_${w}_facts"
done
ORDER=(last60_rollup last60_facts last60_floor hour_rollup hour_facts hour_floor day_rollup day_facts day_floor)

# The same answers: events exactly; unique users within the sketch's error.
for w in "${WINDOWS[@]}"; do
	psql_b >/dev/null <<SQL
CREATE TABLE ans_${w}_rollup AS ${Q[${w}_rollup]};
CREATE TABLE ans_${w}_facts AS ${Q[${w}_facts]};
SQL
	read -r pages events ev_diff err_max err_mean tot_est tot_exact < <(psql_b -F ' ' <<SQL
SELECT count(*), sum(f.events), count(*) FILTER (WHERE r.events IS DISTINCT FROM f.events),
	   round(max(abs(r.users - f.users)::numeric / f.users) * 100, 2),
	   round(avg(abs(r.users - f.users)::numeric / f.users) * 100, 2),
	   (SELECT round(hll_cardinality(hll_union_agg(users)))::bigint FROM cs.rollup_page_${GRAIN[$w]}
		 WHERE bucket >= to_timestamp(${LO[$w]}) AND bucket < to_timestamp(${HI[$w]})),
	   (SELECT count(DISTINCT user_id) FROM cs.fact_clicks
		 WHERE event_ts >= to_timestamp(${LO[$w]}) AND event_ts < to_timestamp(${HI[$w]}))
  FROM ans_${w}_facts f FULL JOIN ans_${w}_rollup r USING (page_url, app_id)
SQL
)
	[ "$ev_diff" = 0 ] || fail "$w: the rollups and the facts disagree on the events of $ev_diff of $pages app/page rows"
	note "$w: $pages app/page rows, $events events, equal on both sides; unique users per app and page: hll vs exact error mean ${err_mean}%, max ${err_max}%; all pages: $tot_est estimated, $tot_exact exact"
	eval "ERR_$w='mean ${err_mean}%, max ${err_max}%'"
done

{
	echo '\timing on'
	for w in "${ORDER[@]}"; do
		echo "\\o /dev/null"
		echo "${Q[$w]};"
	done
	for r in $(seq 1 "$RUNS"); do
		for w in "${ORDER[@]}"; do
			echo "\\o"
			echo "\\echo $w"
			echo "\\o /dev/null"
			echo "${Q[$w]};"
		done
	done
} >"$W/runs.sql"
psql_b -f "$W/runs.sql" >"$W/runs.out"
declare -A TIMES
while read -r w ms; do
	TIMES[$w]="${TIMES[$w]} $ms"
done < <(awk '/^(last60|hour|day)_(rollup|facts|floor)$/ { k = $1; next } /^Time: / && k != "" { print k, $2; k = "" }' "$W/runs.out")

echo "query: $N facts over 30 days, median of $RUNS runs (load average: $(cut -d' ' -f1-3 /proc/loadavg))"
for w in "${WINDOWS[@]}"; do
	set -- ${TIMES[${w}_rollup]}
	[ $# -eq "$RUNS" ] || fail "could not read the timings: $(cat "$W/runs.out")"
	mr=$(bench_median "${TIMES[${w}_rollup]}")
	mf=$(bench_median "${TIMES[${w}_facts]}")
	mfl=$(bench_median "${TIMES[${w}_floor]}")
	ratio=$(awk -v r="$mr" -v f="$mf" 'BEGIN { printf "%.1f", f / r }')
	bound=$(awk -v r="$mfl" -v f="$mf" 'BEGIN { printf "%.1f", f / r }')
	label=${LABEL[$w]}
	err=ERR_$w
	printf '  %-40s rollups %8s ms   facts %9s ms   ratio %sx   (targets < 20 ms, >= 50x; unique users error %s)\n' \
		"$label" "$mr" "$mf" "$ratio" "${!err}"
	printf '  %-40s the answer alone, read from a table of its rows: %s ms, so no query reaches more than %sx\n' \
		"" "$mfl" "$bound"
	if [ -n "${BENCH_RESULTS:-}" ]; then
		echo "query: events and unique users per app and page, $label, rollups vs fact_clicks ($N facts, ms)|$mr|$mf|${ratio}x|< 20 ms, >= 50x" >>"$BENCH_RESULTS"
		echo "query: $label, delivering the answer alone (a table of its rows) vs fact_clicks ($N facts, ms)|$mfl|$mf|${bound}x|the bound on the ratio" >>"$BENCH_RESULTS"
	fi
done
