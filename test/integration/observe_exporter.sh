#!/usr/bin/env bash
# The real prometheus-postgres-exporter, given camperso's queries file
# (contrib/prometheus/camperso-queries.yaml), serves camperso's figures on
# its /metrics over loopback, with the same names, labels and values as
# camperso.metrics(); the shipped file is the one camperso generates.
source "$(dirname "$0")/../lib.sh"

EXPORTER=/usr/bin/prometheus-postgres-exporter
QUERIES=$CAMPERSO_ROOT/contrib/prometheus/camperso-queries.yaml
[ -x "$EXPORTER" ] || skip "prometheus-postgres-exporter is not installed (tools/install-deps.sh installs it)"
command -v curl >/dev/null || skip "curl is not installed"

cluster_create exp
cluster_start exp
psql_exp() { cluster_psql exp -d postgres "$@"; }
psql_exp -c "CREATE EXTENSION camperso"

# The shipped queries file is exactly what the installed extension generates.
psql_exp -c "SELECT camperso.exporter_queries()" >"$CAMPERSO_TEST_WORK/generated.yaml"
diff -u "$QUERIES" "$CAMPERSO_TEST_WORK/generated.yaml" ||
	fail "contrib/prometheus/camperso-queries.yaml differs from camperso.exporter_queries(); regenerate it"
echo "ok - shipped queries file matches camperso.exporter_queries()"

# Figures to export: runs of two jobs (one with a hostile name) and
# quarantined rows.
psql_exp <<'SQL'
DO $$
DECLARE
	r uuid;
BEGIN
	FOR i IN 1..3 LOOP
		r := camperso.run_begin('exp.load', ARRAY['public.src'], ARRAY['public.dst']);
		PERFORM camperso.run_end(r, 'success', 10 * i, i);
	END LOOP;
	r := camperso.run_begin('exp.load');
	PERFORM camperso.run_end(r, 'failed', 1, NULL, 'boom');
	r := camperso.run_begin(E'exp "odd" \\ job\nx');
	PERFORM camperso.run_end(r, 'success', 0, 0);
END
$$;
INSERT INTO camperso.quarantine (source, target, payload, rule, reason)
SELECT 'clicks', 'public.events', '\x7b', CASE WHEN i % 3 = 0 THEN 'malformed_json' ELSE 'required' END, 'test'
  FROM generate_series(1, 30) i;
SQL

# A role that only monitors: the exporter's usual login.
psql_exp -c "CREATE ROLE exp_monitor LOGIN IN ROLE pg_monitor"

port=$(free_port)
DATA_SOURCE_NAME="postgresql://exp_monitor@127.0.0.1:$(cluster_port exp)/postgres?sslmode=disable" \
	"$EXPORTER" --extend.query-path="$QUERIES" --web.listen-address="127.0.0.1:$port" \
	--disable-settings-metrics --log.level=warn >"$CAMPERSO_TEST_WORK/exporter.log" 2>&1 &
exporter_pid=$!
# Stop the exporter first, keeping the test's exit status for lib.sh's cleanup.
trap '_rc=$?; kill $exporter_pid 2>/dev/null; wait $exporter_pid 2>/dev/null; (exit $_rc); _lib_cleanup' EXIT

scrape() { curl -fsS --max-time 10 "http://127.0.0.1:$port/metrics"; }
has_camperso() { scrape | grep -q '^camperso_runs_total{'; }
wait_for 30 "exporter serving camperso metrics on 127.0.0.1:$port" has_camperso
scrape >"$CAMPERSO_TEST_WORK/exporter.txt"
psql_exp -c "SELECT camperso.metrics()" >"$CAMPERSO_TEST_WORK/camperso.txt"

if grep -q 'pg_exporter_last_scrape_error 1' "$CAMPERSO_TEST_WORK/exporter.txt"; then
	cat "$CAMPERSO_TEST_WORK/exporter.log" >&2
	fail "the exporter reported a scrape error"
fi
echo "ok - exporter scraped without error"

