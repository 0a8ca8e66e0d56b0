#!/usr/bin/env bash
# bench/run.sh — `make bench`: runs every bench/<name>/run.sh in turn. Each
# prints its figures and appends rows "what|camperso|baseline|ratio|target"
# to $BENCH_RESULTS; this script prints them as one table and writes
# bench/results.md and bench/results.csv. BENCH_SCALE (default 1.0) scales
# the sizes; BENCH_SCALE=0.1 is the quick run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export BENCH_SCALE=${BENCH_SCALE:-1.0}
export BENCH_RESULTS
BENCH_RESULTS=$(mktemp)
trap 'rm -f "$BENCH_RESULTS"' EXIT

bash "$ROOT/tools/install-deps.sh"
bash "$ROOT/tools/private-install.sh"

shopt -s nullglob
benches=("$ROOT"/bench/*/run.sh)
if [ ${#benches[@]} -eq 0 ]; then
	echo "no benchmarks under bench/ yet"
	exit 0
fi
for b in "${benches[@]}"; do
	echo "== $(basename "$(dirname "$b")")"
	bash "$b"
done

{
	echo "| what | camperso | baseline | ratio | target |"
	echo "|---|---|---|---|---|"
	awk -F'|' '{ printf "|"; for (i = 1; i <= NF; i++) printf " %s |", $i; print "" }' "$BENCH_RESULTS"
	echo
	echo "Measured $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, BENCH_SCALE=$BENCH_SCALE."
} >"$ROOT/bench/results.md"
{
	echo "what,camperso,baseline,ratio,target"
	# RFC 4180: every field quoted, inner quotes doubled
	awk -F'|' '{ for (i = 1; i <= NF; i++) { gsub(/"/, "\"\"", $i); printf "%s\"%s\"", (i > 1 ? "," : ""), $i } print "" }' "$BENCH_RESULTS"
} >"$ROOT/bench/results.csv"
cat "$ROOT/bench/results.md"
