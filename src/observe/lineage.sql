-- observe/lineage.sql: OpenLineage RunEvents built from camperso.runs.
--
-- Every row of camperso.runs (a model load, a maintenance run, a suite run)
-- is one OpenLineage run: a START event at started_at and, once finished, a
-- COMPLETE or FAIL event at ended_at. Datasets are named the OpenLineage
-- way for Postgres: namespace postgres://host:port, name
-- database.schema.table; inputs or outputs written as URIs (kafka://...)
-- keep their own namespace. Row counts come from the run: rows_out (or
-- details.output_rows, an object relation -> count, for runs with several
-- outputs) becomes the outputStatistics facet of the COMPLETE/FAIL event;
-- rows_in / details.input_rows the inputStatistics facet.

CREATE FUNCTION camperso.lineage_namespace()
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
	SELECT coalesce(nullif(camperso.observe_setting('lineage_namespace'), ''),
					format('postgres://%s:%s',
						   coalesce(nullif(nullif(btrim(split_part(current_setting('listen_addresses'), ',', 1)), '*'), ''),
									'localhost'),
						   current_setting('port')))
$$;
COMMENT ON FUNCTION camperso.lineage_namespace() IS 'OpenLineage namespace of the datasets of this database (setting lineage_namespace, else postgres://<listen address>:<port>)';

-- The facet envelope every facet carries (_producer, _schemaURL).
CREATE FUNCTION camperso.openlineage_facet(schema_url text, body jsonb)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
	SELECT jsonb_build_object('_producer', camperso.observe_setting('lineage_producer'),
							  '_schemaURL', schema_url) || coalesce(body, '{}')
$$;
COMMENT ON FUNCTION camperso.openlineage_facet(text, jsonb) IS 'An OpenLineage facet: the body with its _producer and _schemaURL';

-- camperso.openlineage_dataset: one input or output of a run as an
-- OpenLineage dataset, with the schema facet of the relation when it exists.
CREATE FUNCTION camperso.openlineage_dataset(ref text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
	rel regclass;
	ns text;
	nm text;
	fields jsonb;
	result jsonb;
BEGIN
	IF ref ~ '^[A-Za-z][A-Za-z0-9+.-]*://' THEN
		-- A URI: scheme://authority is the namespace, the rest the name.
		ns := substring(ref FROM '^[A-Za-z][A-Za-z0-9+.-]*://[^/]*');
		nm := coalesce(nullif(substring(ref FROM length(ns) + 2), ''), ref);
		RETURN jsonb_build_object('namespace', ns, 'name', nm);
	END IF;

	BEGIN
		rel := to_regclass(ref);
	EXCEPTION WHEN OTHERS THEN
		rel := NULL;			-- not a relation name at all (bad syntax)
	END;
	ns := camperso.lineage_namespace();
	IF rel IS NULL THEN
		RETURN jsonb_build_object('namespace', ns,
								  'name', CASE WHEN ref LIKE '%.%' THEN current_database() || '.' || ref
											   ELSE current_database() || '.public.' || ref END);
	END IF;

	SELECT format('%s.%s.%s', current_database(), n.nspname, c.relname)
	  INTO nm
	  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
	 WHERE c.oid = rel;

	SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
				'name', a.attname,
				'type', format_type(a.atttypid, a.atttypmod),
				'description', col_description(a.attrelid, a.attnum)))
			ORDER BY a.attnum), '[]')
	  INTO fields
	  FROM pg_attribute a
	 WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped;

	result := jsonb_build_object(
		'namespace', ns,
		'name', nm,
		'facets', jsonb_build_object(
			'schema', camperso.openlineage_facet(
				'https://openlineage.io/spec/facets/1-1-1/SchemaDatasetFacet.json#/$defs/SchemaDatasetFacet',
				jsonb_build_object('fields', fields))));
	RETURN result;
END
$$;
COMMENT ON FUNCTION camperso.openlineage_dataset(text) IS 'An input or output of a run (relation name or URI) as an OpenLineage dataset, with its schema facet when it is a relation';

-- Row count of one dataset of a run: the per-dataset figure in details
-- (output_rows / input_rows objects) when given, else the run's total when
-- the run has exactly that one dataset on that side.
CREATE FUNCTION camperso.lineage_row_count(r camperso.runs, ref text, side text)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
	SELECT CASE
		WHEN jsonb_typeof(r.details -> (side || '_rows') -> ref) = 'number'
			THEN (r.details -> (side || '_rows') ->> ref)::numeric::bigint
		WHEN side = 'output' AND cardinality(r.outputs) = 1 THEN r.rows_out
		WHEN side = 'input' AND cardinality(r.inputs) = 1 THEN r.rows_in
	END
$$;
COMMENT ON FUNCTION camperso.lineage_row_count(camperso.runs, text, text) IS 'Rows a run read from (side input) or wrote to (side output) one dataset, when known';

