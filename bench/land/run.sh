#!/usr/bin/env bash
# bench/land/run.sh — the land path of capture against plain COPY.
#
# 1,000,000 generated events (scaled by BENCH_SCALE), clean, go
#   (a) through camperso.ingest_batch() in batches of 10,000 into a typed
#       staging table with _raw and _received_at, quarantine active, and
#   (b) through plain COPY of the same JSON lines into a one-column jsonb
#       table (the baseline: what loading JSON into Postgres costs anyway),
# in the same cluster and the same run, RUNS times each, alternating. The
# lines are loaded into the server beforehand (not timed): (a) is timed
# from the bytea[] batches to committed rows, (b) from the file to
# committed rows. Prints the median events/s of both and their ratio, and
# appends "what|camperso|baseline|ratio|target" to $BENCH_RESULTS if set.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/test/lib.sh"
source "$ROOT/bench/lib.sh"
set +u

RUNS=${RUNS:-3}
BATCH=10000
N=$(bench_scaled 1000000 10000)
[ -x "$ROOT/tools/camperso-gen" ] || make -s -C "$ROOT" tools/camperso-gen >/dev/null

W=$(bench_workdir land)
"$ROOT/tools/camperso-gen" --events "$N" --seed 11 --invalid-rate 0 --apps 4 >"$W/lines.json"
perl -ne 'chomp; print "\\\\x", unpack("H*", $_), "\n"' <"$W/lines.json" >"$W/lines.copy"
chmod 644 "$W"/*

conf=$W/bench.conf
cat "$ROOT/test/camperso.conf" >"$conf"
cat >>"$conf" <<CONF
shared_buffers = 1GB
max_wal_size = 8GB
checkpoint_timeout = 30min
wal_level = minimal
max_wal_senders = 0
CONF
cluster_create bench "$conf"
cluster_start bench
psql_b() { cluster_psql bench -d postgres "$@"; }

psql_b <<SQL
CREATE EXTENSION camperso;
CREATE TABLE events (
	event_id	uuid NOT NULL,
	user_id		text NOT NULL,
	session_id	text,
	app_id		text,
	event_type	text,
	page_url	text,
	referrer	text,
	user_agent	text,
	ip			inet,
	country		text,
	ts			timestamptz NOT NULL,
	props		jsonb,
	_raw		bytea,
	_received_at timestamptz
);
CREATE TABLE baseline (doc jsonb);
INSERT INTO camperso.sources (name, brokers, topic, target) VALUES ('bench', 'unused:9092', 'clicks', 'events');
CREATE TABLE lines (n bigserial, l bytea);
COPY lines (l) FROM '$W/lines.copy';
-- as a client would send them: uncompressed (pglz is no part of the land path)
CREATE TABLE batches (b bigint, ls bytea[]);
ALTER TABLE batches ALTER ls SET STORAGE EXTERNAL;
INSERT INTO batches SELECT (n - 1) / $BATCH, array_agg(l ORDER BY n) FROM lines GROUP BY 1;
VACUUM ANALYZE batches;
CHECKPOINT;
SQL

# All runs in one session, so both sides meet the same warmed backend (its
# first touch of each shared buffer is a page fault, paid once). psql's
# \timing reports each statement's time.
{
	echo '\timing on'
	for r in $(seq 1 "$RUNS"); do
		echo "TRUNCATE events; TRUNCATE baseline; DELETE FROM camperso.quarantine WHERE source = 'bench';"
		echo "CHECKPOINT;"
		echo "\\echo ours"
		echo "SELECT sum(landed), sum(quarantined) FROM batches, LATERAL camperso.ingest_batch('bench', ls);"
		echo "CHECKPOINT;"
		echo "\\echo copy"
		echo "COPY baseline (doc) FROM '$W/lines.json' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02');"
		echo "\\echo counts"
		echo "SELECT (SELECT count(*) FROM events) || ' ' || (SELECT count(*) FROM baseline);"
	done
} >"$W/runs.sql"
psql_b -f "$W/runs.sql" >"$W/runs.out"
ours=()
base=()
r=0
while read -r kind ms; do
	case $kind in
	ours) ours+=("$(awk -v n="$N" -v t="$ms" 'BEGIN { printf "%d", n / (t / 1000) }')") ;;
	copy) base+=("$(awk -v n="$N" -v t="$ms" 'BEGIN { printf "%d", n / (t / 1000) }')")
		r=$((r + 1))
		echo "run $r: ingest_batch ${ours[-1]} events/s, COPY jsonb ${base[-1]} events/s" ;;
	esac
done < <(awk '/^(ours|copy|counts)$/ { k = $1; next } /^Time: / && k != "" { if (k != "counts") print k, $2; k = "" }' "$W/runs.out")
bad=$(grep -E '^[0-9]+ [0-9]+$' "$W/runs.out" | grep -vc "^$N $N\$" || true)
[ "$bad" = 0 ] || fail "a run did not load all $N events: $(grep -E '^[0-9]+ [0-9]+$' "$W/runs.out" | tr '\n' ' ')"
[ ${#ours[@]} -eq "$RUNS" ] && [ ${#base[@]} -eq "$RUNS" ] || fail "could not read the timings: $(cat "$W/runs.out")"

median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
mo=$(median "${ours[@]}")
mb=$(median "${base[@]}")
ratio=$(awk -v a="$mo" -v b="$mb" 'BEGIN { printf "%.2f", a / b }')
echo "land path: $N events, median of $RUNS: ingest_batch -> typed staging with _raw $mo events/s; COPY -> jsonb $mb events/s; ratio ${ratio}x (target >= 1.0x)"
if [ -n "${BENCH_RESULTS:-}" ]; then
	echo "land: ingest_batch into typed staging (+_raw) vs COPY into jsonb, $N events|$mo ev/s|$mb ev/s|${ratio}x|>= 1.0x" >>"$BENCH_RESULTS"
fi
