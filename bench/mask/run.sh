#!/usr/bin/env bash
# bench/mask/run.sh — camperso.pseudonymize() against pgcrypto in one run.
#
# Hashes 1,000,000 ids (times BENCH_SCALE) with
#   camperso.pseudonymize(id)               keyed HMAC-SHA256, hex text
#   pgcrypto hmac(id, key, 'sha256')        keyed HMAC-SHA256, bytea
#   pgcrypto encode(hmac(...), 'hex')       the same as hex text (like for like)
#   pgcrypto digest(id, 'sha256')           plain SHA-256, unkeyed
# in the same server, interleaved, RUNS times each after a warm-up; prints
# the medians and the ratios (baseline time / camperso time) and appends
# rows "what|camperso|baseline|ratio|target" to $BENCH_RESULTS when set.
# Target: pseudonymize at least 1.5x as fast as pgcrypto's hmac.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SCALE=${BENCH_SCALE:-1.0}
RUNS=${BENCH_RUNS:-5}
N=$(awk -v s="$SCALE" 'BEGIN { n = int(1000000 * s); print (n < 1000 ? 1000 : n) }')

if [ ! -x "$ROOT/.tmp_install/usr/lib/postgresql/15/bin/postgres" ]; then
	bash "$ROOT/tools/private-install.sh" >/dev/null
fi
# shellcheck source=../../test/lib.sh
source "$ROOT/test/lib.sh"

cluster_create bench_mask
cluster_start bench_mask
psql_b() { cluster_psql bench_mask -d postgres "$@"; }

psql_b -c "CREATE EXTENSION camperso" -c "CREATE EXTENSION pgcrypto" >/dev/null
psql_b >/dev/null <<'SQL'
CREATE FUNCTION bench_ms(q text) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
BEGIN
	t0 := clock_timestamp();
	EXECUTE q;
	RETURN extract(epoch FROM clock_timestamp() - t0) * 1000;
END
$$;
CREATE TABLE bench_times (what text, run int, ms float8);
SQL

declare -A QUERIES=(
	[camperso]="SELECT count(camperso.pseudonymize(i::text)) FROM generate_series(1, $N) i"
	[hmac]="SELECT count(hmac(i::text, 'a bench key of thirty-two bytes!', 'sha256')) FROM generate_series(1, $N) i"
	[hmac_hex]="SELECT count(encode(hmac(i::text, 'a bench key of thirty-two bytes!', 'sha256'), 'hex')) FROM generate_series(1, $N) i"
	[digest]="SELECT count(digest(i::text, 'sha256')) FROM generate_series(1, $N) i"
)
ORDER=(camperso hmac hmac_hex digest)

# The results must agree: the pseudonym is HMAC-SHA256 under the derived key.
ok=$(psql_b -c "SELECT camperso.pseudonymize('42') = encode(hmac('42'::bytea, hmac('camperso pseudonymize'::bytea, key, 'sha256'), 'sha256'), 'hex') FROM camperso.keys")
[ "$ok" = t ] || fail "camperso.pseudonymize does not match pgcrypto's HMAC-SHA256"

echo "ids: $N, runs: $RUNS (medians), after one warm-up run each"
for w in "${ORDER[@]}"; do
	psql_b -c "SELECT bench_ms(\$q\$${QUERIES[$w]}\$q\$)" >/dev/null
done
for r in $(seq 1 "$RUNS"); do
	for w in "${ORDER[@]}"; do
		psql_b -c "INSERT INTO bench_times VALUES ('$w', $r, bench_ms(\$q\$${QUERIES[$w]}\$q\$))" >/dev/null
	done
done

median() {
	psql_b -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1) FROM bench_times WHERE what = '$1'"
}
cam=$(median camperso)
printf '%-34s %10s ms  (%s per id)\n' "camperso.pseudonymize" "$cam" \
	"$(awk -v t="$cam" -v n="$N" 'BEGIN { printf "%.0f ns", t * 1e6 / n }')"
row() {
	local what=$1 base=$2 label=$3 target=$4
	local ratio
	ratio=$(awk -v b="$base" -v c="$cam" 'BEGIN { printf "%.2f", b / c }')
	printf '%-34s %10s ms  ratio %sx  target %s\n' "$label" "$base" "$ratio" "$target"
	if [ -n "${BENCH_RESULTS:-}" ]; then
		echo "$what (ms per $N ids)|$cam|$base|${ratio}x|$target" >>"$BENCH_RESULTS"
	fi
}
row "pseudonymize vs pgcrypto hmac sha256" "$(median hmac)" "pgcrypto hmac(..., 'sha256')" ">= 1.5x"
row "pseudonymize vs pgcrypto hex(hmac sha256)" "$(median hmac_hex)" "pgcrypto encode(hmac(...), 'hex')" "-"
row "pseudonymize vs pgcrypto digest sha256" "$(median digest)" "pgcrypto digest(..., 'sha256')" "-"
