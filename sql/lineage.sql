-- Lineage: camperso.runs rows become OpenLineage RunEvents with the fields
-- the OpenLineage spec requires.
\set SHOW_CONTEXT never

-- The check of required fields (OpenLineage 2-0-2 RunEvent, its Run, Job,
-- InputDataset/OutputDataset and BaseFacet, and the facets used): returns
-- one line per problem, nothing for a valid event.
CREATE FUNCTION pg_temp.ol_problems(e jsonb) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	uri text := '^[A-Za-z][A-Za-z0-9+.-]*:[^[:space:]]+$';
	ds jsonb;
	side text;
	f record;
	fld jsonb;
BEGIN
	IF jsonb_typeof(e) IS DISTINCT FROM 'object' THEN RETURN NEXT 'event is not an object'; RETURN; END IF;
	-- BaseEvent: eventTime (date-time), producer (uri), schemaURL (uri)
	IF jsonb_typeof(e -> 'eventTime') IS DISTINCT FROM 'string'
	   OR e ->> 'eventTime' !~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$' THEN
		RETURN NEXT 'eventTime missing or not RFC 3339';
	END IF;
	IF coalesce(e ->> 'producer', '') !~ uri THEN RETURN NEXT 'producer missing or not a URI'; END IF;
	IF coalesce(e ->> 'schemaURL', '') !~ '^https?://.+#/\$defs/RunEvent$' THEN RETURN NEXT 'schemaURL missing or not a RunEvent schema URL'; END IF;
	-- RunEvent: run, job required; eventType from the enum
	IF e ? 'eventType' AND e ->> 'eventType' NOT IN ('START', 'RUNNING', 'COMPLETE', 'ABORT', 'FAIL', 'OTHER') THEN
		RETURN NEXT 'eventType not in the enum';
	END IF;
	IF jsonb_typeof(e -> 'run') IS DISTINCT FROM 'object' THEN RETURN NEXT 'run missing'; END IF;
	IF coalesce(e #>> '{run,runId}', '') !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
		RETURN NEXT 'run.runId missing or not a UUID';
	END IF;
	IF jsonb_typeof(e -> 'job') IS DISTINCT FROM 'object' THEN RETURN NEXT 'job missing'; END IF;
	IF coalesce(e #>> '{job,namespace}', '') = '' THEN RETURN NEXT 'job.namespace missing'; END IF;
	IF coalesce(e #>> '{job,name}', '') = '' THEN RETURN NEXT 'job.name missing'; END IF;
	-- every facet: an object with _producer and _schemaURL (BaseFacet)
	FOR f IN
		SELECT 'run.facets.' || k AS path, v FROM jsonb_each(coalesce(e #> '{run,facets}', '{}')) AS x(k, v)
		UNION ALL
		SELECT 'job.facets.' || k, v FROM jsonb_each(coalesce(e #> '{job,facets}', '{}')) AS x(k, v)
		UNION ALL
		SELECT s || '.' || fk || '.' || k, v
		  FROM unnest(ARRAY['inputs', 'outputs']) AS s,
			   jsonb_array_elements(coalesce(e -> s, '[]')) AS d,
			   unnest(ARRAY['facets', 'inputFacets', 'outputFacets']) AS fk,
			   jsonb_each(coalesce(d -> fk, '{}')) AS x(k, v)
	LOOP
		IF jsonb_typeof(f.v) IS DISTINCT FROM 'object' THEN RETURN NEXT f.path || ' is not an object'; CONTINUE; END IF;
		IF coalesce(f.v ->> '_producer', '') !~ uri THEN RETURN NEXT f.path || '._producer missing'; END IF;
		IF coalesce(f.v ->> '_schemaURL', '') !~ uri THEN RETURN NEXT f.path || '._schemaURL missing'; END IF;
		IF f.path LIKE '%.errorMessage' AND (f.v ->> 'message' IS NULL OR f.v ->> 'programmingLanguage' IS NULL) THEN
			RETURN NEXT f.path || ' lacks message or programmingLanguage';
		END IF;
		IF f.path LIKE '%.outputStatistics' AND jsonb_typeof(f.v -> 'rowCount') IS DISTINCT FROM 'number' THEN
			RETURN NEXT f.path || '.rowCount missing';
		END IF;
		IF f.path LIKE '%.schema' THEN
			FOR fld IN SELECT * FROM jsonb_array_elements(coalesce(f.v -> 'fields', '[]')) LOOP
				IF coalesce(fld ->> 'name', '') = '' THEN RETURN NEXT f.path || '.fields[].name missing'; END IF;
			END LOOP;
		END IF;
	END LOOP;
	-- datasets: namespace and name
	FOREACH side IN ARRAY ARRAY['inputs', 'outputs'] LOOP
		IF e ? side AND jsonb_typeof(e -> side) <> 'array' THEN RETURN NEXT side || ' is not an array'; CONTINUE; END IF;
		FOR ds IN SELECT * FROM jsonb_array_elements(coalesce(e -> side, '[]')) LOOP
			IF coalesce(ds ->> 'namespace', '') = '' THEN RETURN NEXT side || '[].namespace missing'; END IF;
			IF coalesce(ds ->> 'name', '') = '' THEN RETURN NEXT side || '[].name missing'; END IF;
		END LOOP;
	END LOOP;
END
$$;

-- The checker itself catches broken events.
SELECT pg_temp.ol_problems('{"eventType": "DONE", "run": {"runId": "x"}, "job": {"name": "j"}, "inputs": [{"name": "t"}],
	"run": {"runId": "42", "facets": {"errorMessage": {"message": "m"}}}}') AS problem;

CREATE TABLE lineage_src (id int, label text);
COMMENT ON COLUMN lineage_src.label IS 'A label';
CREATE TABLE lineage_dst (id int, label text, n bigint);
CREATE TABLE lineage_dst2 (id int);

CREATE TEMP TABLE lr (name text PRIMARY KEY, run_id uuid);
INSERT INTO lr VALUES
	('ok', camperso.run_begin('test_lineage.load', ARRAY['public.lineage_src', 'kafka://127.0.0.1:9092/clicks'], ARRAY['public.lineage_dst'])),
	('failed', camperso.run_begin('test_lineage.load', ARRAY['public.lineage_src'], ARRAY['public.lineage_dst'])),
	('running', camperso.run_begin('test_lineage.maintenance', '{}', ARRAY['public.lineage_dst'])),
	('multi', camperso.run_begin('test_lineage.split', ARRAY['lineage_src'], ARRAY['public.lineage_dst', 'public.lineage_dst2', 'no_such_table']));
SELECT camperso.run_end((SELECT run_id FROM lr WHERE name = 'ok'), 'success', 10, 7);
SELECT camperso.run_end((SELECT run_id FROM lr WHERE name = 'failed'), 'failed', 3, NULL, 'division by zero');
SELECT camperso.run_end((SELECT run_id FROM lr WHERE name = 'multi'), 'success', 5, 9,
	details => '{"output_rows": {"public.lineage_dst": 4, "public.lineage_dst2": 5}}');

CREATE TEMP TABLE ev AS
	SELECT x.seq, x.e, lr.name AS run
	  FROM camperso.openlineage_events('-infinity') WITH ORDINALITY AS x(e, seq)
	  JOIN lr ON lr.run_id = (x.e #>> '{run,runId}')::uuid;

-- One START per run, one COMPLETE or FAIL per finished run, none for the running one.
SELECT run, string_agg(e ->> 'eventType', ',' ORDER BY seq) AS events FROM ev GROUP BY run ORDER BY run;
-- Every event carries the required fields.
SELECT run, e ->> 'eventType' AS type, p AS problem FROM ev, pg_temp.ol_problems(e) AS p ORDER BY seq;
SELECT count(*) AS valid_events FROM ev WHERE NOT EXISTS (SELECT FROM pg_temp.ol_problems(e));
-- Times are the run's start and end, in order.
SELECT bool_and((e ->> 'eventTime')::timestamptz = CASE WHEN e ->> 'eventType' = 'START' THEN r.started_at ELSE r.ended_at END)
	   AS times_match
  FROM ev JOIN lr ON lr.name = ev.run JOIN camperso.runs r ON r.run_id = lr.run_id;
SELECT bool_and(prev <= t) AS in_time_order
  FROM (SELECT (e ->> 'eventTime')::timestamptz AS t, lag((e ->> 'eventTime')::timestamptz) OVER (ORDER BY seq) AS prev FROM ev) s
 WHERE prev IS NOT NULL;
-- Job, datasets, and their names.
SELECT DISTINCT e #>> '{job,namespace}' AS job_ns, e #>> '{job,name}' AS job, e ->> 'producer' LIKE 'urn:camperso:%' AS producer_ok
  FROM ev ORDER BY job;
SELECT d ->> 'name' AS input, d ->> 'namespace' ~ '^postgres://[^/]+:[0-9]+$' AS pg_namespace, CASE WHEN d ->> 'namespace' !~ '^postgres:' THEN d ->> 'namespace' END AS ns_if_not_pg
  FROM ev, jsonb_array_elements(e -> 'inputs') d
 WHERE ev.run = 'ok' AND e ->> 'eventType' = 'START';
-- The schema facet lists the columns with types and comments.
SELECT jsonb_pretty(d #> '{facets,schema,fields}') AS src_fields
  FROM ev, jsonb_array_elements(e -> 'inputs') d
 WHERE ev.run = 'ok' AND e ->> 'eventType' = 'START' AND d ->> 'name' LIKE '%lineage_src';
-- Output row counts on the end event only; per output when the run says so.
SELECT run, e ->> 'eventType' AS type, d ->> 'name' AS output,
	   d #>> '{outputFacets,outputStatistics,rowCount}' AS row_count,
	   d ? 'facets' AS has_schema_facet
  FROM ev, jsonb_array_elements(e -> 'outputs') d
 ORDER BY seq, output;
SELECT run, d ->> 'name' AS input, d #>> '{inputFacets,inputStatistics,rowCount}' AS row_count
  FROM ev, jsonb_array_elements(e -> 'inputs') d
 WHERE e ->> 'eventType' <> 'START' ORDER BY seq, input;
-- The failure is described by the errorMessage run facet.
SELECT e #>> '{run,facets,errorMessage,message}' AS error, e #>> '{run,facets,errorMessage,programmingLanguage}' AS lang
  FROM ev WHERE e ->> 'eventType' = 'FAIL';

-- since: only events at or after it (the end events here).
SELECT count(*) AS after_ends
  FROM camperso.openlineage_events((SELECT min(ended_at) FROM camperso.runs r JOIN lr USING (run_id))) e
  JOIN lr ON lr.run_id = (e #>> '{run,runId}')::uuid;
SELECT count(*) AS in_future FROM camperso.openlineage_events(now() + interval '1 day');

-- The dataset namespace can be set.
SELECT camperso.set_observe_setting('lineage_namespace', 'postgres://warehouse.example:5432');
SELECT DISTINCT d ->> 'namespace' AS ns
  FROM camperso.openlineage_events() e JOIN lr ON lr.run_id = (e #>> '{run,runId}')::uuid, jsonb_array_elements(e -> 'outputs') d;
SELECT camperso.set_observe_setting('lineage_namespace', NULL) = '' AS reset;
SELECT camperso.set_observe_setting('no_such', 'x');
SELECT camperso.set_observe_setting('volume_window', 'soon');
SELECT camperso.set_observe_setting('volume_window', '-5 minutes');
SELECT camperso.set_observe_setting('volume_fraction', 'NaN');
SELECT camperso.openlineage_event(r, 'BOGUS') FROM camperso.runs r JOIN lr USING (run_id) WHERE lr.name = 'ok';
-- A hostile job name or dataset name stays data.
SELECT camperso.run_end(camperso.run_begin(E'job "with" \\ quotes\n', ARRAY['x"; DROP TABLE lineage_src; --'], '{}'), 'success');
SELECT e #>> '{job,name}' AS job, e #>> '{inputs,0,name}' AS input
  FROM camperso.openlineage_events() e WHERE e #>> '{job,name}' LIKE 'job "with"%' ORDER BY e ->> 'eventType' DESC;
SELECT count(*) AS src_still_there FROM lineage_src;

DROP TABLE lineage_src, lineage_dst, lineage_dst2;
DELETE FROM camperso.runs WHERE job LIKE 'test_lineage.%' OR job LIKE 'job "with"%';
