#!/usr/bin/env bash
# bench/scd2/run.sh — camperso.scd2_merge against the SQL a dbt snapshot
# (check strategy) runs for the same change batch, in one run.
#
# A dimension of 1,000,000 members (times BENCH_SCALE), shaped like the
# model's dim_user (surrogate key identity, user_id, country and plan
# tracked, email, valid_from/valid_to/is_current; primary key, unique
# (user_id, valid_from), partial index on user_id WHERE is_current), and a
# change batch of 100,000 rows: 10% tracked changes (country or plan, some
# to or from NULL), 5% new members, the rest unchanged.
#
#   camperso   SELECT camperso.scd2_merge(dim, batch, '{user_id}',
#              '{country,plan}', '{email}', 'updated_at')
#   dbt        dbt-core's snapshot_staging_table (check strategy, check_cols
#              country and plan, updated_at configured) as a temporary table,
#              then postgres__snapshot_merge_sql: UPDATE closing the changed
#              current rows, INSERT of new versions and new members; in one
#              transaction, as dbt runs them. Adapted to the same table: the
#              current row is "is_current" (dbt: dbt_valid_to IS NULL, which
#              has no index) and the row identity the UPDATE joins on is the
#              surrogate key, which has the primary key index (dbt:
#              dbt_scd_id, an md5 text column without an index), so the
#              baseline only gains.
# Before every run both dimensions are rebuilt from the same pristine copy
# (VACUUM ANALYZE, CHECKPOINT; not timed); the runs alternate which side
# goes first. After every run both histories must be the same: rows per
# class (current, closed, new members) and an md5 over every version's key,
# tracked and email columns and validity. Prints the medians of RUNS runs
# and the ratio (dbt time / camperso time); appends
# "what|camperso|baseline|ratio|target" to $BENCH_RESULTS when set.
# Target: scd2_merge at least 2x as fast as the dbt-style SQL.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/test/lib.sh"
source "$ROOT/bench/lib.sh"
set +u

RUNS=${BENCH_RUNS:-5}
D=$(bench_scaled 1000000 10000)
B=$((D / 10))
W=$(bench_workdir scd2)
# Generous to the baseline: dbt's sorts of the current rows stay in memory
# (scd2_merge keeps the default maintenance_work_mem), and no JIT compiles
# for its statements, whose row estimates are far too high.
bench_cluster bench_scd2 "work_mem = 64MB" "jit = off"
# Not camperso.database: the launcher runs no jobs beside the bench.
cluster_psql bench_scd2 -d postgres -c "CREATE DATABASE bench"
psql_b() { cluster_psql bench_scd2 -d bench "$@"; }

psql_b >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION camperso;
CREATE EXTENSION pg_prewarm;
-- The members as they stand before the batch: one version each.
CREATE TABLE pristine AS
SELECT 'u' || lpad(i::text, 8, '0') AS user_id,
	   (ARRAY['FR','DE','US','GB','ES','IT','JP','BR','CA','SE'])[1 + i % 10] AS country,
	   CASE WHEN i % 50 = 0 THEN NULL ELSE (ARRAY['free','pro','team','enterprise'])[1 + (i / 10) % 4] END AS plan,
	   md5('u' || i) || md5('e' || i) AS email,
	   timestamptz '2024-01-01 00:00+00' + (i % 100000) * interval '1 minute' AS valid_from
  FROM generate_series(1, $D) i;
-- The batch: g % 20 in (0, 1) a tracked change of an existing member, 2 a
-- new member, else an existing member unchanged. Existing members are
-- spread over the dimension (g * 7919 mod D is a bijection).
CREATE TABLE batch AS
SELECT CASE WHEN g % 20 = 2 THEN 'n' || lpad(g::text, 8, '0') ELSE p.user_id END AS user_id,
	   CASE WHEN g % 20 = 0 THEN (ARRAY['FR','DE','US','GB','ES','IT','JP','BR','CA','SE'])[1 + (k + 1 + g % 9) % 10]
			WHEN g % 20 = 2 THEN 'NO' ELSE p.country END AS country,
	   CASE WHEN g % 20 = 1 THEN CASE WHEN p.plan IS NULL THEN 'pro' WHEN g % 3 = 0 THEN NULL ELSE p.plan || '+' END
			WHEN g % 20 = 2 THEN 'free' ELSE p.plan END AS plan,
	   CASE WHEN g % 20 = 2 THEN md5('n' || g) ELSE p.email END AS email,
	   timestamptz '2024-06-01 00:00+00' + g * interval '1 second' AS updated_at
  FROM generate_series(1, $B) g, LATERAL (SELECT 1 + (g::bigint * 7919) % $D AS k) x,
	   LATERAL (SELECT * FROM pristine WHERE user_id = 'u' || lpad(x.k::text, 8, '0')) p;
