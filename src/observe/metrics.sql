-- observe/metrics.sql: Prometheus metrics. camperso.metrics() renders them
-- in the text exposition format; camperso.exporter_queries() renders the
-- queries file of prometheus-postgres-exporter (contrib/prometheus/) that
-- exports the same figures under the same names.
--
-- One catalog drives both: each metric family is a column of a metrics_*
-- view, and its name is <namespace>_<column>, which is exactly how the
-- exporter names a column of a query. The views are the privilege
-- boundary: pg_monitor may read them without reading the tables behind.

-- camperso.metric_catalog: every exported family. usage LABEL marks the
-- label columns of a view; COUNTER and GAUGE its figures.
CREATE FUNCTION camperso.metric_catalog(
	OUT namespace text, OUT view_name text, OUT column_name text, OUT usage text, OUT help text, OUT ord int)
RETURNS SETOF record
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
	SELECT c.namespace, c.view_name, c.column_name, c.usage, c.help, c.ord::int
	  FROM (VALUES
		('camperso_runs', 'camperso.metrics_runs', 'job', 'LABEL', 'Job name', 1),
		('camperso_runs', 'camperso.metrics_runs', 'status', 'LABEL', 'Run status: success or failed', 2),
		('camperso_runs', 'camperso.metrics_runs', 'total', 'COUNTER', 'Finished runs of camperso jobs (loads, maintenance, suites) by status', 3),

		('camperso_run', 'camperso.metrics_run', 'job', 'LABEL', 'Job name', 10),
		('camperso_run', 'camperso.metrics_run', 'running', 'GAUGE', 'Runs of the job in progress now', 11),
		('camperso_run', 'camperso.metrics_run', 'rows_in_total', 'COUNTER', 'Rows read by the successful runs of the job', 12),
		('camperso_run', 'camperso.metrics_run', 'rows_out_total', 'COUNTER', 'Rows written by the successful runs of the job', 13),
		('camperso_run', 'camperso.metrics_run', 'last_success_timestamp_seconds', 'GAUGE', 'End of the latest successful run of the job (Unix time)', 14),
		('camperso_run', 'camperso.metrics_run', 'last_end_timestamp_seconds', 'GAUGE', 'End of the latest finished run of the job (Unix time)', 15),
		('camperso_run', 'camperso.metrics_run', 'last_duration_seconds', 'GAUGE', 'Duration of the latest finished run of the job', 16),
		('camperso_run', 'camperso.metrics_run', 'last_failed', 'GAUGE', '1 when the latest finished run of the job failed, else 0', 17),

		('camperso_quarantine', 'camperso.metrics_quarantine', 'source', 'LABEL', 'Source name, empty for rows diverted outside a source', 20),
		('camperso_quarantine', 'camperso.metrics_quarantine', 'rule', 'LABEL', 'First rule the rows broke', 21),
		('camperso_quarantine', 'camperso.metrics_quarantine', 'rows', 'GAUGE', 'Rows held in camperso.quarantine', 22),

		('camperso_source', 'camperso.metrics_source', 'source', 'LABEL', 'Source name', 30),
		('camperso_source', 'camperso.metrics_source', 'partition', 'LABEL', 'Kafka partition', 31),
		('camperso_source', 'camperso.metrics_source', 'messages_total', 'COUNTER', 'Messages consumed and committed (landed or quarantined)', 32),
		('camperso_source', 'camperso.metrics_source', 'bytes_total', 'COUNTER', 'Payload bytes consumed and committed', 33),
		('camperso_source', 'camperso.metrics_source', 'quarantined_total', 'COUNTER', 'Messages diverted to the quarantine', 34),
		('camperso_source', 'camperso.metrics_source', 'deduplicated_total', 'COUNTER', 'Messages dropped as duplicates', 35),
		('camperso_source', 'camperso.metrics_source', 'batches_total', 'COUNTER', 'Batches committed', 36),
		('camperso_source', 'camperso.metrics_source', 'lag', 'GAUGE', 'Messages behind the high watermark', 37),
		('camperso_source', 'camperso.metrics_source', 'committed_offset', 'GAUGE', 'Offset of the next message to land', 38),
		('camperso_source', 'camperso.metrics_source', 'high_watermark', 'GAUGE', 'High watermark of the partition last seen', 39),
		('camperso_source', 'camperso.metrics_source', 'last_message_timestamp_seconds', 'GAUGE', 'Time of the newest message landed (Unix time)', 40),
		('camperso_source', 'camperso.metrics_source', 'last_commit_timestamp_seconds', 'GAUGE', 'Time of the latest batch commit (Unix time)', 41),

		('camperso_source_worker', 'camperso.metrics_source_worker', 'source', 'LABEL', 'Source name', 44),
		('camperso_source_worker', 'camperso.metrics_source_worker', 'enabled', 'GAUGE', '1 when the source is enabled', 45),
		('camperso_source_worker', 'camperso.metrics_source_worker', 'running', 'GAUGE', '1 when the source''s worker is consuming', 46),
		('camperso_source_worker', 'camperso.metrics_source_worker', 'errors_total', 'COUNTER', 'Errors counted by the source and its partitions', 47),
		('camperso_source_worker', 'camperso.metrics_source_worker', 'dlq_produced_total', 'COUNTER', 'Quarantined messages copied to the source''s dead-letter topic', 48),
		('camperso_source_worker', 'camperso.metrics_source_worker', 'dlq_failed_total', 'COUNTER', 'Copies to the dead-letter topic that failed (the quarantine keeps the message)', 49),

		('camperso_freshness', 'camperso.metrics_freshness', 'kind', 'LABEL', 'relation or source', 50),
		('camperso_freshness', 'camperso.metrics_freshness', 'name', 'LABEL', 'Qualified relation name or source name', 51),
		('camperso_freshness', 'camperso.metrics_freshness', 'lag_seconds', 'GAUGE', 'Seconds since the newest event of the relation or source', 52),
		('camperso_freshness', 'camperso.metrics_freshness', 'sla_seconds', 'GAUGE', 'Freshness SLA of the relation or source in seconds', 53),
		('camperso_freshness', 'camperso.metrics_freshness', 'breached', 'GAUGE', '1 when the freshness SLA is breached, else 0', 54),

		('camperso_quality', 'camperso.metrics_quality', 'kind', 'LABEL', 'rule (validation) or expectation (post-load suite)', 56),
		('camperso_quality', 'camperso.metrics_quality', 'ruleset', 'LABEL', 'Ruleset, or suite', 57),
		('camperso_quality', 'camperso.metrics_quality', 'rule', 'LABEL', 'Rule, or expectation kind', 58),
		('camperso_quality', 'camperso.metrics_quality', 'field', 'LABEL', 'Field, or expectation column', 59),
		('camperso_quality', 'camperso.metrics_quality', 'relation', 'LABEL', 'Relation of the expectation', 60),
		('camperso_quality', 'camperso.metrics_quality', 'checked_total', 'COUNTER', 'Messages or rows checked by the ruleset, or runs of the expectation', 61),
		('camperso_quality', 'camperso.metrics_quality', 'passed_total', 'COUNTER', 'Checked and not failed on this rule or expectation', 62),
		('camperso_quality', 'camperso.metrics_quality', 'failed_total', 'COUNTER', 'Quarantined on this rule (duplicates for unique), or failed runs of the expectation', 63),
		('camperso_quality', 'camperso.metrics_quality', 'pass_rate', 'GAUGE', 'passed / checked, all time', 64),
		('camperso_quality', 'camperso.metrics_quality', 'pass_rate_1h', 'GAUGE', 'passed / checked over the last hour', 65),

		('camperso_alerts', 'camperso.metrics_alerts', 'kind', 'LABEL', 'Alert kind', 70),
		('camperso_alerts', 'camperso.metrics_alerts', 'severity', 'LABEL', 'Alert severity', 71),
		('camperso_alerts', 'camperso.metrics_alerts', 'active', 'GAUGE', 'Alerts active now (camperso.alerts) per kind and severity', 72)
	  ) AS c(namespace, view_name, column_name, usage, help, ord)
