-- security: securing a model schema (the clickstream star schema, or any
-- schema of staging tables, dimensions, facts, rollups and BI views):
-- privileges per role, row-level security by app_id, views that keep it,
-- and masked views for analysts.

CREATE TABLE camperso.secured_schemas (
	schema_name	name PRIMARY KEY,
	staging		text[] NOT NULL DEFAULT '{}',
	secured_at	timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE camperso.secured_schemas IS 'Schemas secured by camperso.secure_schema, with their staging tables (never readable by analysts)';
SELECT pg_catalog.pg_extension_config_dump('camperso.secured_schemas', '');

-- How a column is shown to analysts. Columns named email, ip, ip_address,
-- client_ip and phone are masked by default (email, ip, ip, ip, hide); a
-- row here overrides that, or masks another column.
CREATE TABLE camperso.masks (
	relation	regclass NOT NULL,
	column_name	name NOT NULL,
	mask		text NOT NULL CHECK (mask IN ('email', 'ip', 'hide', 'keep')),
	PRIMARY KEY (relation, column_name)
);
COMMENT ON TABLE camperso.masks IS 'Masks of columns in analyst views: email (a***@example.com), ip (/24), hide (NULL), keep (as stored); overrides the defaults by column name. Ids are pseudonymised before they land (the pii option of sources), so analysts never get a pseudonymisation oracle';
SELECT pg_catalog.pg_extension_config_dump('camperso.masks', '');

-- The mask of one column: camperso.masks, else the default by name.
CREATE FUNCTION camperso.column_mask(rel regclass, col name) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT coalesce(
		(SELECT m.mask FROM camperso.masks m WHERE m.relation = $1 AND m.column_name = $2),
		CASE WHEN $2 IN ('email', 'e_mail', 'email_address') THEN 'email'
			 WHEN $2 IN ('ip', 'ip_address', 'client_ip') THEN 'ip'
			 WHEN $2 IN ('phone', 'phone_number') THEN 'hide'
			 ELSE 'keep' END)
$$;
COMMENT ON FUNCTION camperso.column_mask(regclass, name) IS 'How analysts see a column: its camperso.masks row, or the default for its name';

-- The expression showing column col (of alias t) under its mask.
CREATE FUNCTION camperso.mask_expression(rel regclass, col name) RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT CASE camperso.column_mask($1, $2)
		WHEN 'email' THEN format('camperso.mask_email(t.%I::text)', $2)
		WHEN 'ip' THEN format('camperso.truncate_ip(t.%I::text)', $2)
		WHEN 'hide' THEN format('NULL::%s', format_type(a.atttypid, a.atttypmod))
		ELSE format('t.%I', $2) END
	  FROM pg_attribute a WHERE a.attrelid = $1 AND a.attname = $2
$$;
COMMENT ON FUNCTION camperso.mask_expression(regclass, name) IS 'SQL expression (alias t) that shows a column under its mask';

-- camperso.secure_schema(schema, staging): secures a model schema.
--   PUBLIC: nothing on the schema or anything in it.
--   camperso_admin: all data privileges on every table.
--   camperso_ingest: INSERT into the staging tables.
--   camperso_pii_reader: SELECT on everything (unmasked), rows of its apps.
--   camperso_analyst: SELECT on the non-staging tables, views and
--     materialized views, rows of its apps; a table with masked columns is
--     readable only through <table>_masked (a security_barrier view that
--     masks them and filters by app) plus its unmasked columns directly.
--   Every table with app_id gets row-level security (protect_table); every
--   view becomes security_invoker, so row-level security and privileges of
--   the reader apply through it. A materialized view with app_id is only
--   read through its <name>_masked view, which filters by app.
-- Staging tables default to the targets of sources and the tables with a
-- _raw column; tables whose name starts with "_" are internal (owner and
-- admins only). Idempotent: run again after the schema changes.
CREATE FUNCTION camperso.secure_schema(schema name, staging text[] DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	nsp		oid;
	obj		record;
	stg		text[];
	cols	text;
	exprs	text;
	vname	text;
	masked	boolean;
	has_app	boolean;
	r		text;
BEGIN
	nsp := (SELECT n.oid FROM pg_namespace n WHERE n.nspname = schema);
	IF nsp IS NULL THEN
		RAISE EXCEPTION 'schema "%" does not exist', schema USING ERRCODE = 'invalid_schema_name';
	END IF;
	IF schema IN ('camperso', 'pg_catalog', 'information_schema') OR schema LIKE 'pg\_%' THEN
		RAISE EXCEPTION 'schema "%" cannot be secured as a model schema', schema USING ERRCODE = 'invalid_parameter_value';
	END IF;
	stg := coalesce(staging, ARRAY(
		SELECT c.relname::text FROM pg_class c
		 WHERE c.relnamespace = nsp AND c.relkind IN ('r', 'p') AND NOT c.relispartition
		   AND (c.oid IN (SELECT s.target FROM camperso.sources s)
				OR EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = '_raw' AND NOT a.attisdropped))));

	INSERT INTO camperso.secured_schemas AS s (schema_name, staging) VALUES (schema, stg)
	ON CONFLICT (schema_name) DO UPDATE SET staging = EXCLUDED.staging, secured_at = now();

	EXECUTE format('REVOKE ALL ON SCHEMA %I FROM PUBLIC', schema);
	EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM PUBLIC, camperso_analyst, camperso_ingest, camperso_pii_reader, camperso_admin', schema);
	EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA %I FROM PUBLIC', schema);
	EXECUTE format('REVOKE ALL ON ALL ROUTINES IN SCHEMA %I FROM PUBLIC', schema);
	EXECUTE format('GRANT USAGE ON SCHEMA %I TO camperso_admin, camperso_ingest, camperso_analyst, camperso_pii_reader', schema);
	EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA %I TO camperso_admin, camperso_ingest', schema);

	FOR obj IN
		SELECT c.oid::regclass AS rel, c.relname::text AS relname, c.relkind
		  FROM pg_class c
		 WHERE c.relnamespace = nsp AND c.relkind IN ('r', 'p', 'v', 'm')
		   AND NOT c.relispartition
		   AND c.relname !~ '_masked$'
		 ORDER BY c.relname
	LOOP
		has_app := EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = obj.rel AND a.attname = 'app_id'
							 AND a.attnum > 0 AND NOT a.attisdropped);
		IF obj.relkind IN ('r', 'p') AND has_app THEN
			PERFORM camperso.protect_table(obj.rel);
		END IF;
		IF obj.relkind = 'v' THEN
			EXECUTE format('ALTER VIEW %s SET (security_invoker = true, security_barrier = true)', obj.rel);
		END IF;
		-- Partitions are never granted: read through their parent, where
		-- row-level security applies, not around it.
		EXECUTE format('GRANT SELECT ON %s TO camperso_pii_reader', obj.rel);
		IF obj.relkind IN ('r', 'p') THEN
			EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO camperso_admin', obj.rel);
		ELSE
			EXECUTE format('GRANT SELECT ON %s TO camperso_admin', obj.rel);
		END IF;

		IF obj.relname LIKE '\_%' THEN
			-- internal (a loader's scratch tables): the owner and admins only
			EXECUTE format('REVOKE SELECT ON %s FROM camperso_pii_reader', obj.rel);
			CONTINUE;
		END IF;
		IF obj.relname = ANY (stg) THEN
			EXECUTE format('GRANT INSERT ON %s TO camperso_ingest', obj.rel);
			CONTINUE;			-- never for analysts
		END IF;

		masked := EXISTS (SELECT 1 FROM pg_attribute a
						   WHERE a.attrelid = obj.rel AND a.attnum > 0 AND NOT a.attisdropped
							 AND camperso.column_mask(obj.rel, a.attname) <> 'keep');
		vname := left(obj.relname, 56) || '_masked';
		IF NOT masked AND NOT (obj.relkind = 'm' AND has_app) THEN
			EXECUTE format('GRANT SELECT ON %s TO camperso_analyst', obj.rel);
			IF to_regclass(format('%I.%I', schema, vname)) IS NOT NULL THEN
				EXECUTE format('DROP VIEW %I.%I', schema, vname);
			END IF;
			CONTINUE;
		END IF;

		-- masked: unmasked columns directly (tables only), all through the view
		IF obj.relkind IN ('r', 'p') THEN
			SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum) INTO cols
			  FROM pg_attribute a
			 WHERE a.attrelid = obj.rel AND a.attnum > 0 AND NOT a.attisdropped
			   AND camperso.column_mask(obj.rel, a.attname) = 'keep';
			IF cols IS NOT NULL THEN
				EXECUTE format('GRANT SELECT (%s) ON %s TO camperso_analyst', cols, obj.rel);
			END IF;
		END IF;
		SELECT string_agg(camperso.mask_expression(obj.rel, a.attname) || format(' AS %I', a.attname), ', ' ORDER BY a.attnum)
		  INTO exprs
		  FROM pg_attribute a
		 WHERE a.attrelid = obj.rel AND a.attnum > 0 AND NOT a.attisdropped;
		EXECUTE format('CREATE OR REPLACE VIEW %I.%I WITH (security_barrier = true) AS SELECT %s FROM %s t%s',
					   schema, vname, exprs, obj.rel,
					   CASE WHEN has_app THEN ' WHERE t.app_id = ANY ((SELECT camperso.visible_apps())::text[])'
											 ' OR ''*'' = ANY ((SELECT camperso.visible_apps())::text[])'
							ELSE '' END);
		EXECUTE format('COMMENT ON VIEW %I.%I IS %L', schema, vname,
					   format('%s for analysts: PII columns masked (camperso.masks), rows of the apps granted by camperso.grant_app', obj.rel));
		EXECUTE format('REVOKE ALL ON %I.%I FROM PUBLIC', schema, vname);
		EXECUTE format('GRANT SELECT ON %I.%I TO camperso_analyst, camperso_admin, camperso_pii_reader', schema, vname);
	END LOOP;
END
$$;
COMMENT ON FUNCTION camperso.secure_schema(name, text[]) IS 'Secures a model schema: PUBLIC revoked, per-role privileges (analysts never read staging), row-level security by app_id on its tables, security_invoker views, and <table>_masked views with PII masked for analysts; idempotent';