VACUUM ANALYZE pristine, batch;

-- A dimension rebuilt from pristine, as dim_user is declared.
CREATE FUNCTION bench_reset(d text) RETURNS void LANGUAGE plpgsql AS \$f\$
BEGIN
	EXECUTE format('DROP TABLE IF EXISTS %I', d);
	EXECUTE format('CREATE TABLE %I (%I bigint GENERATED ALWAYS AS IDENTITY, user_id text, country text, plan text,
					email text, valid_from timestamptz NOT NULL, valid_to timestamptz NOT NULL, is_current boolean NOT NULL,
					CHECK (valid_to > valid_from))', d, d || '_sk');
	EXECUTE format('INSERT INTO %I (user_id, country, plan, email, valid_from, valid_to, is_current)
					SELECT user_id, country, plan, email, valid_from, ''infinity'', true FROM pristine', d);
	EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (%I), ADD UNIQUE (user_id, valid_from)', d, d || '_sk');
	EXECUTE format('CREATE INDEX ON %I (user_id) WHERE is_current', d);
END
\$f\$;
-- Table and indexes in shared buffers, as those of a dimension in use are.
CREATE FUNCTION bench_prewarm(d text) RETURNS bigint LANGUAGE sql AS \$f\$
	SELECT sum(pg_prewarm(c.oid)) FROM pg_class c
	 WHERE c.oid = d::regclass OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = d::regclass)
\$f\$;
-- Rows per class and a checksum of the whole history.
CREATE FUNCTION bench_summary(d text) RETURNS text LANGUAGE plpgsql AS \$f\$
DECLARE
	r text;
BEGIN
	EXECUTE format(\$q\$SELECT count(*) || ' versions, ' || count(*) FILTER (WHERE is_current) || ' current, '
				   || count(*) FILTER (WHERE NOT is_current) || ' closed, '
				   || count(*) FILTER (WHERE user_id LIKE 'n%%') || ' new members, '
				   || count(*) FILTER (WHERE is_current <> (valid_to = 'infinity')) || ' inconsistent, history md5 '
				   || md5(string_agg(concat_ws('|', user_id, country, plan, email, valid_from, valid_to, is_current), E'\n'
									 ORDER BY user_id, valid_from))
			  FROM %I\$q\$, d) INTO r;
	RETURN r;
END
\$f\$;
CREATE TABLE bench_times (what text, run int, ms float8);
SQL

camperso_sql() {
	cat <<SQL
SELECT clock_timestamp() AS t0 \\gset
SELECT inserted || ' inserted, ' || closed || ' closed, ' || unchanged || ' unchanged, ' || type1_updated || ' type-1' AS counts
  FROM camperso.scd2_merge('dim_c', 'batch', '{user_id}', '{country,plan}', '{email}', 'updated_at') \\gset
INSERT INTO bench_times VALUES ('camperso', $1, extract(epoch FROM clock_timestamp() - :'t0') * 1000);
\\echo camperso run $1: :counts
SQL
}

