#!/usr/bin/env bash
# bench/load/run.sh — camperso.load_model against a plain INSERT ... SELECT
# of the same facts, in one run.
#
# 1,000,000 events (times BENCH_SCALE) from tools/camperso-gen (clean, two
# days of a 10,000-user shop) and 20,000 user profile changes (times
# BENCH_SCALE, from the fortnight before) are staged in a fresh
# clickstream model (schema cs: staging events and user_updates). Then
#   camperso   SELECT camperso.load_model('cs'): in one transaction, reads
#              the batch past the watermark with its checks (quarantine of
#              unusable rows), merges dim_user (SCD2, e-mails pseudonymised),
#              adds the new pages (host, path), devices (parsed user agents)
#              and days, makes the fact partitions the days need, inserts
#              fact_clicks (keys as of event time, redeliveries skipped),
#              sessionises into fact_sessions (30-minute gap), keeps the
#              rollups (statement triggers on the facts), advances the
#              watermarks and records the run.
#   baseline   INSERT INTO cs.fact_clicks SELECT ... FROM cs.events JOIN the
#              dimensions (already loaded by the camperso run), into the
#              model's own fact table emptied first (its primary key,
#              indexes, foreign keys, partitions, and the rollup triggers
#              that belong to it): the same key lookups as load_model (the
#              user version valid at the event time, or the user's first
#              version, or -1; page; device; date key). Facts only: no
#              dims, sessions, session rollups, checks or watermark. The
#              target is against this one.
#   bare       the same INSERT into base.fact_clicks, a copy of the fact
#              table without triggers (same columns, keys, indexes, foreign
#              keys and day partitions): what inserting the facts costs
#              with no rollups at all. Reported beside, with its ratio.
# Every run starts from a new model (not timed): the staged rows are copied
# in and the staging table warmed into shared buffers before the camperso
# load; baseline and bare run right after it (in alternating order) against
# the same warm staging. All must produce the same facts (row count and an
# md5 over every key column). Prints events/s (median of RUNS) and the
# ratios camperso/baseline and camperso/bare; appends
# "what|camperso|baseline|ratio|target" rows to $BENCH_RESULTS when set.
# Target: load_model at least 0.7x the baseline's events/s.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/test/lib.sh"
source "$ROOT/bench/lib.sh"
set +u

RUNS=${BENCH_RUNS:-3}
N=$(bench_scaled 1000000 10000)
NU=$((N / 50))
W=$(bench_workdir load)
[ -x "$ROOT/tools/camperso-gen" ] || make -s -C "$ROOT" tools/camperso-gen >/dev/null
"$ROOT/tools/camperso-gen" --events "$N" --seed 5 --invalid-rate 0 >"$W/events.json"
"$ROOT/tools/camperso-gen" --users-topic --events "$NU" --seed 6 --invalid-rate 0 \
	--start-time 2024-04-17T00:00:00Z >"$W/users.json"
