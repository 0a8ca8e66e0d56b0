-- Prometheus metrics: camperso.metrics() in the text exposition format, and
-- the exporter's queries file generated from the same catalog.
\set SHOW_CONTEXT never

INSERT INTO camperso.runs (job, inputs, outputs, rows_in, rows_out, started_at, ended_at, status, error) VALUES
	('test_metrics.load', '{}', '{}', 10, 5, '2030-01-01 00:00:00+00', '2030-01-01 00:00:02+00', 'success', NULL),
	('test_metrics.load', '{}', '{}', 20, 7, '2030-01-01 00:01:00+00', '2030-01-01 00:01:03.5+00', 'success', NULL),
	('test_metrics.load', '{}', '{}', 4, NULL, '2030-01-01 00:02:00+00', '2030-01-01 00:02:01+00', 'failed', 'boom'),
	(E'test_metrics."odd"\\job\nname', '{}', '{}', NULL, NULL, '2030-01-01 00:00:00+00', NULL, 'running', NULL);
INSERT INTO camperso.quarantine (source, target, payload, rule, reason)
SELECT 'test_metrics_src', 'public.t', '\x00', CASE WHEN i <= 3 THEN 'required' ELSE 'type' END, 'test'
  FROM generate_series(1, 4) i;

CREATE TEMP TABLE m AS
	SELECT n, line FROM regexp_split_to_table(camperso.metrics(), E'\n') WITH ORDINALITY AS x(line, n);

-- The samples of the test's runs and quarantine rows.
SELECT line FROM m WHERE line LIKE '%test_metrics%' AND line !~ '^camperso_run_last_(success|end)_timestamp' ORDER BY n;
-- Timestamps are Unix seconds of the run's end.
SELECT line FROM m WHERE line LIKE 'camperso_run_last_%timestamp_seconds{job="test_metrics.load"}%' ORDER BY n;
SELECT to_timestamp(1893456063.5) AT TIME ZONE 'UTC' AS last_success;

-- The format: HELP then TYPE once per family, before its samples; counters
-- end in _total; every sample line is name{labels} value.
SELECT count(*) FILTER (WHERE line LIKE '# HELP %') AS help_lines,
	   count(*) FILTER (WHERE line LIKE '# TYPE %') AS type_lines,
	   count(DISTINCT split_part(line, ' ', 3)) FILTER (WHERE line LIKE '# TYPE %') AS families
  FROM m;
SELECT line AS bad_line FROM m
 WHERE line <> '' AND line NOT LIKE '# HELP camperso_% %' AND line NOT LIKE '# TYPE camperso_% %'
   AND line !~ '^camperso_[a-zA-Z0-9_]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\["\\n])*"(,|(?=\})))*\})? (-?[0-9.]+(e[-+]?[0-9]+)?|NaN|[+-]Inf)$';
SELECT split_part(line, ' ', 3) AS counter_without_total FROM m
 WHERE line LIKE '# TYPE % counter' AND split_part(line, ' ', 3) NOT LIKE '%\_total';
SELECT split_part(line, ' ', 3) AS bad_type FROM m
 WHERE line LIKE '# TYPE %' AND split_part(line, ' ', 4) NOT IN ('counter', 'gauge');
WITH fam AS (
	SELECT split_part(line, ' ', 3) AS family, min(n) FILTER (WHERE line LIKE '# HELP %') AS help_at,
		   min(n) FILTER (WHERE line LIKE '# TYPE %') AS type_at
	  FROM m WHERE line LIKE '# %' GROUP BY 1
), samples AS (
	SELECT substring(line FROM '^[a-zA-Z0-9_]+') AS family, n FROM m WHERE line ~ '^camperso_'
)
SELECT s.family AS out_of_place, s.n FROM samples s LEFT JOIN fam f USING (family)
 WHERE f.type_at IS NULL OR f.help_at > f.type_at OR s.n < f.type_at
    OR EXISTS (SELECT FROM m o WHERE o.n > f.type_at AND o.n < s.n AND o.line LIKE '# TYPE %');
SELECT right(camperso.metrics(), 1) = E'\n' AS ends_with_newline;

-- Label escaping and values.
SELECT camperso.prometheus_label(E'a"b\\c\nd') AS label, camperso.prometheus_label(NULL) AS null_label;
SELECT camperso.prometheus_value(v) AS value
  FROM unnest(ARRAY['1'::jsonb, '1.5', 'true', 'false', 'null', '"Infinity"', '"-Infinity"', '"x"', '12345678901234']) v;

-- Counts match the tables.
SELECT (SELECT substring(line FROM ' (\S+)$') FROM m
		 WHERE line = 'camperso_quarantine_rows{rule="required",source="test_metrics_src"} 3') = '3' AS quarantine_matches,
	   (SELECT count(*) FROM camperso.quarantine WHERE source = 'test_metrics_src' AND rule = 'required') AS in_table;

-- pg_monitor reads every family; a view that cannot be read is counted,
-- not fatal.
SELECT line FROM m WHERE line LIKE 'camperso_metrics_errors %';
CREATE ROLE regress_observe_monitor IN ROLE pg_monitor;
CREATE ROLE regress_observe_nobody;
GRANT USAGE ON SCHEMA camperso TO regress_observe_nobody;
GRANT EXECUTE ON FUNCTION camperso.metrics(), camperso.metric_catalog(), camperso.prometheus_label(text),
	camperso.prometheus_value(jsonb) TO regress_observe_nobody;
SET ROLE regress_observe_monitor;
SELECT line FROM regexp_split_to_table(camperso.metrics(), E'\n') line
 WHERE line LIKE 'camperso_metrics_errors %' OR line LIKE '%test_metrics_src%';
SELECT count(*) AS runs_visible FROM camperso.runs;
RESET ROLE;
SET ROLE regress_observe_nobody;
SELECT line FROM regexp_split_to_table(camperso.metrics(), E'\n') line
 WHERE line LIKE 'camperso_metrics_errors %' OR line LIKE '%test_metrics%';
RESET ROLE;
REVOKE ALL ON FUNCTION camperso.metrics(), camperso.metric_catalog(), camperso.prometheus_label(text),
	camperso.prometheus_value(jsonb) FROM regress_observe_nobody;
REVOKE USAGE ON SCHEMA camperso FROM regress_observe_nobody;
DROP ROLE regress_observe_monitor, regress_observe_nobody;

-- The exporter's queries file, generated from the same catalog.
\a
SELECT camperso.exporter_queries();
\a

DELETE FROM camperso.runs WHERE job LIKE 'test_metrics%';
DELETE FROM camperso.quarantine WHERE source = 'test_metrics_src';