# dbt-core's default__snapshot_staging_table with the check strategy's
# row_changed expression, then postgres__snapshot_merge_sql.
dbt_sql() {
	cat <<SQL
SELECT clock_timestamp() AS t0 \\gset
BEGIN;
CREATE TEMPORARY TABLE dim_d__dbt_tmp AS (
	WITH snapshot_query AS (
		SELECT * FROM batch
	),
	snapshotted_data AS (
		SELECT *, user_id AS dbt_unique_key
		  FROM dim_d
		 WHERE is_current
	),
	insertions_source_data AS (
		SELECT *, user_id AS dbt_unique_key, updated_at AS dbt_updated_at, updated_at AS dbt_valid_from,
			   nullif(updated_at, updated_at) AS dbt_valid_to
		  FROM snapshot_query
	),
	updates_source_data AS (
		SELECT *, user_id AS dbt_unique_key, updated_at AS dbt_updated_at, updated_at AS dbt_valid_from,
			   updated_at AS dbt_valid_to
		  FROM snapshot_query
	),
	insertions AS (
		SELECT 'insert' AS dbt_change_type, source_data.*, NULL::bigint AS dbt_scd_id
		  FROM insertions_source_data AS source_data
		  LEFT OUTER JOIN snapshotted_data ON snapshotted_data.dbt_unique_key = source_data.dbt_unique_key
		 WHERE snapshotted_data.dbt_unique_key IS NULL
			OR (snapshotted_data.dbt_unique_key IS NOT NULL
				AND (snapshotted_data.country != source_data.country
					 OR ((snapshotted_data.country IS NULL AND NOT source_data.country IS NULL)
						 OR (NOT snapshotted_data.country IS NULL AND source_data.country IS NULL))
					 OR snapshotted_data.plan != source_data.plan
					 OR ((snapshotted_data.plan IS NULL AND NOT source_data.plan IS NULL)
						 OR (NOT snapshotted_data.plan IS NULL AND source_data.plan IS NULL))))
	),
	updates AS (
		SELECT 'update' AS dbt_change_type, source_data.*, snapshotted_data.dim_d_sk AS dbt_scd_id
		  FROM updates_source_data AS source_data
		  JOIN snapshotted_data ON snapshotted_data.dbt_unique_key = source_data.dbt_unique_key
		 WHERE (snapshotted_data.country != source_data.country
				OR ((snapshotted_data.country IS NULL AND NOT source_data.country IS NULL)
					OR (NOT snapshotted_data.country IS NULL AND source_data.country IS NULL))
				OR snapshotted_data.plan != source_data.plan
				OR ((snapshotted_data.plan IS NULL AND NOT source_data.plan IS NULL)
					OR (NOT snapshotted_data.plan IS NULL AND source_data.plan IS NULL)))
	)
	SELECT * FROM insertions
	UNION ALL
	SELECT * FROM updates
);
UPDATE dim_d
   SET valid_to = DBT_INTERNAL_SOURCE.dbt_valid_to, is_current = false
  FROM dim_d__dbt_tmp AS DBT_INTERNAL_SOURCE
 WHERE DBT_INTERNAL_SOURCE.dbt_scd_id = dim_d.dim_d_sk
   AND DBT_INTERNAL_SOURCE.dbt_change_type::text IN ('update'::text, 'delete'::text)
   AND dim_d.is_current;
INSERT INTO dim_d (user_id, country, plan, email, valid_from, valid_to, is_current)
SELECT DBT_INTERNAL_SOURCE.user_id, DBT_INTERNAL_SOURCE.country, DBT_INTERNAL_SOURCE.plan, DBT_INTERNAL_SOURCE.email,
	   DBT_INTERNAL_SOURCE.dbt_valid_from, 'infinity', true
  FROM dim_d__dbt_tmp AS DBT_INTERNAL_SOURCE
 WHERE DBT_INTERNAL_SOURCE.dbt_change_type::text = 'insert'::text;
COMMIT;
INSERT INTO bench_times VALUES ('dbt', $1, extract(epoch FROM clock_timestamp() - :'t0') * 1000);
DROP TABLE dim_d__dbt_tmp;
SQL
}

echo "dimension: $D members, batch: $B rows (10% tracked changes, 5% new, 85% unchanged), runs: $RUNS (medians)"
for r in $(seq 1 "$RUNS"); do
	{
		echo "SET client_min_messages = warning;"
		echo "SELECT bench_reset('dim_c'), bench_reset('dim_d') \\g /dev/null"
		echo "VACUUM ANALYZE dim_c, dim_d;"
		echo "SELECT bench_prewarm('dim_c'), bench_prewarm('dim_d') \\g /dev/null"
		echo "CHECKPOINT;"
		if [ $((r % 2)) -eq 1 ]; then
			camperso_sql "$r"
			dbt_sql "$r"
		else
			dbt_sql "$r"
			camperso_sql "$r"
		fi
	} >"$W/run.sql"
	psql_b -f "$W/run.sql"
	c=$(psql_b -c "SELECT bench_summary('dim_c')")
	d=$(psql_b -c "SELECT bench_summary('dim_d')")
	[ "$c" = "$d" ] || fail "run $r: the histories differ: camperso [$c], dbt [$d]"
	want="$((D + B / 20 * 3)) versions, $((D + B / 20)) current, $((B / 10)) closed, $((B / 20)) new members, 0 inconsistent"
	case $c in "$want"*) ;; *) fail "run $r: unexpected history: [$c], expected [$want, ...]" ;; esac
	echo "run $r: both histories: $c"
	psql_b -c "SELECT what || ' ' || round(ms::numeric, 1) || ' ms' FROM bench_times WHERE run = $r ORDER BY what"
done

median() {
	psql_b -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) FROM bench_times WHERE what = '$1'"
}
cam=$(median camperso)
dbt=$(median dbt)
ratio=$(awk -v b="$dbt" -v c="$cam" 'BEGIN { printf "%.2f", b / c }')
echo "scd2: $D members, $B-row batch, median of $RUNS: camperso.scd2_merge $cam ms; dbt snapshot SQL (check) $dbt ms; ratio ${ratio}x (target >= 2x)"
if [ -n "${BENCH_RESULTS:-}" ]; then
	echo "scd2: scd2_merge vs dbt snapshot SQL (check strategy), $D members, $B-row batch (ms)|$cam|$dbt|${ratio}x|>= 2x" >>"$BENCH_RESULTS"
fi