chmod 644 "$W"/*

bench_cluster bench_load "shared_buffers = 2GB" "work_mem = 64MB" "jit = off"
# Not camperso.database: the launcher runs no load job beside the bench.
cluster_psql bench_load -d postgres -c "CREATE DATABASE bench"
psql_b() { cluster_psql bench_load -d bench "$@"; }

psql_b >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION camperso;
CREATE EXTENSION pg_prewarm;
-- The generated lines, typed once (not timed).
CREATE TABLE raw (doc jsonb);
COPY raw FROM '$W/events.json' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02');
CREATE TABLE staged_events AS
SELECT (doc->>'event_id')::uuid AS event_id, doc->>'user_id' AS user_id, doc->>'session_id' AS session_id,
	   doc->>'app_id' AS app_id, doc->>'event_type' AS event_type, doc->>'page_url' AS page_url,
	   doc->>'referrer' AS referrer, doc->>'user_agent' AS user_agent, doc->>'ip' AS ip,
	   doc->>'country' AS country, (doc->>'ts')::timestamptz AS ts, doc->'props' AS props
  FROM raw;
TRUNCATE raw;
COPY raw FROM '$W/users.json' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02');
CREATE TABLE staged_users AS
SELECT doc->>'user_id' AS user_id, doc->>'country' AS country, doc->>'plan' AS plan, doc->>'email' AS email,
	   (doc->>'updated_at')::timestamptz AS updated_at
  FROM raw;
DROP TABLE raw;
VACUUM ANALYZE staged_events, staged_users;
CREATE TABLE bench_times (what text, run int, ms float8);

-- A new model with the batch staged: what every run starts from.
CREATE FUNCTION bench_reset() RETURNS void LANGUAGE plpgsql AS \$f\$
DECLARE
	d date;
BEGIN
	IF EXISTS (SELECT 1 FROM camperso.models WHERE schema_name = 'cs') THEN
		PERFORM camperso.drop_clickstream_model('cs');
	END IF;
	DROP SCHEMA IF EXISTS base CASCADE;
	PERFORM camperso.create_clickstream_model('cs', validate => false);
	INSERT INTO cs.events (event_id, user_id, session_id, app_id, event_type, page_url, referrer, user_agent, ip,
						   country, ts, props)
	SELECT * FROM staged_events;
	INSERT INTO cs.user_updates (user_id, country, plan, email, updated_at) SELECT * FROM staged_users;
	-- The baseline's fact table: cs.fact_clicks' columns, keys, indexes and
	-- foreign keys, its partitions made ahead, no triggers.
	CREATE SCHEMA base;
	CREATE TABLE base.fact_clicks (LIKE cs.fact_clicks INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)
		PARTITION BY RANGE (event_ts);
	ALTER TABLE base.fact_clicks
		ADD FOREIGN KEY (date_key) REFERENCES cs.dim_date (date_key),
		ADD FOREIGN KEY (user_sk) REFERENCES cs.dim_user (dim_user_sk),
		ADD FOREIGN KEY (page_sk) REFERENCES cs.dim_page (dim_page_sk),
		ADD FOREIGN KEY (device_sk) REFERENCES cs.dim_device (dim_device_sk);
	FOR d IN SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date FROM staged_events LOOP
		EXECUTE format('CREATE TABLE base.%I PARTITION OF base.fact_clicks FOR VALUES FROM (%L) TO (%L)',
					   'fact_clicks_' || to_char(d, 'YYYYMMDD'), d::timestamp AT TIME ZONE 'UTC',
					   (d + 1)::timestamp AT TIME ZONE 'UTC');
	END LOOP;
END
\$f\$;
-- The facts as rows of key columns, checksummed.
CREATE FUNCTION bench_facts(rel regclass) RETURNS text LANGUAGE plpgsql AS \$f\$
DECLARE
	r text;
BEGIN
	EXECUTE format(\$q\$SELECT count(*) || ' facts, ' || count(*) FILTER (WHERE user_sk = -1) || ' of unknown users, md5 '
		|| md5(string_agg(concat_ws('|', event_id, event_ts, date_key, user_sk, page_sk, device_sk, user_id, session_id,
									app_id, event_type, referrer, country, props), ',' ORDER BY event_id, event_ts))
		FROM %s\$q\$, rel) INTO r;
	RETURN r;
END
\$f\$;
SQL

# The facts of the staged events as load_model resolves them (load.sql,
# step 4), from staging straight into the fact table.
baseline_sql() {
	cat <<SQL
INSERT INTO $1 (event_id, event_ts, date_key, user_sk, page_sk, device_sk, user_id, session_id, app_id,
							  event_type, referrer, country, props)
SELECT e.event_id, e.ts, to_char(e.ts AT TIME ZONE 'UTC', 'YYYYMMDD')::integer,
	   COALESCE(u.dim_user_sk,
				(SELECT d.dim_user_sk FROM cs.dim_user d WHERE d.user_id = e.user_id ORDER BY d.valid_from LIMIT 1),
				-1),
	   COALESCE(p.dim_page_sk, -1), COALESCE(v.dim_device_sk, -1), e.user_id,
	   e.session_id, e.app_id, e.event_type, e.referrer, e.country, e.props
  FROM cs.events e
  LEFT JOIN cs.dim_user u ON u.user_id = e.user_id AND e.ts >= u.valid_from AND e.ts < u.valid_to
  LEFT JOIN cs.dim_page p ON p.page_url = e.page_url
  LEFT JOIN cs.dim_device v ON v.user_agent = e.user_agent;
SQL
}

echo "events: $N, user changes: $NU, runs: $RUNS (medians)"
for r in $(seq 1 "$RUNS"); do
	{
		echo "SET client_min_messages = warning;"
		echo "SELECT bench_reset() \\g /dev/null"
		echo "VACUUM ANALYZE cs.events, cs.user_updates;"
		echo "SELECT sum(pg_prewarm(c.oid)) FROM pg_class c WHERE c.relnamespace = 'cs'::regnamespace AND c.relispartition AND c.relname LIKE 'events%' \\g /dev/null"
		echo "CHECKPOINT;"
		echo "SELECT clock_timestamp() AS t0 \\gset"
		echo "SELECT camperso.load_model('cs') AS details \\gset"
		echo "INSERT INTO bench_times VALUES ('camperso', $r, extract(epoch FROM clock_timestamp() - :'t0') * 1000);"
		echo "ANALYZE cs.dim_user, cs.dim_page, cs.dim_device, cs.dim_date;"
		echo "CREATE TABLE cam_facts AS SELECT bench_facts('cs.fact_clicks') AS f;"
		echo "TRUNCATE cs.fact_clicks;"
		for what in $( [ $((r % 2)) -eq 1 ] && echo "baseline bare" || echo "bare baseline"); do
			echo "CHECKPOINT;"
			echo "SELECT clock_timestamp() AS t0 \\gset"
			if [ "$what" = baseline ]; then baseline_sql cs.fact_clicks; else baseline_sql base.fact_clicks; fi
			echo "INSERT INTO bench_times VALUES ('$what', $r, extract(epoch FROM clock_timestamp() - :'t0') * 1000);"
		done
		echo "\\echo load_model run $r: :details"
	} >"$W/run.sql"
	psql_b -f "$W/run.sql" | sed 's/^\(.\{300\}\).*/\1.../'
	c=$(psql_b -c "SELECT f FROM cam_facts")
	psql_b -c "DROP TABLE cam_facts"
	b=$(psql_b -c "SELECT bench_facts('cs.fact_clicks')")
	p=$(psql_b -c "SELECT bench_facts('base.fact_clicks')")
	[ "$c" = "$b" ] && [ "$c" = "$p" ] ||
		fail "run $r: the facts differ: load_model [$c], baseline [$b], bare [$p]"
	case $c in "$N facts"*) ;; *) fail "run $r: expected $N facts, got [$c]" ;; esac
	rc=$(psql_b -c "SELECT count(*) FROM camperso.rollup_check('cs')")
	[ "$rc" = 0 ] || fail "run $r: the rollups disagree with the facts after the baseline ($rc differences)"
	s=$(psql_b -c "SELECT count(*) || ' sessions of ' || sum(event_count) || ' events' FROM cs.fact_sessions")
	echo "run $r: both: $c; load_model also: $s"
	psql_b -c "SELECT what || ' ' || round(ms::numeric, 1) || ' ms, ' || round($N / (ms / 1000)) || ' events/s' FROM bench_times WHERE run = $r ORDER BY what <> 'camperso', what"
