-- validate: post-load expectation suites (Great Expectations style), and
-- camperso.alerts with this stage's rows (failed suites, schema drift).

CREATE TABLE camperso.expectations (
	id			bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	suite		text NOT NULL CHECK (suite ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
	relation	regclass NOT NULL,
	kind		text NOT NULL CHECK (kind IN ('not_null', 'unique', 'between', 'in_set', 'regex',
											  'row_count_between', 'fresher_than', 'references')),
	column_name	text,
	args		jsonb NOT NULL DEFAULT '{}',
	created_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX expectations_suite_idx ON camperso.expectations (suite);
COMMENT ON TABLE camperso.expectations IS 'Post-load expectations, grouped in suites run by run_suite()';
SELECT pg_catalog.pg_extension_config_dump('camperso.expectations', '');

CREATE TABLE camperso.expectation_results (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	run_id			uuid NOT NULL REFERENCES camperso.runs (run_id) ON DELETE CASCADE,
	suite			text NOT NULL,
	expectation_id	bigint NOT NULL,
	relation		text NOT NULL,
	kind			text NOT NULL,
	column_name		text,
	success			boolean NOT NULL,
	observed		jsonb,
	expected		jsonb,
	error			text,
	run_at			timestamptz NOT NULL,
	elapsed_ms		double precision NOT NULL
);
CREATE INDEX expectation_results_suite_idx ON camperso.expectation_results (suite, run_at);
CREATE INDEX expectation_results_run_idx ON camperso.expectation_results (run_id);
COMMENT ON TABLE camperso.expectation_results IS 'One row per expectation per suite run: observed value, what was expected, success, when and how long; the run itself is in camperso.runs';

-- add_expectation ------------------------------------------------------------
CREATE FUNCTION camperso.add_expectation(suite text, relation regclass, kind text,
										 "column" text DEFAULT NULL, args jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
	col text := add_expectation."column";
	a jsonb := coalesce(add_expectation.args, '{}'::jsonb);
	coltype text;
	ok_keys text[];
	k text;
	ref regclass;
	eid bigint;
BEGIN
	IF suite IS NULL OR suite !~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$' THEN
		RAISE EXCEPTION 'invalid suite name "%"', suite USING ERRCODE = 'invalid_parameter_value',
			DETAIL = 'A suite name starts with a letter or underscore and has at most 63 letters, digits, underscores, dots or hyphens.';
	END IF;
	IF relation IS NULL THEN
		RAISE EXCEPTION 'relation must not be null' USING ERRCODE = 'null_value_not_allowed';
	END IF;
	ok_keys := CASE kind
		WHEN 'not_null' THEN ARRAY['mostly']
		WHEN 'unique' THEN ARRAY[]::text[]
		WHEN 'between' THEN ARRAY['min', 'max']
		WHEN 'in_set' THEN ARRAY['values']
		WHEN 'regex' THEN ARRAY['pattern']
		WHEN 'row_count_between' THEN ARRAY['min', 'max']
		WHEN 'fresher_than' THEN ARRAY['max_age']
		WHEN 'references' THEN ARRAY['relation', 'column']
	END;
	IF ok_keys IS NULL THEN
		RAISE EXCEPTION 'unknown expectation kind "%"', kind USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Kinds are not_null, unique, between, in_set, regex, row_count_between, fresher_than and references.';
	END IF;
	IF jsonb_typeof(a) <> 'object' THEN
		RAISE EXCEPTION 'args of a % expectation must be a JSON object', kind USING ERRCODE = 'invalid_parameter_value';
	END IF;
	FOR k IN SELECT jsonb_object_keys(a) LOOP
		IF NOT k = ANY (ok_keys) THEN
			RAISE EXCEPTION 'unknown key "%" in args of a % expectation', k, kind
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = format('Allowed keys: %s.', coalesce(nullif(array_to_string(ok_keys, ', '), ''), 'none'));
		END IF;
	END LOOP;

	IF kind = 'row_count_between' THEN
		IF col IS NOT NULL THEN
			RAISE EXCEPTION 'a row_count_between expectation takes no column' USING ERRCODE = 'invalid_parameter_value';
		END IF;
	ELSE
		IF col IS NULL THEN
			RAISE EXCEPTION 'a % expectation needs a column', kind USING ERRCODE = 'invalid_parameter_value';
		END IF;
		SELECT format_type(at.atttypid, at.atttypmod) INTO coltype
		  FROM pg_attribute at
		 WHERE at.attrelid = relation AND at.attname = col AND at.attnum > 0 AND NOT at.attisdropped;
		IF coltype IS NULL THEN
			RAISE EXCEPTION 'column "%" of relation % does not exist', col, relation USING ERRCODE = 'undefined_column';
		END IF;
	END IF;

	CASE kind
	WHEN 'not_null' THEN
		IF a ? 'mostly' AND (jsonb_typeof(a->'mostly') <> 'number'
							 OR (a->>'mostly')::numeric NOT BETWEEN 0 AND 1) THEN
			RAISE EXCEPTION '"mostly" must be a number between 0 and 1' USING ERRCODE = 'invalid_parameter_value';
		END IF;
	WHEN 'between' THEN
		IF NOT (a ? 'min' OR a ? 'max') THEN
			RAISE EXCEPTION 'a between expectation needs min and/or max' USING ERRCODE = 'invalid_parameter_value';
		END IF;
		BEGIN
			EXECUTE format('SELECT $1::%s, $2::%s', coltype, coltype) USING a->>'min', a->>'max';
		EXCEPTION WHEN OTHERS THEN
			RAISE EXCEPTION 'bounds of a between expectation must be values of type %', coltype
				USING ERRCODE = 'invalid_parameter_value', DETAIL = SQLERRM;
		END;
	WHEN 'in_set' THEN
		IF jsonb_typeof(a->'values') IS DISTINCT FROM 'array' OR jsonb_array_length(a->'values') = 0 THEN
			RAISE EXCEPTION 'an in_set expectation needs {"values": [...]} with at least one value'
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
		BEGIN
			EXECUTE format('SELECT $1::%s[]', coltype)
			   USING ARRAY(SELECT jsonb_array_elements_text(a->'values'));
		EXCEPTION WHEN OTHERS THEN
			RAISE EXCEPTION 'values of an in_set expectation must be of type %', coltype
				USING ERRCODE = 'invalid_parameter_value', DETAIL = SQLERRM;
		END;
	WHEN 'regex' THEN
		IF jsonb_typeof(a->'pattern') IS DISTINCT FROM 'string' THEN
			RAISE EXCEPTION 'a regex expectation needs {"pattern": "..."}' USING ERRCODE = 'invalid_parameter_value';
		END IF;
		PERFORM '' ~ (a->>'pattern');
	WHEN 'row_count_between' THEN
		IF NOT (a ? 'min' OR a ? 'max') THEN
			RAISE EXCEPTION 'a row_count_between expectation needs min and/or max' USING ERRCODE = 'invalid_parameter_value';
		END IF;
		IF (a ? 'min' AND (jsonb_typeof(a->'min') <> 'number' OR (a->>'min') !~ '^\d+$'))
		   OR (a ? 'max' AND (jsonb_typeof(a->'max') <> 'number' OR (a->>'max') !~ '^\d+$')) THEN
			RAISE EXCEPTION 'min and max of a row_count_between expectation must be non-negative integers'
				USING ERRCODE = 'invalid_parameter_value';
		END IF;
	WHEN 'fresher_than' THEN
		IF jsonb_typeof(a->'max_age') IS DISTINCT FROM 'string' THEN
			RAISE EXCEPTION 'a fresher_than expectation needs {"max_age": "1 hour"}' USING ERRCODE = 'invalid_parameter_value';
		END IF;
		PERFORM (a->>'max_age')::interval;
		IF coltype NOT IN ('timestamp with time zone', 'timestamp without time zone', 'date') THEN
			RAISE EXCEPTION 'a fresher_than expectation needs a timestamp or date column, "%" is %', col, coltype
				USING ERRCODE = 'datatype_mismatch';
		END IF;
	WHEN 'references' THEN
		ref := to_regclass(a->>'relation');
		IF ref IS NULL THEN
			RAISE EXCEPTION 'referenced relation "%" does not exist', a->>'relation'
				USING ERRCODE = 'undefined_table', HINT = 'Pass {"relation": "schema.table", "column": "col"}.';
		END IF;
		IF NOT EXISTS (SELECT 1 FROM pg_attribute at WHERE at.attrelid = ref AND at.attname = a->>'column'
						 AND at.attnum > 0 AND NOT at.attisdropped) THEN
			RAISE EXCEPTION 'referenced column "%" of % does not exist', a->>'column', ref
				USING ERRCODE = 'undefined_column';
		END IF;
		a := jsonb_build_object('relation', ref::text, 'column', a->>'column');
	ELSE
		NULL;
	END CASE;

	INSERT INTO camperso.expectations (suite, relation, kind, column_name, args)
	VALUES (suite, relation, kind, col, a)
	RETURNING id INTO eid;
	RETURN eid;
END
$$;
COMMENT ON FUNCTION camperso.add_expectation(text, regclass, text, text, jsonb) IS
'Adds an expectation to a suite. Kinds and args: not_null {"mostly": 0..1}; unique {}; between {"min": v, "max": v}; in_set {"values": [...]}; regex {"pattern": "..."}; row_count_between {"min": n, "max": n} (no column); fresher_than {"max_age": "1 hour"}; references {"relation": "t", "column": "c"}. Returns its id';

CREATE FUNCTION camperso.drop_expectation(id bigint)
RETURNS boolean
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
BEGIN
	DELETE FROM camperso.expectations e WHERE e.id = drop_expectation.id;
	RETURN FOUND;
END
$$;
COMMENT ON FUNCTION camperso.drop_expectation(bigint) IS 'Removes one expectation; returns whether it existed';

-- Recording a suite run: definer helpers, so that running a suite needs no
-- write access to camperso.runs, while the checks run with the caller's
-- own privileges on the tables they read.
CREATE FUNCTION camperso._suite_begin(suite text, inputs text[])
RETURNS uuid
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT camperso.run_begin('suite:' || $1, $2, ARRAY['camperso.expectation_results'])
$$;

CREATE FUNCTION camperso._suite_end(run_id uuid, suite text, results jsonb)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	n bigint;
	failed bigint;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM camperso.runs r WHERE r.run_id = _suite_end.run_id
					  AND r.job = 'suite:' || _suite_end.suite AND r.status = 'running') THEN
		RAISE EXCEPTION 'no running suite run %', run_id USING ERRCODE = 'invalid_parameter_value';
	END IF;
	INSERT INTO camperso.expectation_results
		(run_id, suite, expectation_id, relation, kind, column_name, success, observed, expected, error, run_at, elapsed_ms)
	SELECT _suite_end.run_id, _suite_end.suite, (x->>'expectation_id')::bigint, x->>'relation', x->>'kind',
		   x->>'column_name', (x->>'success')::boolean, x->'observed', x->'expected', x->>'error',
		   (x->>'run_at')::timestamptz, (x->>'elapsed_ms')::double precision
	  FROM jsonb_array_elements(results) x;
	SELECT count(*), count(*) FILTER (WHERE NOT (x->>'success')::boolean) INTO n, failed
	  FROM jsonb_array_elements(results) x;
	PERFORM camperso.run_end(_suite_end.run_id,
							 CASE WHEN failed = 0 THEN 'success' ELSE 'failed' END,
							 n, n - failed,
							 CASE WHEN failed > 0 THEN format('%s of %s expectations failed', failed, n) END,
							 jsonb_build_object('suite', suite, 'passed', n - failed, 'failed', failed));
END
$$;
COMMENT ON FUNCTION camperso._suite_begin(text, text[]) IS 'Internal: records the start of a suite run';
COMMENT ON FUNCTION camperso._suite_end(uuid, text, jsonb) IS 'Internal: stores a suite run''s results and ends its run';

-- run_suite -----------------------------------------------------------------
CREATE FUNCTION camperso.run_suite(suite text)
RETURNS TABLE (expectation_id bigint, relation text, kind text, column_name text,
			   success boolean, observed jsonb, expected jsonb, error text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog
AS $$
DECLARE
	e record;
	rid uuid;
	rel text;
	col text;
	a jsonb;
	coltype text;
	total bigint;
	bad bigint;
	lo text;
	hi text;
	t0 timestamptz;
	results jsonb := '[]'::jsonb;
BEGIN
	IF NOT EXISTS (SELECT 1 FROM camperso.expectations x WHERE x.suite = run_suite.suite) THEN
		RAISE EXCEPTION 'suite "%" has no expectations', suite USING ERRCODE = 'undefined_object',
			HINT = 'Add some with camperso.add_expectation().';
	END IF;
	rid := camperso._suite_begin(suite, ARRAY(SELECT DISTINCT x.relation::text FROM camperso.expectations x
											   WHERE x.suite = run_suite.suite ORDER BY 1));

	FOR e IN SELECT * FROM camperso.expectations x WHERE x.suite = run_suite.suite ORDER BY x.id LOOP
		expectation_id := e.id;
		relation := e.relation::text;
		kind := e.kind;
		column_name := e.column_name;
		success := false;
		observed := NULL;
		expected := NULL;
		error := NULL;
		rel := e.relation::text;
		col := quote_ident(e.column_name);
		a := e.args;
		t0 := clock_timestamp();
		BEGIN
			IF e.column_name IS NOT NULL THEN
				SELECT format_type(at.atttypid, at.atttypmod) INTO coltype
				  FROM pg_attribute at
				 WHERE at.attrelid = e.relation AND at.attname = e.column_name AND at.attnum > 0 AND NOT at.attisdropped;
				IF coltype IS NULL THEN
					RAISE EXCEPTION 'column "%" of % no longer exists', e.column_name, rel;
				END IF;
			END IF;
			CASE e.kind
			WHEN 'not_null' THEN
				EXECUTE format('SELECT count(*), count(*) FILTER (WHERE %s IS NULL) FROM %s', col, rel) INTO total, bad;
				observed := jsonb_build_object('rows', total, 'nulls', bad);
				expected := jsonb_build_object('mostly', coalesce((a->>'mostly')::numeric, 1));
				success := total = 0 OR (total - bad)::numeric / total >= coalesce((a->>'mostly')::numeric, 1);
			WHEN 'unique' THEN
				EXECUTE format('SELECT count(*), coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM %s WHERE %s IS NOT NULL GROUP BY %s HAVING count(*) > 1) d',
							   rel, col, col) INTO bad, total;
				observed := jsonb_build_object('duplicated_values', bad, 'rows_with_duplicates', total);
				expected := jsonb_build_object('duplicated_values', 0);
				success := bad = 0;
			WHEN 'between' THEN
				lo := a->>'min';
				hi := a->>'max';
				EXECUTE format('SELECT count(*) FILTER (WHERE %1$s < $1::%3$s OR %1$s > $2::%3$s), min(%1$s)::text, max(%1$s)::text FROM %2$s',
							   col, rel, coltype)
				   INTO bad, lo, hi USING a->>'min', a->>'max';
				observed := jsonb_build_object('out_of_range', bad, 'min', lo, 'max', hi);
				expected := jsonb_build_object('min', a->'min', 'max', a->'max');
				success := bad = 0;
			WHEN 'in_set' THEN
				EXECUTE format('SELECT count(*) FILTER (WHERE %1$s IS NOT NULL AND NOT (%1$s = ANY ($1::%3$s[]))),'
							   ' (SELECT pg_catalog.jsonb_agg(v) FROM (SELECT DISTINCT %1$s::text AS v FROM %2$s'
							   '   WHERE %1$s IS NOT NULL AND NOT (%1$s = ANY ($1::%3$s[])) ORDER BY 1 LIMIT 5) s)'
							   ' FROM %2$s', col, rel, coltype)
				   INTO bad, observed USING ARRAY(SELECT jsonb_array_elements_text(a->'values'));
				observed := jsonb_build_object('unexpected', bad, 'examples', coalesce(observed, '[]'::jsonb));
				expected := jsonb_build_object('values', a->'values');
				success := bad = 0;
			WHEN 'regex' THEN
				EXECUTE format('SELECT count(*) FILTER (WHERE %1$s IS NOT NULL AND NOT (%1$s::text ~ $1)) FROM %2$s', col, rel)
				   INTO bad USING a->>'pattern';
				observed := jsonb_build_object('not_matching', bad);
				expected := jsonb_build_object('pattern', a->'pattern');
				success := bad = 0;
			WHEN 'row_count_between' THEN
				EXECUTE format('SELECT count(*) FROM %s', rel) INTO total;
				observed := jsonb_build_object('rows', total);
				expected := jsonb_build_object('min', a->'min', 'max', a->'max');
				success := (NOT a ? 'min' OR total >= (a->>'min')::bigint)
					   AND (NOT a ? 'max' OR total <= (a->>'max')::bigint);
			WHEN 'fresher_than' THEN
				EXECUTE format('SELECT max(%s)::timestamptz::text FROM %s', col, rel) INTO lo;
				observed := jsonb_build_object('latest', lo,
											   'age', (clock_timestamp() - lo::timestamptz)::text);
				expected := jsonb_build_object('max_age', a->'max_age');
				success := lo IS NOT NULL AND lo::timestamptz >= clock_timestamp() - (a->>'max_age')::interval;
			WHEN 'references' THEN
				EXECUTE format('SELECT count(*) FROM %s c WHERE c.%s IS NOT NULL AND NOT EXISTS (SELECT 1 FROM %s p WHERE p.%I = c.%s)',
							   rel, col, (a->>'relation')::regclass, a->>'column', col)
				   INTO bad;
				observed := jsonb_build_object('orphans', bad);
				expected := jsonb_build_object('relation', a->'relation', 'column', a->'column', 'orphans', 0);
				success := bad = 0;
			END CASE;
		EXCEPTION WHEN OTHERS THEN
			success := false;
			error := SQLERRM;
		END;
		results := results || jsonb_build_object(
			'expectation_id', e.id, 'relation', relation, 'kind', kind, 'column_name', column_name,
			'success', success, 'observed', observed, 'expected', expected, 'error', error,
			'run_at', t0, 'elapsed_ms', extract(epoch FROM clock_timestamp() - t0) * 1000);
		RETURN NEXT;
	END LOOP;

	PERFORM camperso._suite_end(rid, suite, results);
END
$$;
COMMENT ON FUNCTION camperso.run_suite(text) IS 'Runs every expectation of a suite with the caller''s privileges, stores the results in camperso.expectation_results and the run in camperso.runs (status failed when any expectation fails), and returns the results';

-- Alerts ----------------------------------------------------------------------
-- The shape every stage's alert rows share (other stages extend the view
-- with UNION ALL): kind text, subject text, severity text ('critical',
-- 'warning' or 'info'), since timestamptz (when the condition began),
-- details jsonb.
CREATE VIEW camperso.alerts AS
WITH suite_runs AS (
	SELECT r.suite, r.run_id, min(r.run_at) AS run_at, bool_and(r.success) AS ok,
		   count(*) FILTER (WHERE NOT r.success) AS failed, count(*) AS total
	  FROM camperso.expectation_results r
	 GROUP BY r.suite, r.run_id
), latest AS (
	SELECT DISTINCT ON (s.suite) s.*
	  FROM suite_runs s
	 ORDER BY s.suite, s.run_at DESC
)
SELECT 'failed_suite'::text AS kind,
	   l.suite AS subject,
	   'critical'::text AS severity,
	   (SELECT min(s.run_at) FROM suite_runs s
		 WHERE s.suite = l.suite AND NOT s.ok
		   AND s.run_at > coalesce((SELECT max(o.run_at) FROM suite_runs o WHERE o.suite = l.suite AND o.ok),
								   '-infinity')) AS since,
	   jsonb_build_object('run_id', l.run_id, 'last_run', l.run_at, 'failed', l.failed, 'total', l.total,
						  'expectations', (SELECT jsonb_agg(jsonb_build_object('id', r.expectation_id, 'relation', r.relation,
																			   'kind', r.kind, 'column', r.column_name,
																			   'observed', r.observed, 'error', r.error)
														   ORDER BY r.expectation_id)
											 FROM camperso.expectation_results r
											WHERE r.run_id = l.run_id AND NOT r.success)) AS details
  FROM latest l
 WHERE NOT l.ok
UNION ALL
SELECT 'schema_drift'::text,
	   v.source,
	   'warning'::text,
	   v.first_seen,
	   jsonb_build_object('shape_hash', v.shape_hash, 'shape', v.shape, 'messages', v.messages,
						  'last_seen', v.last_seen)
  FROM camperso.schema_versions v
 WHERE NOT v.accepted;
COMMENT ON VIEW camperso.alerts IS 'Open alerts: kind, subject, severity (critical, warning, info), since, details. Validation contributes failed_suite (the latest run of a suite failed) and schema_drift (a source sent a new, unaccepted shape); other stages add rows with UNION ALL';

REVOKE ALL ON camperso.expectations, camperso.expectation_results, camperso.alerts FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON camperso.expectations TO camperso_admin;
GRANT SELECT ON camperso.expectation_results, camperso.alerts TO camperso_admin;
REVOKE ALL ON FUNCTION camperso.add_expectation(text, regclass, text, text, jsonb),
	camperso.drop_expectation(bigint), camperso.run_suite(text),
	camperso._suite_begin(text, text[]), camperso._suite_end(uuid, text, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION camperso.add_expectation(text, regclass, text, text, jsonb),
	camperso.drop_expectation(bigint), camperso.run_suite(text),
	camperso._suite_begin(text, text[]), camperso._suite_end(uuid, text, jsonb) TO camperso_admin;