# Samples as "name{sorted labels} value" with values normalised, the
# exporter's own "server" label dropped. Families that are not sampled by
# the exporter (camperso_metrics_errors) are left out.
normalise() {
	grep -E '^camperso_' "$1" | grep -v '^camperso_metrics_errors' | awk '
	{
		value = $NF
		series = substr($0, 1, length($0) - length(value) - 1)
		name = series; labels = ""
		i = index(series, "{")
		if (i > 0) {
			name = substr(series, 1, i - 1)
			labels = substr(series, i + 1, length(series) - i - 1)
		}
		# split labels on the commas between them (values are quoted and
		# may hold escaped quotes and commas)
		n = 0; cur = ""; inq = 0; esc = 0
		for (k = 1; k <= length(labels); k++) {
			c = substr(labels, k, 1)
			if (esc) { cur = cur c; esc = 0; continue }
			if (c == "\\") { cur = cur c; esc = 1; continue }
			if (c == "\"") inq = !inq
			if (c == "," && !inq) { part[++n] = cur; cur = ""; continue }
			cur = cur c
		}
		if (cur != "") part[++n] = cur
		out = ""
		for (k = 1; k <= n; k++) if (part[k] !~ /^server=/) out = out (out == "" ? "" : ",") part[k]
		if (value != "NaN") value = sprintf("%.10g", value + 0)
		print name "{" out "} " value
	}' | sort
}
normalise "$CAMPERSO_TEST_WORK/exporter.txt" >"$CAMPERSO_TEST_WORK/exporter.norm"
normalise "$CAMPERSO_TEST_WORK/camperso.txt" >"$CAMPERSO_TEST_WORK/camperso.norm"
diff -u "$CAMPERSO_TEST_WORK/camperso.norm" "$CAMPERSO_TEST_WORK/exporter.norm" ||
	fail "the exporter's camperso samples differ from camperso.metrics()"
samples=$(wc -l <"$CAMPERSO_TEST_WORK/exporter.norm")
[ "$samples" -ge 10 ] || fail "too few camperso samples from the exporter: $samples"
echo "ok - exporter and camperso.metrics() agree on $samples samples"

# The figures match the tables.
assert_eq 'camperso_runs_total{job="exp.load",status="success"} 3' \
	"$(grep '^camperso_runs_total{job="exp.load",status="success"' "$CAMPERSO_TEST_WORK/exporter.norm")" \
	"successful runs counted"
assert_eq 'camperso_run_rows_out_total{job="exp.load"} 6' \
	"$(grep '^camperso_run_rows_out_total{job="exp.load"}' "$CAMPERSO_TEST_WORK/exporter.norm")" \
	"rows written summed over successful runs"
assert_eq 'camperso_run_last_failed{job="exp.load"} 1' \
	"$(grep '^camperso_run_last_failed{job="exp.load"}' "$CAMPERSO_TEST_WORK/exporter.norm")" \
	"latest run of exp.load failed"
want=$(psql_exp -c "SELECT count(*) FROM camperso.quarantine WHERE source = 'clicks' AND rule = 'required'")
assert_eq "camperso_quarantine_rows{rule=\"required\",source=\"clicks\"} $want" \
	"$(grep '^camperso_quarantine_rows{rule="required",source="clicks"}' "$CAMPERSO_TEST_WORK/exporter.norm")" \
	"quarantined rows match the table"
grep -qF 'camperso_run_rows_out_total{job="exp \"odd\" \\ job\nx"} 0' "$CAMPERSO_TEST_WORK/exporter.norm" ||
	fail "hostile job name not escaped the same way by the exporter"
echo "ok - label values escaped identically"
grep -q '^# TYPE camperso_runs_total counter' "$CAMPERSO_TEST_WORK/exporter.txt" || fail "exporter lost the counter type"
grep -q '^# TYPE camperso_run_last_failed gauge' "$CAMPERSO_TEST_WORK/exporter.txt" || fail "exporter lost the gauge type"
echo "ok - counter and gauge types carried through"

# Figures move: a new failed run shows on the next scrape.
psql_exp -c "SELECT camperso.run_end(camperso.run_begin('exp.load'), 'failed', NULL, NULL, 'again')" >/dev/null
two_failed() { scrape | grep -q '^camperso_runs_total{.*job="exp.load".*status="failed".*} 2$'; }
wait_for 30 "exporter to show the second failed run" two_failed
echo "ok - a new run shows on the next scrape"
grep -m3 '^camperso_run_rows_out_total' "$CAMPERSO_TEST_WORK/exporter.txt" | sed 's/^/# exporter: /'
