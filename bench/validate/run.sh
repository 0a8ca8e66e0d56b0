#!/usr/bin/env bash
# bench/validate/run.sh — the validate_row() trigger against the same checks
# written in PL/pgSQL, and against no trigger at all, in one run.
#
# 1,000,000 events (scaled by BENCH_SCALE) from tools/camperso-gen (0.5%
# exact repeats of recent events, event times moved to end 10 minutes ago),
# typed into the columns of the model's staging table (clickstream.events);
# about 1% of them get one violation of the clickstream ruleset each, every
# rule in turn (a null event_id, user_id, session_id or ts, an unknown
# event_type, a time a day ahead or 30 days old, a javascript: page_url,
# props that are an array). camperso-gen's own bad lines (malformed JSON,
# invalid UTF-8, bad uuids) cannot exist in typed columns: they are the land
# path's business (bench/land). The rows are loaded into the server first
# (not timed), then, RUNS times each, interleaved, each run in a fresh
# session with its side's state cleared, timed by psql from the statement
# to its commit, INSERT ... SELECT into
#   none           the model's staging table (create_clickstream_model:
#                  partitioned by arrival day, BRIN), no trigger
#   camperso       the same, BEFORE INSERT trigger camperso.validate_row('clickstream')
#   plpgsql        the same, the trigger of plpgsql_trigger.sql: the same
#                  checks in PL/pgSQL, failures into camperso.quarantine,
#                  event_id deduplicated within the hour against a table
#                  with a unique index
#   heap_none      a plain heap table of the same columns, no trigger
#   heap_camperso  the same with validate_row('clickstream') (the overhead
#                  against the cheapest possible load)
#   noop, heap_noop  the staging table and the heap with an empty C row
#                  trigger (noop_trigger.c, built here): PostgreSQL's own
#                  per-row trigger cost, the floor under any row trigger
# Both triggers must land the same rows and quarantine the same rows for the
# same rules (checked). Prints the medians, the C trigger's overhead over no
# trigger and its speed-up over PL/pgSQL, and appends
# "what|camperso|baseline|ratio|target" rows to $BENCH_RESULTS when set.
# Also measured: the backend's CPU time (/proc utime + stime) around each
# statement, steadier than wall time when other work shares the cores.
# Targets: overhead <= 25% over no trigger; >= 5x faster than PL/pgSQL.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/validate
source "$ROOT/test/lib.sh"
source "$ROOT/bench/lib.sh"
set +u

RUNS=${RUNS:-5}
N=$(bench_scaled 1000000 10000)
[ -x "$ROOT/tools/camperso-gen" ] || make -s -C "$ROOT" tools/camperso-gen >/dev/null

W=$(bench_workdir validate)
# about 5 minutes of events per 1,000 (1,000 sessions at once): 1M events
# span about a day and a half, well inside the ruleset's 7 days of lateness
"$ROOT/tools/camperso-gen" --events "$N" --seed 5 --invalid-rate 0 --duplicate-rate 0.005 \
	--apps 4 --start-time $(($(date +%s) - 3 * 86400)) >"$W/lines.json"
cp "$HERE/plpgsql_trigger.sql" "$HERE/noop_trigger.c" "$W/"
printf '%s\n' 'MODULES = noop_trigger' "PG_CONFIG = ${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}" \
	'PGXS := $(shell $(PG_CONFIG) --pgxs)' 'include $(PGXS)' >"$W/Makefile"