$$;
COMMENT ON FUNCTION camperso.metric_catalog() IS 'The metric families camperso exports: per metrics_* view, its label columns and its counters and gauges, with their help text';

-- ---------------------------------------------------------------------------
-- The views behind the families that only need the core tables.
-- ---------------------------------------------------------------------------
CREATE VIEW camperso.metrics_runs AS
	SELECT r.job, r.status, count(*) AS total
	  FROM camperso.runs r
	 WHERE r.status IN ('success', 'failed')
	 GROUP BY r.job, r.status;
COMMENT ON VIEW camperso.metrics_runs IS 'Metric family camperso_runs_total: finished runs per job and status';

CREATE VIEW camperso.metrics_run AS
	WITH per_job AS (
		SELECT r.job,
			   count(*) FILTER (WHERE r.status = 'running') AS running,
			   coalesce(sum(r.rows_in) FILTER (WHERE r.status = 'success'), 0) AS rows_in_total,
			   coalesce(sum(r.rows_out) FILTER (WHERE r.status = 'success'), 0) AS rows_out_total,
			   max(r.ended_at) FILTER (WHERE r.status = 'success') AS last_success
		  FROM camperso.runs r
		 GROUP BY r.job
	), last_run AS (
		SELECT DISTINCT ON (r.job) r.job, r.started_at, r.ended_at, r.status
		  FROM camperso.runs r
		 WHERE r.status <> 'running' AND r.ended_at IS NOT NULL
		 ORDER BY r.job, r.ended_at DESC
	)
	SELECT j.job, j.running, j.rows_in_total, j.rows_out_total,
		   extract(epoch FROM j.last_success) AS last_success_timestamp_seconds,
		   extract(epoch FROM l.ended_at) AS last_end_timestamp_seconds,
		   extract(epoch FROM l.ended_at - l.started_at) AS last_duration_seconds,
		   CASE l.status WHEN 'failed' THEN 1 WHEN 'success' THEN 0 END AS last_failed
	  FROM per_job j
	  LEFT JOIN last_run l ON l.job = j.job;
