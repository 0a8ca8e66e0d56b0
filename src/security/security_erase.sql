-- security: GDPR erasure. camperso.forget_user(user_id) removes a user from
-- every layer camperso manages and leaves an audit row that does not hold
-- the id.

CREATE FUNCTION camperso.payload_mentions(data bytea, encrypted boolean, needles text[],
										  keys text[] DEFAULT '{user_id}')
RETURNS boolean
LANGUAGE C STABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'camperso_payload_mentions';
COMMENT ON FUNCTION camperso.payload_mentions(bytea, boolean, text[], text[]) IS 'Whether a stored payload (an envelope is decrypted first; encrypted NULL: when it looks like one) holds any needle as a JSON string, or as the bare value of one of keys';

-- Columns that hold a user id, besides every column named user_id.
CREATE TABLE camperso.user_columns (
	relation	regclass NOT NULL,
	column_name	name NOT NULL,
	PRIMARY KEY (relation, column_name)
);
COMMENT ON TABLE camperso.user_columns IS 'Extra columns holding a user id (clear or pseudonymised) that camperso.forget_user erases by; columns named user_id are always used';
SELECT pg_catalog.pg_extension_config_dump('camperso.user_columns', '');

CREATE TABLE camperso.erasure_log (
	id				bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	erased_at		timestamptz NOT NULL DEFAULT clock_timestamp(),
	erased_by		name NOT NULL DEFAULT session_user,
	erased_as		name NOT NULL,
	relations		integer NOT NULL,
	rows_removed	bigint NOT NULL,
	details			jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE camperso.erasure_log IS 'One row per camperso.forget_user call: who (session user, and the role it had set) and when, rows removed per relation; never the id erased';
SELECT pg_catalog.pg_extension_config_dump('camperso.erasure_log', '');

-- The relations forget_user looks at: source targets, the tables of schemas
-- secured with camperso.secure_schema, registered dimensions, and the
-- tables of camperso.user_columns (partitions are reached via their parent).
CREATE FUNCTION camperso.erasure_scope() RETURNS SETOF regclass
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	dims oid[] := '{}';
BEGIN
	-- camperso.dimensions belongs to the model stage: read it when present
	IF to_regclass('camperso.dimensions') IS NOT NULL THEN
		EXECUTE 'SELECT coalesce(array_agg(d.dim::oid), ''{}'') FROM camperso.dimensions d' INTO dims;
	END IF;
	RETURN QUERY
	SELECT c.oid::regclass
	  FROM pg_class c
	 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
	   AND c.relnamespace <> 'camperso'::regnamespace
	   AND (c.oid IN (SELECT s.target FROM camperso.sources s)
			OR c.oid IN (SELECT u.relation FROM camperso.user_columns u)
			OR c.relnamespace IN (SELECT n.oid FROM pg_namespace n
								   WHERE n.nspname IN (SELECT ss.schema_name FROM camperso.secured_schemas ss))
			OR c.oid = ANY (dims))
	 ORDER BY c.oid::regclass::text;
END
$$;
COMMENT ON FUNCTION camperso.erasure_scope() IS 'Relations camperso.forget_user erases from (besides camperso.quarantine)';

-- camperso.forget_user(user_id): removes every row of the user, found by the
-- clear id and by its pseudonym under every key version:
--   1. surrogate keys of the user's rows in tables with a <table>_sk column
--      (the SCD2 dimensions, every version) are collected;
--   2. rows referring to those keys (facts, sessions: columns named
--      <dim>_sk, or <dim without "dim_">_sk, or foreign keys to them) go;
--   3. rows whose user-id columns (user_id, camperso.user_columns) hold the
--      id or a pseudonym go: staging (with its _raw), dimensions, facts;
--   4. quarantine rows whose payload (decrypted when an envelope), Kafka
--      key or reason mentions the user go;
--   5. materialized views of secured schemas are refreshed, and rollups
--      recomputed through camperso.refresh_rollups(schema) when it exists.
-- Returns rows removed per relation (NULL: recomputed); writes an audit row
-- without the id. Idempotent: a second call removes nothing.
CREATE FUNCTION camperso.forget_user(user_id text)
RETURNS TABLE (relation text, removed bigint)
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	needles		text[];
	ukeys		text[];
	rel			regclass;
	tbl			record;
	col			text;
	pred		text;
	sk_name		text;
	sks			bigint[];
	n			bigint;
	counts		jsonb;
	sk_sets		jsonb := '{}';
	total		bigint := 0;
	schema_name	text;
BEGIN
	IF forget_user.user_id = '' THEN
		RAISE EXCEPTION 'user_id must not be empty' USING ERRCODE = 'invalid_parameter_value';
	END IF;
	needles := ARRAY[forget_user.user_id] || camperso.pseudonyms(forget_user.user_id);
	ukeys := ARRAY['user_id'] || ARRAY(SELECT DISTINCT u.column_name::text FROM camperso.user_columns u);

	-- every relation in scope is reported, also when nothing is removed
	SELECT coalesce(jsonb_object_agg(s::text, 0), '{}') INTO counts FROM camperso.erasure_scope() s;
	counts := counts || '{"camperso.quarantine": 0}';

	-- 1. surrogate keys of the user's dimension rows (every SCD2 version)
	FOR tbl IN
		SELECT s AS rel, c.relname::text AS relname
		  FROM camperso.erasure_scope() s JOIN pg_class c ON c.oid = s
	LOOP
		sk_name := tbl.relname || '_sk';
		CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = tbl.rel AND a.attname = sk_name
									 AND a.attnum > 0 AND NOT a.attisdropped);
		pred := camperso.erasure_predicate(tbl.rel);
		CONTINUE WHEN pred IS NULL;
		EXECUTE format('SELECT array_agg(t.%I::bigint) FROM %s t WHERE (%s) AND t.%I::bigint > 0',
					   sk_name, tbl.rel, pred, sk_name)
		   INTO sks USING needles;
		IF sks IS NOT NULL THEN
			sk_sets := sk_sets || jsonb_build_object(sk_name, to_jsonb(sks));
			IF sk_name LIKE 'dim\_%' THEN
				sk_sets := sk_sets || jsonb_build_object(substr(sk_name, 5), to_jsonb(sks));
			END IF;
		END IF;
	END LOOP;

	-- 2. rows referring to those keys (facts, sessions), referencing tables first
	IF sk_sets <> '{}' THEN
		FOR tbl IN
			SELECT s AS rel, a.attname::text AS colname
			  FROM camperso.erasure_scope() s
			  JOIN pg_class c ON c.oid = s
			  JOIN pg_attribute a ON a.attrelid = s AND a.attnum > 0 AND NOT a.attisdropped
			 WHERE sk_sets ? a.attname::text AND a.attname::text <> c.relname || '_sk'
		LOOP
			EXECUTE format('DELETE FROM %s t WHERE t.%I::bigint = ANY ($1)', tbl.rel, tbl.colname)
			   USING ARRAY(SELECT jsonb_array_elements_text(sk_sets -> tbl.colname)::bigint);
			GET DIAGNOSTICS n = ROW_COUNT;
			counts := jsonb_set(counts, ARRAY[tbl.rel::text],
								to_jsonb(coalesce((counts ->> tbl.rel::text)::bigint, 0) + n));
		END LOOP;
	END IF;

	-- 3. rows holding the id or a pseudonym in a user-id column
	FOR rel IN SELECT * FROM camperso.erasure_scope() LOOP
		pred := camperso.erasure_predicate(rel);
		CONTINUE WHEN pred IS NULL;
		EXECUTE format('DELETE FROM %s t WHERE %s', rel, pred) USING needles;
		GET DIAGNOSTICS n = ROW_COUNT;
		counts := jsonb_set(counts, ARRAY[rel::text], to_jsonb(coalesce((counts ->> rel::text)::bigint, 0) + n));
	END LOOP;

	-- 4. the quarantine: payloads (decrypted), Kafka keys, reasons
	DELETE FROM camperso.quarantine q
	 WHERE camperso.payload_mentions(q.payload, coalesce(q.payload_encrypted, false), needles, ukeys)
		OR (q.key IS NOT NULL AND q.key = ANY (ARRAY(SELECT convert_to(x, 'UTF8') FROM unnest(needles) x)))
		OR camperso.payload_mentions(convert_to(q.reason, 'UTF8'), false, needles, ukeys);
	GET DIAGNOSTICS n = ROW_COUNT;
	counts := jsonb_set(counts, '{camperso.quarantine}', to_jsonb(n));

	SELECT coalesce(sum(v::bigint), 0) INTO total FROM jsonb_each_text(counts) AS e(k, v);

	-- 5. what is computed from the rows: materialized views, rollups
	FOR rel IN
		SELECT c.oid::regclass FROM pg_class c
		 WHERE c.relkind = 'm'
		   AND c.relnamespace IN (SELECT n2.oid FROM pg_namespace n2
									WHERE n2.nspname IN (SELECT ss.schema_name FROM camperso.secured_schemas ss))
	LOOP
		EXECUTE format('REFRESH MATERIALIZED VIEW %s', rel);
		counts := counts || jsonb_build_object(rel::text, NULL);
	END LOOP;
	IF to_regprocedure('camperso.refresh_rollups(name)') IS NOT NULL THEN
		FOR schema_name IN SELECT ss.schema_name FROM camperso.secured_schemas ss LOOP
			EXECUTE 'SELECT camperso.refresh_rollups($1)' USING schema_name;
			counts := counts || jsonb_build_object('camperso.refresh_rollups(' || quote_literal(schema_name) || ')', NULL);
		END LOOP;
	END IF;

	-- The role the caller had set (SECURITY DEFINER hides it from current_user).
	INSERT INTO camperso.erasure_log (erased_as, relations, rows_removed, details)
	VALUES (CASE current_setting('role') WHEN 'none' THEN session_user ELSE current_setting('role') END,
			(SELECT count(*) FROM jsonb_object_keys(counts)), total, counts);

	RETURN QUERY SELECT e.key, (e.value #>> '{}')::bigint FROM jsonb_each(counts) AS e ORDER BY e.key;
END
$$;
COMMENT ON FUNCTION camperso.forget_user(text) IS 'GDPR erasure of a user (clear id and pseudonyms under every key version) across staging, _raw, quarantine, dimensions (every SCD2 version), facts, sessions and rollups; returns rows removed per relation (NULL: recomputed) and writes an audit row without the id; idempotent';

-- The WHERE clause matching a user in one relation (alias t, needles $1):
-- its user-id columns, as text; NULL when it has none.
CREATE FUNCTION camperso.erasure_predicate(rel regclass) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT string_agg(format('t.%I::text = ANY ($1)', a.attname), ' OR ' ORDER BY a.attnum)
	  FROM pg_attribute a
	 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
	   AND (a.attname = 'user_id'
			OR EXISTS (SELECT 1 FROM camperso.user_columns u WHERE u.relation = $1 AND u.column_name = a.attname))
$$;
COMMENT ON FUNCTION camperso.erasure_predicate(regclass) IS 'WHERE clause (alias t, needles $1) matching a user in a relation by its user-id columns; NULL when it has none';