make -s -C "$W" >/dev/null || fail "building noop_trigger.so failed"
chmod 644 "$W"/*

bench_cluster bench_validate "autovacuum = off" "synchronize_seqscans = off"
psql_b() { cluster_psql bench_validate -d postgres "$@"; }

COLS="event_id, user_id, session_id, app_id, event_type, page_url, referrer, user_agent, ip, country, ts, props"
psql_b >/dev/null <<SQL
CREATE EXTENSION camperso;
-- the model's own staging table (partitioned by arrival day, BRIN), one
-- model per side, their load jobs off; and the same columns as plain heaps
SELECT camperso.create_clickstream_model(s, validate => false)
  FROM unnest(ARRAY['sv_none', 'sv_camperso', 'sv_plpgsql', 'sv_noop']) s;
UPDATE camperso.jobs SET enabled = false WHERE name LIKE 'load_model:%';
CREATE TRIGGER validate BEFORE INSERT ON sv_camperso.events
	FOR EACH ROW EXECUTE FUNCTION camperso.validate_row('clickstream');
\i $W/plpgsql_trigger.sql
CREATE TRIGGER validate BEFORE INSERT ON sv_plpgsql.events
	FOR EACH ROW EXECUTE FUNCTION pl_validate_row();
CREATE TABLE heap_none (LIKE sv_none.events INCLUDING DEFAULTS);
CREATE TABLE heap_camperso (LIKE sv_none.events INCLUDING DEFAULTS);
CREATE TRIGGER validate BEFORE INSERT ON heap_camperso
	FOR EACH ROW EXECUTE FUNCTION camperso.validate_row('clickstream');
CREATE FUNCTION noop_row() RETURNS trigger LANGUAGE c AS '$W/noop_trigger.so', 'noop_row';
CREATE TRIGGER noop BEFORE INSERT ON sv_noop.events FOR EACH ROW EXECUTE FUNCTION noop_row();
CREATE TABLE heap_noop (LIKE sv_none.events INCLUDING DEFAULTS);
CREATE TRIGGER noop BEFORE INSERT ON heap_noop FOR EACH ROW EXECUTE FUNCTION noop_row();

CREATE TABLE lines (n bigserial, doc jsonb);
COPY lines (doc) FROM '$W/lines.json' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02');
CREATE TABLE src AS
WITH t AS (SELECT max((doc->>'ts')::timestamptz) AS last FROM lines)
SELECT l.n, (l.doc->>'event_id')::uuid AS event_id, l.doc->>'user_id' AS user_id,
	   l.doc->>'session_id' AS session_id, l.doc->>'app_id' AS app_id,
	   l.doc->>'event_type' AS event_type, l.doc->>'page_url' AS page_url,
	   l.doc->>'referrer' AS referrer, l.doc->>'user_agent' AS user_agent, l.doc->>'ip' AS ip,
	   l.doc->>'country' AS country,
	   (l.doc->>'ts')::timestamptz - (t.last - (now() - interval '10 minutes')) AS ts,
	   l.doc->'props' AS props, NULL::text AS bad
  FROM lines l, t
 ORDER BY l.n;
DROP TABLE lines;
UPDATE src SET bad = (ARRAY['event_id', 'user_id', 'session_id', 'event_type', 'ts', 'ts_future',
							'ts_old', 'page_url', 'props'])[(n / 100) % 9 + 1]
 WHERE n % 100 = 37;
UPDATE src SET event_id = CASE WHEN bad = 'event_id' THEN NULL ELSE event_id END,
			   user_id = CASE WHEN bad = 'user_id' THEN NULL ELSE user_id END,
			   session_id = CASE WHEN bad = 'session_id' THEN NULL ELSE session_id END,
			   event_type = CASE WHEN bad = 'event_type' THEN 'page-view' ELSE event_type END,
			   ts = CASE bad WHEN 'ts' THEN NULL WHEN 'ts_future' THEN now() + interval '1 day'
							 WHEN 'ts_old' THEN ts - interval '30 days' ELSE ts END,
			   page_url = CASE WHEN bad = 'page_url' THEN 'javascript:alert(document.cookie)' ELSE page_url END,
			   props = CASE WHEN bad = 'props' THEN '["not", "an", "object"]' ELSE props END
 WHERE bad IS NOT NULL;
VACUUM FULL src;
VACUUM ANALYZE src;
CHECKPOINT;
SQL
bad=$(psql_b -c "SELECT count(*) FROM src WHERE bad IS NOT NULL")
note "$N rows, $bad of them breaking a rule"

C_RESET="DELETE FROM camperso.quarantine WHERE ruleset = 'clickstream'; TRUNCATE camperso.dedupe_keys, camperso.validation_counts"
declare -A RESET=(
	[heap_none]="TRUNCATE heap_none"
	[heap_camperso]="TRUNCATE heap_camperso; $C_RESET"
	[none]="TRUNCATE sv_none.events"
	[camperso]="TRUNCATE sv_camperso.events; $C_RESET"
	[plpgsql]="TRUNCATE sv_plpgsql.events, pl_dedupe; DELETE FROM camperso.quarantine WHERE ruleset = 'plpgsql'"
	[noop]="TRUNCATE sv_noop.events"
	[heap_noop]="TRUNCATE heap_noop"
)
declare -A TABLE=([heap_none]=heap_none [heap_camperso]=heap_camperso [none]=sv_none.events
	[camperso]=sv_camperso.events [plpgsql]=sv_plpgsql.events [noop]=sv_noop.events [heap_noop]=heap_noop)
ORDER=(heap_none heap_noop heap_camperso none noop camperso plpgsql)
declare -A TIMES CPU M C
for r in $(seq 1 "$RUNS"); do
	line="run $r:"
	for w in "${ORDER[@]}"; do
		# state cleared, and a fresh session: the trigger's dedupe keys
		# live in the backend and in camperso.dedupe_keys
		psql_b -c "${RESET[$w]}" -c "VACUUM camperso.quarantine" -c "CHECKPOINT" >/dev/null
		# wall time from psql; the backend's CPU time (utime + stime) from
		# /proc around the statement, steadier when the cores are shared
		out=$(printf '%s\n' 'SELECT pg_backend_pid() AS pid \gset' '\setenv BACKEND :pid' \
			"\\! awk '{ print \"cpu\", \$14 + \$15 }' /proc/\$BACKEND/stat" '\timing on' \
			"INSERT INTO ${TABLE[$w]} ($COLS) SELECT $COLS FROM src;" '\timing off' \
			"\\! awk '{ print \"cpu\", \$14 + \$15 }' /proc/\$BACKEND/stat" | psql_b)
		ms=$(awk '/^Time: / { print $2 }' <<<"$out")
		cpu=$(awk -v hz="$(getconf CLK_TCK)" '/^cpu / { t[++n] = $2 } END { if (n == 2) print (t[2] - t[1]) * 1000 / hz }' <<<"$out")
		[ -n "$ms" ] && [ -n "$cpu" ] || fail "no timing for $w in run $r: $out"
		TIMES[$w]="${TIMES[$w]} $ms"
		CPU[$w]="${CPU[$w]} $cpu"
		line="$line $w ${ms} ms (cpu ${cpu} ms)"
	done
	echo "$line"
done

# Both triggers did the same: the same rows landed, the same rows
# quarantined for the same rule and field, every bad row quarantined.
diff=$(psql_b -c "SELECT (SELECT count(*) FROM (SELECT $COLS FROM sv_camperso.events EXCEPT ALL SELECT $COLS FROM sv_plpgsql.events) a)
						 + (SELECT count(*) FROM (SELECT $COLS FROM sv_plpgsql.events EXCEPT ALL SELECT $COLS FROM sv_camperso.events) b)")
[ "$diff" = 0 ] || fail "the C and PL/pgSQL triggers landed different rows ($diff differ)"
qc=$(psql_b -c "SELECT string_agg(rule || '/' || field || ' ' || n, ', ' ORDER BY rule, field)
				  FROM (SELECT rule, field, count(*) n FROM camperso.quarantine WHERE ruleset = 'clickstream' GROUP BY 1, 2) q")
qp=$(psql_b -c "SELECT string_agg(rule || '/' || field || ' ' || n, ', ' ORDER BY rule, field)
				  FROM (SELECT rule, field, count(*) n FROM camperso.quarantine WHERE ruleset = 'plpgsql' GROUP BY 1, 2) q")
[ "$qc" = "$qp" ] || fail "the triggers quarantined differently: camperso [$qc], plpgsql [$qp]"
nq=$(psql_b -c "SELECT count(*) FROM camperso.quarantine WHERE ruleset = 'clickstream'")
[ "$nq" = "$bad" ] || fail "camperso quarantined $nq rows, $bad break a rule"
counts=$(psql_b -c "SELECT string_agg(received || ' ' || landed || ' ' || quarantined || ' ' || deduplicated, ', ') FROM camperso.stat_validation")
landed=$(psql_b -c "SELECT count(*) FROM sv_camperso.events")
note "both triggers: $landed landed, $nq quarantined ($qc), $((N - landed - nq)) duplicates; stat_validation: $counts"

over() { awk -v c="$1" -v b="$2" 'BEGIN { printf "%.1f", (c / b - 1) * 100 }'; }
speed() { awk -v c="$1" -v p="$2" 'BEGIN { printf "%.2f", p / c }'; }
per_row() { awk -v t="$1" -v b="$2" -v n="$N" 'BEGIN { printf "%.2f", (t - b) * 1000 / n }'; }
for w in "${ORDER[@]}"; do
	M[$w]=$(bench_median "${TIMES[$w]}")
	C[$w]=$(bench_median "${CPU[$w]}")
done
echo "validate: $N rows, median of $RUNS runs (load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores)"
printf '  %-52s %10s %12s %22s\n' "" "wall ms" "backend CPU" "us/row over no trigger"
row() { # side, label, baseline side
	printf '  %-52s %10s %12s' "$2" "${M[$1]}" "${C[$1]}"
	[ -n "$3" ] && printf ' %10s %10s' "$(per_row "${M[$1]}" "${M[$3]}")" "$(per_row "${C[$1]}" "${C[$3]}")"
	echo
}
row none "model staging table, no trigger" ""
row noop "model staging table, empty C trigger (the floor)" none
row camperso "model staging table, camperso.validate_row()" none
row plpgsql "model staging table, PL/pgSQL trigger" none
row heap_none "plain heap table, no trigger" ""
row heap_noop "plain heap table, empty C trigger (the floor)" heap_none
row heap_camperso "plain heap table, camperso.validate_row()" heap_none
echo "  C trigger overhead over no trigger: +$(over "${M[camperso]}" "${M[none]}")% wall, +$(over "${C[camperso]}" "${C[none]}")% CPU into the model's staging table; +$(over "${M[heap_camperso]}" "${M[heap_none]}")% wall, +$(over "${C[heap_camperso]}" "${C[heap_none]}")% CPU into a plain heap (target <= +25%)"
echo "  empty C trigger (PostgreSQL's row trigger machinery alone): +$(over "${C[noop]}" "${C[none]}")% CPU into the model's staging table, +$(over "${C[heap_noop]}" "${C[heap_none]}")% into a plain heap; validate_row() over it: +$(over "${C[camperso]}" "${C[noop]}")%, +$(over "${C[heap_camperso]}" "${C[heap_noop]}")%"
echo "  PL/pgSQL / C trigger: $(speed "${M[camperso]}" "${M[plpgsql]}")x wall, $(speed "${C[camperso]}" "${C[plpgsql]}")x CPU (target >= 5x)"
if [ -n "${BENCH_RESULTS:-}" ]; then
	for unit in wall cpu; do
		[ $unit = wall ] && declare -n V=M || declare -n V=C
		label=$([ $unit = wall ] && echo "wall ms" || echo "backend CPU ms")
		echo "validate: C trigger vs no trigger into the model's staging table, $N rows ($label)|${V[camperso]}|${V[none]}|+$(over "${V[camperso]}" "${V[none]}")%|<= +25%" >>"$BENCH_RESULTS"
		echo "validate: C trigger vs no trigger into a plain heap, $N rows ($label)|${V[heap_camperso]}|${V[heap_none]}|+$(over "${V[heap_camperso]}" "${V[heap_none]}")%|<= +25%" >>"$BENCH_RESULTS"
		echo "validate: empty C trigger vs no trigger into the model's staging table, $N rows ($label)|${V[noop]}|${V[none]}|+$(over "${V[noop]}" "${V[none]}")%|floor" >>"$BENCH_RESULTS"
		echo "validate: C trigger vs PL/pgSQL trigger, $N rows ($label)|${V[camperso]}|${V[plpgsql]}|$(speed "${V[camperso]}" "${V[plpgsql]}")x|>= 5x" >>"$BENCH_RESULTS"
		unset -n V
	done
fi