-- camperso.openlineage_event: one RunEvent of a run.
CREATE FUNCTION camperso.openlineage_event(r camperso.runs, event_type text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog
AS $$
DECLARE
	finished boolean := event_type IN ('COMPLETE', 'FAIL');
	at timestamptz := CASE WHEN event_type IN ('COMPLETE', 'FAIL') THEN r.ended_at ELSE r.started_at END;
	inputs jsonb := '[]';
	outputs jsonb := '[]';
	ds jsonb;
	ref text;
	n bigint;
	run_facets jsonb;
BEGIN
	IF event_type IS NULL OR event_type NOT IN ('START', 'COMPLETE', 'FAIL') THEN
		RAISE EXCEPTION 'invalid OpenLineage event type "%"', event_type
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Use START, COMPLETE or FAIL.';
	END IF;
	IF at IS NULL THEN
		RETURN NULL;			-- a run without its end has no end event
	END IF;

	FOREACH ref IN ARRAY r.inputs
	LOOP
		ds := camperso.openlineage_dataset(ref);
		n := CASE WHEN finished THEN camperso.lineage_row_count(r, ref, 'input') END;
		IF n IS NOT NULL THEN
			ds := ds || jsonb_build_object('inputFacets', jsonb_build_object(
				'inputStatistics', camperso.openlineage_facet(
					'https://openlineage.io/spec/facets/1-0-0/InputStatisticsInputDatasetFacet.json#/$defs/InputStatisticsInputDatasetFacet',
					jsonb_build_object('rowCount', n))));
		END IF;
		inputs := inputs || jsonb_build_array(ds);
	END LOOP;

	FOREACH ref IN ARRAY r.outputs
	LOOP
		ds := camperso.openlineage_dataset(ref);
		n := CASE WHEN finished THEN camperso.lineage_row_count(r, ref, 'output') END;
		IF n IS NOT NULL THEN
			ds := ds || jsonb_build_object('outputFacets', jsonb_build_object(
				'outputStatistics', camperso.openlineage_facet(
					'https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/OutputStatisticsOutputDatasetFacet',
					jsonb_build_object('rowCount', n))));
		END IF;
		outputs := outputs || jsonb_build_array(ds);
	END LOOP;

	run_facets := jsonb_build_object(
		'processing_engine', camperso.openlineage_facet(
			'https://openlineage.io/spec/facets/1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet',
			jsonb_build_object('name', 'camperso',
							   'version', camperso.version(),
							   'openlineageAdapterVersion', camperso.version())));
	IF event_type = 'FAIL' THEN
		run_facets := run_facets || jsonb_build_object(
			'errorMessage', camperso.openlineage_facet(
				'https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet',
				jsonb_build_object('message', coalesce(r.error, 'failed without an error message'),
								   'programmingLanguage', 'SQL')));
	END IF;

	RETURN jsonb_build_object(
		'eventType', event_type,
		'eventTime', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
		'run', jsonb_build_object('runId', r.run_id::text, 'facets', run_facets),
		'job', jsonb_build_object(
			'namespace', camperso.observe_setting('lineage_job_namespace'),
			'name', r.job,
			'facets', jsonb_build_object(
				'jobType', camperso.openlineage_facet(
					'https://openlineage.io/spec/facets/2-0-2/JobTypeJobFacet.json#/$defs/JobTypeJobFacet',
					jsonb_build_object('processingType', 'BATCH',
									   'integration', 'CAMPERSO',
									   'jobType', 'JOB')))),
		'inputs', inputs,
		'outputs', outputs,
		'producer', camperso.observe_setting('lineage_producer'),
		'schemaURL', 'https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent');
END
$$;
COMMENT ON FUNCTION camperso.openlineage_event(camperso.runs, text) IS 'The OpenLineage RunEvent (START, COMPLETE or FAIL) of one row of camperso.runs';

-- camperso.openlineage_events: every event that happened at or after since,
-- in time order; a running run has only its START event.
CREATE FUNCTION camperso.openlineage_events(since timestamptz DEFAULT '-infinity')
RETURNS SETOF jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog
AS $$
	SELECT camperso.openlineage_event(r, e.event_type)
	  FROM camperso.runs r
	 CROSS JOIN LATERAL (VALUES ('START', r.started_at, 0),
								(CASE r.status WHEN 'success' THEN 'COMPLETE' WHEN 'failed' THEN 'FAIL' END,
								 r.ended_at, 1)) AS e(event_type, at, ord)
	 WHERE e.event_type IS NOT NULL AND e.at IS NOT NULL
	   AND e.at >= coalesce(since, '-infinity')
	 ORDER BY e.at, r.run_id, e.ord
$$;
COMMENT ON FUNCTION camperso.openlineage_events(timestamptz) IS 'OpenLineage RunEvent JSON for every run of camperso.runs: a START event and, once finished, a COMPLETE or FAIL event, for events at or after since';

REVOKE ALL ON FUNCTION camperso.openlineage_events(timestamptz), camperso.openlineage_event(camperso.runs, text),
	camperso.openlineage_dataset(text), camperso.lineage_row_count(camperso.runs, text, text),
	camperso.lineage_namespace(), camperso.openlineage_facet(text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camperso.openlineage_events(timestamptz), camperso.openlineage_event(camperso.runs, text),
	camperso.openlineage_dataset(text), camperso.lineage_row_count(camperso.runs, text, text),
	camperso.lineage_namespace(), camperso.openlineage_facet(text, jsonb) TO camperso_admin;