done

median() {
	psql_b -c "SELECT round($N / (percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) / 1000)) FROM bench_times WHERE what = '$1'"
}
cam=$(median camperso)
base=$(median baseline)
bare=$(median bare)
ratio=$(awk -v c="$cam" -v b="$base" 'BEGIN { printf "%.2f", c / b }')
ratio_bare=$(awk -v c="$cam" -v b="$bare" 'BEGIN { printf "%.2f", c / b }')
echo "load: $N events, median of $RUNS: camperso.load_model $cam events/s (dims, facts, sessions, rollups, watermark)"
echo "      INSERT ... SELECT JOIN dims into cs.fact_clicks (its rollup triggers) $base events/s: ratio ${ratio}x (target >= 0.7x)"
echo "      the same into a trigger-less copy $bare events/s: ratio ${ratio_bare}x"
if [ -n "${BENCH_RESULTS:-}" ]; then
	echo "load: load_model vs INSERT INTO fact_clicks SELECT JOIN dims, $N events (events/s)|$cam|$base|${ratio}x|>= 0.7x" >>"$BENCH_RESULTS"
	echo "load: load_model vs the same INSERT into a fact table without rollup triggers (events/s)|$cam|$bare|${ratio_bare}x|-" >>"$BENCH_RESULTS"
fi
