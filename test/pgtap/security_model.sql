-- pgTAP: a secured model schema. Analysts read facts, dims, rollups and BI
-- views of their apps only, never staging or partitions directly, and PII
-- only masked; the pii reader reads unmasked rows of its apps.
BEGIN;
CREATE EXTENSION IF NOT EXISTS camperso;
SELECT plan(34);

CREATE FUNCTION pg_temp.as_role(role name, sql text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	result text;
BEGIN
	EXECUTE format('SET LOCAL ROLE %I', role);
	BEGIN
		IF sql ~* '^\s*select|returning' THEN
			EXECUTE sql INTO result;
		ELSE
			EXECUTE sql;
			result := 'ok';
		END IF;
	EXCEPTION WHEN OTHERS THEN
		result := SQLSTATE;
	END;
	RESET ROLE;
	RETURN result;
END
$$;

-- A small star schema of the shape camperso's model builds.
CREATE SCHEMA sec_m;
CREATE TABLE sec_m.events (event_id uuid, user_id text, app_id text, ip text, ts timestamptz, _raw bytea);
CREATE TABLE sec_m.dim_user (dim_user_sk bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, user_id text, email text,
							 plan text, valid_from timestamptz, valid_to timestamptz, is_current bool);
CREATE TABLE sec_m.fact_clicks (event_id uuid, dim_user_sk bigint REFERENCES sec_m.dim_user, app_id text, ip text,
								ts timestamptz NOT NULL) PARTITION BY RANGE (ts);
CREATE TABLE sec_m.fact_clicks_p202401 PARTITION OF sec_m.fact_clicks FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE MATERIALIZED VIEW sec_m.rollup_daily AS
	SELECT app_id, date_trunc('day', ts) AS day, count(*) AS clicks FROM sec_m.fact_clicks GROUP BY 1, 2;
CREATE VIEW sec_m.bi_clicks AS
	SELECT f.app_id, f.ts, d.plan FROM sec_m.fact_clicks f JOIN sec_m.dim_user d USING (dim_user_sk);
INSERT INTO sec_m.events VALUES
	('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a01', camperso.pseudonymize('u1'), 'shop', '10.1.2.0', '2024-01-05 10:00Z', NULL),
	('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a02', camperso.pseudonymize('u2'), 'blog', '10.1.2.0', '2024-01-05 11:00Z', NULL);
INSERT INTO sec_m.dim_user (user_id, email, plan, valid_from, valid_to, is_current) VALUES
	(camperso.pseudonymize('u1'), 'u1@example.com', 'pro', '2024-01-01', 'infinity', true),
	(camperso.pseudonymize('u2'), 'u2@example.com', 'free', '2024-01-01', 'infinity', true);
INSERT INTO sec_m.fact_clicks
	SELECT e.event_id, d.dim_user_sk, e.app_id, '10.1.2.3', e.ts FROM sec_m.events e JOIN sec_m.dim_user d USING (user_id);
REFRESH MATERIALIZED VIEW sec_m.rollup_daily;

SELECT lives_ok($$SELECT camperso.secure_schema('sec_m', ARRAY['events'])$$, 'secure_schema secures a model schema');
SELECT lives_ok($$SELECT camperso.secure_schema('sec_m', ARRAY['events'])$$, 'and is idempotent');

CREATE ROLE sec_an_shop IN ROLE camperso_analyst;
CREATE ROLE sec_an_none IN ROLE camperso_analyst;
CREATE ROLE sec_pii_shop IN ROLE camperso_pii_reader;
CREATE ROLE sec_ing IN ROLE camperso_ingest;
SELECT camperso.grant_app('sec_an_shop', 'shop');
SELECT camperso.grant_app('sec_pii_shop', 'shop');

-- PUBLIC has nothing in the schema.
SELECT is_empty($$
	SELECT c.oid::regclass::text FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
	 WHERE c.relnamespace = 'sec_m'::regnamespace AND a.grantee = 0
	UNION ALL
	SELECT 'schema' FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
	 WHERE n.nspname = 'sec_m' AND a.grantee = 0
$$, 'PUBLIC has no privilege on the secured schema or its objects');

-- Row-level security by app, through tables and every kind of view.
SELECT is(pg_temp.as_role('sec_an_shop', 'SELECT string_agg(DISTINCT app_id, '','') FROM sec_m.fact_clicks'), 'shop', 'analyst: fact rows of its app only');
SELECT is(pg_temp.as_role('sec_an_shop', 'SELECT string_agg(DISTINCT app_id, '','') FROM sec_m.bi_clicks'), 'shop', 'analyst: BI view keeps row-level security (security_invoker)');
SELECT is(pg_temp.as_role('sec_an_shop', 'SELECT string_agg(DISTINCT app_id, '','') FROM sec_m.rollup_daily_masked'), 'shop', 'analyst: rollup (materialized view) filtered by app through its view');
SELECT is(pg_temp.as_role('sec_an_shop', 'SELECT string_agg(DISTINCT app_id, '','') FROM sec_m.fact_clicks_masked'), 'shop', 'analyst: masked fact view filtered by app');
SELECT is(pg_temp.as_role('sec_an_none', 'SELECT count(*)::text FROM sec_m.fact_clicks'), '0', 'analyst without grants sees no fact rows');
SELECT is(pg_temp.as_role('sec_an_none', 'SELECT count(*)::text FROM sec_m.bi_clicks'), '0', 'nor through the BI view');
SELECT is(pg_temp.as_role('sec_an_none', 'SELECT count(*)::text FROM sec_m.rollup_daily_masked'), '0', 'nor through the rollup view');
SELECT is(pg_temp.as_role('sec_an_shop', 'SELECT count(*)::text FROM sec_m.fact_clicks WHERE app_id = ''blog'''), '0', 'asking for another app explicitly returns nothing');
SELECT is(pg_temp.as_role('sec_an_shop', $$SELECT count(*)::text FROM sec_m.fact_clicks WHERE app_id = 'blog' OR camperso.truncate_ip(app_id) IS NULL$$),
		  '1', 'a leaky predicate still sees only its app''s rows');

-- What analysts can never read.
SELECT is(pg_temp.as_role('sec_an_shop', 'SELECT count(*)::text FROM sec_m.events'), '42501', 'analyst cannot read staging');
SELECT is(pg_temp.as_role('sec_an_shop', 'SELECT count(*)::text FROM sec_m.fact_clicks_p202401'), '42501', 'analyst cannot read a partition around row-level security');
SELECT is(pg_temp.as_role('sec_pii_shop', 'SELECT count(*)::text FROM sec_m.fact_clicks_p202401'), '42501', 'nor can the pii reader');
SELECT is(pg_temp.as_role('sec_an_shop', 'SELECT count(*)::text FROM sec_m.rollup_daily'), '42501', 'analyst cannot read a materialized view with app_id around its filter');
SELECT is(pg_temp.as_role('sec_an_shop', 'SELECT email FROM sec_m.dim_user LIMIT 1'), '42501', 'analyst cannot read an email column');
SELECT is(pg_temp.as_role('sec_an_shop', 'SELECT ip FROM sec_m.fact_clicks LIMIT 1'), '42501', 'analyst cannot read an ip column');
SELECT is(pg_temp.as_role('sec_an_shop', 'SELECT plan FROM sec_m.dim_user ORDER BY plan LIMIT 1'), 'free', 'analyst reads the unmasked columns of a dimension');

-- Masked views.
SELECT is(pg_temp.as_role('sec_an_shop', 'SELECT string_agg(email, '','' ORDER BY email) FROM sec_m.dim_user_masked'),
		  'u***@example.com,u***@example.com', 'analyst sees masked emails');
SELECT is(pg_temp.as_role('sec_an_shop', 'SELECT string_agg(DISTINCT ip, '','') FROM sec_m.fact_clicks_masked'), '10.1.2.0', 'analyst sees /24 addresses');
SELECT is(pg_temp.as_role('sec_an_shop', 'SELECT user_id FROM sec_m.dim_user_masked ORDER BY plan LIMIT 1'), camperso.pseudonymize('u2'),
		  'ids are the pseudonyms made at ingest');
SELECT is(pg_temp.as_role('sec_pii_shop', 'SELECT string_agg(email, '','' ORDER BY email) FROM sec_m.dim_user'),
		  'u1@example.com,u2@example.com', 'pii reader sees unmasked emails');
SELECT is(pg_temp.as_role('sec_pii_shop', 'SELECT string_agg(DISTINCT app_id, '','') FROM sec_m.events'), 'shop', 'pii reader reads staging rows of its apps only');

-- A mask set by hand, and hiding.
INSERT INTO camperso.masks VALUES ('sec_m.dim_user', 'plan', 'hide');
SELECT camperso.secure_schema('sec_m', ARRAY['events']);
SELECT is(pg_temp.as_role('sec_an_shop', 'SELECT count(plan)::text FROM sec_m.dim_user_masked'), '0', 'a hidden column reads as NULL');
SELECT is(pg_temp.as_role('sec_an_shop', 'SELECT plan FROM sec_m.dim_user LIMIT 1'), '42501', 'and is no longer readable directly');

-- Ingest writes staging, and only staging.
SELECT is(pg_temp.as_role('sec_ing', $$INSERT INTO sec_m.events (app_id) VALUES ('shop')$$), 'ok', 'ingest inserts into staging');
SELECT is(pg_temp.as_role('sec_ing', $$INSERT INTO sec_m.fact_clicks (app_id, ts) VALUES ('shop', '2024-01-02')$$), '42501', 'ingest cannot write facts');

-- The land path (ingest(), workers) writes RLS-protected staging as a member
-- of camperso_ingest, whose policy checks nothing; other roles are refused.
INSERT INTO camperso.sources (name, brokers, topic, target) VALUES ('sec_m_src', 'x:1', 't', 'sec_m.events');
CREATE ROLE sec_writer;
GRANT USAGE ON SCHEMA sec_m, camperso TO sec_writer;
GRANT INSERT ON sec_m.events TO sec_writer;
GRANT EXECUTE ON FUNCTION camperso.ingest(text, bytea) TO sec_writer;
SELECT is(pg_temp.as_role('sec_ing', $$SELECT landed::text FROM camperso.ingest('sec_m_src', '{"app_id":"shop","user_id":"x"}')$$), '1',
		  'ingest() as camperso_ingest lands into RLS-protected staging');
SELECT is(pg_temp.as_role('sec_writer', $$SELECT landed::text FROM camperso.ingest('sec_m_src', '{"app_id":"shop"}')$$), '0A000',
		  'a role that row-level security would check is refused, not let through unchecked');
REVOKE ALL ON SCHEMA sec_m, camperso FROM sec_writer;
REVOKE ALL ON sec_m.events FROM sec_writer;
REVOKE ALL ON FUNCTION camperso.ingest(text, bytea) FROM sec_writer;

-- Every view of the schema runs as its reader or is a barrier view of camperso.
SELECT is_empty($$
	SELECT c.relname FROM pg_class c
	 WHERE c.relnamespace = 'sec_m'::regnamespace AND c.relkind = 'v'
	   AND NOT (coalesce(c.reloptions, '{}') @> ARRAY['security_invoker=true']
				OR (c.relname ~ '_masked$' AND coalesce(c.reloptions, '{}') @> ARRAY['security_barrier=true']))
$$, 'every view is security_invoker, or a security_barrier masked view');

-- Hostile schema names are refused or quoted, never executed.
SELECT throws_ok($$SELECT camperso.secure_schema('sec_m; DROP TABLE sec_m.events; --')$$, '3F000', NULL, 'an injected schema name is just an unknown schema');
CREATE SCHEMA "sec m""; DROP TABLE sec_m.events; --";
CREATE TABLE "sec m""; DROP TABLE sec_m.events; --"."t""x" (app_id text, email text);
SELECT lives_ok($$SELECT camperso.secure_schema('sec m"; DROP TABLE sec_m.events; --')$$, 'a schema with quotes and semicolons is secured');
SELECT has_table('sec_m', 'events', 'and nothing was dropped');

SELECT * FROM finish();
ROLLBACK;