COMMENT ON VIEW camperso.metrics_run IS 'Metric families camperso_run_*: per job, runs in progress, rows read and written, and its latest run';

CREATE VIEW camperso.metrics_quarantine AS
	SELECT coalesce(q.source, '') AS source, q.rule, count(*) AS rows
	  FROM camperso.quarantine q
	 GROUP BY coalesce(q.source, ''), q.rule;
COMMENT ON VIEW camperso.metrics_quarantine IS 'Metric family camperso_quarantine_rows: rows held in the quarantine per source and rule';

-- ---------------------------------------------------------------------------
-- Rendering.
-- ---------------------------------------------------------------------------

-- A label value in the exposition format: backslash, double quote and
-- newline escaped.
CREATE FUNCTION camperso.prometheus_label(value text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
	SELECT '"' || replace(replace(replace(coalesce(value, ''), E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n') || '"'
$$;
COMMENT ON FUNCTION camperso.prometheus_label(text) IS 'A label value quoted and escaped for the Prometheus text exposition format';

-- A sample value: JSON number as is, booleans as 1/0, NULL as NaN.
CREATE FUNCTION camperso.prometheus_value(value jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
	SELECT CASE jsonb_typeof(value)
		WHEN 'number' THEN trim_scale(value::text::numeric)::text
		WHEN 'boolean' THEN CASE WHEN value::text = 'true' THEN '1' ELSE '0' END
		WHEN 'string' THEN CASE lower(value #>> '{}')
							   WHEN 'infinity' THEN '+Inf' WHEN '-infinity' THEN '-Inf' ELSE 'NaN' END
		ELSE 'NaN'
	END
$$;
COMMENT ON FUNCTION camperso.prometheus_value(jsonb) IS 'A sample value for the Prometheus text exposition format (NULL becomes NaN, as the exporter writes it)';

CREATE FUNCTION camperso.metrics()
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
	v record;
	fam record;
	rows jsonb;
	labels text[];
	lines text[] := '{}';
	failed text[] := '{}';
	family text;
BEGIN
	FOR v IN
		SELECT c.namespace, c.view_name, min(c.ord) AS ord
		  FROM camperso.metric_catalog() c GROUP BY c.namespace, c.view_name ORDER BY 3
	LOOP
		-- A view that cannot be read now (a function needing the preload,
		-- a missing privilege) leaves its families without samples and is
		-- counted in camperso_metrics_errors, as the exporter does.
		BEGIN
			EXECUTE format('SELECT coalesce(jsonb_agg(to_jsonb(m)), ''[]'') FROM %s m', v.view_name) INTO rows;
		EXCEPTION WHEN OTHERS THEN
			rows := '[]';
			failed := failed || v.view_name;
		END;
		SELECT coalesce(array_agg(c.column_name ORDER BY c.column_name), '{}') INTO labels
		  FROM camperso.metric_catalog() c
		 WHERE c.view_name = v.view_name AND c.usage = 'LABEL';

		FOR fam IN
			SELECT c.column_name, c.usage, c.help
			  FROM camperso.metric_catalog() c
			 WHERE c.view_name = v.view_name AND c.usage <> 'LABEL'
			 ORDER BY c.ord
		LOOP
			family := v.namespace || '_' || fam.column_name;
			lines := lines
				|| format('# HELP %s %s', family, replace(replace(fam.help, E'\\', E'\\\\'), E'\n', E'\\n'))
				|| format('# TYPE %s %s', family, lower(fam.usage));
			lines := lines || coalesce((
				SELECT array_agg(s.line ORDER BY s.line)
				  FROM (SELECT family
							   || CASE WHEN cardinality(labels) = 0 THEN ''
									   ELSE '{' || (SELECT string_agg(l || '=' || camperso.prometheus_label(r ->> l), ',' ORDER BY l)
													  FROM unnest(labels) l) || '}' END
							   || ' ' || camperso.prometheus_value(r -> fam.column_name) AS line
						  FROM jsonb_array_elements(rows) r) s), '{}');
		END LOOP;
	END LOOP;

	lines := lines
		|| '# HELP camperso_metrics_errors Metric views that could not be read in this scrape'::text
		|| '# TYPE camperso_metrics_errors gauge'::text
		|| ('camperso_metrics_errors ' || cardinality(failed));
	RETURN array_to_string(lines, E'\n') || E'\n';
END
$$;
COMMENT ON FUNCTION camperso.metrics() IS 'camperso''s figures (runs, quarantine, sources, freshness, quality, alerts) in the Prometheus text exposition format, under the names the exporter queries file uses';

-- A YAML double-quoted scalar.
CREATE FUNCTION camperso.yaml_quote(value text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog
AS $$
	SELECT '"' || replace(replace(replace(value, E'\\', E'\\\\'), '"', E'\\"'), E'\n', E'\\n') || '"'
$$;
COMMENT ON FUNCTION camperso.yaml_quote(text) IS 'A string as a YAML double-quoted scalar';

CREATE FUNCTION camperso.exporter_queries()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
	WITH views AS (
		SELECT c.namespace, c.view_name, min(c.ord) AS ord,
			   string_agg(c.column_name, ', ' ORDER BY c.ord) AS columns
		  FROM camperso.metric_catalog() c
		 GROUP BY c.namespace, c.view_name
	)
	SELECT rtrim('# prometheus-postgres-exporter queries for camperso ' || camperso.version() || E'\n'
		|| E'# Generated by SELECT camperso.exporter_queries(); do not edit by hand.\n'
		|| E'# Use: prometheus-postgres-exporter --extend.query-path=<this file>\n'
		|| E'# The connecting role needs pg_monitor (or camperso_admin) in the database\n'
		|| E'# where the camperso extension is installed.\n'
		|| string_agg(
			E'\n' || v.namespace || E':\n'
			|| '  query: ' || camperso.yaml_quote(format('SELECT %s FROM %s', v.columns, v.view_name)) || E'\n'
			|| E'  master: true\n'
			|| E'  metrics:\n'
			|| (SELECT string_agg(format(E'    - %s:\n        usage: %s\n        description: %s\n',
										 c.column_name, camperso.yaml_quote(c.usage), camperso.yaml_quote(c.help)),
								  '' ORDER BY c.ord)
				  FROM camperso.metric_catalog() c
				 WHERE c.view_name = v.view_name),
			'' ORDER BY v.ord), E'\n')
	  FROM views v
$$;
COMMENT ON FUNCTION camperso.exporter_queries() IS 'The queries file (YAML) of prometheus-postgres-exporter that exports camperso''s figures under the names camperso.metrics() uses';

-- The exporter connects as a pg_monitor member: it needs the schema, then
-- only the metrics_* views and the rendering functions.
GRANT USAGE ON SCHEMA camperso TO pg_monitor;
GRANT EXECUTE ON FUNCTION camperso.version() TO pg_monitor;
REVOKE ALL ON camperso.metrics_runs, camperso.metrics_run, camperso.metrics_quarantine FROM PUBLIC;
GRANT SELECT ON camperso.metrics_runs, camperso.metrics_run, camperso.metrics_quarantine TO camperso_admin, pg_monitor;
REVOKE ALL ON FUNCTION camperso.metric_catalog(), camperso.prometheus_label(text), camperso.prometheus_value(jsonb),
	camperso.metrics(), camperso.yaml_quote(text), camperso.exporter_queries() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camperso.metric_catalog(), camperso.prometheus_label(text), camperso.prometheus_value(jsonb),
	camperso.metrics(), camperso.yaml_quote(text), camperso.exporter_queries() TO camperso_admin, pg_monitor;
